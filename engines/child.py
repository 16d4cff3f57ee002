"""The engine process host: one OS process per engine server, one for the load, over pipes.

:class:`ChildHost` is what the app and ``syncviz bench`` run by default. Each engine
server (threaded, asyncio, gevent) runs alone in its own process
(:mod:`syncviz.engines.proc`), so no engine's GIL, CPU, memory or crash touches another's;
the load generator and the upstream service run in one more process, outside every server.
Processes are pinned as :func:`syncviz.engines.placement.plan` says. Batches from every
process are merged on :meth:`~ChildHost.drain`; those of a previous run are dropped.

It watches its processes: one that exits is reported at once (``exited``, with the signal
or status), one that sends nothing for :data:`~syncviz.engines.source.STALL_S` (SIGSTOP)
or whose loop is held that long is ``stalled``. :meth:`~ChildHost.set_scenario` restarts the
live ones and starts again whatever is missing.
"""

from __future__ import annotations

import bisect
import operator
import threading
import time
from collections import deque
from typing import Any

from .base import EngineError
from .digester import HEADLESS_NICE, NICE
from .events import DEFAULT_ENGINES, ENGINE_IDS, ENGINES, Batch
from .host import run_info
from .placement import Placement, plan
from .proc_handle import ProcHandle
from .registry import require
from .scenarios import DEFAULT_SCENARIO, get_scenario
from .settings import SettingsError
from .source import STALL_S, EngineStatus, EventSource, SourceStatus
from .stats import DEFAULT_NS_PER_COL

START_TIMEOUT_S = 15.0
MONITOR_S = 0.5  # how often each process's CPU and RSS are sampled
STREAMS = ("full", "digest", "servers")
MAX_HELD = 200_000  # transitions held back for ordering; past this they go out as they are
_time = operator.itemgetter(0)


class ChildHost(EventSource):
    """Runs each engine in a process of its own, and the load in another; one event source."""

    def __init__(
        self,
        scenario: str = DEFAULT_SCENARIO,
        engines: tuple[str, ...] | list[str] = DEFAULT_ENGINES,
        record: bool = True,
        host: str = "127.0.0.1",
        port: int = 0,
        load: bool = True,
        cpus: list[int] | None = None,
        stream: str = "full",
        window_s: float = 5.0,
        ui: bool = True,
        **overrides: Any,
    ) -> None:
        """``stream``: ``full`` (every raw event, digested by the consumer: record, trace),
        ``digest`` (digested where the events happen, in the engine and load processes: the app)
        or ``servers`` (the engine processes digest, as in the app, and the load process sends its
        raw samples: bench, whose latency is exact over its window). ``window_s``: the digests'
        window for percentiles and phase means. ``ui``: a UI draws on the load's CPUs (the app, and
        bench, which digests as the app does): the digest processes there give way to it
        (:data:`~syncviz.engines.digester.NICE`); ``serve --headless`` has none
        (:data:`~syncviz.engines.digester.HEADLESS_NICE`)."""
        if stream not in STREAMS:
            raise ValueError(f"stream must be one of {', '.join(STREAMS)}, not {stream!r}")
        for name in engines:
            if name not in ENGINE_IDS:
                raise EngineError(f"unknown engine {name!r} (known: {', '.join(ENGINES)})")
        self.engine_names = tuple(e for e in ENGINES if e in engines)
        self.record = record
        self.bind_host = host
        self.base_port = port
        self.load = load
        self.stream = stream
        self.window_s = window_s
        self.digest_nice = NICE if ui else HEADLESS_NICE
        self.ns_per_col = DEFAULT_NS_PER_COL
        self.scenario = get_scenario(scenario)
        self.settings = self.scenario.settings.with_changes(**overrides)
        self._cpus = cpus
        self.placement: Placement = plan(self.engine_names, cpus)
        self.procs: dict[str, ProcHandle] = {}
        self._handles: list[ProcHandle] = []  # every process started, from the moment it exists
        self.loadproc: ProcHandle | None = None
        self.ports: dict[str, int] = {}
        self.upstream_port: int | None = None
        self.run = 1
        self.errors: deque[str] = deque(maxlen=20)
        self.restarting = False
        self._lock = threading.Lock()
        self._info_changed = True
        self._closed = threading.Event()
        self._monitor: threading.Thread | None = None
        self._held: list[tuple[int, int, int, int, int]] = []  # transitions waiting for the watermark
        self._held_sizes: list[tuple[int, int, int, int, int]] = []  # size records: after their transitions
        self._released = 0

    # -- lifecycle -----------------------------------------------------------------------
    def start(self, timeout: float = START_TIMEOUT_S) -> ChildHost:
        try:
            self._start_load(timeout)
            for name in self.engine_names:  # start them all, then wait: their imports overlap
                self.procs[name] = ProcHandle(
                    name, self._engine_start(name), self.placement.engines[name], self._owned()
                )
            for name in self.engine_names:
                self.ports[name] = int(self.procs[name].wait_started(timeout)["port"])
            self._send_targets()
        except BaseException:
            self.close()
            raise
        self._monitor = threading.Thread(target=self._watch, name="process-monitor", daemon=True)
        self._monitor.start()
        return self

    def _owned(self) -> list[ProcHandle]:
        """The list a new process's handle joins the moment it exists (see :meth:`close`), the gone dropped."""
        self._handles[:] = [h for h in self._handles if h.alive]
        return self._handles

    def _start_load(self, timeout: float) -> None:
        start = {"role": "load", "record": self.record, "cpus": list(self.placement.load), **self._view()}
        self.loadproc = ProcHandle("load", start, self.placement.load, self._owned())
        self.upstream_port = int(self.loadproc.wait_started(timeout)["upstream_port"])

    def _engine_start(self, name: str) -> dict[str, Any]:
        port = self.ports.get(name) or (self.base_port + ENGINE_IDS[name] if self.base_port else 0)
        return {
            "role": "engine",
            "engine": name,
            "scenario": self.scenario.name,
            "settings": self.settings.as_dict(),
            "run": self.run,
            "record": self.record,
            "host": self.bind_host,
            "port": port,
            "upstream_port": self.upstream_port,
            "cpus": list(self.placement.engines[name]),
            "digest_cpus": list(self.placement.ui),  # its digest process keeps to the UI's CPUs
            "digest_nice": self.digest_nice,
            **self._view(),
        }

    def _view(self) -> dict[str, Any]:
        return {"stream": self.stream, "ns": self.ns_per_col, "window_s": self.window_s}

    def resumed(self) -> None:
        """Back from a suspension: each process is given the stall time from now to be heard again
        (it was "no answer for 30 s" while only the app had stopped listening)."""
        for proc in [*self.procs.values(), self.loadproc]:
            if proc is not None:
                proc.heard_from_now()

    def set_zoom(self, ns_per_col: int) -> None:
        """Digests in the processes start their picture afresh at this column width."""
        self.ns_per_col = max(1, int(ns_per_col))
        if self.stream != "full":
            for proc in [*self.procs.values(), self.loadproc]:
                if proc is not None:
                    proc.send("view", {"ns": self.ns_per_col})

    def _send_targets(self) -> None:
        if self.load and self.loadproc is not None:
            payload = {"ports": dict(self.ports), "settings": self.settings.as_dict(), "run": self.run}
            self.loadproc.send("targets", payload)
        self._info_changed = True

    @property
    def alive(self) -> bool:
        """Every process is running (none exited)."""
        return all(p.alive for p in [*self.procs.values(), self.loadproc] if p is not None)

    def close(self, timeout: float = 3.0) -> None:
        """Stop every process: each is asked at once, and killed if not gone within ``timeout`` s."""
        self._closed.set()
        procs = [*self.procs.values(), *([self.loadproc] if self.loadproc else [])]
        procs += [h for h in self._handles if h not in procs]  # started, not yet held (a signal between)
        for proc in procs:
            proc.send("stop")
        deadline = time.monotonic() + timeout
        for proc in procs:  # one deadline for all: they stop in parallel
            frozen = proc.frozen(max_age_s=0)  # a frozen one never reads stop
            proc.close(max(0.05, deadline - time.monotonic()), kill=frozen)
        if self._monitor is not None:
            self._monitor.join(2)

    def __enter__(self) -> ChildHost:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- commands ------------------------------------------------------------------------
    def apply(self, **changes: Any) -> None:
        try:
            self.settings = self.settings.with_changes(**changes)
        except SettingsError as exc:  # reported like any engine error, never raised into the UI
            self.errors.append(str(exc))
            return
        payload = {"settings": self.settings.as_dict()}
        for proc in [*self.procs.values(), self.loadproc]:
            if proc is not None:
                proc.send("apply", payload)
        self._info_changed = True

    def set_scenario(self, name: str, **overrides: Any) -> None:
        """Restart on ``name`` in the background; the app keeps drawing meanwhile."""
        scenario = get_scenario(name)
        settings = scenario.settings.with_changes(**{"slow": self.settings.slow, **overrides})
        self.restarting = True
        self._info_changed = True
        threading.Thread(target=self._restart, args=(scenario, settings), name="restart", daemon=True).start()

    def set_engines(self, names: list[str] | tuple[str, ...]) -> None:
        """Run ``names`` instead, in the background: every engine process starts afresh on the new
        placement (the shares change with the count), the load aims at the new ports."""
        require(names)  # a missing package is one line before anything stops
        chosen = tuple(e for e in ENGINES if e in names)
        self.restarting = True
        self._info_changed = True
        threading.Thread(target=self._swap, args=(chosen,), name="swap", daemon=True).start()

    def _swap(self, names: tuple[str, ...]) -> None:
        with self._lock:
            for name in list(self.procs):
                proc = self.procs.pop(name)
                proc.send("stop")
                proc.close()
                self.ports.pop(name, None)
            self.engine_names = names
            self.placement = plan(names, self._cpus)
        self._restart(self.scenario, self.settings)

    def _restart(self, scenario: Any, settings: Any) -> None:
        with self._lock:
            try:
                self.scenario, self.settings = scenario, settings
                self.run += 1
                self._held, self._held_sizes = [], []
                if self.loadproc is None or not self.loadproc.alive:
                    self._start_load(START_TIMEOUT_S)
                else:
                    self.loadproc.send("halt")
                for name in self.engine_names:
                    self._restart_engine(name)
                self._send_targets()
            except EngineError as exc:
                self.errors.append(str(exc))
            finally:
                self.restarting = False
                self._info_changed = True

    def _restart_engine(self, name: str) -> None:
        proc = self.procs.get(name)
        start = self._engine_start(name)
        if proc is not None and proc.alive and not proc.frozen(max_age_s=0):
            reply = proc.request("scenario", start, START_TIMEOUT_S)
        else:  # gone or frozen: a new process in its place
            if proc is not None:
                proc.close(kill=True)
            proc = self.procs[name] = ProcHandle(name, start, self.placement.engines[name], self._owned())
            reply = proc.wait_started(START_TIMEOUT_S)
        self.ports[name] = int(reply["port"])

    # -- reading -------------------------------------------------------------------------
    def drain(self) -> Batch:
        """Every process's batches of this run, merged in time order up to a common watermark.

        A request's ``queued`` comes from the load process and the rest of its life from its
        engine's, over two pipes: a transition is released only once every live process has
        reported past its time, so no request's steps arrive out of order.
        """
        out = Batch(t_ns=time.monotonic_ns(), frames=[])
        marks = []
        for proc in [*self.procs.values(), self.loadproc]:
            if proc is None:
                continue
            for batch, run in proc.take():
                if run == self.run:
                    self._held.extend(batch.transitions)
                    self._held_sizes.extend(batch.sizes)
                    out.latencies.extend(batch.latencies)
                    out.lags.extend(batch.lags)
                    out.digests.extend(batch.digests)
                    out.blocks.extend(batch.blocks)  # what held a loop or worker (engines/watchdog.py)
                    out.dropped += batch.dropped
                    if out.frames is not None and batch.frames is not None:
                        out.frames.extend(batch.frames)
                    else:
                        out.frames = None
                proc.watermark = max(proc.watermark, batch.t_ns)
            while proc.errors:
                self.errors.append(f"{proc.name}: {proc.errors.popleft()}")
            if proc.alive and proc.state(STALL_S)[0] == "live":
                marks.append(proc.watermark)
        held = self._held
        mark = min(marks) if marks and len(held) < MAX_HELD else out.t_ns
        held.sort(key=_time)
        cut = bisect.bisect_right(held, mark, key=_time)
        out.transitions, self._held = held[:cut], held[cut:]
        sizes = self._held_sizes
        sizes.sort(key=_time)
        cut = bisect.bisect_right(sizes, mark, key=_time)
        out.sizes, self._held_sizes = sizes[:cut], sizes[cut:]
        if out.transitions or out.sizes or self._held or self._held_sizes:
            out.frames = None  # raw transitions are cut at the watermark: the frames are not this batch
        out.t_ns = max(self._released, min(mark, out.t_ns))
        self._released = out.t_ns
        snaps = {name: proc.server(self.run) for name, proc in self.procs.items()}
        out.servers = {name: snap.as_dict() for name, snap in snaps.items() if snap is not None} or None
        if self._info_changed:
            self._info_changed = False
            out.info = self.info()
        return out

    def info(self) -> dict[str, Any]:
        return {
            **run_info(self.run, self.scenario, self.settings, self.engine_names),
            "ports": dict(self.ports),
            "pids": {name: p.pid for name, p in self.procs.items()},
            "placement": {name: self.placement.label(name) for name in self.engine_names},
            "cpu_share": {name: self.placement.share(name) for name in self.engine_names},
            "cpus": {name: list(self.placement.engines[name]) for name in self.engine_names},  # prefork's workers
            "load": self.load,  # the built-in load generator runs (False under ``syncviz serve``)
        }

    def status(self) -> SourceStatus:
        out = SourceStatus("processes", restarting=self.restarting)
        if self.loadproc is not None:
            out.load = self.loadproc.sample
            out.load_state, out.load_detail = self.loadproc.state(STALL_S)
        for name in self.engine_names:
            proc = self.procs.get(name)
            st = EngineStatus(
                name,
                cpu_share=self.placement.share(name),
                placement=self.placement.label(name),
                port=self.ports.get(name),
            )
            if proc is not None:
                st.process = proc.sample
                st.state, st.detail = proc.state(STALL_S)
                st.server = proc.server(self.run)  # a previous run's counts are not this engine's
            out.engines[name] = st
        return out

    def _watch(self) -> None:
        """Sample every process's CPU and RSS; say at once when one has exited."""
        seen_dead: set[int] = set()
        while not self._closed.wait(MONITOR_S):
            for proc in [*self.procs.values(), self.loadproc]:
                if proc is None:
                    continue
                proc.measure()
                if not proc.alive and proc.pid not in seen_dead and not self.restarting:
                    seen_dead.add(proc.pid)
                    self._info_changed = True
                    if proc is self.loadproc:  # an engine's panel says it; the load has no panel
                        self.errors.append(
                            f"the load generator's process {proc.exit_detail()}: no requests are sent; "
                            "restart the scenario to start it again"
                        )
