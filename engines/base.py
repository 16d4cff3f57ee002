"""The one engine interface, and what every engine shares.

An engine is a real HTTP/1.1 server running in its own OS thread(s) with its own loop.
``start()`` binds (in the caller's thread, so a port in use fails right there) and returns
the port; ``apply()`` takes new settings while it runs; ``stop()`` releases every thread,
socket and port. Implementations live one per module in ``syncviz.engines.backends``.
"""

from __future__ import annotations

import itertools
import socket
import threading
from abc import ABC, abstractmethod
from typing import ClassVar

from .events import ENGINE_IDS, Recorder
from .http import EXTERNAL_IDS_START, Request
from .settings import Mode, Settings

LAG_TICK_S = 0.010  # the loop/hub ticker's period; its lateness is the loop lag
STOP_TIMEOUT_S = 2.0


class EngineError(RuntimeError):
    """Starting an engine failed (e.g. the port is in use); the message is one line."""


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


class Engine(ABC):
    """A server under test. Subclasses set ``name`` and implement the three verbs."""

    name: ClassVar[str]
    model: ClassVar[str]  # its concurrency model in a few words

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
        self._external_ids = itertools.count(EXTERNAL_IDS_START)
        self._ids_lock = threading.Lock()

    def request_id(self, req: Request) -> int:
        """The load generator's id (``X-Req-Id``), or a fresh one for outside clients."""
        if req.req_id is not None:
            return req.req_id
        with self._ids_lock:
            return next(self._external_ids)

    def _start_loop_thread(self, name: str, timeout: float = 5.0) -> None:
        """Run ``self._run`` (which sets ``self._ready`` once serving) in the engine's own thread."""
        self._ready = threading.Event()
        self._error: BaseException | None = None
        self._thread = threading.Thread(target=self._run, name=name, daemon=True)
        self._thread.start()
        self._ready.wait(timeout)
        if self._error is not None:
            raise EngineError(f"{self.name} engine failed to start: {self._error}")

    def _run(self) -> None:
        raise NotImplementedError

    @abstractmethod
    def start(self) -> int:
        """Bind, start serving in the engine's own thread(s), return the port."""

    @abstractmethod
    def stop(self, timeout: float = STOP_TIMEOUT_S) -> None:
        """Stop serving; close every socket; join every thread."""

    _tick_due = 0  # when the loop/hub ticker is due to run again (0: no ticker)

    def overdue_ns(self, now: int) -> int:
        """How late the loop's ticker is right now: a stalled loop's lag, before it ends."""
        return max(0, now - self._tick_due) if self._tick_due else 0

    def apply(self, settings: Settings) -> None:
        """Take new settings while running (the handler reads them per request)."""
        self.settings = settings

    def __enter__(self) -> Engine:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


def engine_class(name: str) -> type[Engine]:
    """The engine implementation called ``name`` (imports only that backend)."""
    if name == "threaded":
        from .backends._threaded import ThreadedEngine

        return ThreadedEngine
    if name == "asyncio":
        from .backends._asyncio import AsyncioEngine

        return AsyncioEngine
    if name == "gevent":
        from .backends._gevent import GeventEngine

        return GeventEngine
    raise EngineError(f"unknown engine {name!r} (known: {', '.join(ENGINE_IDS)})")
