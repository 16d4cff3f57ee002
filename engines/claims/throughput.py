"""Throughput and latency claims: ``io-throughput``, ``not-faster``, ``threads-needed``, ``high-load-only``.

Each claim here is its verdict (figures -> words), its experiment (a :class:`~.plan.Plan` ->
figures), its live judge (counters -> the same figures for the one point its scene shows)
and its scene. A sweep with one point (the live scene's pool or load) is judged at that point.
"""

from __future__ import annotations

from ..settings import Settings
from ..stats import Counters
from .base import (
    HOLDS,
    LEAD,
    NO_GAIN,
    NOT,
    ONLY,
    REACHES,
    Claim,
    Figures,
    LiveFigures,
    Result,
    Scene,
    full,
    ms,
    part,
    r2,
    rps,
    sweep,
    x,
)
from .plan import Plan

C = dict[str, Counters]

SPEEDUP = (2.0, 4.0)  # io-throughput: the articles' 2-4x
SAME_LATENCY_SHARE = 0.10  # not-faster: p50s within 10% of each other ...
SAME_LATENCY_MS = 0.5  # ... or within 0.5 ms
SLACK = 0.10  # threads-needed: a pool below the users serves at most pool / users + 10% of the bound


# -- io-throughput ---------------------------------------------------------------------------
def io_throughput_verdict(f: Figures) -> str:
    """Reads ``speedup_by_pool`` (pool -> asyncio req/s / threaded req/s) and ``clients``."""
    speedup = sweep(f, "speedup_by_pool")
    inside = [p for p, s in speedup.items() if SPEEDUP[0] <= s <= SPEEDUP[1]]
    measured = ", ".join(f"{x(s)} at pool {p}" for p, s in sorted(speedup.items()))
    if len(inside) == len(speedup):
        return HOLDS if len(speedup) > 1 else part(HOLDS, f"at pool {inside[0]}")
    if not inside:
        return f"{NOT}: async/sync was {measured}"
    return (
        f"{ONLY} the {f['clients']} clients are 2-4x the thread pool: the factor is clients/pool, "
        f"not a constant ({measured})"
    )


def io_throughput_run(plan: Plan) -> Result:
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


def io_throughput_live(c: C, s: Settings) -> LiveFigures:
    a, t = c["asyncio"].rps, c["threaded"].rps
    speedup = a / max(t, 0.1)
    figures = {
        "clients": s.clients,
        "asyncio_rps": r2(a),
        "gevent_rps": r2(c["gevent"].rps),
        "threaded_rps_by_pool": {str(s.pool): r2(t)},
        "speedup_by_pool": {str(s.pool): round(speedup, 2)},
    }
    measured = f"asyncio {rps(a)}, threaded {rps(t)} with {s.pool} threads: {x(speedup)} ({s.clients} clients)"
    return figures, measured, f"one pool of the claim's 8, 64, 200; the sweep: {full('io-throughput')}"


IO_THROUGHPUT = Claim(
    "io-throughput",
    "For I/O-bound work under high concurrency, async servers deliver 2-4x the throughput of sync ones.",
    "200 keep-alive clients, 50 ms of I/O per request; threaded with pools of 8, 64 and 200, "
    "against asyncio and gevent.",
    "asyncio's req/s divided by threaded's lies in 2-4x for every pool size "
    "(by Little's law the factor is about clients / pool).",
    io_throughput_verdict,
    io_throughput_run,
    io_throughput_live,
    Scene(
        "io-bound",
        {"clients": 200, "pool": 8},
        "threaded's 8 lanes are each held for a whole 50 ms wait while the rest of its 200 clients queue; "
        "the loop and the hub keep all 200 awaiting / yielded at once.",
    ),
)


# -- not-faster ------------------------------------------------------------------------------
def same_latency(p50_ms: dict[str, float]) -> bool:
    """Median latencies within SAME_LATENCY_SHARE (or SAME_LATENCY_MS) of each other."""
    low, high = min(p50_ms.values()), max(p50_ms.values())
    return high - low <= max(SAME_LATENCY_MS, SAME_LATENCY_SHARE * low)


def not_faster_verdict(f: Figures) -> str:
    """Reads ``p50_ms`` (engine -> median latency with one client)."""
    p50 = f["p50_ms"]
    low, high = min(p50.values()), max(p50.values())
    if same_latency(p50):
        return HOLDS
    fastest = min(p50, key=p50.get)
    return f"{NOT}: {fastest} answers in {ms(low)}, the slowest in {ms(high)}"


def not_faster_run(plan: Plan) -> Result:
    knobs = {"clients": 1, "io_ms": 10.0}
    runs = {e: plan.run("io-bound", e, **knobs) for e in plan.compared()}
    figures = {
        "io_ms": knobs["io_ms"],
        "p50_ms": {e: r["latency_ms"]["p50"] for e, r in runs.items()},
        "p99_ms": {e: r["latency_ms"]["p99"] for e, r in runs.items()},
        "rps": {e: r["throughput_rps"] for e, r in runs.items()},
    }
    return figures, plan.settings("io-bound", **knobs)


def not_faster_live(c: C, s: Settings) -> LiveFigures:
    figures = {
        "io_ms": s.io_ms * s.slow,
        "p50_ms": {e: r2(k.p50_ms) for e, k in c.items()},
        "p99_ms": {e: r2(k.p99_ms) for e, k in c.items()},
        "rps": {e: r2(k.rps) for e, k in c.items()},
    }
    p50 = ", ".join(f"{e} {ms(k.p50_ms or 0)}" for e, k in c.items())
    return figures, f"p50 with {s.clients} client: {p50}", ""


NOT_FASTER = Claim(
    "not-faster",
    "Async is not faster per request: with one client at a time, latency is the same.",
    "One client, 10 ms of I/O per request, each engine alone.",
    f"every engine's median latency is within {SAME_LATENCY_SHARE:.0%} (or {SAME_LATENCY_MS} ms) of the others'.",
    not_faster_verdict,
    not_faster_run,
    not_faster_live,
    Scene(
        "io-bound",
        {"clients": 1, "io_ms": 10},
        "one client each: every engine spends the same 10 ms per request (blocked, awaiting or yielded); "
        "compare the three p50s.",
        zoom_ms=1,
        in_help=False,
    ),
)


# -- threads-needed --------------------------------------------------------------------------
def threads_needed_verdict(f: Figures) -> str:
    """Reads ``share_of_bound_by_pool`` (pool -> threaded req/s / (users / request time)) and ``users``.

    A pool as large as the users reaches the bound; a smaller one serves about pool / users of it."""
    share, users = sweep(f, "share_of_bound_by_pool"), f["users"]
    for p, s in sorted(share.items(), reverse=True):
        if p >= users and s < REACHES:
            return f"{NOT}: {p} threads reached only {s:.0%} of the bound"
        if p < users and s > p / users + SLACK:
            return f"{NOT}: {p} threads already reached {s:.0%} of the bound"
    if len(share) > 1:
        return HOLDS
    (p,) = share
    return f"{HOLDS} at pool {p}" + (f": {p} threads serve {p}/{users} of the users" if p < users else "")


def threads_needed_run(plan: Plan) -> Result:
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


def threads_needed_live(c: C, s: Settings) -> LiveFigures:
    users, pool = s.clients, s.pool
    bound = users / (s.io_s + s.cpu_s)
    t, a = c["threaded"].rps, c["asyncio"].rps
    figures = {
        "users": users,
        "bound_rps": round(bound, 1),
        "threaded_rps_by_pool": {str(pool): r2(t)},
        "share_of_bound_by_pool": {str(pool): round(t / bound, 2)},
        "asyncio_rps": r2(a),
        "asyncio_threads": 1,
    }
    measured = (
        f"threaded {rps(t)} = {t / bound:.0%} of {users} users / {ms((s.io_s + s.cpu_s) * 1000)} = "
        f"{rps(bound)}; asyncio's one thread {rps(a)} = {a / bound:.0%}"
    )
    return figures, measured, f"one pool of the claim's 10, 50, 100; the sweep: {full('threads-needed')}"


THREADS_NEEDED = Claim(
    "threads-needed",
    "If each request takes 2 s, 100 concurrent users need 100 threads or processes in a sync server.",
    "Scaled down 10x in time: 100 clients, 200 ms of I/O per request (2 s would need minutes per point), "
    "threaded with pools of 10, 50 and 100; asyncio with its one thread for comparison.",
    f"100 threads reach {REACHES:.0%} of 100 users / 0.2 s = 500 req/s, and every smaller pool at most "
    f"pool / users + {SLACK:.0%} of it (50 threads: {0.5 + SLACK:.0%}).",
    threads_needed_verdict,
    threads_needed_run,
    threads_needed_live,
    Scene(
        "io-bound",
        {"clients": 100, "pool": 10, "io_ms": 200},
        "10 threads hold 10 of the 100 users for 200 ms each and 90 queue; asyncio's one thread keeps all 100 "
        "waiting together.",
        zoom_ms=20,
        min_seconds=4.0,
    ),
)


# -- high-load-only --------------------------------------------------------------------------
def high_load_only_verdict(f: Figures) -> str:
    """Reads ``pool`` and ``ratio_by_clients`` (clients -> asyncio req/s / threaded req/s)."""
    pool, ratio = f["pool"], sweep(f, "ratio_by_clients")
    below = {n: r for n, r in ratio.items() if n <= pool}
    above = {n: r for n, r in ratio.items() if n > pool}
    same = all(1 / NO_GAIN <= r <= NO_GAIN for r in below.values())
    leads = all(r >= LEAD for r in above.values())
    if not same:
        n, r = max(below.items(), key=lambda kv: abs(kv[1] - 1))
        return f"{NOT}: at {n} clients (pool {pool}) async/sync was already {x(r)}"
    if not leads:
        n, r = min(above.items(), key=lambda kv: kv[1])
        return f"{ONLY} clients are well above the pool: at {n} clients async led by only {x(r)}"
    if below and above:
        return HOLDS
    return part(HOLDS, "above the pool" if above else "at or below the pool")


def high_load_only_run(plan: Plan) -> Result:
    pool, io_ms, loads = 16, 50.0, (4, 16, 64)
    threaded = {str(n): plan.rps("io-bound", "threaded", clients=n, pool=pool, io_ms=io_ms) for n in loads}
    asyncio_rps = {str(n): plan.rps("io-bound", "asyncio", clients=n, io_ms=io_ms) for n in loads}
    figures = {
        "pool": pool,
        "threaded_rps_by_clients": threaded,
        "asyncio_rps_by_clients": asyncio_rps,
        "ratio_by_clients": {n: round(asyncio_rps[n] / max(threaded[n], 0.1), 2) for n in threaded},
    }
    return figures, plan.settings("io-bound", pool=pool, io_ms=io_ms, clients=list(loads))


def high_load_only_live(c: C, s: Settings) -> LiveFigures:
    t, a = c["threaded"].rps, c["asyncio"].rps
    ratio = a / max(t, 0.1)
    figures = {
        "pool": s.pool,
        "threaded_rps_by_clients": {str(s.clients): r2(t)},
        "asyncio_rps_by_clients": {str(s.clients): r2(a)},
        "ratio_by_clients": {str(s.clients): round(ratio, 2)},
    }
    measured = f"{s.clients} clients, pool {s.pool}: asyncio {rps(a)}, threaded {rps(t)}: {x(ratio)}"
    return figures, measured, f"one load of the claim's 4, 16, 64 clients; the sweep: {full('high-load-only')}"


HIGH_LOAD_ONLY = Claim(
    "high-load-only",
    "Async outperforms sync only under high load: below the pool size there is no difference.",
    "Threaded pool of 16 against asyncio, 50 ms of I/O, at 4, 16 and 64 clients.",
    f"at or below 16 clients async/sync is within {NO_GAIN:.2f}x either way; above it async leads by "
    f"at least {LEAD:g}x.",
    high_load_only_verdict,
    high_load_only_run,
    high_load_only_live,
    Scene(
        "io-bound",
        {"pool": 16, "clients": 64},
        "64 clients on a pool of 16: threaded keeps 16 running and queues 48; the loop keeps all 64 awaiting.",
    ),
)
