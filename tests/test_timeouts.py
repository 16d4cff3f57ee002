"""Read and keep-alive timeouts, and the reading phase, the same tests against every engine.

The engines here run with a 0.5 s read timeout and a 0.5 s keep-alive idle timeout, so
every test takes about a second.
"""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator

import pytest
from support import connect, get, read_response, wait_for
from syncviz.engines.base import Engine, engine_class
from syncviz.engines.events import HANDED_OVER, Phase, Recorder, Transition
from syncviz.engines.http import EXTERNAL_IDS_START
from syncviz.engines.loadgen import LoadGen
from syncviz.engines.registry import engine_spec
from syncviz.engines.settings import Settings
from syncviz.engines.upstream import Upstream

TIMEOUT_S = 0.5
POOL = 2


@pytest.fixture
def quick(
    engine_name: str, recorder: Recorder, upstream: Upstream, monkeypatch: pytest.MonkeyPatch
) -> Iterator[Engine]:
    """A running engine with short read and idle timeouts."""
    cls = engine_class(engine_name)
    monkeypatch.setattr(cls, "keepalive_idle_s", TIMEOUT_S)
    settings = Settings(io_ms=5, pool=POOL, workers=POOL, timeout_s=TIMEOUT_S)  # prefork: POOL worker processes
    eng = cls(recorder, settings, "native", upstream.port)
    eng.start()
    yield eng
    eng.stop()


def holds_a_worker(engine: Engine) -> bool:
    """Threaded and prefork: a pool thread or worker process waits in ``recv`` for the rest of a request."""
    return not engine_spec(engine.name).has_loop


def reading_lane(engine: Engine, lane: int) -> None:
    """Threaded, prefork: a pool thread's or worker's lane (it is held); the loops: -1 (nothing held)."""
    if holds_a_worker(engine):
        assert 0 <= lane < POOL
    else:
        assert lane == -1


def rows(recorder: Recorder, seen: list[Transition]) -> dict[int, list[tuple[int, int, int]]]:
    """Every transition so far, by request id: ``[(t, lane, phase), ...]``."""
    seen.extend(recorder.drain().transitions)
    out: dict[int, list[tuple[int, int, int]]] = {}
    for t, _, rid, lane, phase in seen:
        out.setdefault(rid, []).append((t, lane, phase))
    return out


def counts(engine: Engine) -> dict[str, int]:
    return engine.server_snapshot(0).as_dict()


def test_a_stalled_request_gets_408_after_the_read_timeout(quick: Engine, recorder: Recorder) -> None:
    with connect(quick.port) as sock:
        t0 = time.monotonic()
        sock.sendall(b"GET / HTTP/1.1\r\nHo")
        assert wait_for(lambda: counts(quick)["reading"] == 1, 0.4)
        status, headers, _ = read_response(sock)
        elapsed = time.monotonic() - t0
        assert status == 408 and headers["connection"] == "close"
        assert sock.recv(10) == b""
    assert TIMEOUT_S - 0.05 < elapsed < TIMEOUT_S + 0.7
    # the counts arrive one by one (prefork: from its worker, over a pipe): wait for all of them
    want = {"timeouts": 1, "reading": 0, "failed": 1, "served": 1}
    assert wait_for(lambda: {k: counts(quick)[k] for k in want} == want), counts(quick)
    by_id = rows(recorder, [])
    (cid,) = by_id
    assert cid >= EXTERNAL_IDS_START  # a provisional id
    (_, lane, first), (_, lane2, last) = by_id[cid]
    assert first == Phase.READING and last == Phase.FAILED and lane2 == lane
    reading_lane(quick, lane)
    assert get(quick.port)[0] == 200


def test_a_trickling_client_does_not_reset_the_deadline(quick: Engine) -> None:
    request = b"GET / HTTP/1.1\r\nHost: t\r\nX-Padding: " + b"p" * 40 + b"\r\n\r\n"
    with connect(quick.port) as sock:
        t0 = time.monotonic()
        sock.settimeout(0.05)
        got = b""
        for byte in request:  # one byte every 50 ms: 70 bytes would take 3.5 s
            try:
                sock.send(bytes([byte]))
                got += sock.recv(1024)
            except (BlockingIOError, TimeoutError):
                continue
            except OSError:
                break
            if got:
                break
        elapsed = time.monotonic() - t0
    assert got.startswith(b"HTTP/1.1 408 ")
    assert elapsed < TIMEOUT_S + 0.7
    assert wait_for(lambda: counts(quick)["reading"] == 0)


def test_a_body_that_stops_coming_is_a_timeout_too(quick: Engine) -> None:
    with connect(quick.port) as sock:
        sock.sendall(b"POST / HTTP/1.1\r\nContent-Length: 100\r\n\r\nab")
        assert read_response(sock)[0] == 408
    assert wait_for(lambda: counts(quick)["timeouts"] == 1 and counts(quick)["reading"] == 0)


def test_an_idle_keep_alive_connection_is_closed_quietly(quick: Engine) -> None:
    with connect(quick.port) as used, connect(quick.port) as silent:
        used.sendall(b"GET / HTTP/1.1\r\n\r\n")
        assert read_response(used)[0] == 200
        t0 = time.monotonic()
        assert used.recv(10) == b""  # closed by the server, no response
        assert silent.recv(10) == b""  # a connection that never sent a byte too
        assert time.monotonic() - t0 < TIMEOUT_S + 0.8
    c = counts(quick)
    assert c["failed"] == 0 and c["timeouts"] == 0 and c["reading"] == 0 and c["served"] == 1


def test_a_request_read_in_two_parts_is_handed_over_to_its_id(quick: Engine, recorder: Recorder) -> None:
    with connect(quick.port) as sock:
        sock.sendall(b"GET / HTTP/1.1\r\nX-Req-Id: 4242\r\n")
        assert wait_for(lambda: counts(quick)["reading"] == 1, 0.4)
        sock.sendall(b"Host: t\r\n\r\n")
        assert read_response(sock)[0] == 200
    seen: list[Transition] = []
    assert wait_for(lambda: rows(recorder, seen).get(4242, [(0, 0, 0)])[-1][2] == Phase.DONE)
    by_id = rows(recorder, seen)
    (cid,) = set(by_id) - {4242}
    (t_first, lane, p1), (t_over, over, p2) = by_id[cid]
    assert p1 == p2 == Phase.READING and over == HANDED_OVER and t_over > t_first
    reading_lane(quick, lane)
    real = by_id[4242]
    assert real[0] == (t_first, lane, Phase.READING)  # the same bytes, from the same instant
    assert real[1][2] in (Phase.RUNNING, Phase.READY) and real[1][0] >= t_over
    assert counts(quick)["reading"] == 0


def test_a_slow_request_takes_its_id_as_soon_as_its_x_req_id_has_come(quick: Engine, recorder: Recorder) -> None:
    seen: list[Transition] = []
    with connect(quick.port) as sock:
        sock.sendall(b"GET / HTTP/1.1\r\nX-Req-Id: 4243\r\nHo")  # the id's header is complete, the request is not
        assert wait_for(lambda: counts(quick)["reading"] == 1, 0.4)
        assert wait_for(lambda: (rows(recorder, seen).get(4243) or [(0, 0, -1)])[0][2] == Phase.READING, 0.4)
        sock.sendall(b"st: t\r\n\r\n")
        assert read_response(sock)[0] == 200
    assert wait_for(lambda: rows(recorder, seen)[4243][-1][2] == Phase.DONE)
    phases = [p for _, _, p in rows(recorder, seen)[4243]]
    assert phases[0] == Phase.READING and phases.count(Phase.READING) == 1 and phases[-1] == Phase.DONE
    assert counts(quick)["reading"] == 0


def test_an_outside_request_read_in_two_parts_keeps_its_provisional_id(quick: Engine, recorder: Recorder) -> None:
    with connect(quick.port) as sock:
        sock.sendall(b"GET / HTTP/1.1\r\n")
        assert wait_for(lambda: counts(quick)["reading"] == 1, 0.4)
        sock.sendall(b"Host: t\r\n\r\n")
        assert read_response(sock)[0] == 200
    seen: list[Transition] = []
    assert wait_for(lambda: any(r[-1][2] == Phase.DONE for r in rows(recorder, seen).values()))
    (cid,) = rows(recorder, seen)
    phases = [p for _, _, p in rows(recorder, seen)[cid]]
    assert phases[0] == Phase.READING and phases[-1] == Phase.DONE and HANDED_OVER not in phases
    assert cid >= EXTERNAL_IDS_START


def test_a_whole_request_in_one_read_records_no_reading(quick: Engine, recorder: Recorder) -> None:
    get(quick.port, extra=b"X-Req-Id: 7\r\n")
    seen: list[Transition] = []
    assert wait_for(lambda: rows(recorder, seen).get(7, [(0, 0, 0)])[-1][2] == Phase.DONE)
    assert all(phase != Phase.READING for _, _, _, _, phase in seen)


def test_a_client_leaving_mid_request_fails_it_and_reading_returns_to_zero(quick: Engine, recorder: Recorder) -> None:
    socks = [connect(quick.port) for _ in range(POOL + 2)]
    for sock in socks:
        sock.sendall(b"GET / HTTP/1.1\r\nHost")
    assert wait_for(lambda: counts(quick)["reading"] == len(socks) or holds_a_worker(quick), 0.4)
    for sock in socks:
        sock.close()
    assert wait_for(lambda: counts(quick)["failed"] == len(socks) and counts(quick)["reading"] == 0)
    by_id = rows(recorder, [])
    assert len(by_id) == len(socks) and all(steps[-1][2] == Phase.FAILED for steps in by_id.values())
    assert counts(quick)["timeouts"] == 0


def test_stalled_clients_hold_pool_threads_and_only_there(quick: Engine) -> None:
    stalled = [connect(quick.port) for _ in range(POOL + 1)]
    for sock in stalled:
        sock.sendall(b"GET / HTTP/1.1\r\nHo")
    time.sleep(0.1)
    t0 = time.monotonic()
    status = get(quick.port)[0]
    waited = time.monotonic() - t0
    assert status == 200
    if holds_a_worker(quick):  # every worker reads a stalled client until its deadline
        assert waited > TIMEOUT_S / 2
        assert counts(quick)["timeouts"] >= POOL
    else:  # a loop or hub waits for none of them
        assert waited < 0.3
    for sock in stalled:
        sock.close()
    assert wait_for(lambda: counts(quick)["reading"] == 0)


def test_stopping_ends_the_reading(engine_name: str) -> None:
    eng = engine_class(engine_name)(Recorder(), Settings(io_ms=5, pool=POOL))
    eng.start()
    with connect(eng.port) as sock:
        sock.sendall(b"GET / HTTP/1.1\r\nHo")
        assert wait_for(lambda: counts(eng)["reading"] == 1)
        eng.stop()
        assert counts(eng)["reading"] == 0
        with pytest.raises(OSError):
            socket.create_connection(("127.0.0.1", eng.port), timeout=1).close()


def test_the_load_generator_takes_idle_closes_quietly(quick: Engine, recorder: Recorder) -> None:
    # Open loop at 4/s over 8 connections: each sits idle past the server's 0.5 s and is
    # closed; the load generator must reconnect and count no failure.
    gen = LoadGen(recorder, {quick.engine_id: quick.port}, Settings(rate=4, clients=8, io_ms=5))
    gen.start()
    try:
        time.sleep(1.5)
    finally:
        gen.stop()
    samples = recorder.drain().latencies
    assert len(samples) >= 4
    assert all(ok for *_, ok in samples)
    assert counts(quick)["failed"] == 0


def test_a_request_that_has_arrived_is_never_closed_as_idle(
    engine_name: str, recorder: Recorder, upstream: Upstream, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Six keep-alive clients, each sending its next request the moment it has its answer, to a
    server that is blocked 150 ms by each (as in blocking-call): a loop or hub takes 0.9 s to get
    round to a client again, past the 0.5 s keep-alive idle timeout. A connection whose request
    waits in the kernel to be read is not idle: every request is answered. (gevent's sweep closed
    those its hub had not reached: the clients failed, the server counted nothing, and the
    blocking-call scenario read `failed 40` on gevent, 0 on asyncio.)"""
    cls = engine_class(engine_name)
    monkeypatch.setattr(cls, "keepalive_idle_s", TIMEOUT_S)
    mode = "blocking" if engine_spec(engine_name).has_loop else "native"
    eng = cls(recorder, Settings(io_ms=150, pool=POOL, workers=POOL, timeout_s=10), mode, upstream.port)
    eng.start()
    answers: list[int | str] = []

    def client() -> None:
        try:
            with connect(eng.port) as sock:
                for _ in range(3):
                    sock.sendall(b"GET / HTTP/1.1\r\nHost: t\r\n\r\n")
                    answers.append(read_response(sock)[0])
        except (OSError, ValueError) as exc:
            answers.append(type(exc).__name__)

    try:
        threads = [threading.Thread(target=client) for _ in range(6)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(10)
    finally:
        eng.stop()
    assert answers == [200] * 18, answers
    assert counts(eng)["failed"] == 0
