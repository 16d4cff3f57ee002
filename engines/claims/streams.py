"""Claims about connections held long: ``streaming`` (long responses) and ``slow-clients`` (slow requests).

Both run the engines at once (each in its own process), as the app shows them.
"""

from __future__ import annotations

from ..settings import Settings, bound_rps
from ..stats import Counters
from .base import CAPPED, HOLDS, NOT, ONLY, REACHES, Claim, Figures, LiveFigures, Result, Scene, full, ms, r2, rps
from .plan import Plan

C = dict[str, Counters]

STARVED = 0.5  # slow-clients: "starved" is keeping at most half of the bound ...
UNAFFECTED = 0.15  # ... "not affected" is a change of at most 15%
STREAM_CLIENTS, STREAM_POOL, STREAM_MS, STREAM_CHUNKS = 32, 8, 500.0, 10
SLOW_CLIENTS = 16


# -- streaming -------------------------------------------------------------------------------
def streaming_verdict(f: Figures) -> str:
    """Reads ``clients``, ``pool`` and ``concurrent_streams`` (engine -> streams served at once)."""
    n, pool, at_once = f["clients"], f["pool"], f["concurrent_streams"]
    short = {e: at_once[e] for e in ("asyncio", "gevent") if at_once[e] < REACHES * n}
    if at_once["threaded"] > CAPPED * pool:
        return f"{NOT}: threaded served {at_once['threaded']:.1f} streams at once with {pool} threads"
    if short:
        e, held = min(short.items(), key=lambda kv: kv[1])
        return f"{NOT}: {e} served only {held:.1f} of the {n} streams at once"
    if n <= pool:
        return f"{ONLY} there are more streams than threads: {n} streams fit in a pool of {pool}"
    return HOLDS


def _served_ms(phase_ms: dict[str, float]) -> float:
    """Mean time a finished request was being served: from a worker taking it to its last byte."""
    return sum(t for phase, t in phase_ms.items() if phase not in ("queued", "reading"))


def _first_byte_ms(phase_ms: dict[str, float]) -> float:
    """Mean time before a worker took the request (a stream's head goes out the moment one does)."""
    return phase_ms.get("queued", 0.0) + phase_ms.get("reading", 0.0)


def streaming_run(plan: Plan) -> Result:
    knobs = {"clients": STREAM_CLIENTS, "pool": STREAM_POOL, "io_ms": STREAM_MS, "chunks": STREAM_CHUNKS}
    # closed loop: a client waits clients / pool streams for a thread; warm up past that first round
    first_round_s = knobs["clients"] / knobs["pool"] * knobs["io_ms"] / 1000
    runs = plan.together("streaming", warmup=first_round_s + plan.warmup, apart="streaming", **knobs)
    figures = {
        "clients": knobs["clients"],
        "pool": knobs["pool"],
        "stream_ms": knobs["io_ms"],
        "rps": {e: r["throughput_rps"] for e, r in runs.items()},
        # the mean number being written over the window, from every stream's transitions (Little's law on
        # the completions counts 32 streams ending together in or out of a short window: 16 or 32 at once)
        "concurrent_streams": {e: round(r["in_service"], 1) for e, r in runs.items()},
        "first_byte_ms": {e: round(_first_byte_ms(r["phase_ms"]), 1) for e, r in runs.items()},
        "p50_ms": {e: r["latency_ms"]["p50"] for e, r in runs.items()},
    }
    settings = plan.settings("streaming", **knobs, together=True)
    settings["warmup_s"] = first_round_s + plan.warmup
    settings["scaled"] = "long-lived streams scaled down to 500 ms; the streams served at once do not depend on it"
    return figures, settings


def streaming_live(c: C, s: Settings) -> LiveFigures:
    at_once = {e: round(k.rps * _served_ms(k.phase_ms) / 1000, 1) for e, k in c.items()}
    first = {e: round(_first_byte_ms(k.phase_ms), 1) for e, k in c.items()}
    figures = {
        "clients": s.clients,
        "pool": s.pool,
        "stream_ms": s.io_s * 1000,
        "rps": {e: r2(k.rps) for e, k in c.items()},
        "concurrent_streams": at_once,
        "first_byte_ms": first,
    }
    now = c["threaded"].in_flight - c["threaded"].queued - c["threaded"].by_phase.get("reading", 0)
    measured = (
        f"streams at once (req/s x time served): threaded {at_once['threaded']:g} on {s.pool} threads ({now} "
        f"streaming now), asyncio {at_once['asyncio']:g}, gevent {at_once['gevent']:g} of {s.clients}; first byte "
        f"after {ms(first['threaded'])} on threaded, {ms(first['asyncio'])} on asyncio"
    )
    return figures, measured, ""


STREAMING = Claim(
    "streaming",
    "Long-lived connections (streaming, websockets) hold a thread each in a sync server; async holds them for the "
    "cost of a coroutine.",
    f"{STREAM_CLIENTS} keep-alive clients, each reading a {STREAM_MS:g} ms stream of {STREAM_CHUNKS} chunks with "
    f"I/O before each (long streams scaled down so a run takes seconds), the three engines at once; threaded with a "
    f"pool of {STREAM_POOL}. Streams served at once: the mean number being written (taken by a worker, last byte not "
    f"yet out) over the window, from each stream's transitions; time to first byte is the time before a worker "
    f"takes it.",
    f"threaded serves at most {CAPPED:g}x its {STREAM_POOL} threads' worth of streams at once (the rest wait for a "
    f"thread); asyncio and gevent serve at least {REACHES:.0%} of the {STREAM_CLIENTS} at once.",
    streaming_verdict,
    streaming_run,
    streaming_live,
    Scene(
        "streaming",
        {"clients": STREAM_CLIENTS, "pool": STREAM_POOL, "io_ms": STREAM_MS, "chunks": STREAM_CHUNKS},
        "32 clients each read a 500 ms stream of 10 chunks: threaded's 8 lanes each hold one stream from head to last "
        "chunk, blocked (▓) between chunks, while 24 clients queue for a thread; the loop and the hub keep all 32 "
        "streams awaiting / yielded at once.",
        min_seconds=5.0,  # a client first waits 32 / 8 streams of 0.5 s for a thread
    ),
)


# -- slow-clients ----------------------------------------------------------------------------
def slow_clients_verdict(f: Figures) -> str:
    """Reads ``rps_with`` (engine -> the load's req/s with the slow clients), ``bound_rps_without``
    (its Little's-law bound without them), ``slow_clients`` and, when measured, ``rps_without``
    (async: within UNAFFECTED of its own run without slow clients)."""
    after, bound, n = f["rps_with"], f["bound_rps_without"], f["slow_clients"]
    kept = {e: after[e] / max(bound[e], 0.1) for e in after}
    loops = [e for e in kept if e != "threaded"]
    if "rps_without" in f:
        before = f["rps_without"]
        moved = {
            e: after[e] / max(before[e], 0.1) for e in loops if abs(after[e] / max(before[e], 0.1) - 1) > UNAFFECTED
        }
        if moved:
            e, k = max(moved.items(), key=lambda kv: abs(kv[1] - 1))
            return f"{NOT}: {e}'s req/s changed by {k - 1:+.0%} with {n} slow clients"
    starved_loops = [e for e in loops if kept[e] <= 1 - STARVED]
    if starved_loops:
        e = min(starved_loops, key=kept.get)
        return f"{NOT}: {e} was starved too, at {kept[e]:.0%} of its bound"
    if kept["threaded"] >= 1 - UNAFFECTED:
        return f"{NOT}: threaded kept {kept['threaded']:.0%} of its bound with {n} slow clients"
    if kept["threaded"] > 1 - STARVED:
        return (
            f"{ONLY} the slow clients outnumber the pool by more: {n} of them cost threaded "
            f"{1 - kept['threaded']:.0%} of its bound, not most of it"
        )
    if "rps_without" not in f:
        return f"{HOLDS} for starving: the slow clients starve the pool, not the loop or the hub"
    return HOLDS


def _bounds(s: Settings, engines: list[str]) -> dict[str, float]:
    fast = s.with_changes(slow_clients=0)
    return {e: round(bound_rps(e, "native", fast) or 0.0, 1) for e in engines}


def slow_clients_run(plan: Plan) -> Result:
    from ..scenarios import SCENARIOS
    from ..slowclients import TRICKLE_S

    knobs = {"clients": 100, "pool": 8, "io_ms": 50.0}
    without = plan.together("io-bound", **knobs)
    # every slow client has begun its first trickle (they start spread over one) before the window opens
    # the slow-clients scenario is io-bound plus slow clients: they join the same processes, live
    with_slow = plan.together("io-bound", warmup=TRICKLE_S + plan.warmup, **knobs, slow_clients=SLOW_CLIENTS)
    before = {e: r["throughput_rps"] for e, r in without.items()}
    after = {e: r["throughput_rps"] for e, r in with_slow.items()}
    bound = _bounds(SCENARIOS["slow-clients"].settings.with_changes(**knobs), list(after))
    figures = {
        "slow_clients": SLOW_CLIENTS,
        "pool": knobs["pool"],
        "rps_without": before,
        "rps_with": after,
        "kept": {e: round(after[e] / max(before[e], 0.1), 2) for e in before},
        "bound_rps_without": bound,
        "kept_of_bound": {e: round(after[e] / max(bound[e], 0.1), 2) for e in after},
        "p50_ms_with": {e: r["latency_ms"]["p50"] for e, r in with_slow.items()},
    }
    settings = plan.settings("slow-clients", **knobs, slow_clients=[0, SLOW_CLIENTS], together=True)
    settings["warmup_s"] = {"without": plan.warmup, "with": TRICKLE_S + plan.warmup}
    settings["trickle_s"] = TRICKLE_S
    return figures, settings


def slow_clients_live(c: C, s: Settings) -> LiveFigures:
    bound = _bounds(s, list(c))
    kept = {e: k.rps / max(bound[e], 0.1) for e, k in c.items()}
    figures = {
        "slow_clients": s.slow_clients,
        "pool": s.pool,
        "rps_with": {e: r2(k.rps) for e, k in c.items()},
        "bound_rps_without": bound,
        "kept_of_bound": {e: round(k, 2) for e, k in kept.items()},
    }
    t = c["threaded"]
    measured = (
        f"with {s.slow_clients} slow clients each: threaded {rps(t.rps)}, {kept['threaded']:.0%} of its "
        f"{rps(bound['threaded'])} bound ({t.busy}/{s.pool} threads busy, {t.by_phase.get('reading', 0)} reading); "
        f"asyncio {kept['asyncio']:.0%} of its bound, gevent {kept['gevent']:.0%}"
    )
    return (
        figures,
        measured,
        f"async within {UNAFFECTED:.0%} of the same load without slow clients: {full('slow-clients')}",
    )


SLOW_CLIENTS_CLAIM = Claim(
    "slow-clients",
    "A handful of slow clients can starve a sync worker pool; async servers are not affected.",
    f"The io-bound load (100 keep-alive clients, 50 ms of I/O, threaded pool 8), the three engines at once, without "
    f"and with {SLOW_CLIENTS} slow clients per engine (added to the running engines), each trickling one request "
    f"over 3.5 s on a new connection, then again; req/s counts the load generator's answers only.",
    f"with the slow clients threaded keeps at most {1 - STARVED:.0%} of its bound without them (Little's law), while "
    f"asyncio's and gevent's req/s change by at most {UNAFFECTED:.0%}.",
    slow_clients_verdict,
    slow_clients_run,
    slow_clients_live,
    Scene(
        "slow-clients",
        watch="16 slow clients per engine trickle a request over 3.5 s: a threaded pool thread reading one is held "
        "until the last byte (its lane shows reading, ┄), the other slow ones wait with the fast in its hand-off "
        "queue (conns waiting), so req/s falls; the loop and the hub park the slow ones as reading and keep serving "
        "the rest.",
        min_seconds=7.0,  # the slow clients start over one 3.5 s trickle
    ),
)
