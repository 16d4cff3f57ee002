"""``syncviz bench``: run scenarios headless and measure each engine against its bound.

Each run starts the engine processes (:class:`~syncviz.engines.child.ChildHost`: one
engine alone on its core by default, all of them at once with ``together``, placed as the
app places them; ``in_process`` runs the literal one-process host instead), lets the load
generator open its connections and warm up, then measures a window (:mod:`~syncviz.engines.window`,
as the claims' sessions do). Throughput and latency come from the load generator's samples inside
the window; phase means and loop lag from the servers' transitions, through the same
:class:`~syncviz.engines.stats.StreamStats` the app uses.

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
import os
from collections.abc import Iterator
from typing import Any

from rich.table import Table

from .child import ChildHost
from .events import DEFAULT_ENGINES, ENGINES, Batch
from .host import EngineHost
from .limits import require_fds
from .placement import set_cpus
from .scenarios import get_scenario
from .settings import fmt_rate
from .source import EventSource, RunBroken, what_died
from .window import collect, measure_window, wait_for_traffic, window_results

WARMUP_S = 1.0
BENCH_LOCK = "/tmp/syncviz-bench.lock"


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
    """Measure ``scenario`` on each engine; one result dict per engine (see
    :func:`~syncviz.engines.window.result`). ``cpus``: the CPUs to place the engine processes and
    the load on (default: this process's).

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
        wait_for_traffic(host, engines, warm)
        collect(host, warm, warmup_s)
        w = measure_window(host, warm, seconds, counters=engines if not in_process and record else ())
    died = what_died(w.status)
    if died:  # the run's figures would be a half-run's, shown as a whole one's
        raise RunBroken(f"{died} during the run: no figures from it")
    return window_results(w, scenario, engines, seconds, together)


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
            (fmt_rate(bound) + (" offered" if bound == r.get("offered_rps") else "")) if bound else "-",
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
