"""The HTTP/1.1 core every engine shares: responses, routing, the last write of a connection.

Requests are parsed in :mod:`~syncviz.engines.request` (llhttp, limits, :class:`HttpError`) and
a connection's ``reading`` phase is kept by :mod:`~syncviz.engines.reading`; their names are
importable from here too, where they were first.
"""

from __future__ import annotations

import contextlib
import socket
from collections.abc import Callable

from .reading import EmitAt, ReadingTracker
from .request import (
    EXTERNAL_IDS_START,
    MAX_BODY,
    MAX_HEAD,
    REQ_ID_HEADER,
    HttpError,
    Request,
    RequestReader,
    parse_id,
    split_target,
)

__all__ = [  # what this module holds, and what it re-exports from request and reading
    "BAD_REQUEST",
    "BOOM_PATH",
    "CONTINUE",
    "EXTERNAL_IDS_START",
    "HANDLER_METHODS",
    "HANDLER_PATHS",
    "HEALTH_PATH",
    "MAX_BODY",
    "MAX_HEAD",
    "RECV_SIZE",
    "REQUEST_TIMEOUT",
    "REQ_ID_HEADER",
    "EmitAt",
    "HandlerBoom",
    "HttpError",
    "ReadingTracker",
    "Request",
    "RequestReader",
    "chunk",
    "chunked_head",
    "error_page",
    "parse_id",
    "response",
    "route",
    "send_final",
    "split_target",
]

RECV_SIZE = 65536  # the most a blocking engine reads at once
CONTINUE = b"HTTP/1.1 100 Continue\r\n\r\n"
"""Sent when a request's head asks ``Expect: 100-continue`` and its body has not come
(:attr:`~syncviz.engines.request.RequestReader.continue_due`): curl waited 1 s for it before
sending a large body, a second the picture showed as the server's ``reading``."""

HANDLER_PATHS = ("/", "/work")  # run the scenario's handler
HANDLER_METHODS = ("GET", "POST", "HEAD")  # the methods it answers (others: 405)
BOOM_PATH = "/boom"  # the handler raises: shows a 500 and that the server survives
HEALTH_PATH = "/health"

_REASONS = {
    200: "OK",
    400: "Bad Request",
    404: "Not Found",
    405: "Method Not Allowed",
    408: "Request Timeout",
    413: "Content Too Large",
    431: "Request Header Fields Too Large",
    500: "Internal Server Error",
    501: "Not Implemented",
}


def response(status: int, body: bytes, keep_alive: bool = True, content_type: str = "text/plain") -> bytes:
    """A complete fixed-length response."""
    conn = b"" if keep_alive else b"Connection: close\r\n"
    return b"HTTP/1.1 %d %s\r\nContent-Type: %s\r\nContent-Length: %d\r\n%s\r\n%s" % (
        status,
        _REASONS[status].encode(),
        content_type.encode(),
        len(body),
        conn,
        body,
    )


def chunked_head(keep_alive: bool = True) -> bytes:
    conn = b"" if keep_alive else b"Connection: close\r\n"
    return b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nTransfer-Encoding: chunked\r\n%s\r\n" % conn


def chunk(data: bytes) -> bytes:
    """One chunk of a chunked body; ``chunk(b"")`` is the terminating chunk."""
    return b"%x\r\n%s\r\n" % (len(data), data)


_ERROR_PAGES = {
    status: response(status, _REASONS[status].lower().encode() + b"\n", keep_alive=False)
    for status in (400, 408, 413, 431, 500, 501)
}
BAD_REQUEST = _ERROR_PAGES[400]
REQUEST_TIMEOUT = _ERROR_PAGES[408]


def error_page(status: int) -> bytes:
    """The answer to a refused request (:class:`HttpError`, a read timeout): ``Connection: close``."""
    return _ERROR_PAGES.get(status, BAD_REQUEST)


def send_final(sock: socket.socket, data: bytes, sent: Callable[[], object] | None = None) -> bool:
    """Send a connection's last response on a blocking (or gevent) socket; true if it went out.

    ``sent`` is called as soon as it has (the engine counts it served then, as the loops do when
    they write it: the client may read it, and see the close, before the rest here is done).
    Then it reads off what the client already sent, so the close that follows resets nothing
    (a close with unread bytes sends RST, and the client could lose the response).
    """
    try:
        sock.settimeout(1.0)
        sock.sendall(data)
    except OSError:
        return False
    if sent is not None:
        sent()
    with contextlib.suppress(OSError):
        sock.shutdown(socket.SHUT_WR)
        sock.setblocking(False)
        for _ in range(16):
            if not sock.recv(RECV_SIZE):
                break
    return True


def route(req: Request) -> int:
    """Status for a parsed request before the handler runs: 200 (run it), 404 or 405."""
    if req.path in HANDLER_PATHS or req.path == BOOM_PATH:
        return 200 if req.method in HANDLER_METHODS else 405
    if req.path == HEALTH_PATH:
        return 200
    return 404


class HandlerBoom(RuntimeError):
    """Raised on purpose by the handler for ``/boom``."""
