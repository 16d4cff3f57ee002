"""A clean stop: no thread, no file descriptor, no port left behind; fast."""

from __future__ import annotations

import socket
import threading
import time

import pytest
from support import connect, fd_targets, fds_left_since, get, new_threads, read_response, wait_for
from syncviz.engines.base import EngineError, engine_class, listen
from syncviz.engines.events import Recorder
from syncviz.engines.host import EngineHost
from syncviz.engines.loadgen import new_load_loop
from syncviz.engines.settings import Settings


def test_stop_releases_threads_fds_and_port(engine_name: str) -> None:
    # What an engine opens once per process is no leak (uvloop: libuv's signal pipe pair, made by
    # its first loop): one engine started and stopped first, whichever test ran before this one.
    first = engine_class(engine_name)(Recorder(), Settings(io_ms=200, pool=4))
    first.start()
    first.stop()
    threads, fds = set(threading.enumerate()), fd_targets()
    eng = engine_class(engine_name)(Recorder(), Settings(io_ms=200, pool=4))
    port = eng.start()
    assert get(port, "/health")[0] == 200
    idle = [connect(port) for _ in range(5)]  # idle keep-alive connections
    busy = connect(port)
    busy.sendall(b"GET / HTTP/1.1\r\n\r\n")  # a request in its 200 ms wait
    time.sleep(0.05)
    t0 = time.monotonic()
    eng.stop()
    assert time.monotonic() - t0 < 2.0
    for sock in [*idle, busy]:
        sock.close()
    assert wait_for(lambda: not new_threads(threads)), new_threads(threads)
    assert wait_for(lambda: not fds_left_since(fds)), fds_left_since(fds)
    with pytest.raises(OSError):
        socket.create_connection(("127.0.0.1", port), timeout=1).close()
    listen("127.0.0.1", port).close()  # the port can be bound again


def test_a_port_in_use_is_a_clear_error(engine_name: str) -> None:
    taken = listen("127.0.0.1", 0)
    try:
        port = taken.getsockname()[1]
        eng = engine_class(engine_name)(Recorder(), Settings(), port=port)
        with pytest.raises(EngineError, match=r"cannot listen on 127\.0\.0\.1"):
            eng.start()
    finally:
        taken.close()


def test_a_whole_host_under_load_stops_clean() -> None:
    # libuv opens one pipe per process the first time a uvloop loop starts (its signal lock, kept
    # till exit): opened here first, or the test failed whenever it was the worker's first uvloop
    new_load_loop().close()
    threads, fds = set(threading.enumerate()), fd_targets()
    host = EngineHost("mixed", clients=20).start()
    time.sleep(0.8)
    assert host.drain().latencies
    t0 = time.monotonic()
    host.close()
    assert time.monotonic() - t0 < 2.0
    assert wait_for(lambda: not new_threads(threads)), new_threads(threads)
    assert wait_for(lambda: not fds_left_since(fds)), fds_left_since(fds)


def test_servers_bind_loopback_only_by_default(engine_name: str) -> None:
    eng = engine_class(engine_name)(Recorder(), Settings())
    eng.start()
    try:
        with connect(eng.port) as sock:
            assert sock.getpeername()[0] == "127.0.0.1"
            sock.sendall(b"GET /health HTTP/1.1\r\n\r\n")
            assert read_response(sock)[0] == 200
        assert eng.host == "127.0.0.1"
    finally:
        eng.stop()
