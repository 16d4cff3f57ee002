"""The upstream service: what the handlers' ``upstream`` I/O really talks to.

A tiny asyncio HTTP server on loopback in its own thread and loop. ``GET /delay?us=N``
answers after N microseconds with an empty 200 whose ``X-Sent-Ns`` header holds the
monotonic time the answer was written, so the caller can tell how long it sat ready before
its engine got round to reading it.
"""

from __future__ import annotations

import asyncio
import contextlib
import threading

from .base import listen
from .events import now_ns
from .request import HttpError, RequestReader

MAX_DELAY_US = 3_600_000_000  # an hour: longer asks are clamped
_REPLY = b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\nX-Sent-Ns: %d\r\n\r\n"
_BAD = b"HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"


def delay_s(query: str) -> float:
    """The ``us=N`` of a query string in seconds (0 when absent or not ASCII digits)."""
    for part in query.split("&"):
        name, _, value = part.partition("=")
        if name == "us" and value.isascii() and value.isdigit():
            return min(int(value[:12]), MAX_DELAY_US) / 1e6
    return 0.0


class _Upstream(asyncio.Protocol):
    def __init__(self, conns: set) -> None:
        self.reader = RequestReader()
        self.conns = conns

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport: asyncio.Transport = transport  # type: ignore[assignment]
        self.loop = asyncio.get_running_loop()
        self.conns.add(transport)

    def connection_lost(self, exc: Exception | None) -> None:
        self.conns.discard(self.transport)

    def data_received(self, data: bytes) -> None:
        try:
            reqs = self.reader.feed(data)
        except HttpError as exc:
            reqs = exc.requests
            self.loop.call_later(self._last_delay(reqs), self._refuse)
        for req in reqs:
            self.loop.call_later(delay_s(req.query), self._reply)

    def _last_delay(self, reqs: list) -> float:
        return max((delay_s(r.query) for r in reqs), default=0.0)

    def _reply(self) -> None:
        if not self.transport.is_closing():
            self.transport.write(_REPLY % now_ns())

    def _refuse(self) -> None:
        if not self.transport.is_closing():
            self.transport.write(_BAD)
            self.transport.close()


class Upstream:
    """Start with :meth:`start` (returns the port), stop with :meth:`stop`."""

    def __init__(self, host: str = "127.0.0.1") -> None:
        self.host = host
        self.port = 0
        self._thread: threading.Thread | None = None

    def start(self) -> int:
        sock = listen(self.host, 0)
        self.port = sock.getsockname()[1]
        ready = threading.Event()
        self._loop = asyncio.new_event_loop()
        self._conns: set = set()

        async def main() -> None:
            self._stop = asyncio.get_running_loop().create_future()
            server = await self._loop.create_server(lambda: _Upstream(self._conns), sock=sock)
            ready.set()
            await self._stop
            server.close()
            for transport in list(self._conns):
                transport.abort()
            await asyncio.sleep(0)

        def run() -> None:
            try:
                self._loop.run_until_complete(main())
            finally:
                self._loop.close()

        self._thread = threading.Thread(target=run, name="upstream", daemon=True)
        self._thread.start()
        ready.wait(5)
        return self.port

    def stop(self, timeout: float = 2.0) -> None:
        if self._thread is None or not self._thread.is_alive():
            return
        with contextlib.suppress(RuntimeError):
            self._loop.call_soon_threadsafe(lambda: self._stop.done() or self._stop.set_result(None))
        self._thread.join(timeout)
