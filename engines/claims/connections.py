"""Claims about holding many connections: ``thousands`` and ``memory``.

RSS per connection comes from :mod:`~syncviz.engines.claims.rss` (not in the live stream, so
the scenes judge the connection half only and say so).
"""

from __future__ import annotations

from ..settings import Settings
from ..stats import Counters
from .base import (
    HOLDS,
    NO_LIVE,
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
)
from .plan import Plan

C = dict[str, Counters]

LATENCY_STRETCH = 2.0  # thousands: latency within 2x of one request's own time
MEMORY_SHARE = 1 / 3  # thousands: "much smaller" is a third or less
MEMORY_MORE = 1.5  # memory: threads "cost more" at 1.5x or more
MEMORY_CONNECTIONS = 1000


# -- thousands -------------------------------------------------------------------------------
def _fast(run: dict) -> bool:
    return run["p50_ms"] <= LATENCY_STRETCH * run["request_ms"]


def thousands_verdict(f: Figures) -> str:
    """Reads ``connections``, ``busy`` (``p50_ms``, ``request_ms``, ``cpu_ms``, ``failed``, ``completed``)
    and, when measured, ``idle`` (the same, no CPU) and ``rss_kb_per_conn`` (engine -> KB)."""
    n, busy = f["connections"], f["busy"]
    runs = [r for r in (busy, f.get("idle")) if r is not None]
    if not all(r["failed"] == 0 and r["completed"] > 0 for r in runs):
        return f"{NOT}: the loop dropped connections ({sum(r['failed'] for r in runs)} failed)"
    rss = f.get("rss_kb_per_conn")
    memory = ""
    if rss is not None:
        memory = (
            f"memory {rss['threaded'] / max(rss['asyncio'], 0.01):.1f}x smaller "
            f"({rss['asyncio']:.0f} vs {rss['threaded']:.0f} KB a connection)"
        )
    if _fast(busy):
        if rss is None:
            return f"{HOLDS} for connections: none failed, p50 within {LATENCY_STRETCH:g}x of the request"
        if rss["asyncio"] <= MEMORY_SHARE * rss["threaded"]:
            return HOLDS
        return f"{ONLY} counting connections, not memory: {memory}, short of {1 / MEMORY_SHARE:.0f}x"
    round_ms = n * busy["cpu_ms"]  # one GIL: a round of every connection's CPU, one after the other
    wait_ms = busy["request_ms"] - busy["cpu_ms"]
    idle = f.get("idle")
    if round_ms <= wait_ms or (idle is not None and not _fast(idle)):
        return f"{NOT}: {n:,} connections waited p50 {ms(busy['p50_ms'])} for a {ms(busy['request_ms'])} request"
    said = (
        f"{ONLY} connections x CPU per request fit in the wait: {n:,} x {ms(busy['cpu_ms'])} = {ms(round_ms)} a round"
    )
    said += f" against {ms(wait_ms)} of waiting, p50 {ms(busy['p50_ms'])} for a {ms(busy['request_ms'])} request"
    if idle is not None:
        said += f" (mostly idle: {ms(idle['p50_ms'])} for {ms(idle['request_ms'])})"
    return said + (f"; {memory}" if memory else "")


def thousands_run(plan: Plan) -> Result:
    n = plan.connections
    shapes = {"busy": {"io_ms": 9.0, "cpu_ms": 1.0}, "idle": {"io_ms": 1000.0, "cpu_ms": 0.0}}
    figures: Figures = {"connections": n}
    warmups = {}
    for name, knobs in shapes.items():
        # the first round takes n x CPU (plus ~0.15 ms of serving) or 1 s of waiting: warm up past it
        warmups[name] = round(max(1.5, 1.3 * n * (knobs["cpu_ms"] + 0.15) / 1000), 1)
        # processes of their own: the first round of n connections is part of what is measured
        r = plan.run("io-bound", "asyncio", warmup=warmups[name], apart="thousands", clients=n, **knobs)
        figures[name] = {
            "request_ms": knobs["io_ms"] + knobs["cpu_ms"],
            "cpu_ms": knobs["cpu_ms"],
            "rps": r["throughput_rps"],
            "p50_ms": r["latency_ms"]["p50"],
            "p99_ms": r["latency_ms"]["p99"],
            "completed": r["completed"],
            "failed": r["failed"],
        }
    figures["rss_kb_per_conn"] = {e: plan.rss(e)["kb_per_conn"] for e in ("threaded", "asyncio")}
    settings = plan.settings("io-bound", clients=n, busy=shapes["busy"], idle=shapes["idle"])
    settings["warmup_s"] = warmups
    settings["memory_connections"] = MEMORY_CONNECTIONS
    return figures, settings


def thousands_live(c: C, s: Settings) -> LiveFigures:
    a = c["asyncio"]
    request_ms = (s.io_s + s.cpu_s) * 1000
    busy = {
        "request_ms": round(request_ms, 2),
        "cpu_ms": round(s.cpu_s * 1000, 2),
        "rps": r2(a.rps),
        "p50_ms": r2(a.p50_ms) or 0.0,
        "p99_ms": r2(a.p99_ms),
        "completed": a.completed,
        "failed": a.failed,
    }
    measured = (
        f"asyncio holds {s.clients:,} connections, {a.failed} failed; p50 {ms(a.p50_ms or 0)} for a "
        f"{ms(request_ms)} request, {rps(a.rps)}"
    )
    return {"connections": s.clients, "busy": busy}, measured, f"memory is not in the live stream: {full('thousands')}"


THOUSANDS = Claim(
    "thousands",
    "If 90% of a request is waiting, one event loop holds thousands of connections, with a much smaller memory "
    "footprint than threads.",
    "asyncio with 1,000 connections (2,000 in the full run): 90% waiting as 9 ms I/O + 1 ms CPU, and mostly idle as "
    "1 s I/O + no CPU; RSS per connection from the memory experiment.",
    f"no connection fails, median latency at 90% waiting is within {LATENCY_STRETCH:g}x of the 10 ms request, and "
    f"asyncio's RSS per connection is at most {MEMORY_SHARE:.0%} of a thread's.",
    thousands_verdict,
    thousands_run,
    thousands_live,
    Scene(
        "io-bound",
        {"clients": 1000, "io_ms": 9, "cpu_ms": 1},
        "1,000 connections per engine: the loop holds them all, but 1 ms of CPU each is a second per round, so "
        "requests wait ready (▒) for the loop.",
        min_seconds=6.0,
    ),
)


# -- memory ----------------------------------------------------------------------------------
def memory_verdict(f: Figures) -> str:
    """Reads ``rss_kb_per_conn`` (engine -> KB of RSS per open, mid-request connection)."""
    rss = f.get("rss_kb_per_conn")
    if rss is None:
        return f"{NO_LIVE}: RSS per connection is not in the event stream"
    cheapest_async = max(rss["asyncio"], rss["gevent"])
    if rss["threaded"] >= MEMORY_MORE * max(cheapest_async, 0.01):
        return HOLDS
    return f"{NOT}: threads {rss['threaded']:.1f} KB, coroutines {rss['asyncio']:.1f}, greenlets {rss['gevent']:.1f}"


def memory_run(plan: Plan) -> Result:
    from ..events import DEFAULT_ENGINES

    probes = {e: plan.rss(e, MEMORY_CONNECTIONS) for e in DEFAULT_ENGINES}  # one process each
    figures = {
        "connections": MEMORY_CONNECTIONS,
        "rss_kb_per_conn": {e: p["kb_per_conn"] for e, p in probes.items()},
        "rss_mb_per_1000": {e: round(p["kb_per_conn"] * 1000 / 1024, 1) for e, p in probes.items()},
        "held_mid_request": {e: p["waiting"] for e, p in probes.items()},
    }
    settings = {
        "connections": MEMORY_CONNECTIONS,
        "io_ms": 60_000.0,
        "threaded_pool": 1000,
        "measure": "VmRSS growth / N",
    }
    return figures, settings


def memory_live(c: C, s: Settings) -> LiveFigures:
    held = {e: k.in_flight for e, k in c.items()}
    measured = (
        f"threaded holds {held['threaded']:,} requests on {c['threaded'].busy:,} threads; asyncio "
        f"{held['asyncio']:,} on one loop, gevent {held['gevent']:,} on one hub"
    )
    return {"connections": s.clients, "held_mid_request": held}, measured, f"the memory measured: {full('memory')}"


MEMORY = Claim(
    "memory",
    "Per connection, threads cost more memory than coroutines or greenlets.",
    "Each engine alone in a child process; RSS (VmRSS) before and after 1,000 connections are all mid-request "
    "(threaded grows its pool to 1,000 threads to hold them). 1,000 is also gevent's pool and the threaded pool's "
    "largest setting.",
    f"threads' RSS per connection is at least {MEMORY_MORE:g}x both coroutines' and greenlets'.",
    memory_verdict,
    memory_run,
    memory_live,
    Scene(
        "io-bound",
        {"clients": 200, "pool": 200, "io_ms": 1000},  # stage-sized; the RSS probe opens 1,000
        "200 pool threads each hold one 1 s request; the loop and the hub hold 200 each on one thread.",
        zoom_ms=100,
        min_seconds=4.0,
        needs_samples=False,
        in_help=False,
    ),
)
