"""The engine host: the three servers, the upstream and the load generator, run together.

One :class:`EngineHost` is what ``syncviz bench``, the claims and the app's child process
run. Its face is the :class:`EventSource` interface (``drain``, ``apply``, ``set_scenario``,
``close``), which the child-process proxy and the recording player implement too: the
event stream is the seam between the engines and whatever shows them.
"""

from __future__ import annotations

import os
import resource
from abc import ABC, abstractmethod
from typing import Any

from .base import Engine, EngineError, engine_class
from .events import ENGINE_IDS, ENGINES, Batch, Recorder
from .loadgen import LoadGen
from .scenarios import DEFAULT_SCENARIO, get_scenario
from .upstream import Upstream

STALL_NS = 50_000_000


class EventSource(ABC):
    """Where a consumer gets batches from, and where it sends its commands."""

    @abstractmethod
    def drain(self) -> Batch:
        """Everything recorded since the last drain (``batch.info`` set when status changed)."""

    @abstractmethod
    def apply(self, **changes: Any) -> None:
        """Change knobs while running (clients, pool, io_ms, cpu_ms, rate, ...)."""

    @abstractmethod
    def set_scenario(self, name: str, **overrides: Any) -> None:
        """Restart the engines and the load on another scenario."""

    @abstractmethod
    def close(self) -> None:
        """Stop everything and release every thread, socket, port and process."""


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
    """Thousands of loopback connections need more than the usual 1,024 descriptors."""
    try:
        soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
        if soft < hard:
            resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    except (ValueError, OSError):
        pass


class EngineHost(EventSource):
    """Runs the chosen engines under one scenario; everything in this process."""

    def __init__(
        self,
        scenario: str = DEFAULT_SCENARIO,
        engines: tuple[str, ...] | list[str] = ENGINES,
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
        self.upstream: Upstream | None = None
        self.loadgen: LoadGen | None = None
        self.run = 0  # how many times the engines have started: a consumer starts afresh when it changes
        self._info_changed = True

    # -- lifecycle -----------------------------------------------------------------------
    def start(self) -> EngineHost:
        raise_fd_limit()
        try:
            self.upstream = Upstream()
            self.upstream.start()
            self._start_engines()
        except BaseException:
            self.close()
            raise
        return self

    def _start_engines(self) -> None:
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
        self._info_changed = True

    def _stop_engines(self) -> None:
        if self.loadgen is not None:
            self.loadgen.stop()
            self.loadgen = None
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
        if self.loadgen is not None:
            self.loadgen.apply(settings)
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
            for name, engine in self.engines.items():
                overdue = engine.overdue_ns(batch.t_ns)
                if overdue > STALL_NS:  # the ticker cannot report a stall until it ends: sample it now
                    batch.lags.append((batch.t_ns, ENGINE_IDS[name], overdue))
        if self._info_changed:
            self._info_changed = False
            batch.info = self.info()
        return batch

    def info(self) -> dict[str, Any]:
        return {
            "run": self.run,
            "scenario": self.scenario.name,
            "settings": self.settings.as_dict(),
            "modes": {name: self.scenario.mode(name) for name in self.engine_names},
            "ports": {name: e.port for name, e in self.engines.items()},
            "engines": list(self.engine_names),
            "pid": os.getpid(),
        }
