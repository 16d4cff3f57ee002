"""The in-process engine host: the servers, the upstream and the load generator in one process.

:class:`EngineHost` is the literal one-process mode (``syncviz --in-process``, the claims'
one-engine experiments, the tests): every engine shares this process's GIL, and the status
says so. The default is one process per engine (:mod:`syncviz.engines.child`). Both are
:class:`~syncviz.engines.source.EventSource` s.
"""

from __future__ import annotations

import os
import time
from collections import deque
from collections.abc import Iterable
from typing import TYPE_CHECKING, Any

from .allocator import keep_reads_off_mmap
from .base import Engine, EngineError, engine_class
from .events import DEFAULT_ENGINES, ENGINE_IDS, ENGINES, Batch, Recorder
from .limits import raise_soft_limit
from .scenarios import DEFAULT_SCENARIO, Scenario, get_scenario
from .settings import Settings
from .source import EngineStatus, EventSource, ProcessInfo, Progress, SourceStatus

if TYPE_CHECKING:  # imported where used: an engine process, which imports this module, needs none of them
    from .loadgen import LoadGen
    from .slowclients import SlowClients
    from .upstream import Upstream

STALL_NS = 50_000_000


class Clients:
    """The load generator and its slow clients, as a host or the load process runs them: one stop
    order (the slow clients first: they share no state, the load generator's stop flushes) and one
    way to apply new settings to both."""

    loadgen: LoadGen | None = None
    slowclients: SlowClients | None = None

    def stop_clients(self) -> bool:
        """Stop the slow clients, then the load generator; whether a load generator was running."""
        if self.slowclients is not None:
            self.slowclients.stop()
            self.slowclients = None
        if self.loadgen is None:
            return False
        self.loadgen.stop()
        self.loadgen = None
        return True

    def apply_clients(self, settings: Settings) -> None:
        if self.loadgen is not None:
            self.loadgen.apply(settings)
        if self.slowclients is not None:
            self.slowclients.apply(settings)


def sample_stalls(batch: Batch, engines: Iterable[Engine]) -> int:
    """Add each stalled loop's lag so far to ``batch`` (its ticker cannot report until the stall
    ends, so a blocked loop would show only afterwards); returns the longest, in ns."""
    longest = 0
    for engine in engines:
        overdue = engine.overdue_ns(batch.t_ns)
        if overdue > STALL_NS:
            batch.lags.append((batch.t_ns, engine.engine_id, overdue))
        longest = max(longest, overdue)
    return longest


def run_info(run: int, scenario: Scenario, settings: Settings, engines: tuple[str, ...]) -> dict[str, Any]:
    """The status keys every live source reports: the run, its scenario, knobs and modes."""
    return {
        "run": run,
        "scenario": scenario.name,
        "settings": settings.as_dict(),
        "modes": {name: scenario.mode(name) for name in engines},
        "engines": list(engines),
    }


def pin_to_one_cpu() -> int | None:
    """Pin this process to its last allowed CPU when it has several (stops GIL ping-pong).

    Returns the CPU, or ``None`` where pinning is impossible or pointless.
    """
    try:
        cpus = sorted(os.sched_getaffinity(0))
        if len(cpus) < 2:
            return None
        os.sched_setaffinity(0, {cpus[-1]})
        return cpus[-1]
    except (AttributeError, OSError):
        return None


def raise_fd_limit() -> None:
    """Raise the soft descriptor limit to the hard one: thousands of loopback connections need more
    than the usual 1,024 (what a run needs is checked before it starts: :mod:`~syncviz.engines.limits`)."""
    raise_soft_limit()


class EngineHost(Clients, EventSource):
    """Runs the chosen engines under one scenario; everything in this process."""

    def __init__(
        self,
        scenario: str = DEFAULT_SCENARIO,
        engines: tuple[str, ...] | list[str] = DEFAULT_ENGINES,
        record: bool = True,
        host: str = "127.0.0.1",
        port: int = 0,
        load: bool = True,
        **overrides: Any,
    ) -> None:
        for name in engines:
            if name not in ENGINE_IDS:
                raise EngineError(f"unknown engine {name!r} (known: {', '.join(ENGINES)})")
        self.engine_names = tuple(e for e in ENGINES if e in engines)
        self.recorder = Recorder(enabled=record)
        self.bind_host = host
        self.base_port = port
        self.load = load
        self.scenario = get_scenario(scenario)
        self.settings = self.scenario.settings.with_changes(**overrides)
        self.engines: dict[str, Engine] = {}
        self._progress: dict[str, Progress] = {}  # per engine: when its server last answered (status)
        self.upstream: Upstream | None = None
        self.run = 0  # how many times the engines have started: a consumer starts afresh when it changes
        self.errors: deque[str] = deque(maxlen=20)
        self._info_changed = True

    # -- lifecycle -----------------------------------------------------------------------
    def start(self) -> EngineHost:
        from .upstream import Upstream  # imported here: see TYPE_CHECKING above

        raise_fd_limit()
        keep_reads_off_mmap()  # --in-process: the servers and the load read in this process
        try:
            self.upstream = Upstream()
            self.upstream.start()
            self._start_engines()
        except BaseException:
            self.close()
            raise
        return self

    def _start_engines(self) -> None:
        from .loadgen import LoadGen
        from .slowclients import SlowClients

        self.run += 1
        for name in self.engine_names:
            port = self.base_port + ENGINE_IDS[name] if self.base_port else 0
            engine = engine_class(name)(
                self.recorder,
                self.settings,
                self.scenario.mode(name),
                self.upstream.port if self.upstream else None,
                self.bind_host,
                port,
            )
            self.engines[name] = engine
            engine.start()
        if self.load:
            ports = {ENGINE_IDS[n]: e.port for n, e in self.engines.items()}
            self.loadgen = LoadGen(self.recorder, ports, self.settings)
            self.loadgen.start()
            self.slowclients = SlowClients(ports, self.settings).start()
        self._info_changed = True

    def _stop_engines(self) -> None:
        self.stop_clients()
        for engine in self.engines.values():
            engine.stop()
        self.engines.clear()

    def close(self) -> None:
        self._stop_engines()
        if self.upstream is not None:
            self.upstream.stop()
            self.upstream = None

    def __enter__(self) -> EngineHost:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- commands ------------------------------------------------------------------------
    def apply(self, **changes: Any) -> None:
        settings = self.settings.with_changes(**changes)
        self.settings = settings
        for engine in self.engines.values():
            engine.apply(settings)
        self.apply_clients(settings)
        self._info_changed = True

    def set_scenario(self, name: str, **overrides: Any) -> None:
        scenario = get_scenario(name)
        settings = scenario.settings.with_changes(**{"slow": self.settings.slow, **overrides})
        self._stop_engines()
        self.scenario, self.settings = scenario, settings
        self._start_engines()

    # -- reading -------------------------------------------------------------------------
    def drain(self) -> Batch:
        batch = self.recorder.drain()
        if self.recorder.enabled:
            sample_stalls(batch, self.engines.values())
            for engine in self.engines.values():  # what held a loop or a worker (engines/watchdog.py)
                batch.blocks.extend(engine.take_blocks(batch.t_ns))
        if self._info_changed:
            self._info_changed = False
            batch.info = self.info()
        return batch

    def info(self) -> dict[str, Any]:
        return {
            **run_info(self.run, self.scenario, self.settings, self.engine_names),
            "ports": {name: e.port for name, e in self.engines.items()},
            "pid": os.getpid(),
            "pids": dict.fromkeys(self.engine_names, os.getpid()),
            "placement": dict.fromkeys(self.engine_names, "one process, one GIL"),
            "load": self.load,  # the built-in load generator runs
        }

    def status(self) -> SourceStatus:
        """Every engine lives in this process: one pid, one GIL shared by all of them."""
        out = SourceStatus("in-process")
        now, mono = time.monotonic_ns(), time.monotonic()
        for name in self.engine_names:
            engine = self.engines.get(name)
            overdue = engine.overdue_ns(now) if engine is not None else 0
            server = engine.server_snapshot(now) if engine is not None else None
            progress = self._progress.setdefault(name, Progress(mono))
            if server is not None:
                progress.see(server.served, mono)
            stalled = progress.stalled(overdue, mono)
            st = EngineStatus(
                name,
                state="stalled" if stalled else "live",
                detail=f"loop held {overdue / 1e9:.1f} s" if stalled else "",
                process=ProcessInfo(os.getpid()),
                placement="one process, one GIL",
                port=engine.port if engine is not None else None,
                shared_gil=True,
                server=server,
            )
            out.engines[name] = st
        return out
