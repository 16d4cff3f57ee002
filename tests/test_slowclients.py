"""Slow clients (engines/slowclients.py) against real engines on loopback: served, live, stopped clean.

The trickle is shortened (``TRICKLE_S``) so each test takes about a second per engine.
"""

from __future__ import annotations

import socket
import sys
import threading
import time

import pytest
from support import fd_targets, fds_left_since, free_ports, new_threads
from syncviz.engines import slowclients
from syncviz.engines.base import Engine, engine_class
from syncviz.engines.counts import ServerCounts, ServerSnapshot
from syncviz.engines.events import ENGINE_IDS, HANDED_OVER, Phase, Recorder
from syncviz.engines.host import EngineHost
from syncviz.engines.request import EXTERNAL_IDS_START
from syncviz.engines.settings import Settings
from syncviz.engines.slowclients import SLOW_IDS_START, NoAnswer, SlowClients, _status
from syncviz.engines.stats import Counters
from syncviz.tui.widgets.counters import CounterView, counter_text

TRICKLE_S = 0.3


@pytest.fixture(autouse=True)
def short_trickle(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(slowclients, "TRICKLE_S", TRICKLE_S)
    monkeypatch.setattr(slowclients, "RETRY_S", 0.05)


def _wait(predicate, timeout: float) -> bool:
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if predicate():
            return True
        time.sleep(0.02)
    return predicate()


def test_slow_clients_are_served_slowly_record_no_latency_and_stop_cleanly(engine: Engine, recorder: Recorder) -> None:
    fds, threads = fd_targets(), set(threading.enumerate())
    sc = SlowClients({engine.engine_id: engine.port}, Settings(slow_clients=4)).start()
    try:
        t0 = time.monotonic()
        assert _wait(lambda: sc.stats()[engine.engine_id].served >= 8, 6.0), sc.summary()
        elapsed = time.monotonic() - t0
        stats = sc.stats()[engine.engine_id]
        assert not stats.errors and not stats.failed, sc.summary()
        # 4 clients, one request per trickle each (plus the spread-out start): slow, not a flood
        assert stats.served <= 4 * (elapsed / TRICKLE_S + 1) + 1
        assert sc.counts() == {engine.engine_id: 4}
    finally:
        t_stop = time.monotonic()
        sc.stop()
        stop_s = time.monotonic() - t_stop
    assert stop_s < 1.0
    assert not sc._thread.is_alive()
    assert not new_threads(threads)
    assert _wait(lambda: not fds_left_since(fds), 1.0), f"a slow client's socket was left open: {fds_left_since(fds)}"
    batch = recorder.drain()
    assert batch.latencies == []  # not the measured load
    done = {rid for _, e, rid, _, p in batch.transitions if e == engine.engine_id and p == Phase.DONE}
    assert len({rid for rid in done if rid >= SLOW_IDS_START}) >= 8  # served under their own id range
    # known from the server's first read (the id comes in the first write): never a provisional
    # id, which the panel would count and label as an outside client's
    ours = [tr for tr in batch.transitions if tr[1] == engine.engine_id]
    assert ours and not [tr for tr in ours if tr[2] >= EXTERNAL_IDS_START or tr[3] == HANDED_OVER]
    assert "served" in sc.summary()


def test_apply_changes_their_number_live(engine: Engine) -> None:
    sc = SlowClients({engine.engine_id: engine.port}, Settings(slow_clients=2)).start()
    try:
        assert _wait(lambda: sc.counts() == {engine.engine_id: 2}, 1.0)
        sc.apply(Settings(slow_clients=6))
        assert _wait(lambda: sc.counts() == {engine.engine_id: 6}, 1.0)
        sc.apply(Settings(slow_clients=1))  # the extra ones hang up at once, mid-trickle or not
        assert _wait(lambda: sc.counts() == {engine.engine_id: 1}, 1.0)
        served = sc.stats()[engine.engine_id].served
        assert _wait(lambda: sc.stats()[engine.engine_id].served > served, 3 * TRICKLE_S + 1)
        sc.apply(Settings(slow_clients=0))
        assert _wait(lambda: sc.counts() == {engine.engine_id: 0}, 1.0)
    finally:
        sc.stop()
    assert not sc._thread.is_alive()


def test_a_dead_port_is_counted_not_printed(capfd: pytest.CaptureFixture[str]) -> None:
    port = free_ports()  # nothing listens there now
    sc = SlowClients({0: port}, Settings(slow_clients=3)).start()
    try:
        assert _wait(lambda: sum(sc.stats()[0].errors.values()) >= 3, 3.0)
    finally:
        sc.stop()
    assert "ConnectionRefusedError" in sc.summary()
    out, err = capfd.readouterr()
    assert "Traceback" not in out + err


def test_status_of_an_answer() -> None:
    assert _status(b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n") == 200
    assert _status(b"HTTP/1.1 408 Request Timeout\r\n\r\n") == 408
    for junk in (b"", b"garbage", b"HTTP/1.1 2"):
        with pytest.raises(NoAnswer):
            _status(junk)


def test_the_in_process_host_starts_applies_and_stops_them() -> None:
    threads = set(threading.enumerate())
    with EngineHost("io-bound", engines=["asyncio"], clients=2, io_ms=5, slow_clients=3) as host:
        a = ENGINE_IDS["asyncio"]
        assert host.slowclients is not None
        assert _wait(lambda: host.slowclients.counts() == {a: 3}, 1.0)
        host.apply(slow_clients=5)
        assert _wait(lambda: host.slowclients.counts() == {a: 5}, 1.0)
        assert _wait(lambda: host.slowclients.stats()[a].served >= 3, 3 * TRICKLE_S + 1)
        host.set_scenario("io-bound")  # a restart: new slow clients on the new engines
        assert host.settings.slow_clients == 0 and host.slowclients.counts() == {a: 0}
    assert host.slowclients is None
    assert _wait(lambda: not new_threads(threads), 1.0), new_threads(threads)


def test_connections_no_pool_thread_has_taken_are_counted_and_said(upstream) -> None:
    # slow-clients on threaded: 5 of its 16 slow clients held threads (reading 5) and the other 11,
    # their first bytes sent, waited for a thread behind the load's requests: on no count, on no lane
    eng = engine_class("threaded")(Recorder(), Settings(io_ms=0, pool=1), "native", upstream.port)
    eng.start()
    socks = [socket.create_connection(("127.0.0.1", eng.port), timeout=2) for _ in range(4)]
    try:
        for sock in socks:
            sock.sendall(b"GET / HTTP/1.1\r\nHo")  # the first holds the one thread; three wait for it
        # the thread takes the first from the queue, then reads its bytes: both counts settle together
        assert _wait(lambda: (eng.server_snapshot(0).waiting, eng.server_snapshot(0).reading) == (3, 1), 5.0), (
            eng.server_snapshot(0)
        )
        snap = eng.server_snapshot(0)
        assert snap.reading == 1 and snap.waiting == 3
        assert ServerSnapshot.from_dict(snap.as_dict()) == snap  # what crosses the pipe
    finally:
        for sock in socks:
            sock.close()
        assert _wait(lambda: eng.server_snapshot(0).waiting == 0, 3.0)
        eng.stop()
    counters = Counters("threaded", in_flight=1, by_phase={"reading": 1}, reading=1, busy=1)
    view = CounterView(counters, 160.0, 1, "threads", False, [], [], 0, server=snap)
    assert "conns waiting 3" in counter_text(view, 64, stacked=False).plain


def test_connections_the_server_has_not_accepted_are_its_backlog() -> None:
    # 5,000 clients on gevent: its pool full, it stopped accepting; 1,025 clients sat connected in the
    # kernel's accept queue (ss -lnt: Recv-Q 1025), their requests sent, on no server count
    if sys.platform != "linux":
        pytest.skip("the accept queue is read from Linux's TCP_INFO")
    with socket.socket() as lsock:
        lsock.bind(("127.0.0.1", 0))
        lsock.listen(8)
        counts = ServerCounts()
        counts.listener = lsock
        socks = [socket.create_connection(lsock.getsockname(), timeout=2) for _ in range(3)]
        try:
            assert _wait(lambda: counts.snapshot(0).backlog == 3, 5.0), counts.snapshot(0)
            lsock.accept()[0].close()
            assert _wait(lambda: counts.snapshot(0).backlog == 2, 5.0), counts.snapshot(0)
        finally:
            for sock in socks:
                sock.close()
    assert counts.snapshot(0).backlog == 0  # closed: not known, not shown
    srv = ServerSnapshot(backlog=1025, pool_used=1000, pool_size=1000)
    view = CounterView(Counters("gevent"), 20_000.0, 1, "hub", True, [], [], 0, server=srv)
    lines = counter_text(view, 64, stacked=False).plain.splitlines()
    assert all(len(line) <= 64 for line in lines), lines  # no word of it wrapped alone by Textual
    assert any("backlog 1,025" in line for line in lines)
    assert any("pool 1,000/1,000 FULL" in line for line in lines), lines
