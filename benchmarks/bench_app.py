"""What the live app costs the engines it shows, at 100, 1,000 and 10,000 clients.

For each client count it runs ``syncviz bench --together`` (no UI) and then the app, headless
at 200x50 with its real timers, on the child-process engine host with the same settings
(``stream="digest"``, as ``syncviz`` runs it; this process keeps to the UI's CPUs), and compares
each engine's req/s and p99 as the app's own counters report them. 10,000 clients run on the
loop engines only (``asyncio,gevent``); when the descriptor limit cannot hold both at once (the
load process needs 2 x 10,000 sockets), each runs alone, app and bench alike, and the JSON says
``"together": false``. Every measured run holds the bench lock (``/tmp/syncviz-bench.lock``;
taken from the parent when run under ``flock``).

Goal (issue 9): at 100 and 1,000 clients, with the app req/s >= 95% of the bench and p99 <= 1.2x.
Headless runs miss what a real terminal's writes cost (measure fps in tmux for that).

    python benchmarks/bench_app.py [--seconds 6] [--clients 100,1000,10000] [--pairs 3] [--json]

Each client count runs ``--pairs`` bench-then-app pairs; each ratio is taken within its pair and
the figures printed are the medians over the pairs (the JSON keeps every pair's ratios).

``--json`` prints ``{"clients": {"100": {"fps": f, "ui_cpu_percent": f, "engines": {name:
{"rps_ratio": f, "p99_ratio": f, ...}}, ...}, ...}, ...}``. Exit status 0 when every engine meets
the goal at 100 and 1,000 clients, 1 otherwise, 2 when a run cannot start.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import subprocess
import sys
import time
from typing import Any

from figures import restore_cpus
from syncviz.engines.bench import bench_lock
from syncviz.engines.child import ChildHost
from syncviz.engines.events import DEFAULT_ENGINES as ENGINES  # the three the app opens with
from syncviz.engines.limits import FdLimitError, require_fds
from syncviz.engines.placement import set_cpus
from syncviz.tui.app import SyncvizApp

WARMUP_S = 2.0  # after the first answers reach the app (10,000 clients take seconds to connect)
TRAFFIC_WAIT_S = 30.0
SIZE = (200, 50)
POLL_S = 0.05
LOOP_ENGINES = ("asyncio", "gevent")
LOOP_ONLY_FROM = 10_000  # client counts from here on run the loop engines only
GOAL_COUNTS = (100, 1000)
RPS_GOAL, P99_GOAL = 0.95, 1.2


def bench_together(scenario: str, seconds: float, clients: int, engines: tuple[str, ...]) -> dict[str, Any]:
    """``syncviz bench --together`` at these settings, in its own process; results by engine."""
    code = "import sys; from syncviz.tui.cli import main; sys.exit(main(sys.argv[1:]))"
    cmd = [sys.executable, "-c", code, "bench", "--together", "--json", "--scenario", scenario]
    cmd += ["--seconds", str(seconds), "--clients", str(clients), "--engines", ",".join(engines)]
    with bench_lock():
        done = subprocess.run(cmd, capture_output=True, text=True)
    if done.returncode != 0:
        raise RuntimeError(done.stderr.strip().splitlines()[-1] if done.stderr.strip() else f"exit {done.returncode}")
    return {r["engine"]: r for r in json.loads(done.stdout)["results"]}


async def app_run(scenario: str, seconds: float, clients: int, engines: tuple[str, ...]) -> dict[str, Any]:
    """The app on these engines: each engine's req/s and p99 from the app's counters, its fps and CPU."""
    with bench_lock():
        child = ChildHost(scenario=scenario, engines=engines, stream="digest", clients=clients).start()
        set_cpus(child.placement.ui)  # the drawing keeps off the engines' cores, as the app does
        try:
            app = SyncvizApp(child, start_info=child.info())
            async with app.run_test(size=SIZE) as pilot:
                deadline = time.monotonic() + TRAFFIC_WAIT_S
                while time.monotonic() < deadline and not all(app.board.stats[n].completed for n in engines):
                    await pilot.pause(0.1)
                await pilot.pause(WARMUP_S)
                measured = await _window(app, engines, seconds)
                await pilot.press("q")
            return measured
        finally:
            child.close()
            # Back on every CPU: the next bench (a subprocess) inherits this process's CPUs, and
            # kept to the UI's it ran its engines and load on one core (0.65x the req/s it gets).
            restore_cpus()


async def _window(app: SyncvizApp, engines: tuple[str, ...], seconds: float) -> dict[str, Any]:
    """Poll the app's counters for ``seconds``. req/s is taken between the first and the last change
    of each engine's ``completed`` (the counters arrive a few times a second, not continuously)."""
    stats = app.board.stats
    last = {name: stats[name].completed for name in engines}
    changes: dict[str, list[tuple[float, int]]] = {name: [] for name in engines}
    t0, cpu0, frames0 = time.monotonic(), time.process_time(), app._frames
    while time.monotonic() - t0 < seconds:
        await asyncio.sleep(POLL_S)
        for name in engines:
            value = stats[name].completed
            if value != last[name]:
                last[name] = value
                changes[name].append((time.monotonic(), value))
    span = time.monotonic() - t0
    cpu, frames = time.process_time() - cpu0, app._frames - frames0
    counters = stats.counters()
    out: dict[str, Any] = {
        "fps": frames / span,
        "ui_cpu_percent": 100 * cpu / span,
        "engines": {},
    }
    for name in engines:
        seen = changes[name]
        rps = (seen[-1][1] - seen[0][1]) / (seen[-1][0] - seen[0][0]) if len(seen) >= 2 else 0.0
        out["engines"][name] = {"rps": rps, "p99_ms": counters[name].p99_ms}
    return out


def compare(base: dict[str, Any], app: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """Per engine: the app's req/s and p99 against the bench's, and whether they meet the goal."""
    out = {}
    for name, measured in app["engines"].items():
        b = base[name]
        bench_rps, bench_p99 = b["throughput_rps"], b["latency_ms"]["p99"]
        app_p99 = measured["p99_ms"]
        rps_ratio = measured["rps"] / bench_rps if bench_rps else 0.0
        p99_ratio = app_p99 / bench_p99 if bench_p99 and app_p99 is not None else float("inf")
        out[name] = {
            "rps_ratio": round(rps_ratio, 3),
            "p99_ratio": round(p99_ratio, 3) if p99_ratio != float("inf") else None,
            "bench_rps": bench_rps,
            "app_rps": round(measured["rps"], 1),
            "bench_p99_ms": bench_p99,
            "app_p99_ms": None if app_p99 is None else round(app_p99, 1),
            "client_bound": bool(b.get("client_bound")),
            "meets_goal": rps_ratio >= RPS_GOAL and p99_ratio <= P99_GOAL,
        }
    return out


def measure(scenario: str, seconds: float, clients: int) -> dict[str, Any]:
    """One client count: together when the descriptors allow it, else each engine alone."""
    engines = LOOP_ENGINES if clients >= LOOP_ONLY_FROM else ENGINES
    try:
        require_fds([scenario], engines, together=True, clients=clients)
        groups = [engines]
        note = None
    except FdLimitError as exc:
        require_fds([scenario], engines, together=False, clients=clients)  # alone, or the line says why not
        groups = [(name,) for name in engines]
        note = f"one engine at a time: {exc}"
    rows: dict[str, dict[str, Any]] = {}
    fps, cpu = [], []
    for group in groups:
        base = bench_together(scenario, seconds, clients, group)
        app = asyncio.run(app_run(scenario, seconds, clients, group))
        fps.append(app["fps"])
        cpu.append(app["ui_cpu_percent"])
        for name, row in compare(base, app).items():
            if len(groups) > 1:
                row.update(fps=round(app["fps"], 1), ui_cpu_percent=round(app["ui_cpu_percent"], 1))
            rows[name] = row
    entry = {
        "fps": round(min(fps), 1),  # of the worst run when they ran one at a time
        "ui_cpu_percent": round(max(cpu), 1),
        "engines": rows,
        "together": len(groups) == 1,
    }
    if note:
        entry["note"] = note
    return entry


def combine(entries: list[dict[str, Any]]) -> dict[str, Any]:
    """Several pairs at one client count as one entry: each figure the median over the pairs (each
    ratio taken within its pair first), with every pair's ratios under ``pairs``."""
    first = entries[0]
    out: dict[str, Any] = {
        "fps": _median([e["fps"] for e in entries]),
        "ui_cpu_percent": _median([e["ui_cpu_percent"] for e in entries]),
        "engines": {},
        "together": all(e["together"] for e in entries),
    }
    if "note" in first:
        out["note"] = first["note"]
    for name in first["engines"]:
        rows = [e["engines"][name] for e in entries]
        row: dict[str, Any] = {
            key: _median([r[key] for r in rows])
            for key in ("rps_ratio", "p99_ratio", "bench_rps", "app_rps", "bench_p99_ms", "app_p99_ms")
        }
        row["client_bound"] = any(r["client_bound"] for r in rows)
        row["pairs"] = [{"rps_ratio": r["rps_ratio"], "p99_ratio": r["p99_ratio"]} for r in rows]
        row["meets_goal"] = (
            row["rps_ratio"] is not None
            and row["p99_ratio"] is not None
            and row["rps_ratio"] >= RPS_GOAL
            and row["p99_ratio"] <= P99_GOAL
        )
        out["engines"][name] = row
    return out


def _median(values: list[float | None]) -> float | None:
    known = sorted(v for v in values if v is not None)
    if not known:
        return None
    mid = len(known) // 2
    return round(known[mid] if len(known) % 2 else (known[mid - 1] + known[mid]) / 2, 3)


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--seconds", type=float, default=6.0, help="measured window of each run (default 6)")
    p.add_argument("--scenario", default="io-bound")
    p.add_argument("--clients", default="100,1000,10000", help="comma-separated client counts")
    p.add_argument("--pairs", type=int, default=3, help="bench-then-app pairs per client count (default 3)")
    p.add_argument("--json", action="store_true")
    args = p.parse_args()
    try:
        counts = [int(c) for c in args.clients.split(",") if c.strip()]
    except ValueError:
        print(f"bench_app: --clients must be whole numbers, not {args.clients!r}", file=sys.stderr)
        return 2
    results: dict[str, Any] = {}
    try:
        for clients in counts:
            pairs = [measure(args.scenario, args.seconds, clients) for _ in range(max(1, args.pairs))]
            results[str(clients)] = combine(pairs)
    except (FdLimitError, RuntimeError) as exc:
        print(f"bench_app: {exc}", file=sys.stderr)
        return 2
    ok = all(row["meets_goal"] for c in GOAL_COUNTS if str(c) in results for row in results[str(c)]["engines"].values())
    summary = {
        "scenario": args.scenario,
        "seconds": args.seconds,
        "pairs": args.pairs,
        "clients": results,
        "meets_goal": ok,
    }
    if args.json:
        print(json.dumps(summary))
    else:
        _print(summary)
    return 0 if ok else 1


def _print(summary: dict[str, Any]) -> None:
    print(
        f"{summary['scenario']}, {summary['seconds']:g} s a run, medians of {summary['pairs']} pairs;"
        f" app headless {SIZE[0]}x{SIZE[1]}"
    )
    head = f"{'clients':>7} {'engine':9} {'bench rps':>10} {'app rps':>9} {'ratio':>6} {'bench p99':>10} {'app p99':>8}"
    print(head + " ratio")
    for clients, entry in summary["clients"].items():
        for name, r in entry["engines"].items():
            p99 = "-" if r["p99_ratio"] is None else f"{r['p99_ratio']:.2f}"
            app_p99 = "-" if r["app_p99_ms"] is None else f"{r['app_p99_ms']:.1f}"
            flags = ("" if r["meets_goal"] else "  MISSES GOAL") + ("  client-bound" if r["client_bound"] else "")
            print(
                f"{clients:>7} {name:9} {r['bench_rps']:>10,.0f} {r['app_rps']:>9,.0f} {r['rps_ratio']:>6.2f} "
                f"{r['bench_p99_ms']:>10.1f} {app_p99:>8} {p99:>5}{flags}"
            )
        together = "" if entry["together"] else " (one engine at a time)"
        print(f"{'':>7} UI process: {entry['ui_cpu_percent']}% of a CPU, {entry['fps']} frames/s{together}")


if __name__ == "__main__":
    sys.exit(main())
