"""How the claims are measured (engines/claims/plan.py, session.py), without running an engine:
every run asked for ahead and measured once, grouped by the processes it needs; how long a point
applied live warms up; streams served at once from transitions."""

from __future__ import annotations

from typing import Any

import pytest
from syncviz.engines.claims import CLAIM_LIST
from syncviz.engines.claims import plan as plan_module
from syncviz.engines.claims.plan import PLACEHOLDER_RUN, Plan
from syncviz.engines.claims.session import SETTLE_S, Step, grouped, in_service
from syncviz.engines.events import Phase

MS = 1_000_000


def step(scenario: str = "io-bound", engine: str = "threaded", apart: str = "", **knobs: Any) -> Step:
    key = (scenario, engine, apart, tuple(sorted(knobs.items())))
    return Step(key, scenario, (engine,), False, None, 0.5, knobs, 0.25, apart)


def test_scenarios_that_differ_only_in_settings_share_processes() -> None:
    io, cpu = step(pool=8), step("cpu-bound", cpu_ms=5.0)
    blocking, offload = step("blocking-call", "asyncio"), step("offload", "asyncio")
    assert io.group == cpu.group  # the same engine in the same mode: knobs apart
    assert len({step(engine="asyncio").group, blocking.group, offload.group}) == 3  # another mode each
    assert step("cpu-bound", "prefork", workers=1).group != step("cpu-bound", "prefork", workers=2).group
    assert step(apart="thousands").group != io.group
    groups = grouped([io, blocking, cpu, step(engine="asyncio")])
    assert [[s.scenario for s in g] for g in groups] == [["io-bound", "cpu-bound"], ["blocking-call"], ["io-bound"]]


@pytest.mark.parametrize(
    ("before", "after", "longest_s", "expected"),
    [
        ({"pool": 8}, {"pool": 64}, 1.0, 0.25),  # the same requests, more threads: the plan's settle
        ({"io_ms": 10.0}, {"io_ms": 400.0}, 0.01, 0.4),  # one new request's time
        ({"io_ms": 1000.0, "clients": 1000}, {"io_ms": 50.0}, 1.05, 1.05 + SETTLE_S),  # old answers drain first
        ({"clients": 100, "pool": 8}, {"clients": 4, "pool": 16}, 0.62, 0.62 + SETTLE_S),  # retired clients too
        ({"clients": 4}, {"clients": 64}, 2.0, 0.25),  # more clients of the same requests
    ],
)
def test_a_point_applied_live_warms_up_past_what_the_change_leaves_behind(
    before: dict, after: dict, longest_s: float, expected: float
) -> None:
    assert step(**after).settle_after(step(**before), longest_s) == pytest.approx(expected)


def _tr(t_ms: float, rid: int, phase: Phase, engine: int = 1) -> tuple[int, int, int, int, int]:
    return (int(t_ms * MS), engine, rid, 0, int(phase))


def test_in_service_is_the_mean_number_served_over_the_window() -> None:
    transitions = [
        _tr(-50, 1, Phase.RUNNING),  # serving before the window opens: counted from 0
        _tr(0, 2, Phase.QUEUED),
        _tr(20, 2, Phase.RUNNING),
        _tr(50, 1, Phase.DONE),
        _tr(60, 2, Phase.AWAITING),  # still being served (waiting between chunks)
        _tr(80, 3, Phase.RUNNING, engine=2),  # another engine's
        _tr(150, 2, Phase.DONE),  # after the window closes
    ]
    # request 1 for 50 ms, request 2 for 80 ms of the 100 ms window
    assert in_service(transitions, 1, 0, 100 * MS) == pytest.approx(1.3)
    assert in_service(transitions, 2, 0, 100 * MS) == pytest.approx(0.2)
    assert in_service([], 1, 0, 100 * MS) == 0.0


def _fake_measure(calls: list[list[Step]]):
    def measure(steps: list[Step], seconds: float, stopping: list) -> dict[tuple, tuple[list[dict[str, Any]], float]]:
        calls.append(steps)
        return {s.key: ([dict(PLACEHOLDER_RUN, engine=e) for e in s.engines], 1.0) for s in steps}

    return measure


def test_every_run_is_measured_once_ahead_grouped_by_processes(monkeypatch: pytest.MonkeyPatch) -> None:
    calls: list[list[Step]] = []
    probes: list[tuple[str, int]] = []
    monkeypatch.setattr(plan_module, "measure_steps", _fake_measure(calls))

    def probe(self: Plan, asked: list[tuple[str, int]]) -> None:
        probes.extend(asked)
        for engine, n in asked:
            self.memory[engine] = {"kb_per_conn": 10.0, "waiting": n}
            self.elapsed[("rss", engine)] = 1.0

    monkeypatch.setattr(Plan, "_probe", probe)
    plan = Plan(quick=True, cpus=(0, 1))
    plan.measure_ahead(CLAIM_LIST)
    steps = [s for g in calls for s in g]
    assert len({s.key for s in steps}) == len(steps) > 30  # each run once
    assert len(calls) <= 18 and len(steps) - len(calls) >= 20  # a start per engine, mode and placement
    assert sorted(e for e, _ in probes) == ["asyncio", "gevent", "threaded"]
    starts, billed = len(calls), 0.0
    for claim in CLAIM_LIST:
        figures, _ = claim.run(plan)
        assert claim.verdict(figures)
        billed += plan.bill()
    assert len(calls) == starts  # nothing measured after the plan
    assert billed == pytest.approx(len(steps) + len(probes))  # every second billed to one claim


def test_a_run_not_asked_ahead_is_measured_when_asked(monkeypatch: pytest.MonkeyPatch) -> None:
    calls: list[list[Step]] = []
    monkeypatch.setattr(plan_module, "measure_steps", _fake_measure(calls))
    plan = Plan(quick=True)
    plan.run("io-bound", "asyncio", clients=7)
    plan.run("io-bound", "asyncio", clients=7)  # cached
    assert [[s.knobs for s in g] for g in calls] == [[{"clients": 7}]]
