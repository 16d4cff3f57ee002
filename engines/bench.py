"""``syncviz bench``: run scenarios headless and measure each engine against its bound.

Each run starts the engine processes (:class:`~syncviz.engines.child.ChildHost`: one
engine alone on its core by default, all of them at once with ``together``, placed as the
app places them; ``in_process`` runs the literal one-process host instead), lets the load
generator open its connections and warm up, then measures a window. Throughput and latency
come from the load generator's samples inside the window; phase means and loop lag from the
servers' transitions, through the same :class:`~syncviz.engines.stats.StreamStats` the app uses.

Before anything starts, every run's file descriptors are checked (:mod:`~syncviz.engines.limits`:
the soft limit raised, or one line saying how many clients fit). The warm-up starts once the load
generator has opened its connections and sends (10,000 take a few seconds). ``failed`` counts
the window's failed requests and every connection that could not be opened during the run
(``connect_errors`` by errno); ``client_bound`` says when the load process, not the server, was
the limit (:func:`~syncviz.engines.bottleneck.client_bound`; ``load_process`` has its CPU), and
``notes`` what else limits the run (gevent's pool below the clients).
"""

from __future__ import annotations

import contextlib
import fcntl
import gc
import os
import time
from collections.abc import Iterator
from typing import Any

from rich.table import Table

from .bottleneck import client_bound
from .child import ChildHost
from .events import DEFAULT_ENGINES, ENGINE_IDS, ENGINES, Batch
from .host import EngineHost
from .limits import connection_note, require_fds
from .loadgen import connect_errors, is_connect_error
from .placement import set_cpus
from .registry import engine_spec, prefork_workers
from .scenarios import get_scenario
from .settings import bound_rps, fmt_rate
from .source import EventSource
from .stats import Counters, StreamStats, fill_latency

WARMUP_S = 1.0
BENCH_LOCK = "/tmp/syncviz-bench.lock"
TRAFFIC_WAIT_S = 30.0  # at most this long for the load to open its connections and send


def run_scenario(
    scenario: str,
    engines: list[str] | tuple[str, ...] = DEFAULT_ENGINES,
    seconds: float = 4.0,
    together: bool = False,
    record: bool = True,
    warmup_s: float = WARMUP_S,
    in_process: bool = False,
    cpus: list[int] | None = None,
    **overrides: Any,
) -> list[dict[str, Any]]:
    """Measure ``scenario`` on each engine; one result dict per engine (see :func:`result`).
    ``cpus``: the CPUs to place the engine processes and the load on (default: this process's).

    :class:`~syncviz.engines.limits.FdLimitError` (one line) before anything starts when the
    descriptor limit cannot hold the clients.
    """
    require_fds([scenario], engines, together, in_process, **overrides)
    groups = [tuple(engines)] if together else [(e,) for e in engines]
    results: list[dict[str, Any]] = []
    for group in groups:
        results.extend(_measure(scenario, group, seconds, together, record, warmup_s, in_process, overrides, cpus))
    order = {e: i for i, e in enumerate(ENGINES)}
    return sorted(results, key=lambda r: order[r["engine"]])


def _measure(
    scenario: str,
    engines: tuple[str, ...],
    seconds: float,
    together: bool,
    record: bool,
    warmup_s: float,
    in_process: bool,
    overrides: dict[str, Any],
    cpus: list[int] | None = None,
) -> list[dict[str, Any]]:
    # Batches are only collected while the servers run; interpreting them costs CPU (and, in
    # process, the GIL) that would distort the run, so it happens after the host has stopped.
    warm = Batch()
    window = Batch()
    host: EventSource
    if in_process:
        host = EngineHost(scenario, engines=engines, record=record, **overrides)
    else:
        # The engine processes digest their own events, as the app has them do (the same work on
        # the servers' GIL as what the app shows); the load sends raw samples: exact latency.
        host = ChildHost(
            scenario, engines=engines, record=record, cpus=cpus, stream="servers", window_s=seconds, **overrides
        )
        set_cpus(host.placement.ui)  # this process keeps off the engines' cores
    with host:
        _wait_for_traffic(host, engines, warm)
        _collect(host, warm, warmup_s)
        cpu0 = _cpu_seconds(host)
        load0 = _load_sample(host)
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
            cpu1 = _cpu_seconds(host)
            load = _load_sample(host)
            if not in_process and record:
                _collect_counters(host, engines, t_end, window)
        finally:
            gc.unfreeze()
        settings, scen = host.settings, host.scenario
        status = host.status()
    stats = StreamStats(window_s=seconds, rate_window_s=seconds, keep=1)
    stats.feed(warm)
    stats.feed(window)
    counters = stats.counters(t_end)
    span_s = (t_end - t_start) / 1e9
    out = []
    load_process = _load_process(load, load0, span_s)
    everything = [*warm.latencies, *window.latencies]
    for name in engines:
        e = ENGINE_IDS[name]
        ok = [lat for t, eng, _, lat, good in window.latencies if eng == e and good and t_start <= t <= t_end]
        bad = sum(
            1
            for t, eng, rid, _, good in window.latencies
            if eng == e and not good and t_start <= t and not is_connect_error(rid)
        )
        refused = connect_errors(s for s in everything if s[1] == e)  # every failed connect of the run
        st = status.engines[name]
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
            st.process.cpus if st.process is not None else None,
        )
        r["connect_errors"] = dict(sorted(refused.items()))
        r["placement"] = st.placement
        proc = st.process
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
        r["load_process"] = load_process
        r["client_bound"] = load_process is not None and client_bound(
            load_process["cpu_percent"], len(load_process["cpus"]), engine_cpu, st.cpu_share
        )
        note = connection_note(name, settings.clients)
        r["notes"] = [note] if note else []
        out.append(r)
    return out


def _wait_for_traffic(host: EventSource, engines: tuple[str, ...], into: Batch) -> None:
    """Drain into ``into`` until every engine has seen its first request (the load opens all its
    connections before it sends), for at most :data:`TRAFFIC_WAIT_S`."""
    waiting = {ENGINE_IDS[name] for name in engines}
    deadline = time.monotonic() + TRAFFIC_WAIT_S
    while waiting and time.monotonic() < deadline:
        time.sleep(0.05)
        batch = host.drain()
        into.extend(batch)
        waiting -= {e for _, e, *_ in batch.transitions} | {e for _, e, *_ in batch.latencies}


def _collect(host: EventSource, into: Batch, seconds: float) -> None:
    """Drain into ``into`` every 100 ms for ``seconds`` (the bounded buffers never fill)."""
    deadline = time.monotonic() + seconds
    while (left := deadline - time.monotonic()) > 0:
        time.sleep(min(0.1, left))
        into.extend(host.drain())


def _collect_counters(host: EventSource, engines: tuple[str, ...], t_end: int, into: Batch) -> None:
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


def _load_sample(host: EventSource) -> tuple[Any, float | None] | None:
    """The load process's handle and CPU seconds so far (``None`` in process: it is everyone's)."""
    proc = getattr(host, "loadproc", None)
    if proc is None:
        return None
    proc.measure()
    return proc, proc.cpu_seconds()


def _load_process(
    end: tuple[Any, float | None] | None, start: tuple[Any, float | None] | None, span_s: float
) -> dict[str, Any] | None:
    """The load process over the window: pid, CPUs, CPU % (of one core), RSS."""
    if end is None or start is None:
        return None
    proc, used1 = end
    used0 = start[1]
    sample = proc.sample
    cpu = round(100 * (used1 - used0) / span_s, 1) if used0 is not None and used1 is not None and span_s > 0 else None
    return {"pid": proc.pid, "cpus": list(sample.cpus), "cpu_percent": cpu, "rss_mb": _round(sample.rss_mb, 1)}


def _cpu_seconds(host: EventSource) -> dict[str, float]:
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
) -> dict[str, Any]:
    """One engine's figures, in the shape ``syncviz bench --json`` prints (``cpus``: its placement)."""
    lat = Counters(engine)
    fill_latency(lat, latencies_ns)
    has_loop = counters.has_loop
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
        "bound_rps": _round(bound_rps(engine, mode, settings, cpu_share, cpus)),  # type: ignore[arg-type]
        "latency_ms": {k: _round(getattr(lat, f"{k}_ms")) for k in ("p50", "p95", "p99", "max")},
        "loop_lag_ms": (
            {"p50": _round(counters.lag_p50_ms), "p99": _round(counters.lag_p99_ms)}
            if has_loop and counters.lag_p50_ms is not None
            else None
        ),
        "phase_ms": {k: round(v, 3) for k, v in counters.phase_ms.items()},
    }


@contextlib.contextmanager
def bench_lock(path: str = BENCH_LOCK) -> Iterator[None]:
    """Hold the benchmark lock (one benchmark on the machine at a time, as ``flock path cmd`` does);
    a lock inherited from ``flock path cmd`` (the same open file) is already held and reused."""
    inherited = _inherited_fd(path)
    fd = inherited if inherited is not None else os.open(path, os.O_RDWR | os.O_CREAT, 0o666)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        if inherited is None:
            fcntl.flock(fd, fcntl.LOCK_UN)
            os.close(fd)


def _inherited_fd(path: str) -> int | None:
    target = os.path.realpath(path)
    with contextlib.suppress(OSError):
        for name in os.listdir("/proc/self/fd"):
            with contextlib.suppress(OSError):
                if os.path.realpath(f"/proc/self/fd/{name}") == target:
                    return int(name)
    return None


def _round(value: float | None, digits: int = 2) -> float | None:
    return None if value is None else round(value, digits)


def run_bench(scenarios: list[str], **kwargs: Any) -> list[dict[str, Any]]:
    """Every scenario in turn (validated first, and their descriptors checked: a typo or a limit
    fails before anything runs)."""
    for name in scenarios:
        get_scenario(name)
    require_fds(
        scenarios,
        kwargs.get("engines", DEFAULT_ENGINES),
        kwargs.get("together", False),
        kwargs.get("in_process", False),
        **{k: v for k, v in kwargs.items() if k not in _RUN_ARGS},
    )
    results: list[dict[str, Any]] = []
    for name in scenarios:
        results.extend(run_scenario(name, **kwargs))
    return results


_RUN_ARGS = frozenset({"engines", "seconds", "together", "record", "warmup_s", "in_process"})


def notes(results: list[dict[str, Any]]) -> list[str]:
    """Every distinct note of the results, in order (for under the table)."""
    seen: dict[str, None] = {}
    for r in results:
        for note in r.get("notes", ()):
            seen.setdefault(note, None)
        if r.get("client_bound"):
            seen.setdefault(f"{r['engine']}: client-bound (the load process, not the server, was the limit)", None)
    return list(seen)


def table(results: list[dict[str, Any]]) -> Table:
    """The results as a rich table: measured against bound, latency, lag, where time went."""
    t = Table(title="syncviz bench", title_justify="left", header_style="bold")
    for col in (
        "scenario",
        "engine",
        "req/s",
        "bound",
        "of bound",
        "p50 ms",
        "p99 ms",
        "max ms",
        "lag p99",
        "failed",
        "queued/run/blocked/await/yield/ready ms",
    ):
        t.add_column(col, justify="left" if col in ("scenario", "engine") else "right")
    for r in results:
        bound = r["bound_rps"]
        share = f"{100 * r['throughput_rps'] / bound:.0f}%" if bound else "-"
        lat = r["latency_ms"]
        lag = r["loop_lag_ms"]
        ph = r["phase_ms"]
        phases = "/".join(f"{ph[k]:.1f}" for k in ("queued", "running", "blocked", "awaiting", "yielded", "ready"))
        engine = r["engine"] + ("" if r["mode"] == "native" else f" ({r['mode']})")
        t.add_row(
            r["scenario"],
            engine,
            fmt_rate(r["throughput_rps"]),
            fmt_rate(bound) if bound else "-",
            share,
            _fmt(lat["p50"]),
            _fmt(lat["p99"]),
            _fmt(lat["max"]),
            _fmt(lag["p99"]) if lag else "-",
            str(r["failed"]),
            phases,
        )
    return t


def _fmt(value: float | None) -> str:
    return "-" if value is None else f"{value:,.1f}"
