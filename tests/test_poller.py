"""The threaded engine's poller without epoll (the selectors fallback other systems take)."""

from __future__ import annotations

import select
import time

import pytest
from support import connect, get, read_response
from syncviz.engines.backends._threaded import ThreadedEngine
from syncviz.engines.events import Recorder
from syncviz.engines.settings import Settings


@pytest.mark.parametrize("epoll", [True, False])
def test_parked_connections_are_served_again_and_idle_ones_closed(epoll: bool, monkeypatch: pytest.MonkeyPatch) -> None:
    if not epoll:
        monkeypatch.delattr(select, "epoll", raising=False)
    monkeypatch.setattr(ThreadedEngine, "keepalive_idle_s", 0.3)
    eng = ThreadedEngine(Recorder(), Settings(io_ms=0, pool=2))
    eng.start()
    try:
        assert (eng._sel._ep is not None) == (epoll and hasattr(select, "epoll"))
        with connect(eng.port) as sock:
            for _ in range(5):  # served, parked, readable again: re-armed each time
                sock.sendall(b"GET / HTTP/1.1\r\nHost: t\r\n\r\n")
                assert read_response(sock)[0] == 200
            t0 = time.monotonic()
            assert sock.recv(10) == b""  # idle: closed by the selector thread
            assert time.monotonic() - t0 < 1.5
        assert get(eng.port)[0] == 200  # a new connection (perhaps the same descriptor number) is watched
    finally:
        eng.stop()
