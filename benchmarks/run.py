"""The benchmark report: ``python benchmarks/run.py`` measures everything and writes ``BENCHMARKS.md``.

Every figure is the median of ``--reps`` runs (3) with their min and max, and every ratio is
taken within one run (an engine against its bound in the same window, recording on against off
back to back, syncviz against its bare server back to back) before the median is taken:

- each engine at io-bound with 100 and 1,000 clients, alone and together, against its bound
  (:func:`syncviz.engines.bench.run_scenario`, ``syncviz bench``'s own figures);
- recording overhead: wrk against the zero-latency handler with the servers' recording on and off;
- zero-latency ceilings seen by wrk against ``syncviz serve`` and the bare servers
  (:mod:`ceilings`);
- the app's cost to the engines (``benchmarks/bench_app.py``'s bench-then-app comparison, on these engines);
- RSS per 1,000 connections (:func:`syncviz.engines.claims.rss.rss_per_connection`);
- ``syncviz --help`` and first-frame times, and the test suite's time (:mod:`startup`).

The whole run holds the bench lock (``/tmp/syncviz-bench.lock``, reused when started under
``flock``), so no other benchmark on the machine overlaps it; the report says how long it waited.

    python benchmarks/run.py [--reps 3] [--seconds 2] [--wrk-seconds 3] [--app-seconds 6]
                             [--engines a,b,c] [--no-tests] [--out BENCHMARKS.md] [--json F]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import bench_app
from ceilings import ceilings, ensure_wrk, recording_cost
from figures import Lock, Spread, machine, ratio, restore_cpus
from report import render
from startup import first_frames, help_times, suite_time
from syncviz.engines.bench import run_scenario
from syncviz.engines.claims.rss import rss_per_connection
from syncviz.engines.events import DEFAULT_ENGINES, ENGINES

ROOT = Path(__file__).resolve().parent.parent
OUT = ROOT / "BENCHMARKS.md"
CLIENTS = (100, 1000)
WARMUP_S = 0.5
RSS_CONNECTIONS = 1000


def log(text: str) -> None:
    print(f"run.py: {text}", file=sys.stderr, flush=True)


def bench(engines: tuple[str, ...] | list[str], seconds: float, **kwargs: Any) -> list[dict[str, Any]]:
    """One io-bound ``syncviz bench`` run; this process back on all its CPUs after it."""
    try:
        return run_scenario("io-bound", engines, seconds, warmup_s=WARMUP_S, **kwargs)
    finally:
        restore_cpus()


def bound_section(engines: tuple[str, ...], reps: int, seconds: float) -> dict[str, Any]:
    """io-bound at each client count, each engine alone and then all together, ``reps`` times."""
    rows: dict[tuple[str, int, str], dict[str, Any]] = {}

    def keep(how: str, clients: int, results: list[dict[str, Any]]) -> None:
        for r in results:
            row = rows.setdefault((how, clients, r["engine"]), _bound_row())
            row["rps"].add(r["throughput_rps"])
            row["bound"].add(r["bound_rps"])
            row["of_bound"].add(ratio(r["throughput_rps"], r["bound_rps"]))
            row["p99"].add(r["latency_ms"]["p99"])
            row["lag_p99"].add((r["loop_lag_ms"] or {}).get("p99"))
            row["failed"] += r["failed"]
            row["client_bound"] |= bool(r.get("client_bound"))
            row["placement"] = r.get("placement", "")

    for rep in range(reps):
        for clients in CLIENTS:
            for name in engines:
                keep("alone", clients, bench([name], seconds, clients=clients))
            keep("together", clients, bench(engines, seconds, together=True, clients=clients))
        log(f"io-bound vs bound: run {rep + 1}/{reps}")
    return {"seconds": seconds, "rows": rows}


def _bound_row() -> dict[str, Any]:
    names = ("rps", "bound", "of_bound", "p99", "lag_p99")
    return {**{k: Spread() for k in names}, "failed": 0, "client_bound": False, "placement": ""}


def app_section(engines: tuple[str, ...], reps: int, seconds: float) -> dict[str, Any]:
    """bench_app.py's comparison (``bench --together``, then the app on the same settings), on these
    engines, ``reps`` times at each client count."""
    rows: dict[tuple[int, str], dict[str, Spread]] = {}
    ui: dict[int, dict[str, Spread]] = {}
    for rep in range(reps):
        for clients in CLIENTS:
            base = bench_app.bench_together("io-bound", seconds, clients, engines)
            app = asyncio.run(bench_app.app_run("io-bound", seconds, clients, engines))  # back on every CPU after
            u = ui.setdefault(clients, {"fps": Spread(), "ui_cpu": Spread()})
            u["fps"].add(app["fps"])
            u["ui_cpu"].add(app["ui_cpu_percent"])
            for name, r in bench_app.compare(base, app).items():
                row = rows.setdefault((clients, name), {k: Spread() for k in ("rps", "p99", "bench", "app")})
                row["rps"].add(r["rps_ratio"])
                row["p99"].add(r["p99_ratio"])
                row["bench"].add(r["bench_rps"])
                row["app"].add(r["app_rps"])
        log(f"the app's cost: run {rep + 1}/{reps}")
    return {"seconds": seconds, "rows": rows, "ui": ui, "errors": []}


def rss_section(engines: tuple[str, ...], reps: int) -> dict[str, Any]:
    """KB of RSS per connection held mid-request, :data:`RSS_CONNECTIONS` at once, per engine."""
    rows = {name: Spread() for name in engines}
    errors: dict[str, str] = {}
    for _ in range(reps):
        for name in engines:
            try:
                r = rss_per_connection(name, RSS_CONNECTIONS)
            except (OSError, RuntimeError, ValueError) as exc:
                errors[name] = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
                continue
            rows[name].add(r["kb_per_conn"] if r["waiting"] == RSS_CONNECTIONS else None)
    log("RSS per connection: done")
    return {"connections": RSS_CONNECTIONS, "rows": rows, "errors": errors}


def timed(results: dict[str, Any], key: str, step: Callable[[], Any]) -> None:
    t0 = time.monotonic()
    results[key] = step()
    results.setdefault("section_s", {})[key] = time.monotonic() - t0


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--reps", type=int, default=3, help="runs of every figure (default 3)")
    p.add_argument("--seconds", type=float, default=2.0, help="measured window of each bench run (default 2)")
    p.add_argument("--wrk-seconds", type=float, default=3.0, help="each wrk run (default 3)")
    # 6 s: longer than a threaded request at 1,000 clients (~6.25 s), which a 3 s window's p99 misread
    p.add_argument("--app-seconds", type=float, default=6.0, help="bench_app.py's window (default 6)")
    p.add_argument("--engines", default=",".join(DEFAULT_ENGINES), help="comma-separated (default the app's three)")
    p.add_argument("--no-tests", action="store_true", help="skip timing the test suite (reported n/a)")
    p.add_argument("--out", type=Path, default=OUT, help="where to write the report (default BENCHMARKS.md)")
    p.add_argument("--json", type=Path, default=None, help="also write the raw figures here")
    args = p.parse_args(argv)
    engines = tuple(e.strip() for e in args.engines.split(",") if e.strip())
    unknown = [e for e in engines if e not in ENGINES]
    if unknown or len(engines) < 2 or args.reps < 1:
        print(f"run.py: --engines takes 2-6 of {', '.join(ENGINES)}; --reps at least 1", file=sys.stderr)
        return 2
    t0 = time.monotonic()
    wrk, wrk_how = ensure_wrk()
    res: dict[str, Any] = {"machine": machine(wrk), "wrk_how": wrk_how, "reps": args.reps, "engines": engines}
    log(f"{args.reps} runs of each figure, engines {', '.join(engines)}; waiting for the bench lock")
    with Lock() as lock:
        log(f"holding the bench lock (waited {lock.waited_s:.0f} s)")
        timed(res, "bound", lambda: bound_section(engines, args.reps, args.seconds))
        if wrk is not None:
            timed(res, "ceilings", lambda: ceilings(engines, args.reps, args.wrk_seconds, wrk))
            log("ceilings: done")
            timed(res, "recording", lambda: recording_cost(engines, args.reps, args.wrk_seconds, wrk))
            log("recording overhead: done")
        timed(res, "app", lambda: app_section(engines, args.reps, args.app_seconds))
        timed(res, "rss", lambda: rss_section(engines, args.reps))
        timed(res, "help", lambda: help_times(args.reps))
        timed(res, "first_frame", lambda: first_frames(args.reps, engines[0]))
        log("startup times: done")
    if not args.no_tests:
        timed(res, "suite", suite_time)
        log("test suite: done")
    res["total_s"] = time.monotonic() - t0
    res["lock_wait_s"] = lock.waited_s
    args.out.write_text(render(res))
    if args.json is not None:
        args.json.write_text(json.dumps(_plain(res), indent=1))
    log(f"wrote {args.out} in {res['total_s']:.0f} s ({lock.waited_s:.0f} s of it waiting for the bench lock)")
    return 0


def _plain(obj: object) -> object:
    """``res`` as JSON can hold it: spreads as their dicts, tuple keys joined with ``/``."""
    if isinstance(obj, Spread):
        return obj.as_dict()
    if isinstance(obj, dict):
        return {"/".join(map(str, k)) if isinstance(k, tuple) else str(k): _plain(v) for k, v in obj.items()}
    if isinstance(obj, list | tuple):
        return [_plain(v) for v in obj]
    return obj


if __name__ == "__main__":
    sys.exit(main())
