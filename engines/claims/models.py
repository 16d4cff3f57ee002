"""Claims about the other concurrency models: ``processes`` (prefork workers) and ``uvloop``.

``processes``: one GIL per process, so CPU-bound work scales with worker processes and not
with threads or coroutines; each engine runs alone on the machine's cores (prefork's two
workers get both, threaded and asyncio as many as one GIL can use). ``uvloop``: the same
asyncio handler on uvloop's loop, with zero latency so the loop's own cost is all there is,
at 1 client (latency) and at 1,000 (the ceiling).

Their scenes need engines beyond the app's default three (``syncviz --present --engines ...``);
without them the live verdict says which to add.
"""

from __future__ import annotations

from ..settings import Settings
from ..stats import Counters
from .base import HOLDS, NO_GAIN, NOT, ONLY, Claim, Figures, LiveFigures, Result, Scene, ms, r2, rps, x
from .plan import Plan
from .throughput import same_latency

C = dict[str, Counters]

SCALES = 0.8  # processes: N workers "scale" at 0.8 x N the throughput of one
WORKERS = 2
CPU_MS = 5.0
RAISES = 1.2  # uvloop: "raises the ceiling" is at least 1.2x asyncio's req/s at 1,000 clients
CROWD = 1000
PAIR = ("asyncio", "uvloop")


# -- processes -------------------------------------------------------------------------------
def processes_verdict(f: Figures) -> str:
    """Reads ``workers``, ``cores``, ``rps`` (engine -> req/s, ``prefork`` with ``workers`` workers) and
    ``core_share`` (engine -> req/s x CPU per request: cores' worth of work)."""
    n, share = f["workers"], f["core_share"]
    one_gil = {e: s for e, s in share.items() if e != "prefork"}
    best = max(one_gil, key=one_gil.get)
    if not all(s <= NO_GAIN for s in one_gil.values()):
        return f"{NOT}: {best} did {one_gil[best]:.2f} cores' worth of CPU work with one GIL"
    if "cores" not in f:  # the live scene: the engines share the app's cores, prefork has none of its own
        return f"{HOLDS} for threads and coroutines: one GIL each, at most {NO_GAIN:.2f} cores' worth"
    if f["cores"] < n:
        return f"{ONLY} there are cores for the workers: {f['cores']} core(s) here for {n} workers"
    scaled = share["prefork"] >= SCALES * n
    if not scaled:
        return f"{NOT}: {n} worker processes did only {share['prefork']:.2f} cores' worth (of {n})"
    lead = f["rps"]["prefork"] / max(f["rps"][best], 0.1)
    return HOLDS if lead >= SCALES * n else f"{ONLY} the others are slower: prefork led {best} by only {x(lead)}"


def processes_run(plan: Plan) -> Result:
    knobs = {"clients": 20, "pool": 8, "io_ms": 0.0, "cpu_ms": CPU_MS}
    cores = len(plan.cpus)
    runs = {
        "threaded": plan.run("cpu-bound", "threaded", cpus=plan.cpus, **knobs),
        "asyncio": plan.run("cpu-bound", "asyncio", cpus=plan.cpus, **knobs),
        "prefork": plan.run("cpu-bound", "prefork", cpus=plan.cpus, workers=WORKERS, **knobs),
    }
    one = plan.run("cpu-bound", "prefork", cpus=plan.cpus, workers=1, **knobs)
    served = {e: r["throughput_rps"] for e, r in runs.items()}
    figures = {
        "workers": WORKERS,
        "cores": cores,
        "cpu_ms": CPU_MS,
        "rps": served,
        "core_share": {e: round(r * CPU_MS / 1000, 2) for e, r in served.items()},
        "prefork_rps_by_workers": {"1": one["throughput_rps"], str(WORKERS): served["prefork"]},
        "speedup_over_threaded": round(served["prefork"] / max(served["threaded"], 0.1), 2),
        "placement": {e: r.get("placement") for e, r in runs.items()},
    }
    return figures, plan.settings("cpu-bound", **knobs, workers=[1, WORKERS], cpus=list(plan.cpus))


def processes_live(c: C, s: Settings) -> LiveFigures:
    served = {e: k.rps for e, k in c.items()}
    cpu_ms = s.cpu_ms * s.slow
    figures = {
        "workers": s.workers,
        "cpu_ms": cpu_ms,
        "rps": {e: r2(r) for e, r in served.items()},
        "core_share": {e: round(r * cpu_ms / 1000, 2) for e, r in served.items()},
    }
    measured = ", ".join(f"{e} {rps(r)} ({r * cpu_ms / 1000:.2f} cores)" for e, r in served.items())
    return figures, measured, "prefork's scaling, each engine alone on the cores: syncviz claims --id processes"


PROCESSES = Claim(
    "processes",
    "CPU-bound work scales with worker processes, not with threads or coroutines.",
    f"20 clients, {CPU_MS:g} ms of pure-Python CPU per request, no I/O; each engine alone on the machine's cores: "
    f"prefork with {WORKERS} worker processes (and with 1), threaded with 8 threads, asyncio.",
    f"prefork's {WORKERS} workers do at least {SCALES:g} x {WORKERS} cores' worth of CPU work and lead the others "
    f"by {SCALES * WORKERS:g}x; threaded and asyncio do at most {NO_GAIN:.2f} cores' worth (one GIL).",
    processes_verdict,
    processes_run,
    processes_live,
    Scene(
        "cpu-bound",
        {"workers": WORKERS},
        "prefork's two worker processes (p0, p1) run (█) at the same moment, one GIL each; threaded's 8 lanes and "
        "asyncio's loop take turns on one GIL.",
        engines=("threaded", "asyncio", "prefork"),
        in_help=False,
    ),
)


# -- uvloop ----------------------------------------------------------------------------------
def uvloop_verdict(f: Figures) -> str:
    """Reads ``p50_ms_at_1`` (asyncio, uvloop: median latency with one client) and ``rps_at_1000``
    (req/s with 1,000 clients), each when measured."""
    said = []
    if "p50_ms_at_1" in f and not same_latency(f["p50_ms_at_1"]):
        p50 = f["p50_ms_at_1"]
        return f"{NOT}: at 1 client uvloop answered in {ms(p50['uvloop'])}, asyncio in {ms(p50['asyncio'])}"
    if "rps_at_1000" in f:
        ratio = ceiling_ratio(f)
        if ratio < RAISES:
            per = " per CPU second" if "rps_per_cpu_at_1000" in f else ""
            return f"{NOT}: at {CROWD:,} clients uvloop served {x(ratio)} asyncio's req/s{per}"
    else:
        said.append("for latency")
    if "p50_ms_at_1" not in f:
        said.append("for the ceiling")
    return HOLDS if not said else f"{HOLDS} {' '.join(said)}"


def ceiling_ratio(f: Figures) -> float:
    """uvloop's req/s over asyncio's at 1,000 clients: per CPU second each process used when measured
    (``rps_per_cpu_at_1000``), else as served (the live scene: the app's counters)."""
    r = f.get("rps_per_cpu_at_1000") or f["rps_at_1000"]
    return r["uvloop"] / max(r["asyncio"], 0.1)


def uvloop_run(plan: Plan) -> Result:
    # The latency: each alone, the load on another core. The ceiling: both at once on one core, the
    # load on another. The OS shares the core evenly, so their req/s compare their costs per request,
    # and a shared machine whose speed drifts between two runs cannot tilt the ratio (one after the
    # other, each alone: 0.8-2.7x from run to run on the shared 2-core machine; at once: 1.5-2.0x).
    # Even halves are not given: once the engines got cheaper per request, asyncio's req/s at once
    # swung 12,900-22,700 between runs (ratio 1.1-1.9x). So each is divided by the CPU its process
    # used in the window: req/s per CPU second, what a ceiling on a core of its own would be.
    low = {e: plan.run("io-bound", e, cpus=plan.cpus, clients=1, io_ms=0.0) for e in PAIR}
    high = plan.together("io-bound", engines=PAIR, cpus=plan.cpus, clients=CROWD, io_ms=0.0)
    if any(r["client_bound"] for r in high.values()):  # the load process was the limit, not the loops: again
        high = plan.together("io-bound", 2 * plan.warmup, engines=PAIR, cpus=plan.cpus, clients=CROWD, io_ms=0.0)
    figures = {
        "p50_ms_at_1": {e: r["latency_ms"]["p50"] for e, r in low.items()},
        "rps_at_1": {e: r["throughput_rps"] for e, r in low.items()},
        "rps_at_1000": {e: high[e]["throughput_rps"] for e in PAIR},
        "p50_ms_at_1000": {e: high[e]["latency_ms"]["p50"] for e in PAIR},
        "cpu_percent_at_1000": {e: (high[e].get("process") or {}).get("cpu_percent") for e in PAIR},
        "placement": {e: high[e].get("placement") for e in PAIR},
        "client_bound": {e: high[e]["client_bound"] for e in PAIR},
    }
    cpu = figures["cpu_percent_at_1000"]
    if all(cpu[e] for e in PAIR):
        figures["rps_per_cpu_at_1000"] = {e: round(high[e]["throughput_rps"] / (cpu[e] / 100), 1) for e in PAIR}
    figures["ceiling_ratio"] = round(ceiling_ratio(figures), 2)
    settings = plan.settings("io-bound", io_ms=0.0, clients=[1, CROWD], cpus=list(plan.cpus))
    settings["together"] = [False, True]
    return figures, settings


def uvloop_live(c: C, s: Settings) -> LiveFigures:
    a, u = c["asyncio"], c["uvloop"]
    figures = {
        "rps_at_1000": {"asyncio": r2(a.rps), "uvloop": r2(u.rps)},
        "p50_ms_at_1000": {"asyncio": r2(a.p50_ms), "uvloop": r2(u.p50_ms)},
    }
    measured = (
        f"{s.clients:,} clients, no wait: uvloop {rps(u.rps)}, asyncio {rps(a.rps)} "
        f"({x(u.rps / max(a.rps, 0.1))}); p50 {ms(u.p50_ms or 0)} against {ms(a.p50_ms or 0)}"
    )
    return figures, measured, "the latency at 1 client: syncviz claims --id uvloop"


UVLOOP = Claim(
    "uvloop",
    "uvloop raises asyncio's ceiling, not its latency at low load.",
    f"The asyncio engine and the same handler on uvloop's loop, zero latency (no I/O, no CPU), the load on a core "
    f"of its own: 1 client, each alone on another core; then {CROWD:,} clients each, both at once sharing another "
    f"core, each one's req/s divided by the CPU its process used (req/s per CPU second: their ratio is their "
    f"ceilings', whatever the machine's speed and however the core was shared; measured again, once, when the "
    f"load process was the limit).",
    f"at 1 client uvloop's median latency is within 10% (or 0.5 ms) of asyncio's; at {CROWD:,} clients it "
    f"serves at least {RAISES:g}x asyncio's req/s.",
    uvloop_verdict,
    uvloop_run,
    uvloop_live,
    Scene(
        "io-bound",
        {"clients": CROWD, "io_ms": 0},
        "no wait at all: each loop spends its time only on its own bookkeeping; uvloop's answers more of the "
        "1,000 clients a second, each request still a fraction of a millisecond.",
        engines=("asyncio", "uvloop"),
        in_help=False,
    ),
)
