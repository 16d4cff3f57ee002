"""The small HTTP/1.1 core every engine shares: request parsing, routing, responses.

Only what the servers need: request line and headers, ``Content-Length`` bodies (read and
discarded), keep-alive rules of HTTP/1.0 and 1.1, fixed-length and chunked responses.
Parsing is incremental over a ``bytearray`` so each engine can feed it bytes its own way.
"""

from __future__ import annotations

from dataclasses import dataclass

MAX_HEAD = 16 * 1024
MAX_BODY = 1024 * 1024
REQ_ID_HEADER = "x-req-id"
EXTERNAL_IDS_START = 1 << 40  # ids the servers give requests that carry no x-req-id

HANDLER_PATHS = ("/", "/work")  # run the scenario's handler
BOOM_PATH = "/boom"  # the handler raises: shows a 500 and that the server survives
HEALTH_PATH = "/health"


class BadRequest(Exception):
    """Malformed input: answered with 400 and the connection closed."""


@dataclass(slots=True)
class Request:
    method: str
    path: str
    version: str
    keep_alive: bool
    req_id: int | None


def parse_request(buf: bytearray) -> tuple[Request | None, int]:
    """Parse one request from the start of ``buf``.

    Returns ``(request, consumed)`` or ``(None, 0)`` when more bytes are needed; raises
    :class:`BadRequest` for anything malformed or too large.
    """
    end = buf.find(b"\r\n\r\n", 0, MAX_HEAD + 4)
    if end < 0:
        if len(buf) > MAX_HEAD:
            raise BadRequest("request head too large")
        return None, 0
    try:
        head = bytes(buf[:end]).decode("latin-1")
    except UnicodeDecodeError as exc:  # pragma: no cover - latin-1 decodes any byte
        raise BadRequest(str(exc)) from None
    lines = head.split("\r\n")
    parts = lines[0].split(" ")
    if len(parts) != 3:
        raise BadRequest("bad request line")
    method, target, version = parts
    if version not in ("HTTP/1.1", "HTTP/1.0") or not method.isalpha() or not target.startswith("/"):
        raise BadRequest("bad request line")
    length = 0
    conn = ""
    req_id: int | None = None
    for line in lines[1:]:
        name, sep, value = line.partition(":")
        if not sep or not name or name != name.strip():
            raise BadRequest("bad header line")
        lname = name.lower()
        value = value.strip()
        if lname == "content-length":
            if not value.isdigit():
                raise BadRequest("bad content-length")
            length = int(value)
            if length > MAX_BODY:
                raise BadRequest("body too large")
        elif lname == "transfer-encoding":
            raise BadRequest("chunked request bodies are not supported")
        elif lname == "connection":
            conn = value.lower()
        elif lname == REQ_ID_HEADER and value.isdigit():
            req_id = int(value)
    total = end + 4 + length
    if len(buf) < total:
        return None, 0
    keep_alive = conn != "close" if version == "HTTP/1.1" else conn == "keep-alive"
    path = target.split("?", 1)[0]
    return Request(method, path, version, keep_alive, req_id), total


_REASONS = {
    200: "OK",
    400: "Bad Request",
    404: "Not Found",
    405: "Method Not Allowed",
    500: "Internal Server Error",
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


BAD_REQUEST = response(400, b"bad request\n", keep_alive=False)


def route(req: Request) -> int:
    """Status for a parsed request before the handler runs: 200 (run it), 404 or 405."""
    if req.path in HANDLER_PATHS or req.path == BOOM_PATH:
        return 200 if req.method in ("GET", "POST", "HEAD") else 405
    if req.path == HEALTH_PATH:
        return 200
    return 404


class HandlerBoom(RuntimeError):
    """Raised on purpose by the handler for ``/boom``."""
