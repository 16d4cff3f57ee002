"""The HTTP/1.1 core every engine shares: request parsing on llhttp, limits, responses, routing.

Parsing is httptools' :class:`~httptools.HttpRequestParser` (llhttp, the C parser Node and
uvicorn use), driven the same way by all three engines: one :class:`RequestReader` per
connection, fed the bytes as they arrive, returns every request they complete (several when
the client pipelines) and keeps an unfinished one inside the parser (:attr:`RequestReader.partial`).
Anything it rejects raises :class:`HttpError` with the status to answer before closing:

* malformed input (llhttp's verdict, an HTTP version other than 1.0 and 1.1): 400;
* a request line plus headers over :data:`MAX_HEAD`: 431;
* a body over :data:`MAX_BODY`, announced or received: 413;
* a ``Transfer-Encoding`` other than ``chunked``: 501 (chunked bodies are read and discarded).

:class:`ReadingTracker` is the bookkeeping of the ``reading`` phase for one connection (a
request whose bytes started arriving but are not all in): its provisional id, the
``READING`` and ``HANDED_OVER`` records and the ``reading`` counter (see
:data:`~syncviz.engines.events.HANDED_OVER`).
"""

from __future__ import annotations

import contextlib
import socket
from collections.abc import Callable
from dataclasses import dataclass

import httptools

from .counts import ServerCounts
from .events import HANDED_OVER, Phase, now_ns

MAX_HEAD = 16 * 1024
MAX_BODY = 1024 * 1024
RECV_SIZE = 65536  # the most a blocking engine reads at once
REQ_ID_HEADER = "x-req-id"
EXTERNAL_IDS_START = 1 << 40  # ids the servers give requests that carry no x-req-id

HANDLER_PATHS = ("/", "/work")  # run the scenario's handler
HANDLER_METHODS = ("GET", "POST", "HEAD")  # the methods it answers (others: 405)
BOOM_PATH = "/boom"  # the handler raises: shows a 500 and that the server survives
HEALTH_PATH = "/health"

_VERSIONS = {"1.1": "HTTP/1.1", "1.0": "HTTP/1.0"}
_METHODS = {m.encode(): m for m in ("GET", "HEAD", "POST", "PUT", "DELETE", "PATCH", "OPTIONS")}
TARGET_CACHE, TARGET_CACHE_LEN = 256, 64  # request targets whose (path, query) is kept, and their longest
_targets: dict[bytes, tuple[str, str]] = {}  # split_target's answers for the commonest targets (wrk asks one)


class HttpError(Exception):
    """A request the server refuses: answer :func:`error_page` (``status``) and close the connection."""

    def __init__(self, status: int, reason: str) -> None:
        super().__init__(f"{status} {reason}")
        self.status = status
        self.reason = reason
        self.requests: list[Request] = []  # complete requests that came before the refused bytes: serve them first


@dataclass(slots=True)
class Request:
    method: str
    path: str
    version: str
    keep_alive: bool
    req_id: int | None  # the load generator's id (an all-ASCII-digit ``X-Req-Id``), else None
    query: str = ""
    rid: int = 0  # the id the server records it under (set by :meth:`ReadingTracker.assign`)
    sent_ns: int = 0  # the load generator's intended send time (``X-Sent-Ns``), 0 when absent
    bytes_in: int = -1  # the bytes it arrived in, head and body (-1: unknown, it shared a read with another)


class RequestReader:
    """One connection's incoming bytes, parsed by llhttp into complete requests.

    :meth:`feed` returns the requests the bytes complete, in order; the bytes of one still
    arriving stay in the parser and :attr:`partial` is true. A request whose reads held no
    other request's bytes gets their total as ``bytes_in`` (exact); one that shared a read with
    another (pipelining) keeps -1: httptools gives no offsets to split a read by. After an :class:`HttpError`
    (or a ``CONNECT``/``Upgrade`` request, served as a plain one and then closed) the reader
    is spent: later feeds return nothing.
    """

    __slots__ = (
        "_began",
        "_body",
        "_done",
        "_error",
        "_fed",
        "_head",
        "_head_fed",
        "_in_head",
        "_out",
        "_parser",
        "_req_id",
        "_sent_ns",
        "_t",
        "_url",
        "_version",
        "partial",
        "started_ns",
    )

    def __init__(self) -> None:
        self._parser = httptools.HttpRequestParser(self)
        self._out: list[Request] = []
        self._url = b""
        self._version = ""  # the current request's HTTP version ("1.1"), once its head is complete
        self._req_id: int | None = None
        self._sent_ns = 0
        self._head = 0  # bytes of the current request line and headers seen by the callbacks
        self._head_fed = 0  # bytes fed while its head is unfinished (bounds a head that never ends)
        self._body = 0
        self._in_head = False
        self._began = False  # the current request began in the current feed
        self._error: HttpError | None = None
        self._done = False
        self._fed = 0  # bytes of the unfinished request fed so far (-1: a read it shared with another)
        self._t = 0
        self.partial = False
        self.started_ns = 0  # when the first bytes of the unfinished request were fed

    def feed(self, data: bytes, t_ns: int = 0) -> list[Request]:
        """Parse ``data`` (received at ``t_ns``); return the requests it completes.

        Raises :class:`HttpError` (never anything else) when bytes are refused; the requests
        completed before them, in the same feed, are its ``requests``.
        """
        if self._done:
            return []
        self._t = t_ns
        self._began = False
        was_partial = self.partial
        out: list[Request] = []
        self._out = out
        try:
            self._parser.feed_data(data)
        except httptools.HttpParserUpgrade:
            self._done = True  # no protocol switch here: answer what came, then close
            self.partial = False
            if out:
                out[-1].keep_alive = False
            return out
        except Exception as exc:  # llhttp's verdict, or an HttpError raised in a callback
            self._done = True
            self.partial = False
            if out and not out[-1].keep_alive and self._error is None:
                return out  # bytes after a ``Connection: close`` request: ignored, the connection closes
            error = self._error or HttpError(400, str(exc) or "malformed request")
            error.requests = out
            raise error from None
        if self._in_head:  # a head still arriving: bound it before it completes
            self._head_fed = self._head if self._began else self._head_fed + len(data)
            if max(self._head, self._head_fed) > MAX_HEAD:
                self._done = True
                self.partial = False
                error = HttpError(431, "request header fields too large")
                error.requests = out
                raise error
        if out:  # one request alone in its reads: their bytes are its own
            if len(out) == 1 and not self.partial and (fed := self._fed if was_partial else 0) >= 0:
                out[0].bytes_in = fed + len(data)
            self._fed = -1  # a request begun after one that completed here shares this read
        elif self.partial:
            self._fed = (self._fed + len(data) if self._fed >= 0 else -1) if was_partial else len(data)
        return out

    # -- llhttp callbacks ----------------------------------------------------------------
    def _refuse(self, status: int, reason: str) -> HttpError:
        self._error = HttpError(status, reason)
        return self._error

    @property
    def partial_req_id(self) -> int | None:
        """The ``X-Req-Id`` of the request still arriving, once its header has (None before, or without one)."""
        return self._req_id if self.partial else None

    def on_message_begin(self) -> None:
        self.partial = True
        self.started_ns = self._t
        self._began = self._in_head = True
        self._url = b""
        self._req_id = None
        self._sent_ns = 0
        self._head = self._head_fed = self._body = 0

    def on_url(self, url: bytes) -> None:
        self._url += url
        self._head += len(url)

    def on_header(self, name: bytes, value: bytes) -> None:
        self._head += len(name) + len(value) + 4
        if self._head > MAX_HEAD:
            raise self._refuse(431, "request header fields too large")
        if len(name) not in (8, 9, 14, 17):  # the lengths of the four names looked at
            return
        lname = name.lower()
        if lname == b"x-req-id":
            self._req_id = parse_id(value)
        elif lname == b"x-sent-ns":
            self._sent_ns = int(value) if value.isdigit() and len(value) <= 19 else 0
        elif lname == b"content-length":
            if value.isdigit() and (len(value) > 7 or int(value) > MAX_BODY):  # bytes.isdigit: ASCII only
                raise self._refuse(413, "body too large")
        elif lname == b"transfer-encoding":
            codings = [c.strip() for c in value.lower().split(b",")]
            if any(c != b"chunked" for c in codings):
                raise self._refuse(501, "unsupported transfer-encoding")

    def on_headers_complete(self) -> None:
        self._in_head = False
        if self._head > MAX_HEAD:
            raise self._refuse(431, "request header fields too large")
        version = self._version = self._parser.get_http_version()
        if version not in _VERSIONS:
            raise self._refuse(400, "unsupported HTTP version")

    def on_body(self, body: bytes) -> None:
        self._body += len(body)
        if self._body > MAX_BODY:
            raise self._refuse(413, "body too large")

    def on_message_complete(self) -> None:
        parser = self._parser
        url = self._url
        target = _targets.get(url)
        if target is None:
            target = split_target(url)
            if len(url) <= TARGET_CACHE_LEN and len(_targets) < TARGET_CACHE:
                _targets[url] = target
        method = parser.get_method()
        self._out.append(
            Request(
                _METHODS.get(method) or method.decode("ascii", "replace"),
                target[0],
                _VERSIONS.get(self._version, "HTTP/1.1"),
                parser.should_keep_alive(),
                self._req_id,
                target[1],
                sent_ns=self._sent_ns,
            )
        )
        self.partial = False


def parse_id(value: bytes) -> int | None:
    """A request id from a header value: ASCII digits below :data:`EXTERNAL_IDS_START`, else None."""
    if not value.isdigit() or len(value) > 13:  # bytes.isdigit: b"\\xb2" (²) is not a digit
        return None
    rid = int(value)
    return rid if 0 < rid < EXTERNAL_IDS_START else None


def split_target(url: bytes) -> tuple[str, str]:
    """``(path, query)`` of a request target: origin form (``/p?q``) or absolute form (``http://h/p?q``)."""
    if not url.startswith(b"/"):
        try:
            parsed = httptools.parse_url(url)
        except Exception:  # "*", an authority (CONNECT): routed as an unknown path
            return url.decode("latin-1"), ""
        return (parsed.path or b"/").decode("latin-1"), (parsed.query or b"").decode("latin-1")
    path, _, query = url.partition(b"?")
    return path.partition(b"#")[0].decode("latin-1"), query.partition(b"#")[0].decode("latin-1")


EmitAt = Callable[[int, int, int, int], None]  # (t_ns, rid, lane, phase)


class ReadingTracker:
    """One connection's ``reading`` phase: a request whose bytes started arriving, not all in.

    :meth:`begin` gives it a provisional id, records ``READING`` from its first bytes and
    counts it in ``reading``; :meth:`assign` (once requests complete) hands it over to the
    load generator's id when it carries one (``HANDED_OVER``, then ``READING`` under that id
    from the same instant) or keeps the provisional id for an outside client; :meth:`fail`
    ends it ``FAILED`` (an error answer, a timeout, the client gone). A request that arrives
    whole in one read never comes here: it costs nothing but :meth:`assign`'s id.
    """

    __slots__ = ("_counts", "_emit_at", "_known", "_new_id", "cid", "lane", "t_first")

    def __init__(self, new_id: Callable[[], int], emit_at: EmitAt, counts: ServerCounts) -> None:
        self._new_id = new_id
        self._emit_at = emit_at
        self._counts = counts
        self.cid = 0  # the provisional id of the request being read (0: none)
        self._known = False  # cid is the request's own X-Req-Id, not a provisional one
        self.lane = -1
        self.t_first = 0

    @property
    def reading(self) -> bool:
        return self.cid != 0

    def begin(self, t_first: int, lane: int, known_id: int | None = None) -> None:
        """A request is incomplete after a read. ``known_id``: its ``X-Req-Id`` if that header has
        arrived (a slow client of the load generator): the row takes it at once instead of at the end."""
        if self.cid:
            if known_id is not None and self.cid != known_id and not self._known:
                self._emit_at(now_ns(), self.cid, HANDED_OVER, Phase.READING)
                self.cid, self._known = known_id, True
                self._emit_at(self.t_first, known_id, self.lane, Phase.READING)
            return
        self._known = known_id is not None
        self.cid = known_id if known_id is not None else self._new_id()
        self.t_first, self.lane = t_first, lane
        self._emit_at(t_first, self.cid, lane, Phase.READING)
        self._counts.add(reading=1)

    def assign(self, reqs: list[Request], t: int) -> None:
        """Give each completed request its id (``req.rid``); the first ends the reading, if any."""
        for req in reqs:  # the load generator's requests: queued since the client sent them
            if req.sent_ns and req.req_id is not None and req.sent_ns <= t:
                self._emit_at(req.sent_ns, req.req_id, -1, Phase.QUEUED)
        start = 0
        if self.cid:
            req, cid = reqs[0], self.cid
            self.cid = 0
            self._counts.add(reading=-1)
            if req.req_id is None:
                req.rid = cid  # an outside client keeps its provisional id
            elif req.req_id == cid:
                req.rid = cid  # identified while it was still arriving
            else:
                req.rid = req.req_id
                self._emit_at(t, cid, HANDED_OVER, Phase.READING)
                self._emit_at(self.t_first, req.rid, self.lane, Phase.READING)
            start = 1
        for req in reqs[start:] if start else reqs:
            req.rid = req.req_id if req.req_id is not None else self._new_id()

    def fail(self, t: int, timeout: bool = False) -> None:
        """The request is refused, timed out or dropped: counted failed (``FAILED`` if it was being read)."""
        if self.cid:
            self._emit_at(t, self.cid, self.lane, Phase.FAILED)
            self.cid = 0
            self._counts.add(reading=-1, failed=1, timeouts=int(timeout))
        else:
            self._counts.add(failed=1, timeouts=int(timeout))

    def close(self, t: int) -> None:
        """The connection ended: a request still being read is dropped (an idle one is not a failure)."""
        if self.cid:
            self.fail(t)


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
