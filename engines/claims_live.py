"""Live verdicts: each claim judged from what its scene in the app is measuring right now.

The presenter mode runs every claim's scene (:attr:`~syncviz.engines.claims.Claim.scene` with
its knobs) and, once enough data has come in, applies :func:`judge_live` to the live
per-engine :class:`~syncviz.engines.stats.Counters`. Where the scene measures the figures a
verdict in :mod:`~syncviz.engines.claims_verdicts` reads, that same function judges them.
Where the claim needs runs the scene cannot show at once (a pool sweep, RSS per connection,
the engine without the mistake), the live verdict judges only what the scene does measure,
says which part (``holds at pool 8``), and :attr:`LiveVerdict.scope` names the full
experiment. Nothing here is judged from anything but measured figures, and nothing at all
while the stream is not running the claim's scene.

Pure functions, no Textual, no engine: the app and the tests feed them hand-made counters.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from . import claims_verdicts as v
from .claims import CLAIMS, Claim
from .scenarios import SCENARIOS
from .settings import OFFLOAD_LIMIT, Settings, bound_rps
from .stats import Counters

MIN_SECONDS = 3.0  # of the scene's own data before any verdict
MIN_SAMPLES = 20  # latency samples per engine the verdict reads
SLOWER_SCENES = {  # longer first rounds
    "thousands": 6.0,
    "memory": 4.0,
    "threads-needed": 4.0,
    "streaming": 5.0,  # a client first waits 32 / 8 streams of 0.5 s for a thread
    "slow-clients": 7.0,  # the slow clients start over one 3.5 s trickle
}

NO_LIVE = "no live verdict"


@dataclass(frozen=True)
class LiveVerdict:
    figures: dict[str, Any]  # JSON-shaped, as measured live (rounded)
    verdict: str  # holds / does not hold: ... / holds only when ... / holds at ... (a part) / no live verdict: ...
    measured: str  # the figures in words, for the screen
    scope: str = ""  # what the scene does not show, and the command that measures it

    @property
    def tone(self) -> str:
        """``holds``, ``not``, ``only`` or ``none``, for colouring."""
        if self.verdict.startswith(v.NOT):
            return "not"
        if self.verdict.startswith(v.ONLY):
            return "only"
        if self.verdict.startswith(v.HOLDS):
            return "holds"
        return "none"


def scene_knobs(claim: Claim) -> dict[str, Any]:
    """The knobs a scene always starts with (a talk goes the same way twice).

    Not ``slow``: the host keeps its own across a restart (and takes no override for it);
    a scene run in slow motion does not match :func:`scene_settings` and gets no verdict.
    """
    return dict(claim.scene_settings)


def scene_settings(claim: Claim) -> Settings:
    return SCENARIOS[claim.scene].settings.with_changes(**scene_knobs(claim))


def scene_matches(claim: Claim, info: dict[str, Any]) -> bool:
    """True when the stream's status says the engines run exactly this claim's scene."""
    raw = info.get("settings")
    if info.get("scenario") != claim.scene or not raw:
        return False
    try:
        return Settings(**raw) == scene_settings(claim)
    except TypeError:
        return False


def min_seconds(claim_id: str) -> float:
    return SLOWER_SCENES.get(claim_id, MIN_SECONDS)


def _r(value: float | None) -> float | None:
    return None if value is None else round(value, 2)


def _rps(value: float) -> str:
    return f"{value:,.0f} req/s"


def _ms(value: float) -> str:
    return f"{value:,.0f} ms" if value >= 10 else f"{value:.1f} ms"


def _x(value: float) -> str:
    return f"{value:.1f}x" if value < 10 else f"{value:.0f}x"


def _part(verdict: str, where: str) -> str:
    """A plain ``holds`` from part of the claim says which part it is."""
    return f"{v.HOLDS} {where}" if verdict == v.HOLDS else verdict


def _full(claim_id: str) -> str:
    return f"syncviz claims --id {claim_id}"


# -- one judge per claim: (counters by engine, settings) -> LiveVerdict ----------------------
C = dict[str, Counters]


def io_throughput(c: C, s: Settings) -> LiveVerdict:
    a, t = c["asyncio"].rps, c["threaded"].rps
    x = a / max(t, 0.1)
    figures = {
        "clients": s.clients,
        "asyncio_rps": _r(a),
        "gevent_rps": _r(c["gevent"].rps),
        "threaded_rps_by_pool": {str(s.pool): _r(t)},
        "speedup_by_pool": {str(s.pool): round(x, 2)},
    }
    return LiveVerdict(
        figures,
        _part(v.io_throughput(figures), f"at pool {s.pool}"),
        f"asyncio {_rps(a)}, threaded {_rps(t)} with {s.pool} threads: {_x(x)} ({s.clients} clients)",
        f"one pool of the claim's 8, 64, 200; the sweep: {_full('io-throughput')}",
    )


def not_faster(c: C, s: Settings) -> LiveVerdict:
    figures = {
        "io_ms": s.io_ms * s.slow,
        "p50_ms": {e: _r(x.p50_ms) for e, x in c.items()},
        "p99_ms": {e: _r(x.p99_ms) for e, x in c.items()},
        "rps": {e: _r(x.rps) for e, x in c.items()},
    }
    p50 = ", ".join(f"{e} {_ms(x.p50_ms or 0)}" for e, x in c.items())
    return LiveVerdict(figures, v.not_faster(figures), f"p50 with {s.clients} client: {p50}")


def cpu_bound(c: C, s: Settings) -> LiveVerdict:
    cpu_ms = s.cpu_ms * s.slow
    rps = {e: x.rps for e, x in c.items()}
    figures = {
        "cpu_ms": cpu_ms,
        "rps": {e: _r(r) for e, r in rps.items()},
        "core_share": {e: round(r * cpu_ms / 1000, 2) for e, r in rps.items()},
        "loop_lag_p99_ms": {e: _r(c[e].lag_p99_ms) for e in ("asyncio", "gevent")},
    }
    gain = max(rps["asyncio"], rps["gevent"]) / max(rps["threaded"], 0.1)
    lag = figures["loop_lag_p99_ms"]
    return LiveVerdict(
        figures,
        v.cpu_bound(figures),
        f"async {_x(gain)} threaded's req/s ({', '.join(f'{e} {r:,.0f}' for e, r in rps.items())}); "
        f"loop lag p99 {_ms(lag['asyncio'] or 0)}, hub {_ms(lag['gevent'] or 0)} for {_ms(cpu_ms)} of CPU",
    )


def threads_needed(c: C, s: Settings) -> LiveVerdict:
    users, pool = s.clients, s.pool
    bound = users / (s.io_s + s.cpu_s)
    t, a = c["threaded"].rps, c["asyncio"].rps
    share = t / bound
    figures = {
        "users": users,
        "bound_rps": round(bound, 1),
        "threaded_rps_by_pool": {str(pool): _r(t)},
        "share_of_bound_by_pool": {str(pool): round(share, 2)},
        "asyncio_rps": _r(a),
        "asyncio_threads": 1,
    }
    if pool >= users:
        verdict = f"{v.HOLDS} at pool {pool}" if share >= v.REACHES else f"{v.NOT}: {pool} threads reached {share:.0%}"
    elif share <= pool / users + 0.1:
        verdict = f"{v.HOLDS} at pool {pool}: {pool} threads serve {pool}/{users} of the users"
    else:
        verdict = f"{v.NOT}: {pool} threads already served {share:.0%} of the bound"
    return LiveVerdict(
        figures,
        verdict,
        f"threaded {_rps(t)} = {share:.0%} of {users} users / {_ms(s.io_s * 1000 + s.cpu_s * 1000)} = "
        f"{_rps(bound)}; asyncio's one thread {_rps(a)} = {a / bound:.0%}",
        f"one pool of the claim's 10, 50, 100; the sweep: {_full('threads-needed')}",
    )


def thousands(c: C, s: Settings) -> LiveVerdict:
    a = c["asyncio"]
    n, request_ms = s.clients, (s.io_s + s.cpu_s) * 1000
    p50 = a.p50_ms or 0.0
    figures = {
        "connections": n,
        "busy": {
            "request_ms": round(request_ms, 2),
            "rps": _r(a.rps),
            "p50_ms": _r(a.p50_ms),
            "p99_ms": _r(a.p99_ms),
            "completed": a.completed,
            "failed": a.failed,
        },
    }
    round_ms = n * s.cpu_s * 1000
    if a.failed or not a.completed:
        verdict = f"{v.NOT}: the loop dropped connections ({a.failed} failed)"
    elif p50 <= v.LATENCY_STRETCH * request_ms:
        verdict = f"{v.HOLDS} for connections: none failed, p50 within {v.LATENCY_STRETCH:g}x of the request"
    elif round_ms > s.io_s * 1000:
        verdict = (
            f"{v.ONLY} connections x CPU per request fit in the wait: {n:,} x {_ms(s.cpu_s * 1000)} "
            f"= {_ms(round_ms)} a round, against {_ms(s.io_s * 1000)} of waiting"
        )
    else:
        verdict = f"{v.NOT}: {n:,} connections waited p50 {_ms(p50)} for a {_ms(request_ms)} request"
    return LiveVerdict(
        figures,
        verdict,
        f"asyncio holds {n:,} connections, {a.failed} failed; p50 {_ms(p50)} for a {_ms(request_ms)} request, "
        f"{_rps(a.rps)}",
        f"memory is not in the live stream: {_full('thousands')}",
    )


def blocking_call(c: C, s: Settings) -> LiveVerdict:
    io_ms = s.io_s * 1000
    a = c["asyncio"]
    figures = {
        "io_ms": io_ms,
        "blocking_rps": _r(a.rps),
        "one_at_a_time_rps": round(1000 / io_ms, 2),
        "loop_lag_p99_ms": _r(a.lag_p99_ms),
        "blocking_p50_ms": _r(a.p50_ms),
        "threaded_rps": _r(c["threaded"].rps),
    }
    return LiveVerdict(
        figures,
        v.blocking_call(figures),
        f"asyncio with time.sleep {_rps(a.rps)} (one at a time: 1 / {_ms(io_ms)} = {_rps(1000 / io_ms)}), "
        f"loop lag p99 {_ms(a.lag_p99_ms or 0)}; threaded {_rps(c['threaded'].rps)}",
    )


def greenlets(c: C, s: Settings) -> LiveVerdict:
    io_ms = s.io_s * 1000
    g = c["gevent"]
    one = 1000 / io_ms
    figures = {
        "io_ms": io_ms,
        "gevent_blocking_rps": _r(g.rps),
        "one_at_a_time_rps": round(one, 2),
        "hub_lag_p99_ms": _r(g.lag_p99_ms),
        "threaded_rps": _r(c["threaded"].rps),
    }
    blocks = g.rps <= v.CAPPED * one and g.lag_p99_ms is not None and g.lag_p99_ms >= io_ms
    verdict = (
        f"{v.HOLDS} for the call that does not cooperate: the hub serves one request at a time"
        if blocks
        else f"{v.NOT}: the hub still served {_rps(g.rps)} with the blocking call"
    )
    return LiveVerdict(
        figures,
        verdict,
        f"gevent with the stdlib time.sleep {_rps(g.rps)} (one at a time: {_rps(one)}), "
        f"hub lag p99 {_ms(g.lag_p99_ms or 0)}",
        f"the scaling half (gevent.sleep against asyncio and threads): {_full('greenlets')}",
    )


def high_load_only(c: C, s: Settings) -> LiveVerdict:
    t, a = c["threaded"].rps, c["asyncio"].rps
    x = a / max(t, 0.1)
    figures = {
        "pool": s.pool,
        "threaded_rps_by_clients": {str(s.clients): _r(t)},
        "asyncio_rps_by_clients": {str(s.clients): _r(a)},
        "ratio_by_clients": {str(s.clients): round(x, 2)},
    }
    where = "above the pool" if s.clients > s.pool else "at or below the pool"
    return LiveVerdict(
        figures,
        _part(v.high_load_only(figures), where),
        f"{s.clients} clients, pool {s.pool}: asyncio {_rps(a)}, threaded {_rps(t)}: {_x(x)}",
        f"one load of the claim's 4, 16, 64 clients; the sweep: {_full('high-load-only')}",
    )


def offload(c: C, s: Settings) -> LiveVerdict:
    cap = OFFLOAD_LIMIT / (s.io_s + s.cpu_s)
    a, g = c["asyncio"].rps, c["gevent"].rps
    figures = {"limit": OFFLOAD_LIMIT, "cap_rps": round(cap, 1), "offload_rps": _r(a), "gevent_rps": _r(g)}
    if a > v.CAPPED * cap:
        verdict = f"{v.NOT}: offloaded handlers served {_rps(a)}, over the {_rps(cap)} cap"
    elif a >= v.REACHES * cap:
        verdict = f"{v.HOLDS} for the cap: the offloaded handlers stop at the pool's limit"
    else:
        verdict = f"{v.NOT}: offloaded handlers served only {a:,.0f} of a {_rps(cap)} cap"
    return LiveVerdict(
        figures,
        verdict,
        f"asyncio via anyio.to_thread {_rps(a)}, cap {OFFLOAD_LIMIT} / {_ms(s.io_s * 1000)} = {_rps(cap)}; "
        f"gevent, not offloaded, {_rps(g)}",
        f"native asyncio past the cap: {_full('offload')}",
    )


def memory(c: C, s: Settings) -> LiveVerdict:
    held = {e: x.in_flight for e, x in c.items()}
    figures = {"connections": s.clients, "in_flight": held, "busy_workers": {e: x.busy for e, x in c.items()}}
    return LiveVerdict(
        figures,
        f"{NO_LIVE}: RSS per connection is not in the event stream",
        f"threaded holds {held['threaded']:,} requests on {c['threaded'].busy:,} threads; asyncio "
        f"{held['asyncio']:,} on one loop, gevent {held['gevent']:,} on one hub",
        f"the memory measured: {_full('memory')}",
    )


def streaming(c: C, s: Settings) -> LiveVerdict:
    def served_ms(x: Counters) -> float:
        return sum(ms for phase, ms in x.phase_ms.items() if phase not in ("queued", "reading"))

    at_once = {e: round(x.rps * served_ms(x) / 1000, 1) for e, x in c.items()}
    figures = {
        "clients": s.clients,
        "pool": s.pool,
        "stream_ms": s.io_s * 1000,
        "rps": {e: _r(x.rps) for e, x in c.items()},
        "concurrent_streams": at_once,
        "first_byte_ms": {
            e: round(x.phase_ms.get("queued", 0.0) + x.phase_ms.get("reading", 0.0), 1) for e, x in c.items()
        },
        "streaming_now": {e: x.in_flight - x.queued - x.by_phase.get("reading", 0) for e, x in c.items()},
    }
    first = figures["first_byte_ms"]
    return LiveVerdict(
        figures,
        v.streaming(figures),
        f"streams at once (req/s x time served): threaded {at_once['threaded']:g} on {s.pool} threads, asyncio "
        f"{at_once['asyncio']:g}, gevent {at_once['gevent']:g} of {s.clients}; first byte after "
        f"{_ms(first['threaded'])} on threaded, {_ms(first['asyncio'])} on asyncio",
    )


def slow_clients(c: C, s: Settings) -> LiveVerdict:
    """The scene runs only the half with slow clients, so each engine is judged against its bound
    without them (Little's law): starved is at most half of it, for threads and loops alike. The
    claim's finer half (async within 15% of its own run without slow clients) needs that run."""
    fast = s.with_changes(slow_clients=0)
    bound = {e: bound_rps(e, "native", fast) or 0.0 for e in c}
    kept = {e: x.rps / max(bound[e], 0.1) for e, x in c.items()}
    reading = {e: x.by_phase.get("reading", 0) for e, x in c.items()}
    figures = {
        "slow_clients": s.slow_clients,
        "pool": s.pool,
        "bound_rps_without": {e: round(b, 1) for e, b in bound.items()},
        "rps_with": {e: _r(x.rps) for e, x in c.items()},
        "kept_of_bound": {e: round(k, 2) for e, k in kept.items()},
        "reading_now": reading,
        "busy_threads": c["threaded"].busy,
    }
    starved = {e: k for e, k in kept.items() if k <= 1 - v.STARVED}
    if "threaded" not in starved:
        verdict = f"{v.NOT}: threaded still served {kept['threaded']:.0%} of its {_rps(bound['threaded'])} bound"
    elif len(starved) > 1:
        e = min((e for e in starved if e != "threaded"), key=kept.get)
        verdict = f"{v.NOT}: {e} was starved too, at {kept[e]:.0%} of its {_rps(bound[e])} bound"
    else:
        verdict = f"{v.HOLDS} for starving: the slow clients starve the pool, not the loop or the hub"
    return LiveVerdict(
        figures,
        verdict,
        f"with {s.slow_clients} slow clients each: threaded {_rps(c['threaded'].rps)}, {kept['threaded']:.0%} of "
        f"its {_rps(bound['threaded'])} bound ({c['threaded'].busy}/{s.pool} threads busy, {reading['threaded']} "
        f"reading); asyncio {kept['asyncio']:.0%} of its bound, gevent {kept['gevent']:.0%}",
        f"async within {v.UNAFFECTED:.0%} of the same load without slow clients: {_full('slow-clients')}",
    )


JUDGES: dict[str, Callable[[C, Settings], LiveVerdict]] = {
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

NEEDS_LAG: dict[str, tuple[str, ...]] = {
    "cpu-bound": ("asyncio", "gevent"),
    "blocking-call": ("asyncio",),
    "greenlets": ("gevent",),
}


def enough_data(claim_id: str, counters: C, elapsed_s: float) -> bool:
    if elapsed_s < min_seconds(claim_id) or len(counters) < 3:
        return False
    if claim_id != "memory" and any(c.samples < MIN_SAMPLES for c in counters.values()):
        return False
    return all(counters[e].lag_p99_ms is not None for e in NEEDS_LAG.get(claim_id, ()))


def judge_live(claim_id: str, counters: C, info: dict[str, Any], elapsed_s: float) -> LiveVerdict | None:
    """The live verdict on ``claim_id``, or ``None`` while the stream is not its scene or has too little data.

    ``counters`` are the engines' counters since the scene started, ``elapsed_s`` how long it
    has run (stream time), ``info`` the stream's status (scenario and settings).
    """
    claim = CLAIMS[claim_id]
    if not scene_matches(claim, info) or not enough_data(claim_id, counters, elapsed_s):
        return None
    return JUDGES[claim_id](counters, Settings(**info["settings"]))


__all__ = ["JUDGES", "LiveVerdict", "enough_data", "judge_live", "scene_knobs", "scene_matches", "scene_settings"]
