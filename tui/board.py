"""The app's state, without widgets: the stream's stats, lanes, rows, history and status.

:class:`Board` is fed every batch (``feed``) and answers what each panel should draw.
A scenario switch restarts the engines, so the board starts afresh when the stream's
``info`` reports a new run of them: the old requests will never finish.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from syncviz.engines.events import DEFAULT_ENGINES, Batch
from syncviz.engines.registry import engine_spec
from syncviz.engines.scenarios import DEFAULT_SCENARIO, SCENARIOS, io_line
from syncviz.engines.settings import Settings, arrivals_bind, bound_rps
from syncviz.engines.source import SourceStatus
from syncviz.engines.stats import Counters, StreamStats
from syncviz.tui.history import History
from syncviz.tui.lanes import LaneModel
from syncviz.tui.rows import RequestRows

ZOOMS_MS = (0.5, 1, 2, 5, 10, 20, 50, 100, 200, 500, 1000)
DEFAULT_ZOOM_MS = 10
TRUNCATED_FOR_S = 10.0  # how long the status bar says `truncated` after records were lost
KEEP_TRACKS = 6000  # finished requests the stats remember (for repainting after a zoom)


@dataclass
class EngineInfo:
    name: str
    model: str
    mode: str
    io_line: str
    bound: float | None
    lanes: list[tuple[int, str]]  # (lane, name) of every worker lane, in order
    worker_word: str
    has_lag: bool
    offered: bool = False  # an open loop's arrivals bind (settings.arrivals_bind): 'of offered', measured


class Board:
    def __init__(
        self,
        info: dict[str, Any] | None = None,
        zoom_ms: float = DEFAULT_ZOOM_MS,
        on_zoom: Callable[[int], None] | None = None,
    ) -> None:
        self.info: dict[str, Any] = dict(info or {})
        self.zoom_ms = zoom_ms
        self.on_zoom = on_zoom  # tells the source, whose digests draw the picture at this zoom
        self.batches = 0
        self.dropped = 0  # overflows: buffers that lost their oldest records, batches a reader let go
        self.dropped_ns = -1  # the stream time of the last batch that said so (-1: never)
        self._rows_wanted: dict[str, int] = {}
        self._reset()

    # -- status --------------------------------------------------------------------------
    def truncated(self, within_s: float = TRUNCATED_FOR_S) -> bool:
        """Records were lost in the last ``within_s`` seconds: the picture has gaps."""
        return self.dropped_ns >= 0 and self.now_ns - self.dropped_ns < within_s * 1e9

    @property
    def scenario(self) -> str:
        return self.info.get("scenario", DEFAULT_SCENARIO)

    @property
    def settings(self) -> Settings:
        raw = self.info.get("settings")
        if raw:
            return Settings(**raw)
        return SCENARIOS[self.scenario].settings

    @property
    def engines(self) -> list[str]:
        return list(self.info.get("engines") or DEFAULT_ENGINES)

    @property
    def now_ns(self) -> int:
        return self.stats.last_t_ns

    @property
    def ns_per_col(self) -> int:
        return max(1, round(self.zoom_ms * 1_000_000))

    def of_bound(self) -> dict[str, float | None]:
        """Each engine's req/s now over its bound: 0 with no bound (nothing caps it but the CPU),
        None before its first counters."""
        out: dict[str, float | None] = {}
        for name in self.engines:
            bound, counters = self.engine_info(name).bound, self.counters.get(name)
            out[name] = None if counters is None else counters.rps / bound if bound else 0.0
        return out

    def engine_info(self, name: str) -> EngineInfo:
        settings = self.settings
        mode = self.info.get("modes", {}).get(name) or SCENARIOS[self.scenario].mode(name)
        spec = engine_spec(name)
        share = float((self.info.get("cpu_share") or {}).get(name, 1.0))
        cpus = (self.info.get("cpus") or {}).get(name)  # its placement: prefork starts a worker per CPU of it
        cpus = tuple(cpus) if cpus else None
        window_s = self.stats[name].rate_window_s  # req/s's window
        bound = bound_rps(name, mode, settings, share, cpus, window_s)
        return EngineInfo(
            name=name,
            model=spec.model,
            mode=mode,
            io_line=io_line(name, mode, settings),
            bound=bound,
            offered=arrivals_bind(bound, settings, window_s),
            lanes=spec.lanes(mode, settings, cpus),
            worker_word=spec.worker_word(mode),
            has_lag=spec.has_loop,
        )

    # -- feeding -------------------------------------------------------------------------
    def _reset(self) -> None:
        self.stats = StreamStats(keep=KEEP_TRACKS, names=self.engines)
        self.history = History()
        ns = self.ns_per_col
        self.stats.set_zoom(ns)
        shown = [e for e in self.stats.engines if e.engine in self.stats.names]  # the engines the stream runs
        self.lanes = {e.engine: LaneModel(e, ns) for e in shown}
        self.rows = {e.engine: RequestRows(e, self._rows_wanted.get(e.engine, 12)) for e in shown}
        self.counters: dict[str, Counters] = {}

    def feed(self, batch: Batch) -> bool:
        """Take one batch; True when the engines restarted (the board started afresh).

        The host numbers each start of its engines (``info["run"]``): a new number is a restart,
        whatever the scenario. Recordings made before that field existed restart on a new scenario.
        """
        self.batches += 1
        self.dropped += batch.dropped
        if batch.dropped:
            self.dropped_ns = batch.t_ns
        if batch.info is not None:
            old = _run_key(self.info)
            self.info = {**self.info, **batch.info}
            if _run_key(self.info) != old:
                # The engines (re)started (the first run seen counts too: an empty board loses nothing).
                # The batch holds the old engines' last transitions and the new ones' first: drop it
                # and start afresh; the new requests' later transitions still end well.
                last = max(self.stats.last_t_ns, batch.t_ns)
                self._reset()
                self.stats.last_t_ns = last
                return True
        self.stats.feed(batch)
        now = self.stats.last_t_ns
        for name, model in self.lanes.items():
            model.consume(now)
            self.rows[name].consume(now, self.ns_per_col)
        sampled = self.history.observe(self.stats, now)
        if sampled is not None:
            self.counters = self._running(sampled)
        return False

    def refresh_counters(self) -> dict[str, Counters]:
        self.counters = self._running(self.stats.counters(self.now_ns))
        return self.counters

    def _running(self, counters: dict[str, Counters]) -> dict[str, Counters]:
        """The counters of the engines this stream runs (the stats keep one per known engine): the
        live verdicts and the tape read these, and an engine not running has nothing to say."""
        engines = self.engines
        return {name: counters[name] for name in engines if name in counters}

    def drop_dead(self, status: SourceStatus) -> None:
        """What a dead process held is held no more: an exited engine's workers, queue and rows'
        requests (its counters stay its last: its panel says so), an exited load's clients' requests.
        Called at every health check, not once: batches a process sent before it died may still be
        taken after."""
        for name, st in status.engines.items():
            if st.state == "exited" and name in self.stats.names:
                self.stats[name].server_gone()
        if status.load_state == "exited":
            self.stats.client_gone()

    def set_rows(self, engine: str, rows: int) -> None:
        self._rows_wanted[engine] = rows
        self.rows[engine].resize(rows)

    def set_zoom(self, zoom_ms: float) -> None:
        self.zoom_ms = zoom_ms
        self.stats.set_zoom(self.ns_per_col)
        if self.on_zoom is not None:
            self.on_zoom(self.ns_per_col)
        for model in self.lanes.values():
            model.rezoom(self.ns_per_col, self.now_ns)

    def zoom_step(self, direction: int) -> float:
        """One step finer (-1) or coarser (+1) on the ms-per-column scale."""
        levels = list(ZOOMS_MS)
        near = min(range(len(levels)), key=lambda i: abs(levels[i] - self.zoom_ms))
        self.set_zoom(levels[max(0, min(len(levels) - 1, near + direction))])
        return self.zoom_ms


def _run_key(info: dict[str, Any]) -> object:
    """What identifies one run of the engines in a status dict (``None``: no status yet)."""
    if "run" in info:
        return info["run"]
    return info.get("scenario")
