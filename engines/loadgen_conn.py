"""One connection of the load generator: the request it sends, the parser of what comes back,
its protocol, and the ids a connection that could not be opened is recorded under.

Every request carries its id (``X-Req-Id``) and its intended send time (``X-Sent-Ns``): the
server records the request's QUEUED itself (:data:`REQUEST`). :class:`_Response` parses the
answers on httptools, never raising on bytes that are not HTTP (:data:`BAD_RESPONSE`). A connect
that fails is a failed latency sample whose request id is minus its errno
(:func:`connect_error_rid`), counted by errno name (:func:`connect_errors`) and summed up in one
line (:func:`connect_errors_line`).
"""

from __future__ import annotations

import asyncio
import errno
import socket
from collections import Counter
from collections.abc import Iterable, Mapping
from typing import TYPE_CHECKING

import httptools

from .events import Latency

if TYPE_CHECKING:
    from .loadgen import _Target

REQUEST = b"GET / HTTP/1.1\r\nHost: syncviz\r\nX-Req-Id: %d\r\nX-Sent-Ns: %d\r\n\r\n"
"""``X-Sent-Ns``: the intended send time (monotonic ns), so the server records the request's QUEUED itself."""


class _Response:
    """Incremental HTTP/1.1 response parser on httptools (llhttp): fixed length, chunked, until-close.

    One request is in flight per connection, so one response at a time; bytes that are not a
    response (an engine gone wrong) never raise: they end in :data:`BAD_RESPONSE`.
    """

    __slots__ = ("_parser", "bad", "done", "status")

    def __init__(self) -> None:
        self._parser = httptools.HttpResponseParser(self)
        self.status = 0  # of the last complete response
        self.done = 0  # complete responses in the current feed
        self.bad = False  # the stream is not HTTP: every later feed says so too

    def feed(self, data: bytes) -> int:
        """Add bytes; return the status when a whole response is in, else 0 (``BAD_RESPONSE``: not HTTP)."""
        if self.bad:
            return BAD_RESPONSE
        self.done = 0
        try:
            self._parser.feed_data(data)
        except Exception:  # llhttp's verdict: the connection is unusable
            self.bad = True
            return BAD_RESPONSE
        return self.status if self.done else 0

    def on_message_complete(self) -> None:
        if not self.done:
            self.status = self._parser.get_status_code()
        self.done += 1


BAD_RESPONSE = -1  # what _Response.feed says of bytes that are not a response (counted as a failure)


def connect_error_rid(exc: OSError) -> int:
    """The request id a failed connect is recorded under: minus its errno (0: no errno).

    Requests are numbered from 1, so a sample with an id of 0 or less is a connection error.
    """
    code = exc.errno if isinstance(exc.errno, int) and exc.errno > 0 else 0
    if not code and isinstance(exc, TimeoutError):
        code = errno.ETIMEDOUT
    return -code


def is_connect_error(rid: int) -> bool:
    """A latency sample's request id that stands for a connection that could not be opened."""
    return rid <= 0


def connect_error_name(rid: int) -> str:
    """``ECONNREFUSED`` for a connect error's id; ``error`` when it carried no errno."""
    return errno.errorcode.get(-rid, "error") if rid < 0 else "error"


def connect_errors(latencies: Iterable[Latency]) -> Counter[str]:
    """Connection errors among latency samples, by errno name."""
    return Counter(connect_error_name(rid) for _, _, rid, _, ok in latencies if rid <= 0 and not ok)


def connect_errors_line(counts: Mapping[str, int]) -> str | None:
    """``37 connections failed (ECONNREFUSED 30, ETIMEDOUT 7)``; ``None`` when none did."""
    total = sum(counts.values())
    if not total:
        return None
    parts = ", ".join(f"{name} {n}" for name, n in sorted(counts.items(), key=lambda kv: (-kv[1], kv[0])))
    return f"{total} connection{'s' if total != 1 else ''} failed ({parts})"


class _Client(asyncio.Protocol):
    def __init__(self, target: _Target) -> None:
        self.target = target
        self.parser = _Response()
        self.rid = 0
        self.t0 = 0
        self.busy = False
        self.retire = False
        self.transport: asyncio.Transport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]
        transport.get_extra_info("socket").setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

    def send(self, rid: int, t0: int) -> None:
        self.rid, self.t0, self.busy = rid, t0, True
        self.transport.write(REQUEST % (rid, t0))  # type: ignore[union-attr]

    def data_received(self, data: bytes) -> None:
        status = self.parser.feed(data)
        if status:
            self.busy = False
            self.target.answered(self, 200 <= status < 400)

    def connection_lost(self, exc: Exception | None) -> None:
        self.target.lost(self)
