"""HTTP/1.1 correctness, the same tests against every engine."""

from __future__ import annotations

import socket

import httptools
import pytest
from support import connect, get, read_response, wait_for
from syncviz.engines.base import Engine
from syncviz.engines.events import Phase
from syncviz.engines.http import EXTERNAL_IDS_START
from syncviz.engines.request import HttpError, RequestReader


def test_get_root(engine: Engine) -> None:
    status, headers, body = get(engine.port)
    assert status == 200
    assert body == b"hello from syncviz\n"
    assert headers["content-length"] == str(len(body))


def test_keep_alive_serves_many_requests_on_one_connection(engine: Engine) -> None:
    with connect(engine.port) as sock:
        for _ in range(5):
            sock.sendall(b"GET / HTTP/1.1\r\nHost: t\r\n\r\n")
            assert read_response(sock)[0] == 200


def test_pipelined_requests_are_answered_in_order(engine: Engine) -> None:
    with connect(engine.port) as sock:
        sock.sendall(b"GET / HTTP/1.1\r\nHost: t\r\n\r\nGET /nope HTTP/1.1\r\nHost: t\r\n\r\n")
        assert read_response(sock)[0] == 200
        assert read_response(sock)[0] == 404


def test_a_client_that_half_closes_after_its_requests_gets_every_answer(engine: Engine) -> None:
    """``nc -N`` and scripts send their requests, then shut their side: asyncio and uvloop closed
    at the end of input, answering nothing (the others answered). Answered, then closed."""
    with connect(engine.port) as sock:
        sock.sendall(b"GET / HTTP/1.1\r\nHost: t\r\n\r\nGET /nope HTTP/1.1\r\nHost: t\r\n\r\n")
        sock.shutdown(socket.SHUT_WR)
        assert read_response(sock)[0] == 200
        assert read_response(sock)[0] == 404
        assert sock.recv(10) == b""
    with connect(engine.port) as sock:  # half a request, then the end: nothing to answer, closed
        sock.sendall(b"GET / HTTP/1.1\r\nHo")
        sock.shutdown(socket.SHUT_WR)
        assert sock.recv(10) == b""
    assert wait_for(lambda: engine.server_snapshot(0).reading == 0, 5.0)
    assert get(engine.port)[0] == 200


def test_expect_100_continue_gets_its_interim_answer_then_the_response(engine: Engine) -> None:
    """curl sends ``Expect: 100-continue`` before a large body and waited a second for the
    ``100 Continue`` no engine sent, a second the panel showed as reading. Sent now, once, and
    only while the body has not come; the connection stays usable."""
    head = b"POST / HTTP/1.1\r\nHost: t\r\nContent-Length: 5\r\nExpect: 100-continue\r\n\r\n"
    with connect(engine.port, timeout=2.0) as sock:
        sock.sendall(head)
        got = b""
        while not got.endswith(b"\r\n\r\n") and (more := sock.recv(100)):
            got += more
        assert got == b"HTTP/1.1 100 Continue\r\n\r\n"
        sock.sendall(b"hello")
        assert read_response(sock)[0] == 200
        sock.sendall(head + b"hello")  # the body with the head: no interim answer
        status, _, _ = read_response(sock)
        assert status == 200
        sock.sendall(b"GET / HTTP/1.1\r\nHost: t\r\n\r\n")
        assert read_response(sock)[0] == 200


def test_head_gets_the_head_alone_and_the_connection_stays_usable(engine: Engine) -> None:
    with connect(engine.port) as sock:
        sock.sendall(b"HEAD / HTTP/1.1\r\nHost: t\r\n\r\nGET / HTTP/1.1\r\nHost: t\r\n\r\n")
        data = b""
        while data.count(b"HTTP/1.1 200 OK") < 2 or not data.endswith(b"hello from syncviz\n"):
            data += sock.recv(65536)
    assert data.count(b"hello from syncviz\n") == 1  # the HEAD response had no body


def test_http10_closes_after_the_response(engine: Engine) -> None:
    with connect(engine.port) as sock:
        sock.sendall(b"GET / HTTP/1.0\r\n\r\n")
        assert read_response(sock)[0] == 200
        assert sock.recv(10) == b""


def test_unknown_path_is_404_and_bad_method_405(engine: Engine) -> None:
    assert get(engine.port, "/missing")[0] == 404
    with connect(engine.port) as sock:
        sock.sendall(b"DELETE / HTTP/1.1\r\nHost: t\r\n\r\n")
        assert read_response(sock)[0] == 405


def test_post_body_is_read_and_the_connection_reused(engine: Engine) -> None:
    with connect(engine.port) as sock:
        sock.sendall(b"POST / HTTP/1.1\r\nHost: t\r\nContent-Length: 5\r\n\r\nhelloGET / HTTP/1.1\r\n\r\n")
        assert read_response(sock)[0] == 200
        assert read_response(sock)[0] == 200


def test_refused_requests_get_their_status_and_the_server_keeps_serving(engine: Engine) -> None:
    refused = [
        (b"garbage\r\n\r\n", 400),
        (b"GET / HTTP/9.9\r\n\r\n", 400),
        (b"GET / HTTP/2.0\r\n\r\n", 400),
        (b"GET / HTTP/1.1\r\nno-colon-here\r\n\r\n", 400),
        (b"GET / HTTP/1.1\r\nContent-Length: x\r\n\r\n", 400),
        (b"GET / HTTP/1.1\r\nContent-Length: \xb2\r\n\r\n", 400),
        (b"GET / HTTP/1.1\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\n", 400),
        (b"\x00\xff\xfe binary \r\n\r\n", 400),
        (b"GET / HTTP/1.1\r\nX-Long: " + b"a" * 20000 + b"\r\n\r\n", 431),
        (b"POST / HTTP/1.1\r\nContent-Length: 2000000\r\n\r\n", 413),
        (b"POST / HTTP/1.1\r\nTransfer-Encoding: gzip\r\n\r\n", 501),
    ]
    for payload, expected in refused:
        with connect(engine.port) as sock:
            sock.sendall(payload)
            status, headers, _ = read_response(sock)
            assert status == expected, payload[:30]
            assert headers["connection"] == "close"
            assert sock.recv(10) == b""  # and it closed the connection
    assert get(engine.port)[0] == 200

    def counted() -> bool:  # counted just after the response is written
        snap = engine.server_snapshot(0)
        return snap.failed == len(refused) and snap.served == len(refused) + 1 and snap.reading == 0

    assert wait_for(counted), engine.server_snapshot(0)


def test_chunked_request_bodies_are_read(engine: Engine) -> None:
    with connect(engine.port) as sock:
        sock.sendall(b"POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n")
        assert read_response(sock)[0] == 200
        sock.sendall(b"GET / HTTP/1.1\r\n\r\n")
        assert read_response(sock)[0] == 200


def test_a_non_ascii_request_id_is_ignored(engine: Engine, recorder) -> None:
    status, _, _ = get(engine.port, extra=b"X-Req-Id: \xb2\r\n")
    assert status == 200
    rids = {rid for _, _, rid, _, _ in recorder.drain().transitions}
    assert rids and min(rids) >= EXTERNAL_IDS_START  # served as an outside request


def test_handler_exception_is_500_and_the_connection_survives(engine: Engine, recorder) -> None:
    with connect(engine.port) as sock:
        sock.sendall(b"GET /boom HTTP/1.1\r\nHost: t\r\nX-Req-Id: 77\r\n\r\n")
        assert read_response(sock)[0] == 500
        sock.sendall(b"GET / HTTP/1.1\r\nHost: t\r\n\r\n")
        assert read_response(sock)[0] == 200
    seen: list[tuple[int, int]] = []

    def ended() -> bool:  # the 500 can reach the client before the handler's task records its end
        seen.extend((t, p) for t, _, rid, _, p in recorder.drain().transitions if rid == 77)
        return any(p in (Phase.DONE, Phase.FAILED) for _, p in seen)

    assert wait_for(ended), seen
    phases = [p for _, p in sorted(seen)]  # in time order (threads append a step's start after the fact)
    assert phases[-1] == Phase.FAILED, phases


def test_client_vanishing_mid_request_does_not_hurt(engine: Engine) -> None:
    for _ in range(3):
        sock = connect(engine.port)
        sock.sendall(b"GET / HTTP/1.1\r\nHo")
        sock.close()
        sock = connect(engine.port)
        sock.sendall(b"GET / HTTP/1.1\r\n\r\n")
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, b"\x01\x00\x00\x00\x00\x00\x00\x00")
        sock.close()  # reset while the handler sleeps
    assert get(engine.port)[0] == 200


def test_upstream_io_and_streaming_responses(engine: Engine) -> None:
    engine.apply(engine.settings.with_changes(io="upstream", chunks=3, io_ms=6))
    status, headers, body = get(engine.port)
    assert status == 200
    assert headers["transfer-encoding"] == "chunked"
    assert body == b"chunk 0\nchunk 1\nchunk 2\n"


def test_requests_carry_the_clients_id_into_the_stream(engine: Engine, recorder) -> None:
    get(engine.port, extra=b"X-Req-Id: 4242\r\n")
    steps: list[tuple[int, int]] = []

    def finished() -> bool:  # DONE is recorded just after the response is written
        steps.extend((p, lane) for _, _, rid, lane, p in recorder.drain().transitions if rid == 4242)
        return bool(steps) and steps[-1][0] == Phase.DONE

    assert wait_for(finished)
    assert steps[0][0] in (Phase.RUNNING, Phase.READY)


def test_the_reader_asks_for_100_continue_only_while_a_1_1_body_is_awaited() -> None:
    head = b"POST / HTTP/1.1\r\nHost: t\r\nContent-Length: 3\r\nExpect: 100-Continue\r\n\r\n"
    r = RequestReader()
    assert r.feed(head) == [] and r.continue_due  # its case does not matter
    r.continue_due = False  # sent
    assert len(r.feed(b"abc")) == 1 and not r.continue_due
    for whole in (head + b"abc", head.replace(b"HTTP/1.1", b"HTTP/1.0"), head.replace(b": 3", b": 0")):
        r = RequestReader()
        r.feed(whole)
        assert not r.continue_due, whole  # the body came, 1.0 never waits, or there is none


@pytest.mark.parametrize("version", [b"1.1", b"1.0", b"0.9", b"2.0"])
@pytest.mark.parametrize(
    "headers",
    [
        b"",
        b"Connection: keep-alive\r\n",
        b"Connection: close\r\n",
        b"connection: Keep-Alive, Upgrade\r\n",
        b"Proxy-Connection: keep-alive\r\n",
        b"PROXY-CONNECTION: close\r\n",
        b"Content-Length: 3\r\n",
    ],
)
def test_the_reader_knows_each_version_llhttp_parses_without_asking_for_it(version: bytes, headers: bytes) -> None:
    """The reader tells HTTP/1.1 from llhttp's keep-alive when no Connection header could change it: its
    verdict is llhttp's own version, and the versions llhttp parses but syncviz does not serve are refused."""
    data = b"GET / HTTP/" + version + b"\r\nHost: h\r\n" + headers + b"\r\n" + (b"abc" if b"Length" in headers else b"")
    if version in (b"0.9", b"2.0"):
        with pytest.raises(HttpError) as refused:
            RequestReader().feed(data)
        assert refused.value.status == 400
        return
    seen: list[str] = []
    parser = httptools.HttpRequestParser(
        type("P", (), {"on_headers_complete": lambda _s: seen.append(parser.get_http_version())})()
    )
    parser.feed_data(data)
    (req,) = RequestReader().feed(data)
    assert req.version == "HTTP/" + seen[0] == "HTTP/" + version.decode()
