"""The load generator and live settings: open loop hides no queueing; knobs act immediately."""

from __future__ import annotations

import socket
import time

from syncviz.engines.events import ENGINE_IDS, Batch, Phase, Recorder
from syncviz.engines.host import EngineHost
from syncviz.engines.loadgen import LoadGen
from syncviz.engines.settings import Settings
from syncviz.engines.stats import percentile

T = ENGINE_IDS["threaded"]


def collect(host: EngineHost, seconds: float) -> Batch:
    batch = Batch()
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        time.sleep(0.05)
        batch.extend(host.drain())
    return batch


def test_open_loop_counts_latency_from_the_intended_send_time() -> None:
    # 100 arrivals/s against one thread that needs 20 ms each (50/s): the backlog grows, and
    # latency must show it even though each request, once served, takes only 20 ms.
    with EngineHost("io-bound", engines=["threaded"], rate=100, pool=1, io_ms=20, clients=50) as host:
        batch = collect(host, 1.5)
    lat = sorted(lat for _, _, _, lat, ok in batch.latencies if ok)
    queued = {rid for _, _, rid, _, p in batch.transitions if p == Phase.QUEUED}  # the server records it too
    assert 100 <= len(queued) <= 200  # ~150 arrivals in 1.5 s (Poisson)
    assert len(lat) <= 0.7 * len(queued)  # it could not keep up
    assert percentile(lat, 90) > 10 * 20e6  # queueing delay counted: far above the 20 ms of work


def test_pool_and_clients_change_while_running() -> None:
    with EngineHost("io-bound", engines=["threaded"], clients=20, pool=8, io_ms=20) as host:
        collect(host, 0.5)
        host.apply(pool=2, clients=10)
        time.sleep(0.3)  # workers above the new size finish their request and retire
        host.drain()
        batch = collect(host, 1.0)
        lanes = {lane for _, e, _, lane, p in batch.transitions if e == T and p == Phase.RUNNING}
        assert lanes <= {0, 1}
        rps = sum(ok for *_, ok in batch.latencies) / 1.0
        assert 50 <= rps <= 110  # 2 threads / 20 ms = 100 req/s at most
        host.apply(pool=6)
        time.sleep(0.2)
        batch = collect(host, 0.8)
        lanes = {lane for _, e, _, lane, p in batch.transitions if e == T and p == Phase.RUNNING}
        assert len(lanes) == 6


def test_each_start_of_the_engines_is_a_new_run_even_on_the_same_scenario() -> None:
    with EngineHost("io-bound", engines=["asyncio"], clients=2, io_ms=5) as host:
        first = host.info()["run"]
        host.apply(clients=3)  # knobs change the running engines: the same run
        assert host.info()["run"] == first
        host.set_scenario("io-bound")  # the same scenario, restarted: a new run
        assert host.info()["run"] == first + 1


def test_clients_a_server_does_not_accept_are_counted_connecting() -> None:
    # a listener that never accepts, with the smallest backlog: the kernel completes a couple of
    # connections, the others wait in connect()
    with socket.socket() as lsock:
        lsock.bind(("127.0.0.1", 0))
        lsock.listen(1)
        gen = LoadGen(Recorder(), {T: lsock.getsockname()[1]}, Settings(clients=40).validate())
        gen.start(wait_s=5)
        try:
            waiting = gen.connecting()[T]
        finally:
            gen.stop()
    assert 30 <= waiting <= 40, waiting
