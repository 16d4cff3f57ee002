"""Relative behaviour with wide margins (2 noisy cores): who wins, never exact figures."""

from __future__ import annotations

import pytest
from syncviz.engines.bench import run_scenario

pytestmark = pytest.mark.timing


def test_io_bound_async_engines_beat_a_small_pool_fivefold() -> None:
    rows = {r["engine"]: r for r in run_scenario("io-bound", seconds=1.5, clients=100, io_ms=50, pool=4, warmup_s=0.5)}
    threaded = rows["threaded"]["throughput_rps"]
    assert threaded <= rows["threaded"]["bound_rps"] * 1.1  # 4 threads / 50 ms: ~80 req/s at most
    for engine in ("asyncio", "gevent"):
        assert rows[engine]["throughput_rps"] >= 5 * threaded, rows


def test_a_blocking_call_caps_the_async_engines_at_one_request_at_a_time() -> None:
    rows = {
        r["engine"]: r for r in run_scenario("blocking-call", seconds=1.5, clients=50, io_ms=20, pool=8, warmup_s=0.5)
    }
    for engine in ("asyncio", "gevent"):
        assert rows[engine]["throughput_rps"] <= 1.5 * 1000 / 20, rows
    assert rows["threaded"]["throughput_rps"] >= 3 * rows["asyncio"]["throughput_rps"]


def test_threads_share_one_gil_their_waits_show_as_ready_not_running() -> None:
    (row,) = run_scenario(
        "cpu-bound", engines=["threaded"], seconds=1.5, clients=20, pool=8, cpu_ms=5, io_ms=0, warmup_s=0.5
    )
    phases = row["phase_ms"]
    # Before GIL waits were recorded, running was ~40 ms (8 threads' turns) for 5 ms of CPU.
    assert phases["running"] < 4 * 5.0, phases
    assert phases["ready"] > 5.0, phases  # 8 threads, one GIL: a good part of it waiting for the GIL
