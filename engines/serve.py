"""``syncviz serve``, headless: the engines on fixed ports for anyone's client, one status line a second.

Each engine runs in its own process, as the app runs them (:class:`~syncviz.engines.child.ChildHost`
with fixed ports: threaded on P, asyncio on P+1, gevent on P+2), with the built-in load
generator off unless asked for. Once a second :func:`serve_loop` writes one line per tick:
what each server says it served (``served_rps``, from its source counters, so curl, wrk and a
browser count) beside what the event stream says it holds (``in_flight``, ``busy``, through
:class:`~syncviz.engines.stats.StreamStats`, the one interpreter of the stream). With ``json``
the line is exactly one JSON object (:func:`json_line`).

:func:`run_serve` is the whole command: a port in use is a :class:`PortInUse` before anything
is left running; SIGINT, SIGTERM and SIGHUP stop it cleanly (every process gone, the ports
free) with exit status 0, as a server asked to stop exits; a closed stdout (``| head -3``) is
a clean exit too, a full one (``> /dev/full``) one line and exit 1. Nothing here imports textual or rich.
"""

from __future__ import annotations

import errno
import ipaddress
import json
import signal
import socket
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from types import FrameType
from typing import Any, TextIO

from .base import EngineError
from .child import ChildHost
from .events import DEFAULT_ENGINES, ENGINE_IDS
from .output import READER_GONE, silence_stdout
from .placement import set_cpus
from .served import ServedRate
from .source import EventSource, SourceStatus
from .stats import StreamStats

DEFAULT_PORT = 8001
LINE_S = 1.0  # one status line a second
TICK_S = 0.1  # the stream is drained and the counters sampled this often between lines
CLOSE_TIMEOUT_S = 1.5  # a stop leaves within 2 s: processes not gone by then are killed
STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)


class PortInUse(EngineError):
    """One of the fixed ports is taken; the message is one line naming it and its engine."""


# -- addresses -------------------------------------------------------------------------------
def engine_ports(base: int, engines: tuple[str, ...] = DEFAULT_ENGINES) -> dict[str, int]:
    """Each engine's port from the first one (threaded P, asyncio P+1, gevent P+2, uvloop P+3,
    trio P+4, prefork P+5: its place in :data:`~syncviz.engines.events.ENGINES`; 0: any free)."""
    return {name: base + ENGINE_IDS[name] if base else 0 for name in engines}


def is_loopback(host: str) -> bool:
    """Whether ``host`` is reachable from this machine only."""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False  # a name: it may resolve to anything


def exposure_warning(host: str) -> str | None:
    """The one-line warning for an address reachable beyond this machine (``None`` for loopback)."""
    if is_loopback(host):
        return None
    return f"syncviz: warning: serving on {host}: the servers are reachable from beyond this machine"


def url(host: str, port: int) -> str:
    return f"http://[{host}]:{port}/" if ":" in host else f"http://{host}:{port}/"


def probe_ports(host: str, ports: dict[str, int]) -> None:
    """Raise :class:`PortInUse` for the first fixed port another socket listens on.

    It binds the way the engines do (``SO_REUSEADDR``: a port in TIME_WAIT is free, one being
    listened on is not) and lets go at once. Another reason a port cannot be had (a foreign
    address, a privileged port) is an :class:`~syncviz.engines.base.EngineError`, one line.
    """
    for name, port in ports.items():
        if not port:
            continue
        sock = socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET, socket.SOCK_STREAM)
        try:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            sock.bind((host, port))
        except OSError as exc:
            if exc.errno == errno.EADDRINUSE:
                raise PortInUse(f"port {port} is in use ({name})") from None
            raise EngineError(f"cannot listen on {host}:{port}: {exc.strerror or exc}") from None
        finally:
            sock.close()


def start_host(
    scenario: str,
    host: str = "127.0.0.1",
    port: int = DEFAULT_PORT,
    load: bool = False,
    engines: tuple[str, ...] = DEFAULT_ENGINES,
    ui: bool = True,
    **overrides: Any,
) -> ChildHost:
    """The started engine processes on their fixed ports (the load process only as upstream
    unless ``load``), or :class:`PortInUse` / :class:`EngineError` with nothing left running.
    ``ui``: the app draws them (``syncviz serve`` without ``--headless``; see :class:`ChildHost`)."""
    ports = engine_ports(port, engines)
    probe_ports(host, ports)
    try:
        return ChildHost(
            scenario=scenario, engines=engines, host=host, port=port, load=load, stream="digest", ui=ui, **overrides
        ).start()
    except EngineError:
        probe_ports(host, ports)  # taken between the probe and the bind: say which one
        raise


# -- the lines -------------------------------------------------------------------------------
@dataclass
class EngineLine:
    """One engine's part of a status line."""

    served_rps: float = 0.0  # responses written per second, any client (server-side)
    in_flight: int = 0  # requests between arrival and done, per the event stream
    reading: int = 0  # connections still sending their request (server counts)
    busy: int = 0  # workers held (pool threads, the loop or hub), per the event stream
    workers: int = 0  # workers the engine has (server counts)
    failed: int = 0  # requests failed since start (server counts)
    backlog: int = 0  # connections the kernel completed, not accepted yet (server counts: ss -lnt's Recv-Q)
    waiting: int = 0  # connections with bytes to read no worker has taken (server counts: threaded, prefork)
    state: str = "live"
    detail: str = ""

    def as_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "served_rps": round(self.served_rps, 2),
            "in_flight": self.in_flight,
            "reading": self.reading,
            "busy": self.busy,
            "workers": self.workers,
            "failed": self.failed,
            "backlog": self.backlog,
            "waiting": self.waiting,
        }
        if self.state != "live":  # only then: a live engine's object is exactly the documented eight
            out["state"] = self.state
            if self.detail:
                out["detail"] = self.detail
        return out


@dataclass
class StatusLine:
    """One line a second: when, and each engine's part."""

    t: float  # seconds since serving started
    engines: dict[str, EngineLine] = field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        return {"t": round(self.t, 3), "engines": {name: e.as_dict() for name, e in self.engines.items()}}


def json_line(line: StatusLine) -> str:
    return json.dumps(line.as_dict(), separators=(", ", ": "))


def text_line(line: StatusLine) -> str:
    """The human summary: ``t 12s · threaded 158/s fl 100 rd 0 busy 8/8 fail 0 · asyncio ...``."""
    parts = [f"t {line.t:4.0f}s"]
    for name, e in line.engines.items():
        if e.state == "exited":
            parts.append(f"{name} exited{f' ({e.detail})' if e.detail else ''}")
            continue
        s = f"{name} {e.served_rps:7.1f}/s fl {e.in_flight:4} rd {e.reading:3} busy {e.busy}/{e.workers}"
        s += (
            f" fail {e.failed}"
            + (f" backlog {e.backlog}" if e.backlog else "")
            + (f" wait {e.waiting}" if e.waiting else "")
        )
        parts.append(s if e.state == "live" else f"{s} {e.state}{f' ({e.detail})' if e.detail else ''}")
    return " · ".join(parts)


class Monitor:
    """Drains a source into :class:`StreamStats`, keeps each server's :class:`ServedRate`, and
    makes the status lines. :meth:`tick` often (every :data:`TICK_S`), :meth:`line` once a second."""

    def __init__(
        self, source: EventSource, engines: tuple[str, ...] = DEFAULT_ENGINES, window_s: float = LINE_S
    ) -> None:
        self.source = source
        self.engines = engines
        self.stats = StreamStats(window_s=2.0, rate_window_s=2.0, keep=50)  # gauges only: keep it small
        self.rates = {name: ServedRate(window_s) for name in engines}
        self.status: SourceStatus | None = None

    def tick(self) -> list[str]:
        """Drain and sample once; the source's errors since the last tick (one line each)."""
        self.stats.feed(self.source.drain())
        self.status = self.source.status()
        for name in self.engines:
            st = self.status.engines.get(name)
            self.rates[name].update(st.server if st is not None else None)
        errors = self.source.errors
        return [errors.popleft() for _ in range(len(errors))]

    def line(self, t: float) -> StatusLine:
        now = time.monotonic_ns()
        counters = self.stats.counters()
        out = StatusLine(t)
        for name in self.engines:
            st = self.status.engines.get(name) if self.status is not None else None
            srv = st.server if st is not None else None
            e = EngineLine(state=st.state if st is not None else "starting", detail=st.detail if st is not None else "")
            if srv is not None:
                e.reading, e.workers, e.failed = srv.reading, srv.workers, srv.failed
                e.backlog, e.waiting = srv.backlog, srv.waiting
            if e.state == "exited":  # nothing runs there any more: no gauge holds anything
                e.reading = e.workers = e.backlog = e.waiting = 0
            else:
                e.served_rps = self.rates[name].rps(now) or 0.0  # not known: its state says why (the schema's float)
                e.in_flight, e.busy = counters[name].in_flight, counters[name].busy
            out.engines[name] = e
        return out


def serve_loop(
    monitor: Monitor,
    write: Callable[[str], None],
    stop: threading.Event,
    *,
    as_json: bool = False,
    report: Callable[[str], None] | None = None,
    line_s: float = LINE_S,
    tick_s: float = TICK_S,
) -> None:
    """Tick the monitor and ``write`` one line every ``line_s`` until ``stop`` is set; the
    engines' errors go to ``report`` as they come."""
    fmt = json_line if as_json else text_line
    t0 = time.monotonic()
    due = t0 + line_s
    while not stop.wait(max(0.0, min(tick_s, due - time.monotonic()))):
        for error in monitor.tick():
            if report is not None:
                report(error)
        now = time.monotonic()
        if now >= due:
            write(fmt(monitor.line(now - t0)))
            due = max(due + line_s, now + line_s / 2)  # fallen behind: the next line a little later


# -- the command -----------------------------------------------------------------------------
class StopSignals:
    """``with StopSignals() as signals:``: SIGINT, SIGTERM and SIGHUP set ``signals.stop``.

    While ``starting`` is true (the engine processes are being started, which cannot be cut
    short cleanly), the first signal is remembered and a second raises ``KeyboardInterrupt``
    (the start closes what it had started). Outside the main thread it installs nothing.
    """

    def __init__(self) -> None:
        self.stop = threading.Event()
        self.starting = True
        self._saved: dict[signal.Signals, Any] = {}

    def _on_signal(self, signum: int, frame: FrameType | None) -> None:
        if self.stop.is_set() and self.starting:
            raise KeyboardInterrupt
        self.stop.set()

    def __enter__(self) -> StopSignals:
        if threading.current_thread() is threading.main_thread():
            self._saved = {sig: signal.signal(sig, self._on_signal) for sig in STOP_SIGNALS}
        return self

    def __exit__(self, *exc: object) -> None:
        for sig, handler in self._saved.items():
            signal.signal(sig, handler if handler is not None else signal.SIG_DFL)
        self._saved.clear()


def run_serve(
    scenario: str,
    *,
    host: str = "127.0.0.1",
    port: int = DEFAULT_PORT,
    load: bool = False,
    as_json: bool = False,
    engines: tuple[str, ...] = DEFAULT_ENGINES,
    out: TextIO | None = None,
    err: TextIO | None = None,
    **overrides: Any,
) -> int:
    """Serve headless until a signal; 0 then. URLs go to stdout (to stderr with ``as_json``, so
    stdout holds nothing but JSON lines). :class:`PortInUse` / :class:`EngineError` propagate."""
    out = out if out is not None else sys.stdout
    err = err if err is not None else sys.stderr
    gone: list[OSError] = []  # stdout's reader left (``| head``) or its terminal hung up

    with StopSignals() as signals:

        def say(text: str, stream: TextIO) -> None:
            try:
                stream.write(text + "\n")
                stream.flush()
            except OSError as exc:  # BrokenPipeError, EIO: nobody reads stdout any more; stop like a signal
                if stream is out:
                    gone.append(exc)
                    signals.stop.set()

        source = start_host(scenario, host, port, load, engines, ui=False, **overrides)  # headless: no UI
        signals.starting = False
        try:
            set_cpus(source.placement.ui)  # this process keeps off the engines' cores
            for name in source.engine_names:
                say(f"{name:<9} {url(host, source.ports[name])}", err if as_json else out)
            serve_loop(
                Monitor(source, source.engine_names),
                lambda line: say(line, out),
                signals.stop,
                as_json=as_json,
                report=lambda e: say(f"syncviz: {e}", err),
            )
        finally:
            source.close(CLOSE_TIMEOUT_S)
    if gone and out is sys.stdout:
        silence_stdout()
    failed = [exc for exc in gone if exc.errno not in READER_GONE]
    if failed:  # not a reader that left: the lines could not be written (a full disk)
        say(f"syncviz: error: cannot write the status lines: {failed[0].strerror or failed[0]}", err)
        return 1
    return 0
