"""``BENCHMARKS.md`` from the figures ``benchmarks/run.py`` measured: one section per measurement.

Nothing here measures or computes a figure: it lays out the :class:`~figures.Spread` of each
(median, min-max) and says ``n/a`` for what a run could not measure.
"""

from __future__ import annotations

import time
from typing import Any

from figures import NA, Spread

CEILING_GOAL = 0.7  # issue 11: syncviz at least 70% of the bare server


def _table(head: list[str], rows: list[list[str]]) -> list[str]:
    out = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    out += ["| " + " | ".join(r) + " |" for r in rows]
    return [*out, ""]


def render(res: dict[str, Any]) -> str:
    reps = res["reps"]
    lines = [
        "# Benchmarks",
        "",
        f"Written by `python benchmarks/run.py` on {time.strftime('%Y-%m-%d %H:%M %Z')} in {res['total_s']:.0f} s "
        f"({res['lock_wait_s']:.0f} s of it waiting for the bench lock: other benchmarks on this shared machine; "
        "the run then holds it throughout).",
        f"Every figure is the median of {reps} runs with their min and max: `median (min-max)`; every ratio is "
        "taken within one run (measured in the same window, or back to back) before the median is taken. "
        "`n/a`: not measured.",
        "",
    ]
    for part in (_machine, _bound, _ceilings, _recording, _app, _rss, _startup, _sections):
        lines += part(res)
    return "\n".join(lines).rstrip() + "\n"


def _machine(res: dict[str, Any]) -> list[str]:
    m = res["machine"]
    pkgs = ", ".join(f"{k} {v}" for k, v in m["packages"].items())
    load = m["loadavg_at_start"]
    return [
        "## Machine",
        "",
        f"- CPU: {m['cpu_model']}, {m['cores']} cores (this run allowed CPUs {m['cpus_allowed']}), "
        f"shared with other engineers' work (load average {load if load else NA} at the start)",
        f"- OS: {m['kernel']}; Python: {m['python']}; syncviz: commit {m.get('commit', NA)}",
        f"- Packages: {pkgs}",
        f"- wrk: {m['wrk']} ({res['wrk_how']})",
        "",
    ]


def _bound(res: dict[str, Any]) -> list[str]:
    sec = res["bound"]
    rows = []
    for (how, clients, name), r in sec["rows"].items():
        rows.append(
            [
                f"{clients:,}",
                name,
                how,
                r["placement"] or NA,
                r["rps"].fmt(),
                r["bound"].fmt(),
                r["of_bound"].pct(),
                r["p99"].fmt(1),
                r["lag_p99"].fmt(1) if r["lag_p99"].values else "-",
                str(r["failed"]) + (" (client-bound)" if r["client_bound"] else ""),
            ]
        )
    rows.sort(key=lambda r: (r[2] != "alone", int(r[0].replace(",", ""))))
    head = ["clients", "engine", "how", "CPU", "req/s", "bound", "of bound", "p99 ms", "loop lag p99 ms", "failed"]
    return [
        "## io-bound against the bound",
        "",
        f"`syncviz bench --scenario io-bound --clients N --seconds {sec['seconds']:g}` (50 ms of I/O a request, "
        "threaded pool 8; a warm-up of 0.5 s), each engine alone in its process and then all of them at once "
        "(`--together`, as the app runs them); `bound` is Little's law at those settings for that placement, "
        "`of bound` is req/s over the bound of the same run.",
        "",
        *_table(head, rows),
    ]


def _ceilings(res: dict[str, Any]) -> list[str]:
    sec = res.get("ceilings")
    out = ["## Zero-latency ceilings, seen by wrk", ""]
    if sec is None:
        return [*out, f"n/a: wrk {res['wrk_how']}.", ""]
    cpus = ",".join(map(str, sec["load_cpus"]))
    out += [
        f"`wrk -t1 -c{sec['connections']} -d{sec['seconds']:g}s` (pinned to cpu {cpus}) against "
        "`syncviz serve --headless --io-ms 0 --cpu-ms 0 --engines NAME` (one engine in its process, "
        "instrumented as always, its digest process beside it, the built-in load off) and against the "
        "smallest server of the same model in `benchmarks/bare/` (standard library and gevent only), pinned "
        "to the CPU syncviz's engine process was found on. Each server runs alone on the machine, as each "
        "bare server does: one at a time, syncviz, the bare servers and syncviz unrecorded (the order "
        "alternating between runs), and `syncviz / bare` is taken within each run; goal: at least "
        f"{CEILING_GOAL:.0%}. With the three engines in one serve, as the app runs them, the two idle ones "
        "took ~4 points from the one measured (asyncio 68% beside them, 72% beside one: 3 runs each); the "
        "next section's `req/s recording` is that serve. `same bytes`: the bare server's answer "
        "to `GET /` is byte for byte syncviz's. `unrecorded`: in the same runs, the serve with "
        "`--no-record` (no recording, no digest, the same server code): `unrecorded / bare` is what the "
        "engine's own request path costs against the bare server (httptools parsing, limits, routing, "
        "timeouts, counts); the rest of the gap, from `unrecorded / bare` down to `syncviz / bare`, is the "
        "instrument (see the next section).",
        "",
    ]
    rows = []
    for name, r in sec["engines"].items():
        med = r["ratio"].median
        goal = NA if med is None else ("met" if med >= CEILING_GOAL else "not met")
        same = NA if r["same_bytes"] is None else ("yes" if r["same_bytes"] else "NO")
        where = "cpu " + ",".join(map(str, r["cpus"]))
        ratios = [r["ratio"].pct(1), goal, r.get("unrecorded_ratio", Spread()).pct(1)]
        rows.append([name, where, r["syncviz"].fmt(), r["bare"].fmt(), *ratios, same, str(r["errors"])])
    head = ["engine", "CPU", "syncviz req/s", "bare req/s", "syncviz / bare", "goal", "unrecorded / bare", "same bytes"]
    head.append("wrk errors")
    return [*out, *_table(head, rows)]


def _recording(res: dict[str, Any]) -> list[str]:
    sec = res.get("recording")
    out = ["## Recording overhead", ""]
    if sec is None:
        return [*out, f"n/a: wrk {res['wrk_how']}.", ""]
    rows = []
    for name, r in sec["rows"].items():
        cost = Spread([1 - v for v in r["ratio"].values])
        rows.append([name, r["on"].fmt(), r["off"].fmt(), r["ratio"].pct(), cost.pct(), str(r["errors"])])
    cpus = ",".join(map(str, sec["load_cpus"]))
    return [
        *out,
        f"`wrk -t1 -c{sec['connections']} -d{sec['seconds']:g}s` (pinned to cpu {cpus}) against "
        "`syncviz serve --headless --io-ms 0 --cpu-ms 0` with the servers' recording on (as always) and off "
        "(`--no-record`): a zero-latency handler, where recording and digesting are as large a share of the "
        "work as they can be. A fresh serve for each, the order alternating; `on / off` taken within each run. "
        "Measured by wrk, not by `bench`: syncviz's own load process was the limit with recording off.",
        "",
        *_table(["engine", "req/s recording", "req/s not recording", "on / off", "cost", "wrk errors"], rows),
    ]


def _app(res: dict[str, Any]) -> list[str]:
    sec = res["app"]
    out = [
        "## The app's cost to the engines",
        "",
        f"`benchmarks/bench_app.py`'s comparison on {', '.join(res['engines'])}, io-bound, {sec['seconds']:g} s "
        "windows: `syncviz bench --together`, then the app (headless, 200x50, its real timers) on the same "
        "settings, the ratio app / bench taken from that pair, "
        f"{res['reps']} pairs at each client count.",
        "",
    ]
    if sec["errors"]:
        out += [f"Runs that could not start: {'; '.join(sec['errors'])}", ""]
    rows = [
        [f"{c:,}", name, r["bench"].fmt(), r["app"].fmt(), r["rps"].pct(), r["p99"].fmt(2, "x")]
        for (c, name), r in sorted(sec["rows"].items())
    ]
    out += _table(["clients", "engine", "bench req/s", "app req/s", "app / bench req/s", "app / bench p99"], rows)
    ui = [[f"{c:,}", u["ui_cpu"].fmt(1, "%"), u["fps"].fmt(1)] for c, u in sorted(sec["ui"].items())]
    return [*out, *_table(["clients", "the app's CPU (of one core)", "frames/s"], ui)]


def _rss(res: dict[str, Any]) -> list[str]:
    sec = res["rss"]
    n = sec["connections"]
    rows = []
    for name, s in sec["rows"].items():
        note = sec["errors"].get(name, "")
        rows.append([name, s.fmt(2), s.fmt(1, scale=n / 1024) if s.values else NA, note])
    return [
        f"## RSS per {n:,} connections",
        "",
        f"One engine alone in a process, {n:,} connections each mid-request (a long wait), the growth of the "
        "process's VmRSS (`syncviz.engines.claims.rss`, the `memory` claim's probe).",
        "",
        *_table(["engine", "KB per connection", f"MB per {n:,}", "error"], rows),
    ]


def _startup(res: dict[str, Any]) -> list[str]:
    out = [
        "## Startup and the test suite",
        "",
        f"- `syncviz --help`: {res['help'].fmt(2, ' s')}",
        f"- first frame of `syncviz` on a 200x50 pseudo-terminal (spawn to the panels drawn, engine processes "
        f"started): {res['first_frame'].fmt(2, ' s')}",
    ]
    suite = res.get("suite")
    if suite is None:
        out.append("- `pytest` (the README's test command): n/a (skipped: `--no-tests`)")
    else:
        counts = ", ".join(f"{v} {k}" for k, v in suite["counts"].items()) or NA
        took = NA if suite["seconds"] is None else f"{suite['seconds']:.1f} s"
        out.append(
            f"- `pytest` (the README's test command, its default run: the timing tests left out; one run): "
            f"{took}; {counts}; {suite['status']}"
        )
        for name in suite.get("failed_tests", []):
            out.append(f"  - failed: `{name}`")
    return [*out, ""]


def _sections(res: dict[str, Any]) -> list[str]:
    times = ", ".join(f"{k} {v:.0f} s" for k, v in res.get("section_s", {}).items())
    return ["## This run", "", f"Time per section (wall, lock waits included): {times}.", ""]
