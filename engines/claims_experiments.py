"""The claims' experiments: run real servers, return figures and the settings used.

Each experiment is ``fn(plan) -> (figures, settings)``; :func:`run_claims` runs the chosen
ones and applies each claim's pure verdict (:mod:`syncviz.engines.claims_verdicts`) to its
figures. Runs go through :func:`syncviz.engines.bench.run_scenario`, one engine at a time,
and a :class:`Plan` caches them, so claims that need the same run (asyncio at 100 clients,
say) share it. Pinning the process is the caller's business (the CLI does it).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from . import claims_verdicts as v
from .bench import run_scenario
from .claims import get_claims
from .claims_memory import rss_per_connection
from .events import DEFAULT_ENGINES

Result = tuple[dict[str, Any], dict[str, Any]]


@dataclass
class Plan:
    """How long to measure, and the runs made so far (shared between claims)."""

    quick: bool = False
    engines: tuple[str, ...] = DEFAULT_ENGINES  # the per-engine experiments' (``claims --engines``)
    runs: dict[tuple, dict[str, Any]] = field(default_factory=dict)
    memory: dict[str, dict[str, Any]] = field(default_factory=dict)

    def compared(self) -> list[str]:
        """The engines a per-engine experiment runs: the three its verdict reads, then the others named."""
        return [*DEFAULT_ENGINES, *(e for e in self.engines if e not in DEFAULT_ENGINES)]

    @property
    def seconds(self) -> float:
        return 1.0 if self.quick else 3.0

    @property
    def warmup(self) -> float:
        return 0.5 if self.quick else 1.0

    @property
    def connections(self) -> int:
        return 1000 if self.quick else 2000

    def run(self, scenario: str, engine: str, warmup: float | None = None, **knobs: Any) -> dict[str, Any]:
        """One engine alone on ``scenario`` with ``knobs``; cached."""
        warm = self.warmup if warmup is None else max(warmup, self.warmup)
        key = (scenario, engine, warm, tuple(sorted(knobs.items())))
        if key not in self.runs:
            self.runs[key] = run_scenario(scenario, engines=[engine], seconds=self.seconds, warmup_s=warm, **knobs)[0]
        return self.runs[key]

    def together(self, scenario: str, warmup: float | None = None, **knobs: Any) -> dict[str, dict[str, Any]]:
        """The three engines at once on ``scenario`` with ``knobs`` (each in its own process); cached."""
        warm = self.warmup if warmup is None else max(warmup, self.warmup)
        key = ("together", scenario, warm, tuple(sorted(knobs.items())))
        if key not in self.runs:
            results = run_scenario(scenario, seconds=self.seconds, together=True, warmup_s=warm, **knobs)
            self.runs[key] = {r["engine"]: r for r in results}
        return self.runs[key]

    def rps(self, scenario: str, engine: str, **knobs: Any) -> float:
        return self.run(scenario, engine, **knobs)["throughput_rps"]

    def rss(self, engine: str, n: int = 1000) -> dict[str, Any]:
        if engine not in self.memory:
            self.memory[engine] = rss_per_connection(engine, n)
        return self.memory[engine]

    def settings(self, scenario: str, **knobs: Any) -> dict[str, Any]:
        return {"scenario": scenario, **knobs, "seconds": self.seconds, "warmup_s": self.warmup}


def _lag_p99(result: dict[str, Any]) -> float | None:
    lag = result["loop_lag_ms"]
    return None if lag is None else lag["p99"]


def io_throughput(plan: Plan) -> Result:
    clients, io_ms, pools = 200, 50.0, (8, 64, 200)
    asyncio_rps = plan.rps("io-bound", "asyncio", clients=clients, io_ms=io_ms)
    threaded = {str(p): plan.rps("io-bound", "threaded", clients=clients, io_ms=io_ms, pool=p) for p in pools}
    figures = {
        "clients": clients,
        "asyncio_rps": asyncio_rps,
        "gevent_rps": plan.rps("io-bound", "gevent", clients=clients, io_ms=io_ms),
        "threaded_rps_by_pool": threaded,
        "speedup_by_pool": {p: round(asyncio_rps / max(r, 0.1), 2) for p, r in threaded.items()},
    }
    return figures, plan.settings("io-bound", clients=clients, io_ms=io_ms, pool=list(pools))


def not_faster(plan: Plan) -> Result:
    knobs = {"clients": 1, "io_ms": 10.0}
    runs = {e: plan.run("io-bound", e, **knobs) for e in plan.compared()}
    figures = {
        "io_ms": knobs["io_ms"],
        "p50_ms": {e: r["latency_ms"]["p50"] for e, r in runs.items()},
        "p99_ms": {e: r["latency_ms"]["p99"] for e, r in runs.items()},
        "rps": {e: r["throughput_rps"] for e, r in runs.items()},
    }
    return figures, plan.settings("io-bound", **knobs)


def cpu_bound(plan: Plan) -> Result:
    knobs = {"clients": 20, "pool": 8, "io_ms": 0.0, "cpu_ms": 5.0}
    runs = {e: plan.run("cpu-bound", e, **knobs) for e in plan.compared()}
    figures = {
        "cpu_ms": knobs["cpu_ms"],
        "rps": {e: r["throughput_rps"] for e, r in runs.items()},
        "core_share": {e: round(r["throughput_rps"] * knobs["cpu_ms"] / 1000, 2) for e, r in runs.items()},
        "loop_lag_p99_ms": {e: _lag_p99(runs[e]) for e in ("asyncio", "gevent")},
    }
    return figures, plan.settings("cpu-bound", **knobs)


def threads_needed(plan: Plan) -> Result:
    users, io_ms, pools = 100, 200.0, (10, 50, 100)
    bound = users / (io_ms / 1000)
    threaded = {str(p): plan.rps("io-bound", "threaded", clients=users, io_ms=io_ms, pool=p) for p in pools}
    figures = {
        "users": users,
        "bound_rps": bound,
        "threaded_rps_by_pool": threaded,
        "share_of_bound_by_pool": {p: round(r / bound, 2) for p, r in threaded.items()},
        "asyncio_rps": plan.rps("io-bound", "asyncio", clients=users, io_ms=io_ms),
        "asyncio_threads": 1,
    }
    settings = plan.settings("io-bound", clients=users, io_ms=io_ms, pool=list(pools))
    settings["scaled"] = "2 s requests scaled down 10x to 200 ms; the ratios do not depend on the time"
    return figures, settings


def thousands(plan: Plan) -> Result:
    n = plan.connections
    shapes = {"busy": {"io_ms": 9.0, "cpu_ms": 1.0}, "idle": {"io_ms": 1000.0, "cpu_ms": 0.0}}
    figures: dict[str, Any] = {"connections": n}
    warmups = {}
    for name, knobs in shapes.items():
        # the first round takes n x CPU (plus ~0.15 ms of serving) or 1 s of waiting: warm up past it
        warmups[name] = round(max(1.5, 1.3 * n * (knobs["cpu_ms"] + 0.15) / 1000), 1)
        r = plan.run("io-bound", "asyncio", warmup=warmups[name], clients=n, **knobs)
        figures[name] = {
            "request_ms": knobs["io_ms"] + knobs["cpu_ms"],
            "rps": r["throughput_rps"],
            "p50_ms": r["latency_ms"]["p50"],
            "p99_ms": r["latency_ms"]["p99"],
            "completed": r["completed"],
            "failed": r["failed"],
        }
    figures["rss_kb_per_conn"] = {e: plan.rss(e)["kb_per_conn"] for e in ("threaded", "asyncio")}
    settings = plan.settings("io-bound", clients=n, busy=shapes["busy"], idle=shapes["idle"])
    settings["warmup_s"] = warmups
    settings["memory_connections"] = 1000
    return figures, settings


def blocking_call(plan: Plan) -> Result:
    knobs = {"clients": 100, "io_ms": 50.0}
    native = plan.run("io-bound", "asyncio", **knobs)
    blocking = plan.run("blocking-call", "asyncio", **knobs)
    figures = {
        "io_ms": knobs["io_ms"],
        "native_rps": native["throughput_rps"],
        "blocking_rps": blocking["throughput_rps"],
        "one_at_a_time_rps": 1000 / knobs["io_ms"],
        "native_loop_lag_p99_ms": _lag_p99(native),
        "loop_lag_p99_ms": _lag_p99(blocking),
        "blocking_p50_ms": blocking["latency_ms"]["p50"],
    }
    return figures, plan.settings("blocking-call", **knobs, compared_with="io-bound")


def greenlets(plan: Plan) -> Result:
    knobs = {"clients": 100, "io_ms": 50.0}
    blocking = plan.run("blocking-call", "gevent", **knobs)
    figures = {
        "io_ms": knobs["io_ms"],
        "gevent_rps": plan.rps("io-bound", "gevent", **knobs),
        "asyncio_rps": plan.rps("io-bound", "asyncio", **knobs),
        "threaded_pool8_rps": plan.rps("io-bound", "threaded", pool=8, **knobs),
        "gevent_blocking_rps": blocking["throughput_rps"],
        "one_at_a_time_rps": 1000 / knobs["io_ms"],
        "hub_lag_p99_ms": _lag_p99(blocking),
    }
    return figures, plan.settings("blocking-call", **knobs, pool=8, compared_with="io-bound")


def high_load_only(plan: Plan) -> Result:
    pool, io_ms, sweep = 16, 50.0, (4, 16, 64)
    threaded = {str(c): plan.rps("io-bound", "threaded", clients=c, pool=pool, io_ms=io_ms) for c in sweep}
    asyncio_rps = {str(c): plan.rps("io-bound", "asyncio", clients=c, io_ms=io_ms) for c in sweep}
    figures = {
        "pool": pool,
        "threaded_rps_by_clients": threaded,
        "asyncio_rps_by_clients": asyncio_rps,
        "ratio_by_clients": {c: round(asyncio_rps[c] / max(threaded[c], 0.1), 2) for c in threaded},
    }
    return figures, plan.settings("io-bound", pool=pool, io_ms=io_ms, clients=list(sweep))


def offload(plan: Plan) -> Result:
    from .settings import OFFLOAD_LIMIT

    io_ms, sweep = 50.0, (100, 200)
    figures = {
        "limit": OFFLOAD_LIMIT,
        "cap_rps": OFFLOAD_LIMIT / (io_ms / 1000),
        "offload_rps_by_clients": {str(c): plan.rps("offload", "asyncio", clients=c, io_ms=io_ms) for c in sweep},
        "native_rps": plan.rps("io-bound", "asyncio", clients=100, io_ms=io_ms),
        "threaded_pool40_rps": plan.rps("io-bound", "threaded", pool=OFFLOAD_LIMIT, clients=100, io_ms=io_ms),
    }
    return figures, plan.settings("offload", io_ms=io_ms, clients=list(sweep), compared_with="io-bound")


def memory(plan: Plan) -> Result:
    probes = {e: plan.rss(e) for e in DEFAULT_ENGINES}  # one process each: prefork's workers are not probed
    figures = {
        "connections": 1000,
        "rss_kb_per_conn": {e: p["kb_per_conn"] for e, p in probes.items()},
        "rss_mb_per_1000": {e: round(p["kb_per_conn"] * 1000 / 1024, 1) for e, p in probes.items()},
        "held_mid_request": {e: p["waiting"] for e, p in probes.items()},
    }
    settings = {"connections": 1000, "io_ms": 60_000.0, "threaded_pool": 1000, "measure": "VmRSS growth / N"}
    return figures, settings


def _served_ms(result: dict[str, Any]) -> float:
    """Mean time a finished request was being served: from a worker taking it to its last byte."""
    return sum(ms for phase, ms in result["phase_ms"].items() if phase not in ("queued", "reading"))


def _first_byte_ms(result: dict[str, Any]) -> float:
    """Mean time before a worker took the request (a stream's head goes out the moment one does)."""
    return result["phase_ms"].get("queued", 0.0) + result["phase_ms"].get("reading", 0.0)


def streaming(plan: Plan) -> Result:
    knobs = {"clients": v.STREAM_CLIENTS, "pool": v.STREAM_POOL, "io_ms": v.STREAM_MS, "chunks": v.STREAM_CHUNKS}
    # closed loop: a client waits clients / pool streams for a thread; warm up past that first round
    first_round_s = knobs["clients"] / knobs["pool"] * knobs["io_ms"] / 1000
    runs = plan.together("streaming", warmup=first_round_s + plan.warmup, **knobs)
    figures = {
        "clients": knobs["clients"],
        "pool": knobs["pool"],
        "stream_ms": knobs["io_ms"],
        "rps": {e: r["throughput_rps"] for e, r in runs.items()},
        # Little's law on the serving stage: streams finished per second x seconds each was served
        "concurrent_streams": {e: round(r["throughput_rps"] * _served_ms(r) / 1000, 1) for e, r in runs.items()},
        "first_byte_ms": {e: round(_first_byte_ms(r), 1) for e, r in runs.items()},
        "p50_ms": {e: r["latency_ms"]["p50"] for e, r in runs.items()},
    }
    settings = plan.settings("streaming", **knobs, together=True)
    settings["warmup_s"] = first_round_s + plan.warmup
    settings["scaled"] = "long-lived streams scaled down to 500 ms; the streams served at once do not depend on it"
    return figures, settings


def slow_clients(plan: Plan) -> Result:
    from .slowclients import TRICKLE_S

    knobs = {"clients": 100, "pool": 8, "io_ms": 50.0}
    without = plan.together("io-bound", **knobs)
    # every slow client has begun its first trickle (they start spread over one) before the window opens
    with_slow = plan.together("slow-clients", warmup=TRICKLE_S + plan.warmup, **knobs, slow_clients=v.SLOW_CLIENTS)
    before = {e: r["throughput_rps"] for e, r in without.items()}
    after = {e: r["throughput_rps"] for e, r in with_slow.items()}
    figures = {
        "slow_clients": v.SLOW_CLIENTS,
        "pool": knobs["pool"],
        "rps_without": before,
        "rps_with": after,
        "kept": {e: round(after[e] / max(before[e], 0.1), 2) for e in before},
        "p50_ms_with": {e: r["latency_ms"]["p50"] for e, r in with_slow.items()},
    }
    settings = plan.settings("slow-clients", **knobs, slow_clients=[0, v.SLOW_CLIENTS], together=True)
    settings["warmup_s"] = {"without": plan.warmup, "with": TRICKLE_S + plan.warmup}
    settings["trickle_s"] = TRICKLE_S
    return figures, settings


EXPERIMENTS: dict[str, Callable[[Plan], Result]] = {
    "io-throughput": io_throughput,
    "not-faster": not_faster,
    "cpu-bound": cpu_bound,
    "threads-needed": threads_needed,
    "thousands": thousands,
    "blocking-call": blocking_call,
    "greenlets": greenlets,
    "high-load-only": high_load_only,
    "offload": offload,
    "memory": memory,
    "streaming": streaming,
    "slow-clients": slow_clients,
}


def run_claims(
    ids: list[str] | None = None,
    quick: bool = False,
    progress: Callable[[str], None] | None = None,
    engines: tuple[str, ...] | list[str] = (),
) -> list[dict[str, Any]]:
    """Run the claims named (all by default); one JSON-shaped dict per claim, catalogue order.
    ``engines``: the per-engine experiments compare these too (besides the three the verdicts read)."""
    claims = get_claims(ids)  # unknown ids fail before anything runs
    plan = Plan(quick=quick, engines=tuple(engines) or DEFAULT_ENGINES)
    out = []
    for claim in claims:
        if progress is not None:
            progress(claim.id)
        t0 = time.monotonic()
        figures, settings = EXPERIMENTS[claim.id](plan)
        settings["experiment"] = claim.experiment
        settings["elapsed_s"] = round(time.monotonic() - t0, 1)
        out.append(
            {
                "id": claim.id,
                "claim": claim.claim,
                "criterion": claim.criterion,
                "verdict": claim.verdict(figures),
                "figures": figures,
                "settings": settings,
            }
        )
    return out
