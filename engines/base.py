"""The one engine interface, and what every engine shares.

An engine is a real HTTP/1.1 server running in its own OS thread(s) with its own loop.
``start()`` binds (in the caller's thread, so a port in use fails right there) and returns
the port; ``apply()`` takes new settings while it runs; ``stop()`` releases every thread,
socket and port. Implementations live one per module in ``syncviz.engines.backends``; they
import this module, never the other way round: :func:`syncviz.engines.registry.load` finds them.
"""

from __future__ import annotations

import itertools
import socket
import threading
import warnings
from abc import ABC, abstractmethod
from collections.abc import Iterable
from typing import ClassVar

from .counts import ServerCounts, ServerSnapshot
from .events import ENGINE_IDS, Block, Recorder, now_ns
from .registry import EngineError, load
from .request import EXTERNAL_IDS_START, Request
from .settings import Mode, Settings
from .watchdog import Watchdog

STOP_TIMEOUT_S = 10.0  # a stop takes milliseconds (every wait and CPU step checks ``stopping``); a bound, not a budget

engine_class = load  # the old name of :func:`syncviz.engines.registry.load`


def listen(host: str, port: int, backlog: int = 1024) -> socket.socket:
    """A bound, listening TCP socket, or :class:`EngineError` saying why not."""
    sock = socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET, socket.SOCK_STREAM)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((host, port))
        sock.listen(backlog)
    except OSError as exc:
        sock.close()
        raise EngineError(f"cannot listen on {host}:{port}: {exc.strerror or exc}") from None
    return sock


def join_threads(engine: str, threads: Iterable[threading.Thread], deadline_ns: int) -> None:
    """Join every thread, waiting until ``deadline_ns`` at most; one warning names any still running.

    A thread left running would still be executing Python code when the interpreter finalizes
    (a crash at exit, not a slow stop), so a stop that overruns is said out loud.
    """
    stuck = []
    for thread in threads:
        thread.join(max(0.0, (deadline_ns - now_ns()) / 1e9))
        if thread.is_alive():
            stuck.append(thread.name)
    if stuck:
        warnings.warn(f"{engine} engine: {', '.join(stuck)} still running after stop", RuntimeWarning, stacklevel=3)


class Engine(ABC):
    """A server under test. Subclasses set ``name`` and implement the three verbs.

    What the rest of the code knows about each engine without importing it (its model, lanes,
    capacity) is in :mod:`syncviz.engines.registry`.
    """

    name: ClassVar[str]
    watchdog: Watchdog | None = None  # what held its loop or workers (engines/watchdog.py), while recording

    def __init__(
        self,
        recorder: Recorder,
        settings: Settings,
        mode: Mode = "native",
        upstream_port: int | None = None,
        host: str = "127.0.0.1",
        port: int = 0,
    ) -> None:
        self.recorder = recorder
        self.engine_id = ENGINE_IDS[self.name]
        self.settings = settings
        self.mode: Mode = mode
        self.upstream_port = upstream_port
        self.host = host
        self.port = port
        self.counts = ServerCounts()  # served, failed, timeouts, reading: kept where they happen
        self._external_ids = itertools.count(EXTERNAL_IDS_START)
        self._ids_lock = threading.Lock()

    def provisional_id(self) -> int:
        """A fresh server-side id (outside clients, and a request still being read)."""
        with self._ids_lock:
            return next(self._external_ids)

    def request_id(self, req: Request) -> int:
        """The load generator's id (``X-Req-Id``), or a fresh one for outside clients."""
        if req.req_id is not None:
            return req.req_id
        with self._ids_lock:
            return next(self._external_ids)

    @abstractmethod
    def start(self) -> int:
        """Bind, start serving in the engine's own thread(s), return the port."""

    @abstractmethod
    def stop(self, timeout: float = STOP_TIMEOUT_S) -> None:
        """Stop serving; close every socket; join every thread."""

    def server_snapshot(self, t_ns: int) -> ServerSnapshot:
        """The source counters now (an engine with more to say, gevent's pool, overrides this)."""
        return self.counts.snapshot(t_ns)

    def overdue_ns(self, now: int) -> int:
        """How late the loop's ticker is right now: a stalled loop's lag, before it ends (0: no loop)."""
        return 0

    def take_blocks(self, now: int) -> list[Block]:
        """The calls that held the loop or a worker past the watchdog's threshold since the last take,
        and those still holding it (their duration so far); none without a watchdog."""
        wd = self.watchdog
        if wd is None:
            return []
        e = self.engine_id
        return [(t, d, e, lane, ongoing, where) for t, d, lane, ongoing, where in wd.take(now)]

    def _start_watchdog(self, watchdog: Watchdog) -> None:
        """Start ``watchdog`` beside the engine's threads (only while recording: it is part of the picture)."""
        if self.recorder.enabled:
            self.watchdog = watchdog.start()

    def _stop_watchdog(self, deadline_ns: int) -> None:
        """Stop and join the watchdog (its records stay to be taken)."""
        wd = self.watchdog
        if wd is not None and wd.thread.is_alive():
            wd.stop()
            join_threads(self.name, [wd.thread], deadline_ns)

    def apply(self, settings: Settings) -> None:
        """Take new settings while running (the handler reads them per request)."""
        self.settings = settings

    def __enter__(self) -> Engine:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()
