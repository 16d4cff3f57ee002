"""Lifecycle invariants on real traffic, per engine: phase order, and who may hold a worker."""

from __future__ import annotations

import itertools
import time
from collections import defaultdict

import pytest
from syncviz.engines.events import ALLOWED_NEXT, ENGINE_IDS, Batch, Phase
from syncviz.engines.host import EngineHost
from syncviz.engines.registry import engine_spec

HOLDING = (Phase.RUNNING, Phase.BLOCKED)


def run(scenario: str, engine: str, seconds: float = 1.0, **overrides) -> Batch:
    batch = Batch()
    with EngineHost(scenario, engines=[engine], **overrides) as host:
        end = time.monotonic() + seconds
        while time.monotonic() < end:
            time.sleep(0.05)
            batch.extend(host.drain())
    return batch


def tracks(batch: Batch) -> dict[int, list[tuple[int, int, int]]]:
    out: dict[int, list[tuple[int, int, int]]] = defaultdict(list)
    for t, _, rid, lane, phase in batch.transitions:
        out[rid].append((t, phase, lane))
    return out


def max_holding(batch: Batch, lanes: set[int] | None = None) -> int:
    """The most requests in RUNNING or BLOCKED at one instant (optionally only on ``lanes``)."""
    edges = []
    for steps in tracks(batch).values():
        for (t0, phase, lane), (t1, _, _) in itertools.pairwise(steps):
            if phase in HOLDING and (lanes is None or lane in lanes) and t1 > t0:
                edges += [(t0, 1), (t1, -1)]
    level = peak = 0
    for _, step in sorted(edges, key=lambda e: (e[0], e[1])):  # ends before starts at equal times
        level += step
        peak = max(peak, level)
    return peak


class _IoRuns(dict):
    """One second of io-bound per engine, run the first time a test asks for that engine (under
    xdist the tests of one engine may land on another worker: each runs only what it reads)."""

    def __missing__(self, engine: str) -> Batch:
        self[engine] = run("io-bound", engine, clients=30, io_ms=10, pool=4)
        return self[engine]


@pytest.fixture(scope="module")
def io_runs() -> dict[str, Batch]:
    return _IoRuns()


@pytest.mark.parametrize("engine", list(ENGINE_IDS))
def test_every_request_follows_the_phase_graph(io_runs: dict[str, Batch], engine: str) -> None:
    batch = io_runs[engine]
    finished = 0
    for rid, steps in tracks(batch).items():
        times = [t for t, _, _ in steps]
        assert times == sorted(times), f"request {rid}: time went backwards"
        for (_, a, _), (_, b, _) in itertools.pairwise(steps):
            assert Phase(b) in ALLOWED_NEXT[Phase(a)], f"request {rid}: {Phase(a).name} -> {Phase(b).name}"
        if steps[-1][1] == Phase.DONE:
            finished += 1
            assert steps[0][1] == Phase.QUEUED  # the client's send starts every load-generator request
    assert finished > 100


@pytest.mark.parametrize("engine", list(ENGINE_IDS))
def test_io_waits_are_recorded_in_the_engines_own_phase(io_runs: dict[str, Batch], engine: str) -> None:
    phases = {p for _, _, _, _, p in io_runs[engine].transitions}
    own = engine_spec(engine).wait_phase  # threaded, prefork: BLOCKED; asyncio, uvloop, trio: AWAITING; gevent: YIELDED
    assert own in phases
    assert not ({Phase.BLOCKED, Phase.AWAITING, Phase.YIELDED} - {own}) & phases


def test_one_request_at_a_time_on_a_loop_and_pool_size_on_threads(io_runs: dict[str, Batch]) -> None:
    assert max_holding(io_runs["asyncio"], {0}) == 1
    assert max_holding(io_runs["gevent"], {0}) == 1
    assert 1 < max_holding(io_runs["threaded"]) <= 4


@pytest.mark.parametrize("engine", ["asyncio", "gevent"])
def test_a_blocking_call_holds_the_loop_and_others_turn_ready(engine: str) -> None:
    batch = run("blocking-call", engine, seconds=1.5, clients=10, io_ms=20)
    blocked = [(lane, p) for _, _, _, lane, p in batch.transitions if p == Phase.BLOCKED]
    assert blocked and {lane for lane, _ in blocked} == {0}
    assert max_holding(batch) == 1
    # Requests that finished spent time READY, waiting for the loop the blocked one held.
    ready_time = waited = 0
    for steps in tracks(batch).values():
        if steps[-1][1] != Phase.DONE:
            continue
        for (t0, phase, _), (t1, _, _) in itertools.pairwise(steps):
            if phase == Phase.READY:
                ready_time += t1 - t0
                waited += 1
    assert waited > 10 and ready_time / waited > 5e6  # on average more than 5 ms ready


def test_offload_runs_on_at_most_forty_threads_off_the_loop() -> None:
    batch = run("offload", "asyncio", seconds=1.0, clients=60, io_ms=20)
    lanes = {lane for _, _, _, lane, p in batch.transitions if p == Phase.BLOCKED}
    assert lanes and 0 not in lanes and max(lanes) <= 40
    assert max_holding(batch, {0}) == 1
    assert 20 < max_holding(batch) <= 41
