"""Live verdicts (engines/claims/live.py): pure functions on hand-made counters."""

from __future__ import annotations

from typing import Any

import pytest
from syncviz.engines.claims import CLAIMS
from syncviz.engines.claims import base as v
from syncviz.engines.claims.live import (
    MIN_SAMPLES,
    judge_live,
    min_seconds,
    scene_knobs,
    scene_matches,
    scene_settings,
)
from syncviz.engines.events import DEFAULT_ENGINES
from syncviz.engines.source import EngineStatus, SourceStatus
from syncviz.engines.stats import Counters


def counters(**by_engine: dict[str, Any]) -> dict[str, Counters]:
    """Every engine the app runs (the board's counters) with plenty of samples; ``by_engine``
    overrides fields per engine."""
    out = {}
    for e in DEFAULT_ENGINES:
        fields = {"samples": 200, "rps": 100.0, "p50_ms": 50.0, "p99_ms": 60.0, "completed": 500}
        fields.update(by_engine.get(e, {}))
        out[e] = Counters(e, **fields)
    return out


def info(claim_id: str, **changes: Any) -> dict[str, Any]:
    claim = CLAIMS[claim_id]
    return {"scenario": claim.scene.scenario, "settings": {**scene_settings(claim).as_dict(), **changes}}


def judge(claim_id: str, c: dict[str, Counters], **changes: Any):
    live = judge_live(claim_id, c, info(claim_id, **changes), elapsed_s=10.0)
    assert live is not None
    return live


def test_every_claim_has_a_live_judge_and_a_scene_the_host_accepts() -> None:
    for claim in CLAIMS.values():
        assert callable(claim.live)
        assert "slow" not in scene_knobs(claim)  # the host's set_scenario takes no slow override
        assert scene_matches(claim, info(claim.id))


def test_no_verdict_before_enough_data_or_off_scene() -> None:
    c = counters(threaded={"rps": 156.0}, asyncio={"rps": 3500.0})
    scene = info("io-throughput")
    assert judge_live("io-throughput", c, scene, elapsed_s=min_seconds("io-throughput") - 0.1) is None
    assert judge_live("io-throughput", c, scene, elapsed_s=min_seconds("io-throughput")) is not None
    few = counters(threaded={"samples": MIN_SAMPLES - 1})
    assert judge_live("io-throughput", few, scene, elapsed_s=10) is None
    assert judge_live("io-throughput", {}, scene, elapsed_s=10) is None
    # the stream runs something else: another scenario, other knobs, slow motion
    assert judge_live("io-throughput", c, {**scene, "scenario": "cpu-bound"}, elapsed_s=10) is None
    assert judge_live("io-throughput", c, info("io-throughput", pool=64), elapsed_s=10) is None
    assert judge_live("io-throughput", c, info("io-throughput", slow=10.0), elapsed_s=10) is None
    assert judge_live("io-throughput", c, {}, elapsed_s=10) is None
    # a loop-lag claim waits for lag samples
    assert judge_live("blocking-call", counters(), info("blocking-call"), elapsed_s=10) is None


def test_no_verdict_while_a_process_the_scene_reads_is_down() -> None:
    """A killed engine's figures stop with it: "high-load-only" read it as async/sync 0.0x and said
    "does not hold". While an engine the scene reads, or the load, is down: no verdict, and why."""
    c = counters(threaded={"rps": 156.0}, asyncio={"rps": 0.0})
    scene = info("high-load-only")
    live = judge_live("high-load-only", c, scene, elapsed_s=60, down={"asyncio": "killed by SIGKILL"})
    assert live is not None and live.verdict == f"{v.NO_LIVE}: the asyncio process killed by SIGKILL"
    assert live.figures == {} and live.tone == "none"
    load = judge_live("io-throughput", counters(), info("io-throughput"), elapsed_s=60, down={"load": "stalled"})
    assert load is not None and load.verdict == f"{v.NO_LIVE}: the load process stalled"
    fast = {**counters(), "uvloop": Counters("uvloop", samples=200, rps=1000.0, p50_ms=1.0, p99_ms=2.0, completed=500)}
    gevent_gone = {"gevent": "killed by SIGKILL"}  # a process the uvloop scene does not read: judged as before
    assert judge_live("uvloop", fast, info("uvloop"), elapsed_s=60, down=gevent_gone) is not None
    status = SourceStatus(  # what the presenter passes as ``down``: every process not live, and why
        "processes",
        {
            "asyncio": EngineStatus("asyncio", "exited", "killed by SIGKILL"),
            "threaded": EngineStatus("threaded", "live"),
        },
        load_state="stalled",
    )
    assert status.down == {"asyncio": "killed by SIGKILL", "load": "stalled"}
    elsewhere = {**scene, "scenario": "cpu-bound"}  # another scene running: nothing, as ever
    assert judge_live("high-load-only", c, elsewhere, elapsed_s=60, down={"asyncio": "killed by SIGKILL"}) is None


def test_io_throughput_judges_the_one_pool_it_shows() -> None:
    live = judge("io-throughput", counters(threaded={"rps": 156.0}, asyncio={"rps": 3500.0}))
    assert live.figures["speedup_by_pool"] == {"8": 22.44}
    assert (
        live.verdict == CLAIMS["io-throughput"].verdict(live.figures) == "does not hold: async/sync was 22x at pool 8"
    )
    assert live.tone == "not"
    assert "syncviz claims --id io-throughput" in live.scope
    inside = judge("io-throughput", counters(threaded={"rps": 160.0}, asyncio={"rps": 480.0}))
    assert inside.verdict == "holds at pool 8"  # one pool in range is not the sweep's "holds"


def test_same_figures_same_verdict_as_the_experiment() -> None:
    """Where the scene measures the experiment's figures, the catalogue's verdict judges them."""
    lag = {"lag_p99_ms": 300.0}
    cases = {
        "not-faster": counters(),
        "cpu-bound": counters(threaded={"rps": 136.0}, asyncio={"rps": 22.0, **lag}, gevent={"rps": 18.0, **lag}),
        "blocking-call": counters(asyncio={"rps": 20.0, "lag_p99_ms": 5000.0}),
    }
    for claim_id, c in cases.items():
        live = judge(claim_id, c)
        assert live.verdict == CLAIMS[claim_id].verdict(live.figures) == v.HOLDS
        assert live.scope == ""
    slow_one = judge("not-faster", counters(gevent={"p50_ms": 80.0}))
    assert slow_one.verdict.startswith(v.NOT)
    free_loop = judge("blocking-call", counters(asyncio={"rps": 1500.0, "lag_p99_ms": 4.0}))
    assert free_loop.verdict == "does not hold: the loop still served 1,500 req/s with the blocking call"


def test_threads_needed_at_the_scene_pool() -> None:
    assert judge("threads-needed", counters(threaded={"rps": 50.0})).verdict.startswith("holds at pool 10")
    assert judge("threads-needed", counters(threaded={"rps": 250.0})).verdict.startswith(v.NOT)


def test_thousands_without_memory() -> None:
    busy = {"rps": 24.0, "p50_ms": 2823.0, "failed": 0}
    live = judge("thousands", counters(asyncio=busy))
    assert live.verdict.startswith("holds only when connections x CPU per request fit in the wait")
    assert "1,000 x 1.0 ms" in live.verdict
    assert "memory" in live.scope
    assert judge("thousands", counters(asyncio={"p50_ms": 12.0})).verdict.startswith("holds for connections")
    assert judge("thousands", counters(asyncio={"failed": 3})).verdict.startswith(v.NOT)


def test_greenlets_high_load_offload_judge_their_part() -> None:
    stalls = judge("greenlets", counters(gevent={"rps": 20.0, "lag_p99_ms": 4900.0}))
    assert stalls.verdict.startswith("holds for the call that does not cooperate")
    assert "scaling half" in stalls.scope
    assert judge("greenlets", counters(gevent={"rps": 900.0, "lag_p99_ms": 4.0})).tone == "not"

    above = judge("high-load-only", counters(threaded={"rps": 312.0}, asyncio={"rps": 1134.0}))
    assert above.verdict == "holds above the pool"
    assert above.figures["ratio_by_clients"] == {"64": 3.63}
    assert judge("high-load-only", counters(threaded={"rps": 312.0}, asyncio={"rps": 360.0})).tone == "only"

    assert judge("offload", counters(asyncio={"rps": 779.0})).verdict.startswith("holds for the cap")
    assert judge("offload", counters(asyncio={"rps": 1500.0})).tone == "not"
    assert judge("offload", counters(asyncio={"rps": 300.0})).tone == "not"


@pytest.mark.parametrize("held", [0, 1000])
def test_memory_is_never_judged_live(held: int) -> None:
    live = judge("memory", counters(**{e: {"in_flight": held, "busy": held} for e in DEFAULT_ENGINES}))
    assert live.tone == "none"
    assert live.verdict.startswith("no live verdict")
    assert "syncviz claims --id memory" in live.scope


def test_streaming_counts_the_streams_each_engine_serves_at_once() -> None:
    served = {"running": 5.0, "blocked": 495.0, "awaiting": 0.0}
    c = counters(
        threaded={"rps": 16.0, "phase_ms": {"queued": 1500.0, **served}, "in_flight": 32, "queued": 24},
        asyncio={"rps": 64.0, "phase_ms": {"queued": 0.5, "running": 5.0, "awaiting": 495.0}, "in_flight": 32},
        gevent={"rps": 64.0, "phase_ms": {"queued": 0.5, "running": 5.0, "yielded": 495.0}, "in_flight": 32},
    )
    live = judge("streaming", c)
    assert live.figures["concurrent_streams"] == {"threaded": 8.0, "asyncio": 32.0, "gevent": 32.0}
    assert "(8 streaming now)" in live.measured
    assert live.verdict == CLAIMS["streaming"].verdict(live.figures) == v.HOLDS
    assert "first byte after 1,500 ms on threaded" in live.measured
    c["threaded"].rps = 40.0  # a pool that serves 20 streams at once is no bound
    assert judge("streaming", c).tone == "not"


def test_slow_clients_judges_starving_against_the_bound_without_them() -> None:
    reading = {"reading": 8}
    live = judge(
        "slow-clients",
        counters(
            threaded={"rps": 33.0, "busy": 8, "by_phase": reading}, asyncio={"rps": 1650.0}, gevent={"rps": 1700.0}
        ),
    )
    assert live.figures["bound_rps_without"] == {"threaded": 160.0, "asyncio": 2000.0, "gevent": 2000.0}
    assert live.verdict.startswith("holds for starving") and live.tone == "holds"
    assert "8/8 threads busy, 8 reading" in live.measured
    assert "syncviz claims --id slow-clients" in live.scope
    fed = judge("slow-clients", counters(threaded={"rps": 150.0}, asyncio={"rps": 1650.0}, gevent={"rps": 1700.0}))
    assert fed.verdict.startswith("does not hold: threaded kept 94% of its bound")
    both = judge("slow-clients", counters(threaded={"rps": 30.0}, asyncio={"rps": 600.0}, gevent={"rps": 1700.0}))
    assert both.verdict.startswith("does not hold: asyncio was starved too")
    assert judge_live("slow-clients", counters(), info("slow-clients"), elapsed_s=5.0) is None  # still ramping
