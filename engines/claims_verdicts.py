"""The claims' verdicts: pure functions from measured figures to ``holds`` / ``does not hold`` /
``holds only when ...``.

Nothing here measures or imports an engine, so the app can apply the same function to live
figures (see the figure keys each function reads). Thresholds are module constants, named in
the criteria of :mod:`syncviz.engines.claims`.

Figure dicts are JSON-shaped: sweeps are dicts keyed by the swept value as a string
(``{"8": 160.0, "64": 1230.5}``).
"""

from __future__ import annotations

from typing import Any

Figures = dict[str, Any]

HOLDS = "holds"
NOT = "does not hold"
ONLY = "holds only when"

SAME_LATENCY_SHARE = 0.10  # not-faster: p50s within 10% of each other ...
SAME_LATENCY_MS = 0.5  # ... or within 0.5 ms
NO_GAIN = 1.10  # cpu-bound / high-load-only: "no difference" is a ratio within 10%
LEAD = 1.5  # high-load-only: "outperforms" is a lead of at least 1.5x
REACHES = 0.85  # a throughput "reaches" a bound at 85% of it
CAPPED = 1.20  # a throughput is "capped" at a bound when it stays under 1.2x of it
FAR_BELOW = 0.5  # offload: under half the cap, something else is what binds
HALF = 0.60  # threads-needed: half the threads give at most 60% of the bound
CLOSE = 0.80  # greenlets: gevent "scales like async" at 80% of asyncio's throughput
LATENCY_STRETCH = 2.0  # thousands: latency within 2x of one request's own time
MEMORY_SHARE = 1 / 3  # thousands: "much smaller" is a third or less
MEMORY_MORE = 1.5  # memory: threads "cost more" at 1.5x or more
STARVED = 0.5  # slow-clients: "starved" is losing at least half the req/s ...
UNAFFECTED = 0.15  # ... "not affected" is a change of at most 15%

# The experiments' sizes the criteria name (the experiment and the live scene use the same).
STREAM_CLIENTS, STREAM_POOL, STREAM_MS, STREAM_CHUNKS = 32, 8, 500.0, 10
SLOW_CLIENTS = 16


def _x(value: float) -> str:
    return f"{value:.1f}x" if value < 10 else f"{value:.0f}x"


def _ms(value: float) -> str:
    return f"{value:,.0f} ms" if value >= 10 else f"{value:.1f} ms"


def io_throughput(f: Figures) -> str:
    """Reads ``speedup_by_pool`` (pool -> asyncio req/s / threaded req/s) and ``clients``."""
    speedup = {int(p): x for p, x in f["speedup_by_pool"].items()}
    inside = [p for p, x in speedup.items() if 2.0 <= x <= 4.0]
    if len(inside) == len(speedup):
        return HOLDS
    measured = ", ".join(f"{_x(x)} at pool {p}" for p, x in sorted(speedup.items()))
    if not inside:
        return f"{NOT}: async/sync was {measured}"
    return (
        f"{ONLY} the {f['clients']} clients are 2-4x the thread pool: the factor is clients/pool, "
        f"not a constant ({measured})"
    )


def not_faster(f: Figures) -> str:
    """Reads ``p50_ms`` (engine -> median latency with one client)."""
    p50 = f["p50_ms"]
    low, high = min(p50.values()), max(p50.values())
    if high - low <= max(SAME_LATENCY_MS, SAME_LATENCY_SHARE * low):
        return HOLDS
    fastest = min(p50, key=p50.get)
    return f"{NOT}: {fastest} answers in {_ms(low)}, the slowest in {_ms(high)}"


def cpu_bound(f: Figures) -> str:
    """Reads ``rps`` (engine -> req/s), ``loop_lag_p99_ms`` (asyncio, gevent) and ``cpu_ms``."""
    rps, lag = f["rps"], f["loop_lag_p99_ms"]
    gain = max(rps["asyncio"], rps["gevent"]) / rps["threaded"]
    stalled = all(v is not None and v >= f["cpu_ms"] for v in lag.values())
    if gain <= NO_GAIN and stalled:
        return HOLDS
    if gain > NO_GAIN:
        return f"{NOT}: async was {_x(gain)} the threaded throughput on pure CPU work"
    return f"{ONLY} counting throughput: the loop's lag p99 stayed under one request's {_ms(f['cpu_ms'])}"


def threads_needed(f: Figures) -> str:
    """Reads ``share_of_bound_by_pool`` (pool -> threaded req/s / (users / request time)) and ``users``."""
    share = {int(p): s for p, s in f["share_of_bound_by_pool"].items()}
    users = f["users"]
    full, half = share.get(users), share.get(users // 2)
    if full is None or half is None:
        raise KeyError(f"threads-needed needs pools {users} and {users // 2}")
    if full >= REACHES and half <= HALF and all(s <= p / users + 0.1 for p, s in share.items() if p < users):
        return HOLDS
    if full < REACHES:
        return f"{NOT}: {users} threads reached only {full:.0%} of the bound"
    return f"{NOT}: {users // 2} threads already reached {half:.0%} of the bound"


def thousands(f: Figures) -> str:
    """Reads ``busy`` and ``idle`` (each ``p50_ms``, ``request_ms``, ``failed``, ``completed``),
    ``connections`` and ``rss_kb_per_conn`` (engine -> KB)."""
    busy, idle, n = f["busy"], f["idle"], f["connections"]
    rss = f["rss_kb_per_conn"]
    if not all(r["failed"] == 0 and r["completed"] > 0 for r in (busy, idle)):
        return f"{NOT}: the loop dropped connections ({busy['failed'] + idle['failed']} failed)"
    busy_ok = busy["p50_ms"] <= LATENCY_STRETCH * busy["request_ms"]
    idle_ok = idle["p50_ms"] <= LATENCY_STRETCH * idle["request_ms"]
    smaller = rss["asyncio"] <= MEMORY_SHARE * rss["threaded"]
    if busy_ok and smaller:
        return HOLDS
    if not (busy_ok or idle_ok):
        return f"{NOT}: even mostly idle connections waited {_ms(idle['p50_ms'])} for {_ms(idle['request_ms'])}"
    memory = (
        f"memory {rss['threaded'] / max(rss['asyncio'], 0.01):.1f}x smaller "
        f"({rss['asyncio']:.0f} vs {rss['threaded']:.0f} KB a connection)"
    )
    if busy_ok:
        return f"{ONLY} counting connections, not memory: {memory}, short of {1 / MEMORY_SHARE:.0f}x"
    return (
        f"{ONLY} connections x CPU per request fit in the wait: at 90% waiting {n:,} connections took "
        f"p50 {_ms(busy['p50_ms'])} for a {_ms(busy['request_ms'])} request (mostly idle: "
        f"{_ms(idle['p50_ms'])} for {_ms(idle['request_ms'])}); {memory}"
    )


def _one_at_a_time(f: Figures, rps_key: str, lag_key: str) -> bool:
    lag = f[lag_key]
    return f[rps_key] <= CAPPED * f["one_at_a_time_rps"] and lag is not None and lag >= f["io_ms"]


def blocking_call(f: Figures) -> str:
    """Reads ``native_rps``, ``blocking_rps``, ``one_at_a_time_rps``, ``loop_lag_p99_ms``, ``io_ms``."""
    if _one_at_a_time(f, "blocking_rps", "loop_lag_p99_ms"):
        return HOLDS
    return f"{NOT}: the loop still served {f['blocking_rps']:,.0f} req/s with the blocking call"


def greenlets(f: Figures) -> str:
    """Reads ``gevent_rps``, ``asyncio_rps``, ``threaded_pool8_rps``, ``gevent_blocking_rps``,
    ``one_at_a_time_rps``, ``hub_lag_p99_ms``, ``io_ms``."""
    scales = f["gevent_rps"] >= CLOSE * f["asyncio_rps"] and f["gevent_rps"] > LEAD * f["threaded_pool8_rps"]
    blocks = _one_at_a_time(f, "gevent_blocking_rps", "hub_lag_p99_ms")
    if scales and blocks:
        return HOLDS
    if not scales:
        return f"{NOT}: gevent served {f['gevent_rps']:,.0f} req/s against asyncio's {f['asyncio_rps']:,.0f}"
    return f"{ONLY} every call cooperates; here the blocking call did not stall the hub"


def high_load_only(f: Figures) -> str:
    """Reads ``pool`` and ``ratio_by_clients`` (clients -> asyncio req/s / threaded req/s)."""
    pool = f["pool"]
    ratio = {int(c): x for c, x in f["ratio_by_clients"].items()}
    below = {c: x for c, x in ratio.items() if c <= pool}
    above = {c: x for c, x in ratio.items() if c > pool}
    same = all(1 / NO_GAIN <= x <= NO_GAIN for x in below.values())
    leads = all(x >= LEAD for x in above.values())
    if same and leads:
        return HOLDS
    if not same:
        c, x = max(below.items(), key=lambda kv: abs(kv[1] - 1))
        return f"{NOT}: at {c} clients (pool {pool}) async/sync was already {_x(x)}"
    c, x = min(above.items(), key=lambda kv: kv[1])
    return f"{ONLY} clients are well above the pool: at {c} clients async led by only {_x(x)}"


def offload(f: Figures) -> str:
    """Reads ``offload_rps_by_clients`` (clients -> req/s, clients above the limit), ``cap_rps``
    (limit / request time) and ``native_rps``."""
    cap, native = f["cap_rps"], f["native_rps"]
    by_clients = sorted((int(c), r) for c, r in f["offload_rps_by_clients"].items())
    rates = [r for _, r in by_clients]
    peak = max(rates)
    flat = rates[-1] <= NO_GAIN * rates[0]
    if peak > CAPPED * cap:
        return f"{NOT}: offloaded handlers served {peak:,.0f} req/s, over the {cap:,.0f} cap"
    if peak < FAR_BELOW * cap:
        return f"{NOT}: offloaded handlers served only {peak:,.0f} req/s: something below the {cap:,.0f} cap binds"
    if not flat:
        return f"{NOT}: offloaded throughput still grew with clients ({rates[0]:,.0f} -> {rates[-1]:,.0f} req/s)"
    if native <= CAPPED * cap:
        return f"{ONLY} compared with nothing faster: native asyncio ({native:,.0f} req/s) did not pass the cap"
    return HOLDS


def memory(f: Figures) -> str:
    """Reads ``rss_kb_per_conn`` (engine -> KB of RSS per open, mid-request connection)."""
    rss = f["rss_kb_per_conn"]
    cheapest_async = max(rss["asyncio"], rss["gevent"])
    if rss["threaded"] >= MEMORY_MORE * max(cheapest_async, 0.01):
        return HOLDS
    return f"{NOT}: threads {rss['threaded']:.1f} KB, coroutines {rss['asyncio']:.1f}, greenlets {rss['gevent']:.1f}"


def streaming(f: Figures) -> str:
    """Reads ``clients``, ``pool`` and ``concurrent_streams`` (engine -> streams served at once)."""
    n, pool, at_once = f["clients"], f["pool"], f["concurrent_streams"]
    threaded = at_once["threaded"]
    short = {e: at_once[e] for e in ("asyncio", "gevent") if at_once[e] < REACHES * n}
    if threaded > CAPPED * pool:
        return f"{NOT}: threaded served {threaded:.1f} streams at once with {pool} threads"
    if short:
        e, x = min(short.items(), key=lambda kv: kv[1])
        return f"{NOT}: {e} served only {x:.1f} of the {n} streams at once"
    if n <= pool:
        return f"{ONLY} there are more streams than threads: {n} streams fit in a pool of {pool}"
    return HOLDS


def slow_clients(f: Figures) -> str:
    """Reads ``rps_without`` and ``rps_with`` (engine -> the load's req/s without and with the slow
    clients) and ``slow_clients`` (per engine)."""
    before, after = f["rps_without"], f["rps_with"]
    kept = {e: after[e] / max(before[e], 0.1) for e in before}
    moved = {e: kept[e] for e in ("asyncio", "gevent") if abs(kept[e] - 1) > UNAFFECTED}
    lost = 1 - kept["threaded"]
    if moved:
        e, x = max(moved.items(), key=lambda kv: abs(kv[1] - 1))
        return f"{NOT}: {e}'s req/s changed by {x - 1:+.0%} with {f['slow_clients']} slow clients"
    if lost <= UNAFFECTED:
        return f"{NOT}: threaded kept {kept['threaded']:.0%} of its req/s with {f['slow_clients']} slow clients"
    if lost < STARVED:
        return (
            f"{ONLY} the slow clients outnumber the pool by more: {f['slow_clients']} of them cost threaded "
            f"{lost:.0%} of its req/s, not most of it"
        )
    return HOLDS
