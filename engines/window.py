"""One measured window on a running host: what ``syncviz bench`` and the claims' sessions share.

A host (an :class:`~syncviz.engines.source.EventSource`: engine processes or the in-process
host) runs its engines and the load. :func:`wait_for_traffic` drains it until every engine has
seen its first request, :func:`collect` through a warm-up, then :func:`measure_window` measures
a window: drained every 100 ms (the bounded buffers never fill) with the collector kept off what
is kept, each engine process's CPU seconds (:func:`cpu_seconds`) and the load process's
(:func:`load_sample`) taken at both ends, and, for engine processes that send their own counters,
those counters waited for past the window's end (:func:`collect_counters`). The :class:`Window`
holds all of it, read only once it is over: interpreting batches costs CPU (and, in process, the
GIL) that would distort the run.

:func:`window_results` turns a window into one result dict per engine, in the shape
``syncviz bench --json`` prints (:func:`result`, with ``connect_errors``, ``placement``,
``process``, ``load_process`` (:func:`load_process`), ``client_bound`` and ``notes``).
"""

from __future__ import annotations

import gc
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from .bottleneck import client_bound
from .events import ENGINE_IDS, Batch, Phase
from .limits import connection_note
from .loadgen_conn import connect_errors, is_connect_error
from .registry import engine_spec, prefork_workers
from .request import EXTERNAL_IDS_START
from .scenarios import get_scenario
from .settings import arrivals_bind, bound_rps
from .source import EventSource, SourceStatus
from .stats import Counters, StreamStats, fill_latency

if TYPE_CHECKING:
    from .proc_handle import ProcHandle

QUEUED = int(Phase.QUEUED)
TRAFFIC_WAIT_S = 30.0  # at most this long for the load to open its connections and send

LoadSample = tuple["ProcHandle", float | None]
"""The load process's handle and its CPU seconds at one moment (:func:`load_sample`)."""


@dataclass
class Window:
    """What one window measured: the warm-up's and the window's batches, the window's ends
    (``time.monotonic_ns``), each engine process's CPU seconds and the load process's at both
    ends, and the host's settings and status once it was over."""

    warm: Batch
    window: Batch
    t_start: int
    t_end: int
    cpu: tuple[dict[str, float], dict[str, float]]
    load: tuple[LoadSample | None, LoadSample | None]
    settings: Any
    status: SourceStatus

    @property
    def span_s(self) -> float:
        """The window's length, in seconds."""
        return (self.t_end - self.t_start) / 1e9

    @property
    def longest_s(self) -> float:
        """The longest request answered in the window, in seconds."""
        return max((lat for *_, lat, _ok in self.window.latencies), default=0) / 1e9


def measure_window(host: EventSource, warm: Batch, seconds: float, counters: tuple[str, ...] = ()) -> Window:
    """Measure ``seconds`` on ``host``, warmed up into ``warm``. ``counters``: the engines whose
    processes send their own counters (a recording :class:`~syncviz.engines.child.ChildHost` that
    streams its servers' digests), waited for past the window's end (:func:`collect_counters`)."""
    window = Batch()
    cpu0 = cpu_seconds(host)
    load0 = load_sample(host)
    t_start = time.monotonic_ns()
    deadline = t_start + int(seconds * 1e9)
    try:
        while (left := deadline - time.monotonic_ns()) > 0:
            time.sleep(min(0.1, left / 1e9))
            window.extend(host.drain())  # drained every 100 ms: the bounded buffers never fill
            # What is kept is only read after the run: keep the collector from rescanning it
            # (otherwise its full collections stall the servers' GIL as the window grows).
            gc.freeze()
        t_end = time.monotonic_ns()
        cpu1 = cpu_seconds(host)
        load1 = load_sample(host)
        if counters:
            collect_counters(host, counters, t_end, window)
    finally:
        gc.unfreeze()
    return Window(warm, window, t_start, t_end, (cpu0, cpu1), (load0, load1), host.settings, host.status())


def window_results(
    w: Window, scenario: str, engines: tuple[str, ...], seconds: float, together: bool
) -> list[dict[str, Any]]:
    """One result dict per engine of ``engines``, in their order (see :func:`result`): completed and
    failed requests inside the window, failed connects over the whole run, and what the engine's
    and the load's processes used."""
    stats = StreamStats(window_s=seconds, rate_window_s=seconds, keep=1)
    stats.feed(w.warm)
    stats.feed(w.window)
    counters = stats.counters(w.t_end)
    span_s = w.span_s
    scen = get_scenario(scenario)
    settings = w.settings
    cpu0, cpu1 = w.cpu
    load = load_process(w.load[1], w.load[0], span_s)
    everything = [*w.warm.latencies, *w.window.latencies]
    out = []
    for name in engines:
        e = ENGINE_IDS[name]
        ok = [lat for t, eng, _, lat, good in w.window.latencies if eng == e and good and w.t_start <= t <= w.t_end]
        bad = sum(
            1
            for t, eng, rid, _, good in w.window.latencies
            if eng == e and not good and w.t_start <= t and not is_connect_error(rid)
        )
        refused = connect_errors(s for s in everything if s[1] == e)  # every failed connect of the run
        sent = {  # requests its clients sent in the window (in-process, the server's QUEUED repeats the rid)
            rid
            for t, eng, rid, _lane, phase in w.window.transitions
            if eng == e and phase == QUEUED and 0 < rid < EXTERNAL_IDS_START and w.t_start <= t <= w.t_end
        }
        st = w.status.engines[name]
        proc = st.process
        r = result(
            scen.name,
            name,
            scen.mode(name),
            settings,
            seconds,
            together,
            ok,
            bad + sum(refused.values()),
            span_s,
            counters[name],
            st.cpu_share,
            proc.cpus if proc is not None else None,
            len(sent) / span_s if span_s > 0 else 0.0,
        )
        r["connect_errors"] = dict(sorted(refused.items()))
        r["placement"] = st.placement
        engine_cpu = None
        if proc is not None:
            used = (cpu1.get(name) or 0.0) - (cpu0.get(name) or 0.0)
            engine_cpu = round(100 * used / span_s, 1) if name in cpu1 else None
            r["process"] = {
                "pid": proc.pid,
                "cpus": list(proc.cpus),
                "cpu_percent": engine_cpu,
                "rss_mb": _round(proc.rss_mb, 1),
            }
        r["load_process"] = load
        r["client_bound"] = load is not None and client_bound(
            load["cpu_percent"], len(load["cpus"]), engine_cpu, st.cpu_share
        )
        note = connection_note(name, settings.clients)
        r["notes"] = [note] if note else []
        out.append(r)
    return out


def wait_for_traffic(host: EventSource, engines: tuple[str, ...], into: Batch) -> None:
    """Drain into ``into`` until every engine has seen its first request (the load opens all its
    connections before it sends), for at most :data:`TRAFFIC_WAIT_S`."""
    waiting = {ENGINE_IDS[name] for name in engines}
    deadline = time.monotonic() + TRAFFIC_WAIT_S
    while waiting and time.monotonic() < deadline:
        time.sleep(0.05)
        batch = host.drain()
        into.extend(batch)
        waiting -= {e for _, e, *_ in batch.transitions} | {e for _, e, *_ in batch.latencies}


def collect(host: EventSource, into: Batch, seconds: float) -> None:
    """Drain into ``into`` every 100 ms for ``seconds`` (the bounded buffers never fill)."""
    deadline = time.monotonic() + seconds
    while (left := deadline - time.monotonic()) > 0:
        time.sleep(min(0.1, left))
        into.extend(host.drain())


def collect_counters(host: EventSource, engines: tuple[str, ...], t_end: int, into: Batch) -> None:
    """Drain into ``into`` until each engine process has sent counters taken at or after ``t_end``
    (they come every 0.2 s; their window is the run's, so they cover it to within that), for at
    most a second."""
    waiting = {ENGINE_IDS[name] for name in engines}
    deadline = time.monotonic() + 1.0
    while waiting and time.monotonic() < deadline:
        time.sleep(0.05)
        batch = host.drain()
        into.extend(batch)
        for e, rec in batch.digests:
            server = rec.get("server")
            if server is not None and "counters" in server and server["now"] >= t_end:
                waiting.discard(e)


def load_sample(host: EventSource) -> LoadSample | None:
    """The load process's handle and CPU seconds so far (``None`` in process: it is everyone's)."""
    proc = getattr(host, "loadproc", None)
    if proc is None:
        return None
    proc.measure()
    return proc, proc.cpu_seconds()


def load_process(end: LoadSample | None, start: LoadSample | None, span_s: float) -> dict[str, Any] | None:
    """The load process over the window: pid, CPUs, CPU % (of one core), RSS."""
    if end is None or start is None:
        return None
    proc, used1 = end
    used0 = start[1]
    sample = proc.sample
    cpu = round(100 * (used1 - used0) / span_s, 1) if used0 is not None and used1 is not None and span_s > 0 else None
    return {"pid": proc.pid, "cpus": list(sample.cpus), "cpu_percent": cpu, "rss_mb": _round(sample.rss_mb, 1)}


def cpu_seconds(host: EventSource) -> dict[str, float]:
    """CPU seconds each engine's process has used so far (none in process: they share one)."""
    procs = getattr(host, "procs", {})
    out = {}
    for name, proc in procs.items():
        proc.measure()
        used = proc.cpu_seconds()
        if used is not None:
            out[name] = used
    return out


def result(
    scenario: str,
    engine: str,
    mode: str,
    settings: Any,
    seconds: float,
    together: bool,
    latencies_ns: list[int],
    failed: int,
    span_s: float,
    counters: Counters,
    cpu_share: float = 1.0,
    cpus: tuple[int, ...] | None = None,
    sent_rps: float = 0.0,
) -> dict[str, Any]:
    """One engine's figures, in the shape ``syncviz bench --json`` prints (``cpus``: its placement;
    ``sent_rps``: requests its clients sent a second in the window)."""
    lat = Counters(engine)
    fill_latency(lat, latencies_ns)
    has_loop = counters.has_loop
    bound, offered = bench_bound(engine, mode, settings, span_s, sent_rps, cpu_share, cpus)
    return {
        "scenario": scenario,
        "engine": engine,
        "mode": mode,
        "params": {
            "clients": settings.clients,
            "pool": settings.pool,
            **({"workers": prefork_workers(settings, cpus)} if engine_spec(engine).processes else {}),
            "io_ms": float(settings.io_ms),
            "cpu_ms": float(settings.cpu_ms),
            "rate": None if settings.rate is None else float(settings.rate),
            "seconds": float(seconds),
            "together": together,
        },
        "completed": len(latencies_ns),
        "failed": failed,
        "throughput_rps": round(len(latencies_ns) / span_s, 1),
        "bound_rps": _round(bound),
        "offered_rps": _round(offered),
        "latency_ms": {k: _round(getattr(lat, f"{k}_ms")) for k in ("p50", "p95", "p99", "max")},
        "loop_lag_ms": (
            {"p50": _round(counters.lag_p50_ms), "p99": _round(counters.lag_p99_ms)}
            if has_loop and counters.lag_p50_ms is not None
            else None
        ),
        "phase_ms": {k: round(v, 3) for k, v in counters.phase_ms.items()},
    }


def bench_bound(
    engine: str,
    mode: str,
    settings: Any,
    span_s: float,
    sent_rps: float,
    cpu_share: float = 1.0,
    cpus: tuple[int, ...] | None = None,
) -> tuple[float | None, float | None]:
    """The window's bound and, for an open loop, what its clients sent a second (measured).

    Where an open loop's arrivals bind (the model's bound is its offered rate, as the panel
    decides), the bound is what was sent, not what a window of that length holds on average: a
    2 s bench of burst read `63 of bound 270, 23%` for engines that answered every request, the
    window holding no spike; now `63 of 59 offered` (requests sent just before the window end in
    it: over 100% says so). Where the server binds (threaded's pool), Little's law as before.
    """
    model = bound_rps(engine, mode, settings, cpu_share, cpus, span_s)  # type: ignore[arg-type]
    if settings.rate is None or sent_rps <= 0:
        return model, None
    if arrivals_bind(model, settings, span_s):
        return sent_rps, sent_rps
    return model, sent_rps


def _round(value: float | None, digits: int = 2) -> float | None:
    return None if value is None else round(value, digits)
