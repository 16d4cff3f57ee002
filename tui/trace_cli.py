"""``syncviz trace``: a live run, or a recording, as a Perfetto / Chrome trace (JSON).

``syncviz trace --scenario io-bound --seconds 2 --out t.json`` runs the three engines (each in its
own process, as the app does) for that long and writes what they did; ``syncviz trace --from
F --out t.json`` writes a recording's. ui.perfetto.dev (or chrome://tracing) opens the file: see
:mod:`syncviz.engines.trace` for what is in it. The output is checked before anything runs (an
unwritable path is one line and exit 2), written to a temporary file beside it and moved into
place only when complete, so a failed or interrupted run leaves no half file behind.
"""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from syncviz.engines.output import OutputFile

DEFAULT_SECONDS = 2.0
DRAIN_S = 1 / 30


class TraceUsageError(ValueError):
    """A bad ``trace`` flag or output path; printed as one line, exit 2."""


def add_trace_parser(sub: Any, add_knobs: Callable[[argparse.ArgumentParser], None] | None = None) -> None:
    """Add the ``trace`` subcommand to ``syncviz``'s subparsers (``add_knobs``: the shared knob flags)."""
    t = sub.add_parser(
        "trace",
        help="export a live run or a recording as a Perfetto / Chrome trace (JSON for ui.perfetto.dev)",
        description="Write Chrome Trace Event JSON that ui.perfetto.dev and chrome://tracing open: one process "
        "per engine, one thread per worker with the requests it ran, each request as an async slice with its "
        "phases, and in-flight, queued and req/s counters. Either run the engines live (--scenario, --seconds) "
        "or read a recording (--from).",
    )
    t.add_argument("--out", required=True, metavar="FILE.json", help="where to write the trace")
    t.add_argument("--from", dest="source", metavar="RECORDING", help="a recording made by `syncviz record`")
    t.add_argument("--scenario", metavar="NAME", help="live: the scenario to run (default io-bound)")
    t.add_argument("--seconds", type=float, metavar="S", help=f"live: how long to run (default {DEFAULT_SECONDS:g})")
    if add_knobs is not None:
        add_knobs(t)


def run_trace(args: argparse.Namespace) -> int:
    """``syncviz trace``: one line on stdout when written; bad input is one line on stderr and exit 2."""
    try:
        return _run(args)
    except TraceUsageError as exc:
        print(f"syncviz: error: {exc}", file=sys.stderr)
        return 2


def _run(args: argparse.Namespace) -> int:
    from syncviz.engines.trace import write_trace
    from syncviz.engines.trace_collect import TraceCollector

    overrides = _check(args)
    out = Path(args.out)
    output = _open_output(out)  # before any engine starts or any recording is read
    try:
        collector = TraceCollector()
        if args.source:
            what = _read_recording(args.source, collector)
        else:
            what = _run_live(args.scenario, args.seconds, overrides, collector)
        try:
            summary = write_trace(output.stream, collector)
            output.commit()
        except OSError as exc:  # the disk filled, or the device refused (/dev/full)
            raise TraceUsageError(f"cannot write {out}: {exc.strerror or exc}") from None
    finally:
        output.discard()
    unfinished = f" ({summary.unfinished} unfinished)" if summary.unfinished else ""
    print(
        f"wrote {out}: {what}, {len(summary.engines)} engines, {summary.requests} requests{unfinished}, "
        f"{summary.slices} slices, {summary.counters} counter samples, {summary.events} events "
        "(open it in ui.perfetto.dev)"
    )
    if collector.dropped:
        print(f"syncviz: {collector.dropped} drains overflowed: their oldest records are missing", file=sys.stderr)
    return 0


def _check(args: argparse.Namespace) -> dict[str, Any]:
    """Validate the flags (live or recording); the knobs the user set."""
    from syncviz.engines.scenarios import DEFAULT_SCENARIO, get_scenario

    from .cli_args import knob_overrides

    overrides = knob_overrides(args)
    if args.source:
        given = [
            flag for flag, value in (("--scenario", args.scenario), ("--seconds", args.seconds)) if value is not None
        ]
        given += [f"--{k.replace('_', '-')}" for k in overrides]
        if given:
            raise TraceUsageError(f"--from reads a recording: {', '.join(given)} cannot change it")
        return overrides
    args.scenario = args.scenario or DEFAULT_SCENARIO
    get_scenario(args.scenario)  # an unknown one is a one-line SettingsError, exit 2
    if args.seconds is None:
        args.seconds = DEFAULT_SECONDS
    if not 0.5 <= args.seconds <= 600:
        raise TraceUsageError(f"--seconds must be between 0.5 and 600, not {args.seconds:g}")
    return overrides


def _open_output(out: Path) -> OutputFile:
    """The file ``out`` opened to be written whole (proof that it can be written), or a one-line error."""
    try:
        return OutputFile(out, text=True)
    except OSError as exc:
        raise TraceUsageError(f"cannot write {out}: {exc.strerror or exc}") from None


def _read_recording(path: str, collector: Any) -> str:
    """Feed every batch of the recording at ``path``; a bad file raises a one-line RecordingError."""
    from syncviz.engines.recording import Replay

    replay = Replay.from_file(path)
    batches = 0
    while not replay.finished:
        collector.feed(replay.drain())
        batches += 1
    return f"{batches} batches of {path}"


def _run_live(scenario: str, seconds: float, overrides: dict[str, Any], collector: Any) -> str:
    """Run the engines (each in its process) for ``seconds``, draining every ~33 ms into ``collector``."""
    from syncviz.engines.child import ChildHost
    from syncviz.engines.events import DEFAULT_ENGINES
    from syncviz.engines.limits import require_fds

    require_fds([scenario], DEFAULT_ENGINES, True, False, **overrides)
    with ChildHost(scenario=scenario, stream="full", **overrides) as host:
        end = time.monotonic() + seconds
        while time.monotonic() < end:
            time.sleep(DRAIN_S)
            collector.feed(host.drain())
        collector.feed(host.drain())
        if not collector.info:
            collector.info = host.info()
    return f"{seconds:g} s of {scenario}"
