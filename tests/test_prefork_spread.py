"""prefork's keep-alive connections do not stay pinned to the worker that accepted them.

A worker started after the connections were open (a ``workers`` change, a restart) must get
their requests while another worker is busy: a request waits only while every worker is busy.
"""

from __future__ import annotations

import socket
import time
from collections.abc import Iterator

import pytest
from support import wait_for
from syncviz.engines.base import Engine, engine_class
from syncviz.engines.events import Phase, Recorder
from syncviz.engines.settings import Settings

GET = b"GET / HTTP/1.1\r\nHost: t\r\nX-Req-Id: %d\r\nX-Sent-Ns: %d\r\n\r\n"
IO_S = 0.2


@pytest.fixture
def prefork(recorder: Recorder) -> Iterator[Engine]:
    eng = engine_class("prefork")(recorder, Settings(io_ms=IO_S * 1000, workers=1), "native")
    eng.start()
    yield eng
    eng.stop()


def _ask(socks: list[socket.socket], first_rid: int) -> float:
    """One request on every connection at once; seconds until every answer is in."""
    t0 = time.monotonic()
    for rid, sock in enumerate(socks, first_rid):
        sock.sendall(GET % (rid, time.monotonic_ns()))
    assert all(s.recv(4096).startswith(b"HTTP/1.1 200") for s in socks)
    return time.monotonic() - t0


def test_prefork_a_late_worker_takes_requests_from_a_busy_ones_connections(prefork: Engine, recorder: Recorder) -> None:
    socks = [socket.create_connection(("127.0.0.1", prefork.port), timeout=5) for _ in range(4)]
    try:
        _ask(socks, 1)  # one worker: every connection is its own now
        prefork.apply(prefork.settings.with_changes(workers=2))
        procs = prefork._procs  # type: ignore[attr-defined]
        assert wait_for(lambda: len(procs) == 2 and all(p.ready.is_set() for p in procs.values()), 10)
        recorder.drain()
        took = _ask(socks, 11)
        seen: list[tuple[int, int, int, int, int]] = []

        def all_done() -> bool:  # a worker records DONE just after its last send
            seen.extend(recorder.drain().transitions)
            return sum(1 for *_, phase in seen if phase == Phase.DONE) >= 4

        assert wait_for(all_done, 2.0)
    finally:
        for s in socks:
            s.close()
    blocked = [(rid, lane) for _, _, rid, lane, phase in seen if phase == Phase.BLOCKED]
    assert {lane for _, lane in blocked} == {0, 1}  # the new worker served some of them
    assert took < 3.5 * IO_S  # two at a time (about 2 x 200 ms), not four one after the other
    for rid in range(11, 15):  # each still measured from the client's X-Sent-Ns, then served
        phases = [p for _, _, r, _, p in seen if r == rid]
        assert phases[0] == Phase.QUEUED and Phase.BLOCKED in phases and phases[-1] == Phase.DONE


def test_prefork_connections_waiting_in_a_busy_worker_are_counted(prefork: Engine) -> None:
    # slow-clients on prefork: 92 connections in the backlog, one served, and 23 the worker had
    # accepted, readable behind the one it served: on no count ('in flight 100', 16 slow clients)
    socks = [socket.create_connection(("127.0.0.1", prefork.port), timeout=5) for _ in range(4)]
    try:
        _ask(socks, 1)  # one worker: every connection is its own, parked between requests
        for rid, sock in enumerate(socks, 11):  # four requests at once: it serves one, three wait for it
            sock.sendall(GET % (rid, time.monotonic_ns()))
        # three wait behind the first for 0.2 s, two behind the second for 0.2 s more: looked at every 20 ms
        assert wait_for(lambda: prefork.server_snapshot(0).waiting >= 2, 5.0), prefork.server_snapshot(0)
        assert all(s.recv(4096).startswith(b"HTTP/1.1 200") for s in socks)
        assert wait_for(lambda: prefork.server_snapshot(0).waiting == 0, 2.0)  # free: none waits
    finally:
        for s in socks:
            s.close()


def test_prefork_connections_that_become_readable_during_one_long_request_are_counted(recorder: Recorder) -> None:
    """The count was taken before each request: a worker held by one long request showed the
    count from before it (0) while connections queued behind it. Counted during it now."""
    eng = engine_class("prefork")(recorder, Settings(io_ms=1500, workers=1), "native")
    eng.start()
    socks = [socket.create_connection(("127.0.0.1", eng.port), timeout=5) for _ in range(3)]
    try:
        for sock in socks:  # parked in the one worker, between requests (/health: no handler wait)
            sock.sendall(b"GET /health HTTP/1.1\r\nHost: t\r\n\r\n")
            assert sock.recv(4096).startswith(b"HTTP/1.1 200")
        socks[0].sendall(GET % (1, time.monotonic_ns()))  # holds the worker for 1.5 s
        time.sleep(0.2)
        t0 = time.monotonic()
        for sock in socks[1:]:
            sock.sendall(b"GET /health HTTP/1.1\r\nHost: t\r\n\r\n")
        assert wait_for(lambda: eng.server_snapshot(0).waiting == 2, 5.0), eng.server_snapshot(0)
        assert time.monotonic() - t0 < 1.2  # while the long request was still being served
        assert all(s.recv(4096).startswith(b"HTTP/1.1 200") for s in socks)
    finally:
        for s in socks:
            s.close()
        eng.stop()
