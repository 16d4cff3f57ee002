"""The engine host in a child process, its event stream over a pipe.

A UI in the servers' process costs them a third of their throughput (see the project
notes), so the app runs :class:`~syncviz.engines.host.EngineHost` here: ``python -m
syncviz.engines.child``, pinned to one CPU, reading commands on stdin and writing batches
on stdout ~30 times a second. Frames are a 4-byte big-endian length and a pickle.

:class:`ChildHost` is the parent's side and implements the same
:class:`~syncviz.engines.host.EventSource` as the in-process host. The child exits when
told to, or as soon as its stdin closes (the parent died): no orphans.
"""

from __future__ import annotations

import contextlib
import os
import pickle
import struct
import subprocess
import sys
import threading
import time
from collections import deque
from typing import Any

from .base import EngineError
from .events import Batch
from .host import EngineHost, EventSource, pin_to_one_cpu
from .settings import SettingsError

FRAME = struct.Struct(">I")
SEND_INTERVAL_S = 1 / 30
START_TIMEOUT_S = 15.0


def write_frame(stream: Any, obj: object) -> None:
    data = pickle.dumps(obj, protocol=pickle.HIGHEST_PROTOCOL)
    stream.write(FRAME.pack(len(data)) + data)
    stream.flush()


def read_frame(stream: Any) -> Any:
    """The next object, or ``None`` at end of stream."""
    head = stream.read(FRAME.size)
    if len(head) < FRAME.size:
        return None
    (size,) = FRAME.unpack(head)
    data = stream.read(size)
    if len(data) < size:
        return None
    return pickle.loads(data)


# -- the child ---------------------------------------------------------------------------
def child_main() -> int:
    out = sys.stdout.buffer
    sys.stdout = sys.stderr  # nothing else may write into the frame stream
    inp = sys.stdin.buffer
    start = read_frame(inp)
    if not start or start[0] != "start":
        return 2
    cpu = pin_to_one_cpu() if start[1].pop("pin", True) else None
    try:
        host = EngineHost(**start[1]).start()
    except (EngineError, SettingsError) as exc:
        write_frame(out, ("error", str(exc)))
        return 2
    write_frame(out, ("started", {**host.info(), "cpu": cpu}))
    commands: deque = deque()
    done = threading.Event()

    def read_commands() -> None:
        while True:
            cmd = read_frame(inp)
            commands.append(cmd or ("stop",))
            if not cmd or cmd[0] == "stop":
                done.set()
                return

    threading.Thread(target=read_commands, name="commands", daemon=True).start()
    try:
        while not done.is_set() or commands:
            while commands:
                cmd = commands.popleft()
                if cmd[0] == "stop":
                    done.set()
                    break
                error = _run_command(host, cmd)
                if error:
                    write_frame(out, ("error", error))
            batch = host.drain()
            write_frame(out, ("batch", batch))
            done.wait(SEND_INTERVAL_S)
    except (BrokenPipeError, OSError):
        pass
    finally:
        host.close()
    with contextlib.suppress(OSError):
        write_frame(out, ("stopped", None))
    return 0


def _run_command(host: EngineHost, cmd: tuple) -> str | None:
    try:
        if cmd[0] == "apply":
            host.apply(**cmd[1])
        elif cmd[0] == "scenario":
            host.set_scenario(cmd[1], **cmd[2])
    except (EngineError, SettingsError) as exc:
        return str(exc)
    except Exception as exc:  # a bad command must never take the engines down silently
        return f"{cmd[0]} failed: {type(exc).__name__}: {exc}"
    return None


# -- the parent's side -------------------------------------------------------------------
class ChildHost(EventSource):
    """Runs an :class:`EngineHost` in a child process; same interface, over a pipe."""

    def __init__(self, **host_kwargs: Any) -> None:
        self.host_kwargs = host_kwargs
        self.info: dict[str, Any] = {}
        self.errors: deque[str] = deque(maxlen=20)
        self._batches: deque[Batch] = deque()
        self._proc: subprocess.Popen | None = None
        self._reader: threading.Thread | None = None
        self._started = threading.Event()
        self._start_error: str | None = None

    def start(self, timeout: float = START_TIMEOUT_S) -> ChildHost:
        env = dict(os.environ, PYTHONUNBUFFERED="1")
        self._proc = subprocess.Popen(
            [sys.executable, "-m", "syncviz.engines.child"],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,  # the terminal belongs to the UI
            env=env,
        )
        self._send(("start", dict(self.host_kwargs)))
        self._reader = threading.Thread(target=self._read, name="child-reader", daemon=True)
        self._reader.start()
        if not self._started.wait(timeout):
            self.close()
            raise EngineError("the engine process did not start in time")
        if self._start_error is not None:
            self.close()
            raise EngineError(self._start_error)
        return self

    def _read(self) -> None:
        assert self._proc is not None and self._proc.stdout is not None
        stream = self._proc.stdout
        while True:
            frame = read_frame(stream)
            if frame is None:
                if not self._started.is_set():
                    self._start_error = "the engine process exited before starting"
                    self._started.set()
                return
            kind, payload = frame
            if kind == "batch":
                self._batches.append(payload)
            elif kind == "started":
                self.info = payload
                self._started.set()
            elif kind == "error":
                if self._started.is_set():
                    self.errors.append(payload)
                else:
                    self._start_error = payload
                    self._started.set()
            elif kind == "stopped":
                return

    def _send(self, cmd: tuple) -> None:
        if self._proc is None or self._proc.stdin is None:
            return
        with contextlib.suppress(OSError, ValueError):
            write_frame(self._proc.stdin, cmd)

    def drain(self) -> Batch:
        out = Batch(t_ns=time.monotonic_ns())
        while self._batches:
            out.extend(self._batches.popleft())
        if out.info is not None:
            self.info = {**self.info, **out.info}
        return out

    def apply(self, **changes: Any) -> None:
        self._send(("apply", changes))

    def set_scenario(self, name: str, **overrides: Any) -> None:
        self._send(("scenario", name, overrides))

    @property
    def alive(self) -> bool:
        return self._proc is not None and self._proc.poll() is None

    def close(self, timeout: float = 3.0) -> None:
        proc = self._proc
        if proc is None:
            return
        self._send(("stop",))
        with contextlib.suppress(OSError, ValueError):
            proc.stdin.close()  # type: ignore[union-attr]
        try:
            proc.wait(timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(1)
        if self._reader is not None:
            self._reader.join(1)
        with contextlib.suppress(OSError, ValueError):
            proc.stdout.close()  # type: ignore[union-attr]
        self._proc = None

    def __enter__(self) -> ChildHost:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.close()


if __name__ == "__main__":
    sys.exit(child_main())
