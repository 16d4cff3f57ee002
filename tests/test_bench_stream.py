"""bench measures the servers as the app runs them: their processes digest their own events
(``stream="servers"``), the load process sends raw samples, and the consumer keeps each side apart."""

from __future__ import annotations

import pytest
from support import wait_for
from syncviz.engines.child import ChildHost
from syncviz.engines.events import ENGINE_IDS, Batch, Phase
from syncviz.engines.stats import StreamStats


def _server_record(now: int, phase_ms: float) -> dict:
    counters = {
        "in_flight": 0,
        "by_phase": {},
        "busy": 0,
        "outside": 0,
        "lag_ms": [1.0, 2.0, 3.0],
        "phase_ms": {"awaiting": phase_ms},
        "sent": 0,
    }
    return {"ns": 10_000_000, "now": now, "hold": [], "wait": [], "held": [], "open_q": [], "open_r": [],
            "sent": [], "rows": [], "counters": counters}  # fmt: skip


def test_a_load_processs_raw_queued_never_replaces_the_engines_own_counters() -> None:
    e = ENGINE_IDS["asyncio"]
    stats = StreamStats(names=["asyncio"])
    first = Batch(t_ns=1_000_000_000)
    first.transitions = [(900_000_000, e, 7, -1, int(Phase.QUEUED))]  # what the load process sent raw
    first.digests = [(e, {"server": _server_record(1_000_000_000, 50.0)})]
    stats.feed(first)
    later = Batch(t_ns=2_000_000_000)
    later.transitions = [(1_900_000_000, e, 8, -1, int(Phase.QUEUED))]
    later.latencies = [(1_950_000_000, e, 7, 50_000_000, True)]
    stats.feed(later)
    c = stats.counters(2_000_000_000)["asyncio"]
    assert c.phase_ms["awaiting"] == 50.0 and c.lag_p99_ms == 2.0  # the engine's digest, not an empty local one
    assert c.completed == 1  # the clients' side from the raw samples


def test_servers_stream_digests_in_the_engines_and_ships_the_clients_raw() -> None:
    engines = ("asyncio", "gevent")
    child = ChildHost(scenario="io-bound", engines=engines, clients=10, io_ms=20, stream="servers").start()
    try:
        seen: dict[str, set] = {"digest": set(), "latency": set(), "engine_phase": set()}

        def look() -> bool:
            batch = child.drain()
            seen["digest"] |= {e for e, rec in batch.digests if "server" in rec}
            assert not any("client" in rec for _e, rec in batch.digests)  # the load sends raw samples
            seen["latency"] |= {e for _t, e, *_ in batch.latencies}
            seen["engine_phase"] |= {ph for *_x, ph in batch.transitions if ph != Phase.QUEUED}
            return len(seen["digest"]) == 2 and len(seen["latency"]) == 2

        assert wait_for(look)
        assert not seen["engine_phase"]  # the engines' transitions stayed in their processes
    finally:
        child.close()


def test_an_unknown_stream_is_refused() -> None:
    with pytest.raises(ValueError, match="stream must be one of"):
        ChildHost(stream="raw")
