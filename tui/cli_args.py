"""The ``syncviz`` command's flags: its parser, and the checks of what was given.

:func:`build_parser` holds every command's flags (``trace``'s come from
:mod:`syncviz.tui.trace_cli`); a bad one is a :class:`UsageError`, one line. The checks that
argparse cannot make are here too: the knobs against the Settings ranges
(:func:`knob_overrides`), the engines named (:func:`engines_arg`) and the first port.
"""

from __future__ import annotations

import argparse
import functools
import sys
from importlib import metadata
from typing import IO, Any, NoReturn

from syncviz.engines.events import DEFAULT_ENGINES, ENGINES
from syncviz.engines.scenarios import DEFAULT_SCENARIO

KNOBS = ("clients", "pool", "io_ms", "cpu_ms", "rate", "think_ms", "timeout_s", "slow_clients", "workers")


class UsageError(Exception):
    """A bad flag; printed as one line, exit 2."""


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> NoReturn:  # one line, not usage + traceback-ish noise
        if message.startswith("argument command: invalid choice"):  # `syncviz --seconds 0`: a stray value
            word = message.split("'")[1] if "'" in message else "?"
            message = (
                f"unexpected {word!r}: not a command nor a value of an app flag "
                "(`--seconds` and `--out` belong to `syncviz bench`, `record` and `trace`; see `syncviz --help`)"
            )
        raise UsageError(message)

    def _print_message(self, message: str, file: IO[str] | None = None) -> None:
        if message:  # argparse would drop a failed write (`--help > /dev/full`): main says it in one line
            (file or sys.stderr).write(message)


def _add_knobs(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group("knobs (default: the scenario's own)")
    g.add_argument("--clients", type=int, metavar="N", help="concurrent clients per engine")
    g.add_argument("--pool", type=int, metavar="N", help="threaded engine's worker threads")
    g.add_argument("--io-ms", type=float, metavar="X", help="I/O wait per request, ms")
    g.add_argument("--cpu-ms", type=float, metavar="Y", help="pure-Python CPU per request, ms")
    g.add_argument("--rate", type=float, metavar="R", help="open loop: Poisson arrivals per second per engine")
    g.add_argument("--think-ms", type=float, metavar="T", help="closed loop: pause between answer and next request")
    g.add_argument(
        "--timeout",
        type=float,
        dest="timeout_s",
        metavar="S",
        help="servers: a request's head and body must arrive within S seconds, else 408 (default 10)",
    )
    g.add_argument("--slow-clients", type=int, metavar="N", help="load: extra clients per engine that send slowly")
    g.add_argument("--workers", type=int, metavar="N", help="prefork engine's worker processes (default: its CPUs)")


def _port(text: str) -> int:
    """A first port: 0 (any free) or one that leaves room for every engine's (P ... P+5, one per
    engine of :data:`ENGINES`: the same limit and words for the app, ``--in-process`` and ``serve``)."""
    try:
        port = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"invalid port {text!r}") from None
    last = len(ENGINES) - 1  # the last engine's port is P+last
    top = 65535 - last
    if port != 0 and not 1 <= port <= top:
        words = f"must be 0 or between 1 and {top} (the engines use P ... P+{last}), not {port}"
        raise argparse.ArgumentTypeError(words)
    return port


def _add_network(p: argparse.ArgumentParser, default_port: int = 0) -> None:
    p.add_argument("--host", default="127.0.0.1", help="address the servers bind (default 127.0.0.1)")
    p.add_argument(
        "--port",
        type=_port,
        default=default_port,
        metavar="P",
        help="first port: threaded P, asyncio P+1, gevent P+2 "
        + (f"(default {default_port}; 0: any free)" if default_port else "(default: any free)"),
    )


def _version() -> str:
    """The installed distribution's version (``unknown`` when run from a tree not installed)."""
    try:
        return metadata.version("syncviz")
    except metadata.PackageNotFoundError:
        return "unknown"


class _Version(argparse.Action):
    """``--version``: the installed version, looked up only when asked (importlib.metadata reads
    the distribution's files: ~2 ms on every start otherwise)."""

    def __init__(self, option_strings: list[str], dest: str = argparse.SUPPRESS, **kwargs: Any) -> None:
        kwargs.setdefault("help", "show program's version number and exit")
        super().__init__(option_strings, dest, nargs=0, default=argparse.SUPPRESS, **kwargs)

    def __call__(self, parser: argparse.ArgumentParser, *_args: Any, **_kwargs: Any) -> NoReturn:
        parser._print_message(f"syncviz {_version()}\n", sys.stdout)
        parser.exit()


@functools.cache
def build_parser() -> argparse.ArgumentParser:
    """The command line's parser, built once a process (parsing leaves it as it was)."""
    p = _Parser(prog="syncviz", description="Watch threaded, asyncio and gevent servers schedule real requests.")
    p.add_argument("--version", action=_Version)
    p.add_argument(
        "--scenario",
        default=DEFAULT_SCENARIO,
        metavar="NAME",
        help=f"start scenario (default {DEFAULT_SCENARIO}; see `syncviz scenarios`)",
    )
    _add_knobs(p)
    _add_network(p)
    _add_engines(p, low=2)
    p.add_argument(
        "--in-process",
        action="store_true",
        help="run the servers in the app's own process (the drawing then shares their GIL)",
    )
    p.add_argument("--replay", metavar="FILE", help="play a recording made by `syncviz record` instead")
    p.add_argument("--present", action="store_true", help="presenter mode: step through the claims as scenes")
    sub = p.add_subparsers(dest="command", parser_class=_Parser)

    b = sub.add_parser("bench", help="measure scenarios headless and print a table (or --json)")
    b.add_argument(
        "--scenario",
        action="append",
        metavar="NAME",
        dest="scenarios",
        help="scenario to run (repeatable, or 'all'; default io-bound)",
    )
    _add_engines(b, low=1)
    b.add_argument("--seconds", type=float, default=4.0, metavar="S", help="measured window per run")
    _add_knobs(b)
    b.add_argument("--together", action="store_true", help="all engines at once, as the app runs them")
    b.add_argument(
        "--in-process", action="store_true", help="servers and load in this one process, sharing one GIL (labelled)"
    )
    b.add_argument("--no-record", action="store_true", help="servers record no transitions (overhead baseline)")
    b.add_argument("--json", action="store_true", help="print one JSON object instead of a table")

    sub.add_parser("scenarios", help="list the scenarios")

    c = sub.add_parser("claims", help="run the common sync-vs-async claims as experiments")
    c.add_argument("--id", action="append", dest="ids", metavar="ID", help="claim id (repeatable)")
    c.add_argument("--quick", action="store_true", help="shorter runs (all claims in about a minute)")
    _add_engines(c, low=2)
    c.add_argument("--json", action="store_true", help="print one JSON object instead of a table")

    r = sub.add_parser("record", help="record the live event stream headless to a file for `syncviz replay`")
    r.add_argument("file", nargs="?", help="the recording to write (or --out FILE)")
    r.add_argument("--out", metavar="FILE", help="the recording to write (a gzip'd syncviz-recording)")
    r.add_argument("--scenario", default=DEFAULT_SCENARIO, metavar="NAME")
    r.add_argument("--seconds", type=float, default=5.0, metavar="S")
    r.add_argument("--json", action="store_true", help="print the run's summary per engine as one JSON object")
    _add_knobs(r)
    _add_network(r)

    rp = sub.add_parser("replay", help="play a recording in the app, or --summary: its totals, headless")
    rp.add_argument("recording", metavar="FILE", help="a recording made by `syncviz record`")
    rp.add_argument("--summary", action="store_true", help="read the whole file headless and print its totals")
    rp.add_argument("--json", action="store_true", help="with --summary: one JSON object")

    s = sub.add_parser(
        "serve",
        help="serve the three engines on fixed ports for your own clients (curl, wrk, a browser)",
        description="Serve threaded, asyncio and gevent on P, P+1, P+2 (each in its own process) and draw, "
        "or with --headless print one line a second, what they serve. The built-in load is off unless --load. "
        "SIGINT or SIGTERM stops it (headless: exit 0; the app: 128 + signal), every process gone, the ports free.",
    )
    s.add_argument("--scenario", default=DEFAULT_SCENARIO, metavar="NAME", help="handlers to serve (default io-bound)")
    _add_knobs(s)
    _add_network(s, default_port=8001)
    s.add_argument("--load", action="store_true", help="also run the built-in load generator against them")
    _add_engines(s, low=2, note=" (1 with --headless)")
    s.add_argument("--headless", action="store_true", help="no app: one status line a second on stdout")
    s.add_argument("--json", action="store_true", help="with --headless: each line one JSON object (URLs on stderr)")
    s.add_argument("--no-record", action="store_true", help="servers record no transitions (overhead baseline)")
    from syncviz.tui.trace_cli import add_trace_parser

    add_trace_parser(sub, _add_knobs)
    return p


def knob_overrides(args: argparse.Namespace) -> dict[str, Any]:
    """The knobs the user set, validated against the Settings ranges."""
    from syncviz.engines.settings import Settings

    given = {k: getattr(args, k) for k in KNOBS if getattr(args, k, None) is not None}
    Settings().with_changes(**given)  # raises SettingsError naming the bad knob
    return given


def _add_engines(p: argparse.ArgumentParser, low: int, note: str = "") -> None:
    """``--engines a,b,...``: ``low`` to all of the models (checked by :func:`engines_arg`)."""
    p.set_defaults(engines_low=low)
    p.add_argument(
        "--engines",
        default=",".join(DEFAULT_ENGINES),
        metavar="A,B",
        help=f"{low}-{len(ENGINES)}{note} of {', '.join(ENGINES)}, comma-separated "
        f"(default {','.join(DEFAULT_ENGINES)})",
    )


def engines_arg(args: argparse.Namespace) -> list[str]:
    """The ``--engines`` named, checked: known, no repeats, how many, their packages installed
    (a missing one is one line naming the extra to install)."""
    from syncviz.engines.registry import require

    names = [e.strip() for e in args.engines.split(",") if e.strip()]
    for name in names:
        if name not in ENGINES:
            raise UsageError(f"unknown engine {name!r} (known: {', '.join(ENGINES)})")
    if len(set(names)) != len(names):
        raise UsageError(f"--engines names an engine twice: {args.engines}")
    low = getattr(args, "engines_low", 1)
    if not low <= len(names) <= len(ENGINES):
        raise UsageError(f"--engines takes {low} to {len(ENGINES)} engines, not {len(names)}")
    require(names)
    return names
