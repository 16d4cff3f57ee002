"""Benchmark (not a test): each engine's throughput against its Little's-law bound, and what
recording the event stream costs.

    python benchmarks/bench_engines.py [--seconds 3] [--reps 3]

Part 1 runs ``io-bound`` (100 clients, 50 ms of I/O, pool 8) and ``cpu-bound`` one engine at
a time and prints req/s beside the bound. Part 2 runs a zero-latency handler (no I/O, no CPU:
the servers' own overhead dominates) with recording on and off, alternating the order
``reps`` times, and prints the median throughput of each and the overhead. Goal: <= 10%.
Each engine runs in its own process, placed as the app places it (this one keeps to the UI's
CPUs); the whole run holds the bench lock (``/tmp/syncviz-bench.lock``), so no other benchmark
runs at the same time.
"""

from __future__ import annotations

import argparse
import statistics

from rich.console import Console
from rich.table import Table
from syncviz.engines.bench import bench_lock, run_scenario, table
from syncviz.engines.events import ENGINES


def bound_runs(seconds: float) -> list[dict]:
    rows = run_scenario("io-bound", seconds=seconds, clients=100, io_ms=50, pool=8)
    rows += run_scenario("cpu-bound", seconds=seconds)
    return rows


def overhead_runs(seconds: float, reps: int) -> dict[str, dict[bool, list[float]]]:
    out: dict[str, dict[bool, list[float]]] = {e: {True: [], False: []} for e in ENGINES}
    for rep in range(reps):
        for engine in ENGINES:
            order = (True, False) if rep % 2 == 0 else (False, True)
            for record in order:
                (row,) = run_scenario(
                    "io-bound",
                    engines=[engine],
                    seconds=seconds,
                    record=record,
                    clients=50,
                    io_ms=0,
                    cpu_ms=0,
                    warmup_s=0.5,
                )
                out[engine][record].append(row["throughput_rps"])
    return out


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--seconds", type=float, default=3.0)
    p.add_argument("--reps", type=int, default=3)
    args = p.parse_args()
    console = Console(width=160)
    with bench_lock():
        bounds = bound_runs(args.seconds)
        overhead = overhead_runs(args.seconds, args.reps)
    console.print(table(bounds))
    t = Table(
        title="recording overhead (zero-latency handler, 50 clients, one engine at a time)",
        title_justify="left",
        header_style="bold",
    )
    for col in ("engine", "req/s recording on", "req/s recording off", "overhead", "runs"):
        t.add_column(col, justify="right")
    for engine, runs in overhead.items():
        on, off = statistics.median(runs[True]), statistics.median(runs[False])
        t.add_row(
            engine,
            f"{on:,.0f}",
            f"{off:,.0f}",
            f"{100 * (off - on) / off:+.1f}%",
            " ".join(f"{a:,.0f}/{b:,.0f}" for a, b in zip(runs[True], runs[False], strict=True)),
        )
    console.print(t)


if __name__ == "__main__":
    main()
