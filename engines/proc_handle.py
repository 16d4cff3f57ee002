"""The parent's handle on one child process: its pipe, its frames, its health, its CPU and RSS.

A reader thread turns the child's frames into batches (taken by :meth:`ProcHandle.take`),
the server's latest source counters (:meth:`ProcHandle.server`), replies and errors; psutil
samples the process from outside (:meth:`ProcHandle.measure`), the way ``top`` would;
:meth:`ProcHandle.state` tells live from stalled from exited.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import threading
import time
from collections import deque
from typing import Any

import psutil

from .base import EngineError
from .bottleneck import WaitMeter
from .counts import ServerSnapshot
from .events import Batch
from .placement import SEPARATE
from .registry import ENGINE_SPECS, exit_words
from .source import ProcessInfo, Progress, State
from .wire import WireError, decode_batch, read_frame_bytes, write_frame

BEHIND_CPU = 0.02
"""A digest process that used CPU since the last look (a clock tick or more), while no frame came, is
behind, not stuck: its engine serves on, faster than it digests. Seen in the app at zero latency: the
threaded engine at ~25k req/s needs most of a core's digesting, and its digest process, at nice 5 on
the core the UI and the load share, got ~9% of it (the picture seconds behind, "no answer" before)."""
RESUME_GRACE_S = 5.0  # after a suspension (ctrl+z), how long a process may catch up before "no answer"
STOPPED_EVERY_S = 0.2  # how stale a frame's "stopped?" may be (the panel's state, not a decision to kill)


KIDS_EVERY_S = 2.0  # how often an engine's child processes (prefork's workers) are looked up again
MAX_BATCHES = 600  # batches kept for a reader that does not take them (20 s at 30 a second), then the oldest go


CHILD_MODULE = "syncviz.engines.proc"


def _thread_children() -> set[int] | None:
    """The pids of the children this thread forked (Linux's ``/proc/.../children``; None elsewhere)."""
    try:
        with open(f"/proc/self/task/{threading.get_native_id()}/children") as f:
            return {int(pid) for pid in f.read().split()}
    except (OSError, ValueError):
        return None


def _kill_unowned_children(before: set[int] | None) -> None:
    """A signal's exception inside ``Popen`` (SIGHUP to ``syncviz trace``) can come after the fork:
    a child runs that no handle knows, until it reads its stdin's end once its imports are done.
    Kill what this thread forked since ``before`` and reap it."""
    after = _thread_children() if before is not None else None
    for pid in sorted((after or set()) - (before or set())):
        with contextlib.suppress(OSError):
            os.kill(pid, signal.SIGKILL)
            os.waitpid(pid, 0)


def _is_stopped(proc: psutil.Process | None) -> bool:
    """Whether ``proc`` is frozen by a signal (SIGSTOP, ctrl+z)."""
    try:
        return proc is not None and proc.status() == psutil.STATUS_STOPPED
    except psutil.Error:
        return False


class ProcHandle:
    """Starts ``python -m syncviz.engines.proc`` with ``start`` as its first frame."""

    def __init__(
        self, name: str, start: dict[str, Any], cpus: tuple[int, ...], owner: list[ProcHandle] | None = None
    ) -> None:
        """``owner``: the host's list of its handles, this one added the moment its process exists
        (a signal's exception before the caller holds the handle must not lose the process)."""
        self.name = name
        self.errors: deque[str] = deque(maxlen=20)
        self.stall_ns = 0
        self._server: tuple[int, ServerSnapshot] | None = None  # (run, latest source counters): one assignment
        self.watermark = 0  # the drain time of its last batch taken: it has sent everything before
        self._batches: deque[tuple[Batch, int]] = deque()  # at most MAX_BATCHES: see _keep
        self._reply: dict[str, Any] | None = None
        self._replied = threading.Event()
        self._send_lock = threading.Lock()
        before = _thread_children()
        try:
            self._popen = subprocess.Popen(
                [sys.executable, "-m", CHILD_MODULE],
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,  # the terminal belongs to the UI; the last lines explain an exit
                env=dict(os.environ, PYTHONUNBUFFERED="1"),
                **SEPARATE,  # the terminal's ctrl+c and hangup go to the app, which stops us
            )
            if owner is not None:
                owner.append(self)
        except BaseException:
            _kill_unowned_children(before)
            raise
        try:
            self._setup(name, start, cpus)
        except BaseException:  # a signal (ctrl+c, SIGTERM) mid-start: no process outlives its handle
            self._popen.kill()
            self._popen.wait()
            for stream in (self._popen.stdin, self._popen.stdout, self._popen.stderr):
                with contextlib.suppress(OSError, ValueError):
                    stream.close()  # type: ignore[union-attr]
            if owner is not None:  # gone, and half set up: the host's close has nothing to do with it
                with contextlib.suppress(ValueError):
                    owner.remove(self)
            raise

    def _setup(self, name: str, start: dict[str, Any], cpus: tuple[int, ...]) -> None:
        self.pid = self._popen.pid
        self.sample = ProcessInfo(self.pid, tuple(cpus))
        self._waits = WaitMeter(self.pid)  # its threads' wait for a CPU (bottleneck.uneven_split reads it)
        spec = ENGINE_SPECS.get(name)  # None: the load generator
        self._forks = spec is not None and spec.processes  # prefork: its workers count as the engine
        self._kids: dict[int, psutil.Process] = {}
        self._kids_at = 0.0  # when _kids was last looked up
        self.digest_pid: int | None = None  # its digest process (the instrument's, not the engine's)
        self._kids_since: float | None = None  # the first look (workers start then: looked for every sample)
        self.last_frame = time.monotonic()
        self.progress = Progress(self.last_frame)  # its server's last answer: a late loop that serves is not stalled
        self._grace_until = 0.0  # see heard_from_now
        self._stopped, self._stopped_at = False, -STOPPED_EVERY_S
        self._digest_stopped = False  # its digest process frozen, as read with _stopped
        self._digest_cpu: tuple[float, float] | None = None  # (when, its CPU seconds) at the last look
        self._digest_share = 0.0  # its CPU (of one core) between the last two looks
        self._digest_ps: psutil.Process | None = None
        try:
            self._ps: psutil.Process | None = psutil.Process(self.pid)
            self._ps.cpu_percent(None)
        except psutil.Error:
            self._ps = None
        self.send("start", start)
        self._reader = threading.Thread(target=self._read, name=f"{name}-reader", daemon=True)
        self._reader.start()
        self.stderr_tail: deque[str] = deque(maxlen=20)
        threading.Thread(target=self._read_stderr, name=f"{name}-stderr", daemon=True).start()

    def _read_stderr(self) -> None:
        stream = self._popen.stderr
        assert stream is not None
        with contextlib.suppress(OSError, ValueError):
            for line in stream:
                self.stderr_tail.append(line.decode(errors="replace").rstrip())

    # -- the pipe ------------------------------------------------------------------------
    def send(self, kind: str, payload: object = None) -> None:
        stdin = self._popen.stdin
        if stdin is None:
            return
        with self._send_lock, contextlib.suppress(OSError, ValueError):
            write_frame(stdin, kind, payload)

    def _read(self) -> None:
        stream = self._popen.stdout
        assert stream is not None
        while True:
            try:
                frame = read_frame_bytes(stream)
            except (WireError, OSError, ValueError) as exc:
                self.errors.append(f"bad frame from the {self.name} process: {exc}")
                frame = None
            if frame is None or frame[0] == "stopped":
                self._replied.set()  # nobody waits for a reply that will never come
                return
            self.last_frame = time.monotonic()
            kind, payload, data = frame
            if kind == "batch":
                try:
                    got = decode_batch(payload)
                except WireError as exc:
                    self.errors.append(str(exc))
                    continue
                got.batch.frames = [data]  # the tape keeps these bytes, not a new encoding of the objects
                self.stall_ns = got.stall_ns
                if got.server is not None:
                    self._server = (got.run, got.server)
                    self.progress.see(got.server.served, self.last_frame)
                self._keep(got.batch, got.run)
            elif kind == "started" and isinstance(payload, dict):
                digest_pid = payload.get("digest_pid")
                self.digest_pid = digest_pid if type(digest_pid) is int else None
                self._reply = payload
                self._replied.set()
            elif kind == "error":
                if self._replied.is_set():
                    self.errors.append(str(payload))
                else:
                    self._reply = {"error": str(payload)}
                    self._replied.set()

    def wait_started(self, timeout: float) -> dict[str, Any]:
        """The child's ``started`` reply, or :class:`EngineError` saying why there is none."""
        if not self._replied.wait(timeout):
            self.close(kill=True)
            raise EngineError(f"the {self.name} process did not start within {timeout:g} s")
        reply, self._reply = self._reply, None
        if reply is None:
            raise EngineError(f"the {self.name} process {self.exit_detail() or 'exited before starting'}")
        if "error" in reply:
            raise EngineError(reply["error"])
        return reply

    def request(self, kind: str, payload: object, timeout: float) -> dict[str, Any]:
        """Send a command that the child answers with ``started`` (a restart) and wait for it."""
        self._replied.clear()
        self.send(kind, payload)
        return self.wait_started(timeout)

    def server(self, run: int | None = None) -> ServerSnapshot | None:
        """The latest source counters the engine process sent (of ``run`` only, when given)."""
        latest = self._server
        if latest is None or (run is not None and latest[0] != run):
            return None
        return latest[1]

    def _keep(self, batch: Batch, run: int) -> None:
        """Queue a batch for :meth:`take`. A consumer that stopped taking (its thread held by a
        slow terminal, say) leaves at most :data:`MAX_BATCHES`: the oldest then go, and the next
        batch counts each as an overflow (``dropped``), so the picture says it is truncated
        instead of the process's memory growing without bound."""
        if len(self._batches) >= MAX_BATCHES:  # only this thread appends: one out keeps it under the cap
            with contextlib.suppress(IndexError):  # take() may have emptied it meanwhile: nothing lost then
                old, _run = self._batches.popleft()
                batch.dropped += 1 + old.dropped
        self._batches.append((batch, run))

    def take(self) -> list[tuple[Batch, int]]:
        out = []
        while self._batches:
            out.append(self._batches.popleft())
        return out

    # -- health --------------------------------------------------------------------------
    @property
    def alive(self) -> bool:
        return self._popen.poll() is None

    def stopped(self, max_age_s: float = STOPPED_EVERY_S) -> bool:
        """Frozen by a signal (SIGSTOP, ctrl+z), as /proc said at most ``max_age_s`` ago (the app
        asks every frame for every process; each read opens and parses /proc/PID/stat)."""
        now = time.monotonic()
        if now - self._stopped_at < max_age_s:
            return self._stopped
        self._stopped_at = now
        self._stopped = _is_stopped(self._ps)
        if self.digest_pid is not None:
            if self._digest_ps is None or self._digest_ps.pid != self.digest_pid:
                with contextlib.suppress(psutil.Error):
                    self._digest_ps = psutil.Process(self.digest_pid)
            if self._digest_ps is None:
                self._digest_stopped = False
            else:
                with self._digest_ps.oneshot():  # one read of /proc/PID/stat for its state and its CPU
                    self._digest_stopped = _is_stopped(self._digest_ps)
                    self._look_at_digest(now)
        return self._stopped

    def _look_at_digest(self, now: float) -> None:
        """Its digest process's CPU share since the last look (:data:`BEHIND_CPU`)."""
        try:
            times = self._digest_ps.cpu_times()  # type: ignore[union-attr]
        except (psutil.Error, AttributeError):
            self._digest_cpu, self._digest_share = None, 0.0
            return
        cpu = times.user + times.system
        if self._digest_cpu is not None and now > self._digest_cpu[0]:
            self._digest_share = (cpu - self._digest_cpu[1]) / (now - self._digest_cpu[0])
        self._digest_cpu = (now, cpu)

    def frozen(self, max_age_s: float = STOPPED_EVERY_S) -> bool:
        """It or its digest process is stopped: it will not answer (its writes wait), so it is killed
        rather than asked to stop or restart."""
        return self.stopped(max_age_s) or self._digest_stopped

    def exit_detail(self) -> str:
        code = self._popen.poll()
        if code is None:
            return ""
        if code < 0:
            return exit_words(code)
        last = next((line for line in reversed(self.stderr_tail) if line.strip()), "")
        return exit_words(code) + (f": {last.strip()}" if last else "")

    def heard_from_now(self) -> None:
        """Call no silence "no answer" for a while from now: the app was suspended, so its reader could
        not listen, and the process now digests the backlog its buffers kept (up to 200,000 transitions:
        1-3 s on a busy core, with nothing sent meanwhile, while its server serves on)."""
        self._grace_until = time.monotonic() + RESUME_GRACE_S

    def state(self, stall_s: float) -> tuple[State, str]:
        if not self.alive:
            return "exited", self.exit_detail()
        if self.stopped():
            return "stalled", "stopped (SIGSTOP)"
        if self._digest_stopped:  # the server may serve on: what it does is not seen
            return "stalled", "its digest process is stopped (SIGSTOP): nothing it does is shown"
        now = time.monotonic()
        silent = now - self.last_frame
        if silent > stall_s and now >= self._grace_until:
            if self._digest_share >= BEHIND_CPU:  # digesting what came before: the server serves on
                return "stalled", (
                    f"its digest process is behind ({silent:.1f} s, {self._digest_share:.0%} of a core):"
                    " the server serves on, nothing newer is shown"
                )
            return "stalled", f"no answer for {silent:.1f} s"
        if self.progress.stalled(self.stall_ns, now, stall_s):
            return "stalled", f"loop held {self.stall_ns / 1e9:.1f} s"
        return "live", ""

    def measure(self) -> None:
        """Sample CPU % (of one core, since the last sample) and RSS from outside."""
        if self._ps is None or not self.alive:
            return
        try:
            with self._ps.oneshot():
                cpu = self._ps.cpu_percent(None)
                rss = self._ps.memory_info().rss / 1e6
        except psutil.Error:
            return
        for child in self._children():  # prefork's workers: the engine is the sum of its processes
            try:
                with child.oneshot():
                    cpu += child.cpu_percent(None)
                    rss += child.memory_info().rss / 1e6
            except psutil.Error:
                self._kids_at = 0.0  # one is gone: look for its replacement at the next sample
        self.sample = ProcessInfo(self.pid, self.sample.cpus, cpu, rss, self._waits.percent())

    def _children(self) -> list[psutil.Process]:
        """Its child processes, the same objects from one sample to the next (for their CPU %). Finding
        them reads every /proc entry (4% of the app's samples): only an engine of several processes
        looks, every :data:`KIDS_EVERY_S` (every sample in the first, while the workers start) or when one is gone."""
        if not self._forks:
            return []  # one process (the registry's ``processes``): nothing to look for
        at = time.monotonic()
        if self._kids_since is None:
            self._kids_since = at
        if at - self._kids_at < KIDS_EVERY_S and at - self._kids_since > KIDS_EVERY_S:  # every sample at first
            return list(self._kids.values())  # each had its first sample when it was found
        self._kids_at = at
        try:
            now = {c.pid: c for c in self._descendants()}
        except psutil.Error:
            return []
        known = self._kids
        self._kids = {pid: known.get(pid, c) for pid, c in now.items()}
        for pid, child in self._kids.items():
            if pid not in known:
                with contextlib.suppress(psutil.Error):
                    child.cpu_percent(None)  # its first sample starts its interval
        return [c for pid, c in self._kids.items() if pid in known]

    def _descendants(self) -> list[psutil.Process]:
        """Its child processes but its digest process (psutil.Error when it is gone)."""
        if self._ps is None:
            return []
        return [c for c in self._ps.children(recursive=True) if c.pid != self.digest_pid]

    def cpu_seconds(self) -> float | None:
        """User + system CPU time so far, its child processes' included (for a window's CPU %)."""
        try:
            procs = [self._ps, *self._descendants()] if self._ps is not None else []
        except psutil.Error:
            return None
        total = None
        for proc in procs:
            with contextlib.suppress(psutil.Error):
                t = proc.cpu_times()
                total = (total or 0.0) + t.user + t.system
        return total

    def close(self, timeout: float = 3.0, kill: bool = False) -> None:
        """Ask it to stop (the caller sent ``stop``), then make sure it is gone."""
        proc = self._popen
        if kill and proc.poll() is None:
            with contextlib.suppress(OSError):
                proc.kill()
        with contextlib.suppress(OSError, ValueError):
            proc.stdin.close()  # type: ignore[union-attr]
        try:
            proc.wait(timeout)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(OSError):
                proc.kill()
            proc.wait(2)
        self._reader.join(1)
        for stream in (proc.stdout, proc.stderr):
            with contextlib.suppress(OSError, ValueError):
                stream.close()  # type: ignore[union-attr]
