"""Claims about what holds a loop: ``cpu-bound``, ``blocking-call``, ``greenlets``, ``offload``.

One predicate each decides "one request at a time" (:func:`one_at_a_time`) and "capped by the
offload pool" (:func:`at_cap`); the experiments and the live scenes both judge through them.
"""

from __future__ import annotations

from ..settings import OFFLOAD_LIMIT, Settings
from ..stats import Counters
from .base import (
    CAPPED,
    HOLDS,
    LEAD,
    NO_GAIN,
    NOT,
    ONLY,
    Claim,
    Figures,
    LiveFigures,
    Result,
    Scene,
    full,
    ms,
    r2,
    rps,
    x,
)
from .plan import Plan, lag_p99

C = dict[str, Counters]

CLOSE = 0.80  # greenlets: gevent "scales like async" at 80% of asyncio's throughput
FAR_BELOW = 0.5  # offload: under half the cap, something else is what binds


def one_at_a_time(served_rps: float, one_rps: float, lag_ms: float | None, call_ms: float) -> bool:
    """A loop serving one request per blocking call: at most CAPPED x 1 / call, its lag at least the call."""
    return served_rps <= CAPPED * one_rps and lag_ms is not None and lag_ms >= call_ms


def at_cap(served_rps: float, cap_rps: float) -> bool:
    """An offloaded throughput capped by the pool: between FAR_BELOW and CAPPED x the cap."""
    return FAR_BELOW * cap_rps <= served_rps <= CAPPED * cap_rps


# -- cpu-bound -------------------------------------------------------------------------------
def cpu_bound_verdict(f: Figures) -> str:
    """Reads ``rps`` (engine -> req/s), ``loop_lag_p99_ms`` (asyncio, gevent) and ``cpu_ms``."""
    r, lag = f["rps"], f["loop_lag_p99_ms"]
    gain = max(r["asyncio"], r["gevent"]) / max(r["threaded"], 0.1)
    stalled = all(v is not None and v >= f["cpu_ms"] for v in lag.values())
    if gain > NO_GAIN:
        return f"{NOT}: async was {x(gain)} the threaded throughput on pure CPU work"
    if not stalled:
        return f"{ONLY} counting throughput: the loop's lag p99 stayed under one request's {ms(f['cpu_ms'])}"
    return HOLDS


def cpu_bound_run(plan: Plan) -> Result:
    knobs = {"clients": 20, "pool": 8, "io_ms": 0.0, "cpu_ms": 5.0}
    # processes of their own, one engine right after the other: the ratio compares CPU speeds, and a
    # shared machine's speed drifts over the tens of seconds a sweep of other points would put between them
    runs = {e: plan.run("cpu-bound", e, apart="cpu-bound", **knobs) for e in plan.compared()}
    figures = {
        "cpu_ms": knobs["cpu_ms"],
        "rps": {e: r["throughput_rps"] for e, r in runs.items()},
        "core_share": {e: round(r["throughput_rps"] * knobs["cpu_ms"] / 1000, 2) for e, r in runs.items()},
        "loop_lag_p99_ms": {e: lag_p99(runs[e]) for e in ("asyncio", "gevent")},
    }
    return figures, plan.settings("cpu-bound", **knobs)


def cpu_bound_live(c: C, s: Settings) -> LiveFigures:
    cpu_ms = s.cpu_ms * s.slow
    served = {e: k.rps for e, k in c.items()}
    figures = {
        "cpu_ms": cpu_ms,
        "rps": {e: r2(r) for e, r in served.items()},
        "core_share": {e: round(r * cpu_ms / 1000, 2) for e, r in served.items()},
        "loop_lag_p99_ms": {e: r2(c[e].lag_p99_ms) for e in ("asyncio", "gevent")},
    }
    gain = max(served["asyncio"], served["gevent"]) / max(served["threaded"], 0.1)
    lag = figures["loop_lag_p99_ms"]
    measured = (
        f"async {x(gain)} threaded's req/s ({', '.join(f'{e} {r:,.0f}' for e, r in served.items())}); "
        f"loop lag p99 {ms(lag['asyncio'] or 0)}, hub {ms(lag['gevent'] or 0)} for {ms(cpu_ms)} of CPU"
    )
    return figures, measured, ""


CPU_BOUND = Claim(
    "cpu-bound",
    "For CPU-bound work async brings no gain, and while one request computes the loop serves no one.",
    "20 clients, 5 ms of pure-Python CPU per request, no I/O; loop lag from a 10 ms ticker on the loop and the hub.",
    f"async req/s is at most {NO_GAIN:.2f}x threaded's, and the loop's lag p99 is at least one request's CPU time.",
    cpu_bound_verdict,
    cpu_bound_run,
    cpu_bound_live,
    Scene(
        "cpu-bound",
        watch="running (█) takes turns: one GIL runs one request's Python at a time, so the three engines share "
        "one core; the loop's and hub's lag is the wait.",
        needs_lag=("asyncio", "gevent"),
    ),
)


# -- blocking-call ---------------------------------------------------------------------------
def blocking_call_verdict(f: Figures) -> str:
    """Reads ``blocking_rps``, ``one_at_a_time_rps``, ``loop_lag_p99_ms``, ``io_ms``."""
    if one_at_a_time(f["blocking_rps"], f["one_at_a_time_rps"], f["loop_lag_p99_ms"], f["io_ms"]):
        return HOLDS
    return f"{NOT}: the loop still served {f['blocking_rps']:,.0f} req/s with the blocking call"


def blocking_call_run(plan: Plan) -> Result:
    knobs = {"clients": 100, "io_ms": 50.0}
    native = plan.run("io-bound", "asyncio", **knobs)
    blocking = plan.run("blocking-call", "asyncio", **knobs)
    figures = {
        "io_ms": knobs["io_ms"],
        "native_rps": native["throughput_rps"],
        "blocking_rps": blocking["throughput_rps"],
        "one_at_a_time_rps": 1000 / knobs["io_ms"],
        "native_loop_lag_p99_ms": lag_p99(native),
        "loop_lag_p99_ms": lag_p99(blocking),
        "blocking_p50_ms": blocking["latency_ms"]["p50"],
    }
    return figures, plan.settings("blocking-call", **knobs, compared_with="io-bound")


def blocking_call_live(c: C, s: Settings) -> LiveFigures:
    io_ms = s.io_s * 1000
    a = c["asyncio"]
    figures = {
        "io_ms": io_ms,
        "blocking_rps": r2(a.rps),
        "one_at_a_time_rps": round(1000 / io_ms, 2),
        "loop_lag_p99_ms": r2(a.lag_p99_ms),
        "blocking_p50_ms": r2(a.p50_ms),
    }
    measured = (
        f"asyncio with time.sleep {rps(a.rps)} (one at a time: 1 / {ms(io_ms)} = {rps(1000 / io_ms)}), "
        f"loop lag p99 {ms(a.lag_p99_ms or 0)}; threaded {rps(c['threaded'].rps)}"
    )
    return figures, measured, ""


BLOCKING_CALL = Claim(
    "blocking-call",
    "One blocking call inside async code stalls every request on that loop.",
    "100 clients, 50 ms per request: asyncio awaiting asyncio.sleep, then calling time.sleep.",
    f"with time.sleep asyncio serves at most {CAPPED:g}x one request per call (1 / 50 ms = 20 req/s) and its "
    f"loop lag p99 is at least the call's 50 ms.",
    blocking_call_verdict,
    blocking_call_run,
    blocking_call_live,
    Scene(
        "blocking-call",
        watch="asyncio: one request at a time is blocked (▓) in time.sleep and holds the loop; every other request "
        "is ready (▒) and waits; the lag is in seconds.",
        needs_lag=("asyncio",),
    ),
)


# -- greenlets -------------------------------------------------------------------------------
def greenlets_verdict(f: Figures) -> str:
    """Reads ``gevent_blocking_rps``, ``one_at_a_time_rps``, ``hub_lag_p99_ms``, ``io_ms`` (the blocking
    half) and, when measured, ``gevent_rps``, ``asyncio_rps``, ``threaded_pool8_rps`` (the scaling half)."""
    blocks = one_at_a_time(f["gevent_blocking_rps"], f["one_at_a_time_rps"], f["hub_lag_p99_ms"], f["io_ms"])
    if "gevent_rps" not in f:  # the live scene shows the blocking half only
        if blocks:
            return f"{HOLDS} for the call that does not cooperate: the hub serves one request at a time"
        return f"{NOT}: the hub still served {rps(f['gevent_blocking_rps'])} with the blocking call"
    scales = f["gevent_rps"] >= CLOSE * f["asyncio_rps"] and f["gevent_rps"] > LEAD * f["threaded_pool8_rps"]
    if not scales:
        return f"{NOT}: gevent served {f['gevent_rps']:,.0f} req/s against asyncio's {f['asyncio_rps']:,.0f}"
    if not blocks:
        return f"{ONLY} every call cooperates; here the blocking call did not stall the hub"
    return HOLDS


def greenlets_run(plan: Plan) -> Result:
    knobs = {"clients": 100, "io_ms": 50.0}
    blocking = plan.run("blocking-call", "gevent", **knobs)
    figures = {
        "io_ms": knobs["io_ms"],
        "gevent_rps": plan.rps("io-bound", "gevent", **knobs),
        "asyncio_rps": plan.rps("io-bound", "asyncio", **knobs),
        "threaded_pool8_rps": plan.rps("io-bound", "threaded", pool=8, **knobs),
        "gevent_blocking_rps": blocking["throughput_rps"],
        "one_at_a_time_rps": 1000 / knobs["io_ms"],
        "hub_lag_p99_ms": lag_p99(blocking),
    }
    return figures, plan.settings("blocking-call", **knobs, pool=8, compared_with="io-bound")


def greenlets_live(c: C, s: Settings) -> LiveFigures:
    io_ms = s.io_s * 1000
    g = c["gevent"]
    figures = {
        "io_ms": io_ms,
        "gevent_blocking_rps": r2(g.rps),
        "one_at_a_time_rps": round(1000 / io_ms, 2),
        "hub_lag_p99_ms": r2(g.lag_p99_ms),
    }
    measured = (
        f"gevent with the stdlib time.sleep {rps(g.rps)} (one at a time: {rps(1000 / io_ms)}), "
        f"hub lag p99 {ms(g.lag_p99_ms or 0)}"
    )
    return figures, measured, f"the scaling half (gevent.sleep against asyncio and threads): {full('greenlets')}"


GREENLETS = Claim(
    "greenlets",
    "Greenlets give sync-style code async scalability without rewriting it, but a call that does not cooperate "
    "blocks the hub.",
    "100 clients, 50 ms per request: gevent's sync-style handler (gevent.sleep, what monkey patching makes of "
    "time.sleep) against asyncio and threaded (pool 8), then the stdlib time.sleep on the hub.",
    f"gevent reaches {CLOSE:.0%} of asyncio's req/s and {LEAD:g}x threaded's; with time.sleep it serves at most "
    f"{CAPPED:g}x 20 req/s and the hub's lag p99 is at least 50 ms.",
    greenlets_verdict,
    greenlets_run,
    greenlets_live,
    Scene(
        "blocking-call",
        watch="gevent: the stdlib time.sleep never yields, so the hub holds one blocked request (▓) while the rest "
        "wait ready (▒); gevent.sleep would have yielded (═).",
        needs_lag=("gevent",),
    ),
)


# -- offload ---------------------------------------------------------------------------------
def offload_verdict(f: Figures) -> str:
    """Reads ``offload_rps_by_clients`` (clients -> req/s, clients above the limit), ``cap_rps``
    (limit / request time) and, when measured, ``native_rps``."""
    cap = f["cap_rps"]
    served = [r for _, r in sorted((int(n), r) for n, r in f["offload_rps_by_clients"].items())]
    peak = max(served)
    if peak > CAPPED * cap:
        return f"{NOT}: offloaded handlers served {peak:,.0f} req/s, over the {cap:,.0f} cap"
    if not all(at_cap(r, cap) for r in served):
        return (
            f"{NOT}: offloaded handlers served only {min(served):,.0f} req/s: something below the {cap:,.0f} cap binds"
        )
    if served[-1] > NO_GAIN * served[0]:
        return f"{NOT}: offloaded throughput still grew with clients ({served[0]:,.0f} -> {served[-1]:,.0f} req/s)"
    if "native_rps" not in f:  # the live scene: one load, no native run
        return f"{HOLDS} for the cap: the offloaded handlers stop at the pool's limit"
    if f["native_rps"] <= CAPPED * cap:
        return (
            f"{ONLY} compared with nothing faster: native asyncio ({f['native_rps']:,.0f} req/s) did not pass the cap"
        )
    return HOLDS


def offload_run(plan: Plan) -> Result:
    io_ms, loads = 50.0, (100, 200)
    figures = {
        "limit": OFFLOAD_LIMIT,
        "cap_rps": OFFLOAD_LIMIT / (io_ms / 1000),
        "offload_rps_by_clients": {str(n): plan.rps("offload", "asyncio", clients=n, io_ms=io_ms) for n in loads},
        "native_rps": plan.rps("io-bound", "asyncio", clients=100, io_ms=io_ms),
        "threaded_pool40_rps": plan.rps("io-bound", "threaded", pool=OFFLOAD_LIMIT, clients=100, io_ms=io_ms),
    }
    return figures, plan.settings("offload", io_ms=io_ms, clients=list(loads), compared_with="io-bound")


def offload_live(c: C, s: Settings) -> LiveFigures:
    cap = OFFLOAD_LIMIT / (s.io_s + s.cpu_s)
    a, g = c["asyncio"].rps, c["gevent"].rps
    figures = {"limit": OFFLOAD_LIMIT, "cap_rps": round(cap, 1), "offload_rps_by_clients": {str(s.clients): r2(a)}}
    measured = (
        f"asyncio via anyio.to_thread {rps(a)}, cap {OFFLOAD_LIMIT} / {ms(s.io_s * 1000)} = {rps(cap)}; "
        f"gevent, not offloaded, {rps(g)}"
    )
    return figures, measured, f"more clients, and native asyncio past the cap: {full('offload')}"


OFFLOAD = Claim(
    "offload",
    "Sync handlers offloaded to a thread pool from an async server (FastAPI `def` endpoints) are capped by that "
    "pool's limit.",
    "100 and 200 clients, 50 ms of blocking I/O run by asyncio through anyio.to_thread (limit 40); native asyncio "
    "and threaded with 40 threads (100 clients) for comparison.",
    f"offloaded req/s stays at most {CAPPED:g}x 40 / 50 ms = 800 req/s (and at least {FAR_BELOW:.0%} of it), grows "
    f"by at most {NO_GAIN:.2f}x from 100 to 200 clients, while native asyncio goes past the cap.",
    offload_verdict,
    offload_run,
    offload_live,
    Scene(
        "offload",
        watch="asyncio's loop stays free, but its 40 anyio threads (t1…) are all held: the rest queue, a thread "
        "pool after all.",
    ),
)
