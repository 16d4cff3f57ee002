"""What the live app costs the engines it shows.

Runs ``syncviz bench --together`` (no UI) and then the app, headless at 200x50 with its
real timers, on the default child-process engine host with the same settings, and
compares each engine's req/s and p99 as the app's own stream reports them.

Goal (issue 3): with the app, req/s >= 90% of the bench and p99 <= 1.3x.

    flock /tmp/syncviz-bench.lock python benchmarks/bench_app.py [--seconds 8] [--scenario io-bound]

Exit status 0 when every engine meets the goal, 1 otherwise.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import subprocess
import sys
import time
from typing import Any

from syncviz.engines.child import ChildHost
from syncviz.tui.app import SyncvizApp
from syncviz.tui.launch import keep_off_engine_cpu

WARMUP_S = 3.0
SIZE = (200, 50)


def bench_together(scenario: str, seconds: float) -> dict[str, dict[str, Any]]:
    code = "import sys; from syncviz.tui.cli import main; sys.exit(main(sys.argv[1:]))"
    cmd = [sys.executable, "-c", code, "bench", "--together", "--json"]
    cmd += ["--scenario", scenario, "--seconds", str(seconds)]
    out = subprocess.run(cmd, check=True, capture_output=True, text=True).stdout
    return {r["engine"]: r for r in json.loads(out)["results"]}


async def app_run(scenario: str, seconds: float) -> dict[str, Any]:
    child = ChildHost(scenario=scenario).start()
    keep_off_engine_cpu()
    try:
        app = SyncvizApp(child, start_info=child.info())
        async with app.run_test(size=SIZE) as pilot:
            await pilot.pause(WARMUP_S)
            stats = app.board.stats
            start = {e.engine: e.completed for e in stats.engines}
            t0, cpu0, frames0 = stats.last_t_ns, time.process_time(), app._frames
            await pilot.pause(seconds)
            t1, cpu1, frames1 = stats.last_t_ns, time.process_time(), app._frames
            counters = stats.counters()
            span = (t1 - t0) / 1e9
            out: dict[str, Any] = {
                "engines": {
                    name: {
                        "rps": (stats[name].completed - start[name]) / span,
                        "p99_ms": counters[name].p99_ms,
                    }
                    for name in start
                },
                "ui_cpu_pct": 100 * (cpu1 - cpu0) / span,
                "fps": (frames1 - frames0) / span,
                "frame_ms_mean": sum(app.frame_ms) / max(1, len(app.frame_ms)),
            }
            await pilot.press("q")
        return out
    finally:
        child.close()


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--seconds", type=float, default=8.0)
    p.add_argument("--scenario", default="io-bound")
    p.add_argument("--json", action="store_true")
    args = p.parse_args()
    base = bench_together(args.scenario, args.seconds)
    ui = asyncio.run(app_run(args.scenario, args.seconds))
    ok = True
    rows = []
    for name, measured in ui["engines"].items():
        b = base[name]
        rps_ratio = measured["rps"] / b["throughput_rps"] if b["throughput_rps"] else 0.0
        p99_ratio = (measured["p99_ms"] or 0) / b["latency_ms"]["p99"] if b["latency_ms"]["p99"] else 0.0
        good = rps_ratio >= 0.9 and p99_ratio <= 1.3
        ok &= good
        rows.append(
            {
                "engine": name,
                "bench_rps": b["throughput_rps"],
                "app_rps": round(measured["rps"], 1),
                "rps_ratio": round(rps_ratio, 3),
                "bench_p99_ms": b["latency_ms"]["p99"],
                "app_p99_ms": round(measured["p99_ms"] or 0, 1),
                "p99_ratio": round(p99_ratio, 3),
                "meets_goal": good,
            }
        )
    summary = {
        "scenario": args.scenario,
        "seconds": args.seconds,
        "engines": rows,
        "ui_cpu_pct": round(ui["ui_cpu_pct"], 1),
        "fps": round(ui["fps"], 1),
        "frame_ms_mean": round(ui["frame_ms_mean"], 1),
        "meets_goal": ok,
    }
    if args.json:
        print(json.dumps(summary))
    else:
        print(f"{args.scenario}, {args.seconds:g} s; app headless {SIZE[0]}x{SIZE[1]}")
        print(
            f"{'engine':9} {'bench rps':>10} {'app rps':>9} {'ratio':>6} {'bench p99':>10} {'app p99':>8} {'ratio':>6}"
        )
        for r in rows:
            print(
                f"{r['engine']:9} {r['bench_rps']:>10,.0f} {r['app_rps']:>9,.0f} {r['rps_ratio']:>6.2f} "
                f"{r['bench_p99_ms']:>10.1f} {r['app_p99_ms']:>8.1f} {r['p99_ratio']:>6.2f}"
                + ("" if r["meets_goal"] else "  MISSES GOAL")
            )
        print(
            f"UI process: {summary['ui_cpu_pct']}% of a CPU, {summary['fps']} frames/s, "
            f"{summary['frame_ms_mean']} ms CPU per frame"
        )
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
