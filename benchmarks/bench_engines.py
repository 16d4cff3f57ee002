"""Benchmark (not a test): each engine's throughput against its Little's-law bound, and what
recording the event stream costs.

    python benchmarks/bench_engines.py [--seconds 3] [--reps 3]

Part 1 runs ``io-bound`` (100 clients, 50 ms of I/O, pool 8) and ``cpu-bound`` one engine at
a time and prints req/s beside the bound. Part 2 measures, with wrk, a zero-latency handler (no
I/O, no CPU: the servers' own overhead dominates) against ``syncviz serve`` with recording on
and off, alternating the order ``reps`` times (:func:`ceilings.recording_cost`, the same as
``benchmarks/run.py``'s section): syncviz's own load process was the limit there with recording
off, which made recording look free. Each engine runs in its own process, placed as the app
places it; the whole run holds the bench lock (``/tmp/syncviz-bench.lock``), so no other
benchmark runs at the same time.
"""

from __future__ import annotations

import argparse

from ceilings import ensure_wrk, recording_cost
from rich.console import Console
from rich.table import Table
from syncviz.engines.bench import bench_lock, run_scenario, table
from syncviz.engines.events import DEFAULT_ENGINES


def bound_runs(seconds: float) -> list[dict]:
    rows = run_scenario("io-bound", seconds=seconds, clients=100, io_ms=50, pool=8)
    rows += run_scenario("cpu-bound", seconds=seconds)
    return rows


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--seconds", type=float, default=3.0)
    p.add_argument("--reps", type=int, default=3)
    args = p.parse_args()
    console = Console(width=160)
    wrk, how = ensure_wrk()
    with bench_lock():
        bounds = bound_runs(args.seconds)
        cost = recording_cost(DEFAULT_ENGINES, args.reps, args.seconds, wrk) if wrk else None
    console.print(table(bounds))
    if cost is None:
        console.print(f"recording overhead: not measured, wrk {how}")
        return
    t = Table(
        title=f"recording overhead (wrk -c{cost['connections']}, zero-latency handler, syncviz serve)",
        title_justify="left",
        header_style="bold",
    )
    for col in ("engine", "req/s recording on", "req/s recording off", "on / off", "wrk errors"):
        t.add_column(col, justify="right")
    for engine, row in cost["rows"].items():
        t.add_row(engine, row["on"].fmt(), row["off"].fmt(), row["ratio"].pct(), str(row["errors"]))
    console.print(t)


if __name__ == "__main__":
    main()
