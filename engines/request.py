"""HTTP/1.1 request parsing on llhttp, shared by every engine (split from :mod:`~syncviz.engines.http`).

Parsing is httptools' :class:`~httptools.HttpRequestParser` (llhttp, the C parser Node and
uvicorn use), driven the same way by all three engines: one :class:`RequestReader` per
connection, fed the bytes as they arrive, returns every request they complete (several when
the client pipelines) and keeps an unfinished one inside the parser (:attr:`RequestReader.partial`).
Anything it rejects raises :class:`HttpError` with the status to answer before closing:

* malformed input (llhttp's verdict, an HTTP version other than 1.0 and 1.1): 400;
* a request line plus headers over :data:`MAX_HEAD`: 431;
* a body over :data:`MAX_BODY`, announced or received: 413;
* a ``Transfer-Encoding`` other than ``chunked``: 501 (chunked bodies are read and discarded).
"""

from __future__ import annotations

from dataclasses import dataclass

import httptools

MAX_HEAD = 16 * 1024
MAX_BODY = 1024 * 1024
REQ_ID_HEADER = "x-req-id"
EXTERNAL_IDS_START = 1 << 40  # ids the servers give requests that carry no x-req-id

_VERSIONS = {"1.1": "HTTP/1.1", "1.0": "HTTP/1.0"}
_CONNECTION = (b"connection", b"proxy-connection")  # llhttp reads both (keep-alive, close)
_NAME_LENGTHS = frozenset(
    len(n) for n in (*_CONNECTION, b"expect", b"x-req-id", b"x-sent-ns", b"content-length", b"transfer-encoding")
)
"""The lengths of the header names looked at: any other header is passed over on its length alone."""
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
        "_conn_header",
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
        "continue_due",
        "partial",
        "started_ns",
    )

    def __init__(self) -> None:
        self._parser = httptools.HttpRequestParser(self)
        self._out: list[Request] = []
        self._url = b""
        self._version = "HTTP/1.1"  # the current request's HTTP version, once its head is complete
        self._conn_header = False  # the current request has a ``Connection`` (or ``Proxy-Connection``) header
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
        self.continue_due = False  # an ``Expect: 100-continue`` request awaits ``100 Continue`` for its body

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
        self.continue_due = self._conn_header = False

    def on_url(self, url: bytes) -> None:
        self._url += url
        self._head += len(url)

    def on_header(self, name: bytes, value: bytes) -> None:
        self._head += len(name) + len(value) + 4
        if self._head > MAX_HEAD:
            raise self._refuse(431, "request header fields too large")
        if len(name) not in _NAME_LENGTHS:
            return
        lname = name.lower()
        if lname in _CONNECTION:
            self._conn_header = True  # llhttp's keep-alive then says nothing of the version: see on_headers_complete
        elif lname == b"expect":
            self.continue_due = value.lower() == b"100-continue"  # the client waits to send its body
        elif lname == b"x-req-id":
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
        if not self._conn_header and self._parser.should_keep_alive():
            # llhttp keeps a connection alive by default only for HTTP/1.1 (1.0, and 0.9 and 2.0, which it
            # also parses, close unless a Connection header says keep-alive): the commonest request, known
            # without get_http_version (~0.18 us, which formats a string on every call)
            self._version = "HTTP/1.1"
            return
        version = self._parser.get_http_version()
        if version == "1.1":
            self._version = "HTTP/1.1"
            return
        if version not in _VERSIONS:
            raise self._refuse(400, "unsupported HTTP version")
        self.continue_due = False  # HTTP/1.0 clients never wait for it
        self._version = _VERSIONS[version]

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
        self._out.append(  # positional: ~0.1 us less than by keyword, on every request
            Request(
                _METHODS.get(method) or method.decode("ascii", "replace"),
                target[0],
                self._version,
                parser.should_keep_alive(),
                self._req_id,
                target[1],
                0,
                self._sent_ns,
            )
        )
        self.partial = False
        self.continue_due = False  # its body came without it


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
