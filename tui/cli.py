"""The ``syncviz`` command: the app by default; ``bench``, ``claims``, ``scenarios``, ``record``, ``replay``, ``serve``.

Bad input (a negative count, an unknown scenario or engine, a port in use, an unreadable
recording, more clients than the file-descriptor limit holds) is one line on stderr and exit
status 2, never a traceback. Textual is imported only when the app really opens, so the
headless commands start fast. Connections that failed during a bench or a recording are
summarised in one line on stderr at the end (``syncviz: 37 connections failed (ECONNREFUSED 30)``).
"""

from __future__ import annotations

import argparse
import json
import signal
import sys
from collections import Counter
from typing import Any

from syncviz.engines.base import EngineError
from syncviz.engines.events import DEFAULT_ENGINES
from syncviz.engines.limits import FdLimitError
from syncviz.engines.output import READER_GONE, GuardedStdout, StdoutError, silence_stdout
from syncviz.engines.recording_format import RecordingError
from syncviz.engines.scenarios import DEFAULT_SCENARIO, SCENARIOS
from syncviz.engines.settings import SettingsError
from syncviz.engines.source import RunBroken
from syncviz.tui.cli_args import UsageError, build_parser, engines_arg, knob_overrides
from syncviz.tui.signals import exit_status, interrupt_on_signals


def main(argv: list[str] | None = None) -> int:
    stdout = sys.stdout
    try:
        sys.stdout = GuardedStdout(stdout)  # type: ignore[assignment]
        args = build_parser().parse_args(argv)
        if args.command is None:
            sys.stdout = stdout  # the app: stdout is its terminal
            return _dispatch(args)
        with interrupt_on_signals():  # SIGTERM, SIGHUP: unwound like ctrl+c, everything closed
            code = _dispatch(args)
        sys.stdout.flush()  # the output's last bytes fail here, not in the interpreter's exit
        return code
    except StdoutError as exc:
        silence_stdout()
        if exc.errno in READER_GONE:  # `| head`: the reader has what it wanted
            return 0
        print(f"syncviz: error: cannot write the output: {exc.strerror or exc}", file=sys.stderr)
        return 1
    except FdLimitError as exc:  # "syncviz: 1000 clients per engine need ~1064 file descriptors; ..."
        print(f"syncviz: {exc}", file=sys.stderr)
        return 2
    except (UsageError, SettingsError, EngineError, RecordingError) as exc:
        print(f"syncviz: error: {exc}", file=sys.stderr)
        return 2
    except RunBroken as exc:  # not the user's input: what the run met (exit 1)
        print(f"syncviz: error: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt as exc:  # 130; SIGTERM 143, SIGHUP 129
        return exit_status(getattr(exc, "signum", signal.SIGINT))
    except (MemoryError, RuntimeError) as exc:  # `ulimit -v` too small: no memory, or no stack for a thread
        if isinstance(exc, RuntimeError) and "thread" not in str(exc):
            raise
        print(
            f"syncviz: error: out of memory ({exc or 'MemoryError'}); is a memory limit (ulimit -v) too low?",
            file=sys.stderr,
        )
        return 2
    finally:
        sys.stdout = stdout


def _dispatch(args: argparse.Namespace) -> int:
    if args.command == "scenarios":
        return _scenarios()
    if args.command == "bench":
        return _bench(args)
    if args.command == "claims":
        from syncviz.tui.claims_cli import run_claims

        args.engines = tuple(engines_arg(args))
        return run_claims(args)
    if args.command == "record":
        return _record(args)
    if args.command == "replay":
        return _replay(args)
    if args.command == "serve":
        return _serve(args)
    if args.command == "trace":
        from syncviz.tui.trace_cli import run_trace

        return run_trace(args)
    from syncviz.tui.launch import launch_app

    overrides = knob_overrides(args)
    if args.replay:
        return _open_replay(args, args.replay, overrides)
    args.engines = tuple(engines_arg(args))  # the panels, in the order of the models' table
    _require_fds([args.scenario], args.in_process, overrides, engines=args.engines)  # before anything starts
    _require_terminal()
    return launch_app(args, overrides)


def _require_terminal() -> None:
    """The app draws on a terminal; anywhere else it would write escape codes forever. Textual
    draws through stderr: ``2>file`` would send every frame into the file, the terminal blank."""
    for name, stream in (("stdout", sys.stdout), ("stdin", sys.stdin), ("stderr", sys.stderr)):
        try:
            ok = stream is not None and stream.isatty()
        except (AttributeError, ValueError):
            ok = False
        if not ok:
            raise UsageError(
                f"the app needs a terminal ({name} is not one); for figures without one, "
                "try `syncviz bench` (or `syncviz serve --headless`)"
            )


def _require_fds(scenarios: list[str], in_process: bool, overrides: dict[str, Any], **run: Any) -> None:
    """Raise the descriptor limit for these runs, or :class:`FdLimitError` (one line, exit 2)."""
    from syncviz.engines.limits import require_fds
    from syncviz.engines.scenarios import get_scenario

    for name in scenarios:
        get_scenario(name)  # an unknown scenario is its own one-line error
    require_fds(scenarios, run.get("engines", DEFAULT_ENGINES), run.get("together", True), in_process, **overrides)


def _say_failed_connections(counts: Counter[str]) -> None:
    """One line on stderr when connections could not be opened (never one line per connection)."""
    from syncviz.engines.loadgen_conn import connect_errors_line

    line = connect_errors_line(counts)
    if line:
        print(f"syncviz: {line}", file=sys.stderr)


def _scenarios() -> int:
    from rich.console import Console
    from rich.table import Table

    t = Table(title="syncviz scenarios", title_justify="left", header_style="bold")
    t.add_column("name", style="bold")
    t.add_column("what it runs")
    for s in SCENARIOS.values():
        t.add_row(s.name, s.description)
    Console().print(t)
    return 0


def _bench(args: argparse.Namespace) -> int:
    from syncviz.engines.bench import notes, run_bench, table
    from syncviz.engines.host import pin_to_one_cpu
    from syncviz.engines.scenarios import get_scenario

    scenarios = args.scenarios or [DEFAULT_SCENARIO]
    if "all" in scenarios:
        scenarios = list(SCENARIOS)
    for name in scenarios:
        get_scenario(name)
    engines = engines_arg(args)
    if not 0.5 <= args.seconds <= 600:
        raise UsageError(f"--seconds must be between 0.5 and 600, not {args.seconds:g}")
    overrides = knob_overrides(args)
    _require_fds(scenarios, args.in_process, overrides, engines=engines, together=args.together)
    if args.in_process:
        pin_to_one_cpu()
    results = run_bench(
        scenarios,
        engines=engines,
        seconds=args.seconds,
        together=args.together,
        record=not args.no_record,
        in_process=args.in_process,
        **overrides,
    )
    if args.json:
        json.dump({"results": results}, sys.stdout)
        sys.stdout.write("\n")
    else:
        from rich.console import Console

        console = Console()
        if not console.is_terminal:
            console.width = max(console.width, 150)
        console.print(table(results))
        for note in notes(results):
            console.print(f"note: {note}", highlight=False)
    _say_failed_connections(sum((Counter(r.get("connect_errors", {})) for r in results), Counter()))
    return 0


def _record(args: argparse.Namespace) -> int:
    """``syncviz record``: the live stream, headless, to a recording (``--json``: the run's summary)."""
    from syncviz.engines.child import ChildHost
    from syncviz.engines.loadgen_conn import connect_errors
    from syncviz.engines.recording import RecordingWriter, drain_for
    from syncviz.engines.recording_summary import Summary
    from syncviz.engines.scenarios import get_scenario

    if args.file and args.out and args.file != args.out:
        raise UsageError(f"two files to write: {args.file} and --out {args.out}")
    out = args.out or args.file
    if not out:
        raise UsageError("record needs a file to write: --out FILE")
    get_scenario(args.scenario)
    if not 0.5 <= args.seconds <= 600:
        raise UsageError(f"--seconds must be between 0.5 and 600, not {args.seconds:g}")
    overrides = knob_overrides(args)
    _require_fds([args.scenario], False, overrides)
    failed: Counter[str] = Counter()
    interrupted = 0  # the exit status of the signal that stopped it early
    summary = Summary(DEFAULT_ENGINES, background=True) if args.json else None  # fed live, as the batches come
    with RecordingWriter(out) as writer:  # an unwritable path fails here, before anything starts
        with ChildHost(scenario=args.scenario, host=args.host, port=args.port, **overrides) as source:
            writer.start(source.info(), seconds=args.seconds)
            try:
                for batch in drain_for(source, args.seconds):
                    writer.write(batch)
                    if summary is not None:
                        summary.add(batch)
                    failed.update(connect_errors(batch.latencies))
            except KeyboardInterrupt as exc:  # ctrl+c, SIGTERM, SIGHUP: keep what was recorded so far
                interrupted = exit_status(getattr(exc, "signum", signal.SIGINT))
        count = writer.finish()
    _say_failed_connections(failed)
    what = f"{args.seconds:g} s of {args.scenario}" + (", interrupted" if interrupted else "")
    said = f"wrote {count} batches ({what}) to {out}"
    if summary is not None:
        json.dump(summary.result(), sys.stdout)
        sys.stdout.write("\n")
        print(said, file=sys.stderr)
    else:
        print(said)
    return interrupted


def _replay(args: argparse.Namespace) -> int:
    """``syncviz replay F``: the app on a recording; ``--summary``: its totals, headless (no Textual)."""
    if args.json and not args.summary:
        raise UsageError("--json goes with --summary (without it the app plays the recording)")
    if not args.summary:
        return _open_replay(args, args.recording, {})
    from syncviz.engines.recording_summary import summarize

    result = summarize(args.recording)
    if args.json:
        json.dump(result, sys.stdout)
        sys.stdout.write("\n")
        return 0
    for name, row in result["engines"].items():
        p50, p99 = (f"{row[k]:.1f} ms" if row[k] is not None else "-" for k in ("p50_ms", "p99_ms"))
        print(f"{name:<9} completed {row['completed']:>8}   p50 {p50:>11}   p99 {p99:>11}")
    return 0


def _open_replay(args: argparse.Namespace, path: str, overrides: dict[str, Any]) -> int:
    """The app on the recording at ``path``, read and checked whole before anything opens."""
    from syncviz.engines.recording import Replay
    from syncviz.tui.launch import launch_app

    replay = Replay.from_file(path)
    _require_terminal()
    return launch_app(args, overrides, start=lambda: (replay, replay.info))


def _serve(args: argparse.Namespace) -> int:
    """``syncviz serve``: headless (:mod:`syncviz.engines.serve`) or the app on those engines, load off."""
    from syncviz.engines.scenarios import get_scenario
    from syncviz.engines.serve import exposure_warning

    get_scenario(args.scenario)  # a typo fails before anything starts
    if args.json and not args.headless:
        raise UsageError("--json goes with --headless (the app draws instead)")
    if args.no_record and not args.headless:
        raise UsageError("--no-record goes with --headless (the app draws what the servers record)")
    overrides = knob_overrides(args)
    if args.no_record:
        overrides["record"] = False  # passed on to the engine host with the knobs
    if args.headless:
        args.engines_low = 1  # one engine for wrk alone; the app draws two or more side by side
    args.engines = tuple(engines_arg(args))
    if args.load:
        _require_fds([args.scenario], False, overrides, engines=args.engines)
    warning = exposure_warning(args.host)
    if warning:
        print(warning, file=sys.stderr)
    from syncviz.engines.serve import PortInUse, run_serve

    try:
        if args.headless:
            return run_serve(
                args.scenario,
                host=args.host,
                port=args.port,
                load=args.load,
                as_json=args.json,
                engines=args.engines,
                **overrides,
            )
        from syncviz.tui.launch import launch_serve

        _require_terminal()
        return launch_serve(args, overrides)
    except PortInUse as exc:  # one line: "syncviz: port 8002 is in use (asyncio)"
        print(f"syncviz: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
