"""The prefork engine: N sync worker processes, each serving on one thread, on one listening socket.

gunicorn's sync worker (``gunicorn -w N``), the oldest answer to the GIL: the engine process
binds the socket and starts N workers (:mod:`~syncviz.engines.backends._prefork_worker`, run
with ``python -m``, the socket passed down), each with a GIL of its own. Each worker serves on
one thread: it waits in a selector for the shared socket or one of its own keep-alive connections,
takes one, and serves its request blocking, exactly as a threaded pool thread does (the same
code, :class:`~._threaded.ThreadedEngine`'s ``_serve``, on its own lane: lane = worker index). A
request waits QUEUED (from the load generator's ``X-Sent-Ns``) in the shared accept backlog or
in its worker's selector until that worker is free.

Keep-alive would pin a client to the worker that accepted it (one that started late, after a
``workers`` change or a restart, got nothing while another held every connection and queued
them all). So the waiting is shared as gunicorn's (no keep-alive: every request in the one
backlog) is, without closing anything: a worker with a request waiting behind the one it is
about to serve, while a sibling sits free (a flag per worker in a shared page, :class:`_Free`),
hands that connection over (its descriptor, ``SCM_RIGHTS``, on a datagram socket all workers
share); the free one takes it, as it takes a connection from the backlog. Still one request
at a time per worker; a request waits only while every worker is busy.

A worker writes its transitions and counts to the engine process as they happen, as
fixed-size binary records over a pipe (:data:`RECORD`: no pickle); a reader thread there
appends them to the engine's recorder. A worker that dies is started again (the worker count
never shrinks; the engine process takes back the connections it was reading from the counts);
each exits when the engine process closes its stdin, dies (``PR_SET_PDEATHSIG``) or stops it:
SIGTERM ends its connections as threaded's stop does (a request being read or served ends
FAILED), then SIGKILL if it has not gone. Its read and keep-alive timeouts are threaded's:
``settings.timeout_s`` for a request's bytes (then 408), :attr:`PreforkEngine.keepalive_idle_s`
for an idle connection.
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import socket
import subprocess
import sys
import tempfile
import threading
from typing import Any, ClassVar

from ..base import STOP_TIMEOUT_S, Engine, EngineError, join_threads, listen
from ..counts import KEEPALIVE_IDLE_S, ServerSnapshot
from ..events import now_ns
from ..placement import current_cpus
from ..registry import MAX_WORKERS, prefork_workers
from ..settings import Settings
from ._prefork_worker import COUNTS, RECORD, SIZE, TRANSITION, WAITING, _Free, worker_main

START_TIMEOUT_S = 15.0


def defer_accept_s(idle_s: float) -> int:
    """How long the kernel holds a new connection until its first bytes (``TCP_DEFER_ACCEPT``): the
    keep-alive idle time, in whole seconds.

    A connection is accepted once its first bytes arrive, and a worker takes one per turn of its
    loop, after serving what it has: a free worker takes it first (without this, one worker took
    all 20 connections a load opened at once and the other idled). One that sends nothing is
    accepted when this runs out (at the kernel's first SYN-ACK retry past it: 1, 3, 7, 15 s after
    connecting) with nothing to read: idle that long already, it is closed quietly then, as the
    other engines close a silent connection after their idle time.
    """
    return max(1, math.ceil(idle_s))


class _Proc:
    """The engine process's handle on one worker: its process, its pipe, its reader thread."""

    def __init__(self, engine: PreforkEngine, lane: int) -> None:
        self.lane = lane
        r, w = os.pipe()
        fds = (engine._lsock.fileno(), w, engine._give.fileno(), engine._take.fileno(), engine._free_fd)
        self.popen = subprocess.Popen(
            [sys.executable, "-m", worker_main.__module__, str(lane), *(str(fd) for fd in fds)],
            stdin=subprocess.PIPE,
            pass_fds=fds,
        )
        os.close(w)
        self.ready = threading.Event()
        self.reading = 0  # its connections reading now, as it counted them (taken back if it dies)
        self.waiting = 0  # its connections readable behind the one it serves, as it last said
        self.reader = threading.Thread(target=engine._read, args=(self, r), name=f"prefork-{lane}", daemon=True)
        self.reader.start()
        self.send(engine._config())

    def send(self, payload: dict[str, Any]) -> None:
        stdin = self.popen.stdin
        with contextlib.suppress(OSError, ValueError, AttributeError):
            stdin.write(json.dumps(payload).encode() + b"\n")  # type: ignore[union-attr]
            stdin.flush()  # type: ignore[union-attr]

    def end(self) -> None:
        """Ask it to go: close its stdin, and SIGTERM it (it may be in a handler)."""
        with contextlib.suppress(OSError, ValueError, AttributeError):
            self.popen.stdin.close()  # type: ignore[union-attr]
        with contextlib.suppress(OSError):
            self.popen.terminate()


class PreforkEngine(Engine):
    name = "prefork"
    keepalive_idle_s: ClassVar[float] = KEEPALIVE_IDLE_S  # an idle keep-alive connection closes after this

    def start(self) -> int:
        self._lsock = listen(self.host, self.port)
        self.counts.listener = self._lsock  # its accept queue: counts.accept_queue
        self.port = self._lsock.getsockname()[1]
        self._deferred = False
        with contextlib.suppress(AttributeError, OSError):  # Linux: connections wait until they send
            self._lsock.setsockopt(socket.IPPROTO_TCP, socket.TCP_DEFER_ACCEPT, defer_accept_s(self.keepalive_idle_s))
            self._deferred = True
        self._take, self._give = socket.socketpair(socket.AF_UNIX, socket.SOCK_DGRAM)  # see _Worker._give_away
        self._free_fd, path = tempfile.mkstemp(prefix="syncviz-prefork-")  # the workers' free flags (_Free)
        os.unlink(path)
        os.ftruncate(self._free_fd, MAX_WORKERS)
        self._free = _Free(self._free_fd)
        self._stopping = False
        self._lock = threading.Lock()
        self._procs: dict[int, _Proc] = {}
        self._grow(prefork_workers(self.settings, current_cpus()))
        for proc in list(self._procs.values()):
            if not proc.ready.wait(START_TIMEOUT_S):
                self.stop()
                raise EngineError(f"prefork engine: worker {proc.lane} did not start")
        return self.port

    def _config(self) -> dict[str, Any]:
        return {
            "settings": self.settings.as_dict(),
            "mode": self.mode,
            "upstream_port": self.upstream_port,
            "record": self.recorder.enabled,
            "keepalive_idle_s": self.keepalive_idle_s,
            "deferred": self._deferred,
        }

    def _grow(self, n: int) -> None:
        with self._lock:
            for lane in range(n):
                if lane not in self._procs:
                    self._procs[lane] = _Proc(self, lane)
            for lane in [lane for lane in self._procs if lane >= n]:
                self._procs.pop(lane).end()  # it finishes its request, then sees its stdin closed
            self.counts.workers = n

    def apply(self, settings: Settings) -> None:
        super().apply(settings)
        self._grow(prefork_workers(settings, current_cpus()))
        for proc in list(self._procs.values()):
            proc.send(settings.as_dict())

    def server_snapshot(self, t_ns: int) -> ServerSnapshot:
        """The source counters now, with the connections waiting in its workers for them (``waiting``:
        readable behind the request each serves, as threaded's wait in its hand-off queue)."""
        self.counts.waiting = sum(proc.waiting for proc in list(self._procs.values()))
        return super().server_snapshot(t_ns)

    def workers_alive(self) -> int:
        """Worker processes running now."""
        return sum(1 for p in list(self._procs.values()) if p.popen.poll() is None)

    def worker_pids(self) -> list[int]:
        return [p.popen.pid for p in list(self._procs.values())]

    def _read(self, proc: _Proc, fd: int) -> None:
        """One worker's records, into the recorder and the counts; a worker that died starts again."""
        size = RECORD.size
        append, engine, add, sized = self.recorder.transition, self.engine_id, self.counts.add, self.recorder.size
        buf = b""
        with os.fdopen(fd, "rb", buffering=0) as pipe:
            while data := pipe.read(65536):
                buf += data
                end = len(buf) - len(buf) % size
                for kind, a, b, c, d in RECORD.iter_unpack(buf[:end]):
                    if kind == TRANSITION:
                        append((a, engine, b, c, d))
                    elif kind == COUNTS:
                        add(a, b, c, d)
                        proc.reading += d
                    elif kind == SIZE:
                        sized((a, engine, b, c, d))
                    elif kind == WAITING:
                        proc.waiting = a
                    else:
                        proc.ready.set()
                buf = buf[end:]
        proc.popen.wait()
        proc.waiting = 0  # what waited for it is its clients' to tell (their connections closed with it)
        self._free.set(proc.lane, False)  # gone: nothing is handed to it (a new one says when it is free)
        if proc.reading > 0:  # it died reading them (SIGKILL, a crash): their clients lost their requests
            self.counts.add(failed=proc.reading, reading=-proc.reading)
        with self._lock:  # one that never started is start()'s error, not started again
            if not self._stopping and proc.ready.is_set() and self._procs.get(proc.lane) is proc:
                self._procs[proc.lane] = _Proc(self, proc.lane)  # never fewer workers

    def stop(self, timeout: float = STOP_TIMEOUT_S) -> None:
        if getattr(self, "_stopping", True):
            return
        deadline = now_ns() + int(timeout * 1e9)
        with self._lock:
            self._stopping = True
            procs = list(self._procs.values())
        for proc in procs:
            proc.end()
        for proc in procs:
            try:
                proc.popen.wait(max(0.05, (deadline - now_ns()) / 1e9))
            except subprocess.TimeoutExpired:
                proc.popen.kill()
                proc.popen.wait(2)
        join_threads(self.name, [p.reader for p in procs], deadline)
        self._lsock.close()
        self._give.close()  # connections still in flight between workers close with it
        self._take.close()
        self._free.map.close()
        os.close(self._free_fd)
