"""SIGTERM, SIGINT, SIGHUP and ctrl+c leave the way ``q`` does: terminal restored, nothing left running.

The real thing runs ``syncviz`` on a pseudo-terminal, signals it once it has drawn, and checks
the exit status (128 + signum; 0 for the ctrl+c key), that every process it started is gone,
and that the terminal is back in cooked mode (echo, canonical) with the alternate screen and
mouse tracking switched off. The rest checks the two layers of :mod:`syncviz.tui.signals`
in this process.
"""

from __future__ import annotations

import fcntl
import os
import signal
import struct
import subprocess
import sys
import termios
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from syncviz.engines.recording import Replay
from syncviz.tui.app import SyncvizApp
from syncviz.tui.signals import LaunchGuard, SignalExit, exit_status

psutil = pytest.importorskip("psutil")

DATA = Path(__file__).parent / "data"
DRAW_TIMEOUT_S = 60.0  # a loaded 2-core box can take a while to start the engines and draw
EXIT_TIMEOUT_S = 20.0  # app teardown plus closing the engines (about 1-5 s on a busy 2-core box)
LEAVE_ALT_SCREEN = b"\x1b[?1049l"
MOUSE_OFF = b"\x1b[?1000l"


def test_exit_status_is_128_plus_the_signal() -> None:
    assert [exit_status(s) for s in (signal.SIGHUP, signal.SIGINT, signal.SIGTERM)] == [129, 130, 143]


# -- in this process -------------------------------------------------------------------
def test_launch_guard_remembers_a_signal_raises_on_the_second_and_restores_handlers() -> None:
    before = {s: signal.getsignal(s) for s in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP)}
    with pytest.raises(SignalExit) as caught, LaunchGuard() as guard:
        signal.raise_signal(signal.SIGTERM)  # while the engines start: remembered, not raised
        assert guard.signum == signal.SIGTERM
        assert guard.status == 143
        signal.raise_signal(signal.SIGINT)  # asked twice: go now
        pytest.fail("the second signal did not raise")
    assert caught.value.code == exit_status(signal.SIGINT)
    assert guard.signum == signal.SIGTERM  # the first one sets the status
    assert {s: signal.getsignal(s) for s in before} == before


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@pytest.mark.anyio
async def test_a_signal_exits_the_running_app_and_its_handlers_are_put_back() -> None:
    before = signal.getsignal(signal.SIGTERM)
    app = SyncvizApp(Replay.from_file(DATA / "io-bound.rec.gz"), live=False)
    async with app.run_test(size=(120, 40)) as pilot:
        await pilot.pause()
        if signal.getsignal(signal.SIGTERM) is before:  # not installed: raising it would end pytest
            pytest.fail("the app installed no SIGTERM handler")
        signal.raise_signal(signal.SIGTERM)
        await pilot.pause(0.2)
        assert app._exit
    assert app.return_value == 143
    assert app.return_code == 143
    assert signal.getsignal(signal.SIGTERM) is before


@pytest.mark.anyio
async def test_ctrl_c_is_a_quit_key() -> None:
    app = SyncvizApp(Replay.from_file(DATA / "io-bound.rec.gz"), live=False)
    async with app.run_test(size=(120, 40)) as pilot:
        await pilot.pause()
        await pilot.press("ctrl+c")
        await pilot.pause()
        assert app._exit
    assert app.return_value == 0


# -- the real thing, on a pseudo-terminal ------------------------------------------------
class Terminal:
    """``syncviz`` on a pty (120x40), its output drained by a thread into ``output``."""

    def __init__(self, *args: str) -> None:
        self.master, self.slave = os.openpty()
        fcntl.ioctl(self.slave, termios.TIOCSWINSZ, struct.pack("HHHH", 40, 120, 0, 0))
        env = {k: v for k, v in os.environ.items() if not k.startswith("TEXTUAL")}
        env["TERM"] = "xterm-256color"
        self.proc = subprocess.Popen(
            # 10 clients an engine, not the scenario's 100: the app and its engines as they are, a lighter load
            [sys.executable, "-m", "syncviz.tui.cli", "--host", "127.0.0.1", "--clients", "10", *args],
            stdin=self.slave,
            stdout=self.slave,
            stderr=self.slave,
            env=env,
            start_new_session=True,  # a signal from pytest's terminal never reaches it
        )
        self.output = bytearray()
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        while True:
            try:
                data = os.read(self.master, 65536)
            except OSError:
                return
            if not data:
                return
            self.output.extend(data)

    def lflag(self) -> int:
        return termios.tcgetattr(self.slave)[3]

    def wait_drawn(self) -> None:
        end = time.monotonic() + DRAW_TIMEOUT_S
        while time.monotonic() < end and self.proc.poll() is None:
            if b"threaded" in self.output and not self.lflag() & termios.ECHO:
                time.sleep(0.5)  # mounted: the panels are on screen
                return
            time.sleep(0.05)
        pytest.fail(f"syncviz did not draw (exit {self.proc.poll()}): {bytes(self.output[-500:])!r}")

    def close(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(5)
        for fd in (self.master, self.slave):
            os.close(fd)
        self._reader.join(2)


@pytest.fixture
def terminal() -> Iterator[Callable[..., Terminal]]:
    opened: list[Terminal] = []

    def open_terminal(*args: str) -> Terminal:
        opened.append(Terminal(*args))
        return opened[-1]

    yield open_terminal
    for term in opened:
        term.close()


def assert_left_clean(term: Terminal, children: list, status: int) -> None:
    try:
        code = term.proc.wait(EXIT_TIMEOUT_S)
    except subprocess.TimeoutExpired:
        pytest.fail(f"still running {EXIT_TIMEOUT_S:g} s after the signal")
    assert code == status, bytes(term.output[-800:])
    _, alive = psutil.wait_procs(children, timeout=5)
    assert not alive, f"left running: {[p.pid for p in alive]}"
    lflag = term.lflag()
    assert lflag & termios.ECHO, "echo is still off"
    assert lflag & termios.ICANON, "canonical mode is still off"
    time.sleep(0.2)  # the reader's last bytes
    tail = bytes(term.output[-400:])
    assert LEAVE_ALT_SCREEN in tail
    assert MOUSE_OFF in tail


@pytest.mark.parametrize(
    ("how", "args"),
    [
        (signal.SIGTERM, ()),
        (signal.SIGHUP, ()),
        (signal.SIGINT, ("--in-process",)),  # in-process: no engine process, quicker to start
        ("ctrl+c", ("--in-process",)),
        # a stray SIGCONT, then SIGTERM and SIGCONT as `timeout` sends them: Textual's driver took
        # each SIGCONT for a resume, saved the raw mode as the one to restore, and left it on exit
        ("SIGCONT+SIGTERM+SIGCONT", ("--in-process",)),
    ],
    ids=["SIGTERM", "SIGHUP", "SIGINT-in-process", "ctrl+c-key-in-process", "stray-SIGCONT-in-process"],
)
def test_the_app_leaves_like_q(
    terminal: Callable[..., Terminal], how: signal.Signals | str, args: tuple[str, ...]
) -> None:
    term = terminal(*args)
    term.wait_drawn()
    children = psutil.Process(term.proc.pid).children(recursive=True)
    if "--in-process" not in args:
        assert children, "no engine process to check"
    if how == "ctrl+c":
        os.write(term.master, b"\x03")
        status = 0
    elif how == "SIGCONT+SIGTERM+SIGCONT":
        term.proc.send_signal(signal.SIGCONT)
        time.sleep(0.3)
        term.proc.send_signal(signal.SIGTERM)
        term.proc.send_signal(signal.SIGCONT)
        status = exit_status(signal.SIGTERM)
    else:
        term.proc.send_signal(how)
        status = exit_status(how)
    assert_left_clean(term, children, status)


def test_a_signal_while_the_engines_start_exits_clean(terminal: Callable[..., Terminal]) -> None:
    term = terminal()
    end = time.monotonic() + DRAW_TIMEOUT_S
    children: list = []
    while not children and time.monotonic() < end and term.proc.poll() is None:
        children = psutil.Process(term.proc.pid).children(recursive=True)
        time.sleep(0.01)
    assert children, "no engine process started"
    term.proc.send_signal(signal.SIGTERM)  # before the app has drawn (most likely before it runs)
    try:
        code = term.proc.wait(EXIT_TIMEOUT_S)
    except subprocess.TimeoutExpired:
        pytest.fail(f"still running {EXIT_TIMEOUT_S:g} s after the signal")
    assert code == 143, bytes(term.output[-800:])
    _, alive = psutil.wait_procs(children, timeout=5)
    assert not alive
    assert term.lflag() & termios.ECHO
    assert b"Traceback" not in term.output


@pytest.mark.parametrize(
    ("command", "sig"),
    [
        (["record", "--out", "{tmp}/run.rec"], signal.SIGTERM),
        (["trace", "--out", "{tmp}/run.json"], signal.SIGHUP),
        (["bench", "--json"], signal.SIGTERM),
    ],
    ids=["record-SIGTERM", "trace-SIGHUP", "bench-SIGTERM"],
)
def test_a_headless_command_unwinds_on_sigterm_and_sighup(tmp_path: Path, command: list[str], sig: int) -> None:
    """As ctrl+c does: its engine processes closed, no half-written file, exit 128 + signum (they
    were killed outright, leaving ``.run.json.PID.partial`` and, for a while, the engines)."""
    args = [a.format(tmp=tmp_path) for a in command]
    proc = subprocess.Popen(
        [sys.executable, "-m", "syncviz.tui.cli", *args, "--seconds", "20", "--clients", "2"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    parent = psutil.Process(proc.pid)
    children: list = []
    end = time.monotonic() + DRAW_TIMEOUT_S
    while len(children) < 2 and time.monotonic() < end:  # an engine and the load process at least
        time.sleep(0.1)
        children = [c for c in parent.children() if _is_engine_process(c)]
    proc.send_signal(sig)
    out, err = proc.communicate(timeout=EXIT_TIMEOUT_S)
    assert proc.returncode == exit_status(sig), err
    assert "Traceback" not in err
    assert not [c for c in children if c.is_running() and c.status() != psutil.STATUS_ZOMBIE]
    left = sorted(p.name for p in tmp_path.iterdir())
    if left == ["run.rec"]:  # ctrl+c's rule: what was recorded is kept, and says so
        assert "interrupted" in out and Replay.from_file(tmp_path / "run.rec").info
    else:  # stopped before anything was recorded (or nothing to keep): no file, no hidden partial one
        assert left == []


def _is_engine_process(p: psutil.Process) -> bool:
    try:
        return "syncviz.engines.proc" in " ".join(p.cmdline())
    except psutil.Error:  # gone meanwhile
        return False
