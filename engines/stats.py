"""Turn the event stream into per-engine counters and request histories.

This is the one place that interprets transitions: ``syncviz bench``, the claims and the
app all feed :class:`StreamStats` with :class:`~syncviz.engines.events.Batch` es and read
:class:`Counters` back. It also keeps each request's transitions (in flight, and the most
recent finished ones) for the app's request lanes.
"""

from __future__ import annotations

import itertools
import math
from collections import deque
from dataclasses import dataclass, field

from .events import ENGINES, HANDED_OVER, TERMINAL, WAITING_PHASES, Batch, Phase
from .http import EXTERNAL_IDS_START
from .registry import engine_spec

RUNNING, BLOCKED, READY, QUEUED = Phase.RUNNING, Phase.BLOCKED, Phase.READY, Phase.QUEUED
_HOLDING = (RUNNING, BLOCKED, Phase.READING)  # READING holds a worker only on a lane (a pool thread in recv)


@dataclass
class Counters:
    """What one engine is doing, over the last ``window_s`` seconds (rates) or now (gauges)."""

    engine: str
    completed: int = 0  # since start (ok responses the load generator received)
    failed: int = 0  # since start (errors, 5xx, dropped connections)
    rps: float = 0.0  # ok responses per second over the rate window
    in_flight: int = 0  # requests between queued and done, per the servers' transitions
    queued: int = 0
    reading: int = 0  # connections whose request has not fully arrived (slow, stalled or outside clients)
    outside: int = 0  # in flight from outside clients (curl, wrk, a browser: no load generator id)
    busy: int = 0  # workers held by a request (pool threads; the loop or hub thread; offload threads)
    by_phase: dict[str, int] = field(default_factory=dict)  # in-flight count per current phase
    p50_ms: float | None = None
    p95_ms: float | None = None
    p99_ms: float | None = None
    max_ms: float | None = None
    lag_p50_ms: float | None = None
    lag_p99_ms: float | None = None
    lag_max_ms: float | None = None
    phase_ms: dict[str, float] = field(default_factory=dict)  # mean per finished request, window
    samples: int = 0  # latency samples in the window

    @property
    def has_loop(self) -> bool:
        """Whether the engine runs on one loop or hub (its loop-lag figures mean something)."""
        return engine_spec(self.engine).has_loop


def percentile(sorted_values: list[int] | list[float], q: float) -> float:
    """Nearest-rank percentile of an already sorted, non-empty list (``q`` in 0..100)."""
    if not sorted_values:
        raise ValueError("percentile of an empty list")
    rank = max(0, min(len(sorted_values) - 1, math.ceil(q / 100.0 * len(sorted_values)) - 1))
    return float(sorted_values[rank])


class RequestTrack:
    """One request's transitions so far: ``steps`` is a list of (t_ns, phase, lane)."""

    __slots__ = ("phase", "rid", "since", "steps")

    def __init__(self, rid: int, t_ns: int, phase: int, lane: int) -> None:
        self.rid = rid
        self.steps: list[tuple[int, int, int]] = [(t_ns, phase, lane)]
        self.phase = phase
        self.since = t_ns

    @property
    def lane(self) -> int:
        return self.steps[-1][2]

    def phase_totals(self) -> list[int]:
        """Nanoseconds spent in each phase (indexed by Phase value), terminal phases zero."""
        totals = [0] * len(Phase)
        steps = self.steps
        for (t0, ph, _), (t1, _, _) in itertools.pairwise(steps):
            if t1 > t0:
                totals[ph] += t1 - t0
        return totals


class EngineStats:
    """Counters and request tracks for one engine."""

    def __init__(self, engine: str, window_s: float = 5.0, rate_window_s: float = 2.0, keep: int = 400):
        self.engine = engine
        self.has_loop = engine_spec(engine).has_loop  # one loop or hub thread (lane 0) runs every request
        self.window_ns = int(window_s * 1e9)
        self.rate_window_ns = int(rate_window_s * 1e9)
        self.inflight: dict[int, RequestTrack] = {}
        self.recent: deque[RequestTrack] = deque(maxlen=keep)  # finished, newest last
        self.completed = 0
        self.failed = 0
        self._lat: deque[tuple[int, int]] = deque()  # (t_done, latency_ns) ok samples, window
        self._rate: deque[int] = deque()  # t_done of ok samples, rate window (rps = its length)
        self._lags: deque[tuple[int, int]] = deque()
        self._phases: deque[tuple[int, list[int]]] = deque()  # (t_done, totals)
        self._last_t = 0

    # -- feeding -------------------------------------------------------------------------
    def transition(self, t: int, rid: int, lane: int, phase: int) -> None:
        if lane == HANDED_OVER:  # a reading row that turned into a request with its own id
            self.inflight.pop(rid, None)
            return
        track = self.inflight.get(rid)
        if track is None:
            if phase in TERMINAL:
                return  # its start was before we began listening
            self.inflight[rid] = RequestTrack(rid, t, phase, lane)
        else:
            track.steps.append((t, phase, lane))
            track.phase = phase
            track.since = t
            if phase in TERMINAL:
                del self.inflight[rid]
                self.recent.append(track)
                if phase == Phase.DONE:
                    self._phases.append((t, track.phase_totals()))
        if t > self._last_t:
            self._last_t = t

    def latency(self, t_done: int, latency_ns: int, ok: bool) -> None:
        if ok:
            self.completed += 1
            self._lat.append((t_done, latency_ns))
            self._rate.append(t_done)
        else:
            self.failed += 1

    def lag(self, t: int, lag_ns: int) -> None:
        self._lags.append((t, lag_ns))

    def forget_inflight(self) -> None:
        """Drop tracks of requests that will never finish (the engine was restarted)."""
        self.inflight.clear()

    # -- reading -------------------------------------------------------------------------
    def holds_worker(self, phase: int, lane: int) -> bool:
        """Whether a request in ``phase`` on ``lane`` keeps that worker from anyone else.

        A pool or offload thread stays its request's while it waits for the GIL (READY); the
        loop or hub (lane 0 of asyncio and gevent) is free for others while a request is READY.
        """
        if lane < 0:
            return False
        return phase in _HOLDING or (phase == READY and (not self.has_loop or lane > 0))

    def busy_workers(self) -> int:
        holds = self.holds_worker
        return len({t.lane for t in self.inflight.values() if holds(t.phase, t.lane)})

    def counters(self, now_ns: int | None = None) -> Counters:
        now = self._last_t if now_ns is None else now_ns
        _trim(self._lat, now - self.window_ns)
        _trim(self._lags, now - self.window_ns)
        _trim(self._phases, now - self.window_ns)
        c = Counters(self.engine, completed=self.completed, failed=self.failed)
        rate, rate_from = self._rate, now - self.rate_window_ns
        while rate and rate[0] < rate_from:
            rate.popleft()
        c.rps = len(rate) / (self.rate_window_ns / 1e9)
        by_phase = dict.fromkeys((p.name.lower() for p in WAITING_PHASES), 0)
        for track in self.inflight.values():
            by_phase[Phase(track.phase).name.lower()] += 1
        c.by_phase = by_phase
        c.in_flight = len(self.inflight)
        c.queued = by_phase["queued"]
        c.reading = by_phase["reading"]
        c.outside = sum(1 for rid in self.inflight if rid >= EXTERNAL_IDS_START)
        c.busy = self.busy_workers()
        fill_latency(c, [lat for _, lat in self._lat])
        fill_lag(c, [lag for _, lag in self._lags])
        c.phase_ms = mean_phases([totals for _, totals in self._phases])
        return c


def fill_latency(c: Counters, latencies_ns: list[int]) -> None:
    c.samples = len(latencies_ns)
    if latencies_ns:
        lat = sorted(latencies_ns)
        c.p50_ms, c.p95_ms, c.p99_ms = (percentile(lat, q) / 1e6 for q in (50, 95, 99))
        c.max_ms = lat[-1] / 1e6


def fill_lag(c: Counters, lags_ns: list[int]) -> None:
    if lags_ns:
        lags = sorted(lags_ns)
        c.lag_p50_ms, c.lag_p99_ms = (percentile(lags, q) / 1e6 for q in (50, 99))
        c.lag_max_ms = lags[-1] / 1e6


def mean_phases(all_totals: list[list[int]]) -> dict[str, float]:
    out = {p.name.lower(): 0.0 for p in WAITING_PHASES}
    if all_totals:
        n = len(all_totals)
        for p in WAITING_PHASES:
            out[p.name.lower()] = sum(t[p] for t in all_totals) / n / 1e6
    return out


def _trim(buf: deque, before: int) -> None:
    while buf and buf[0][0] < before:
        buf.popleft()


class StreamStats:
    """Feeds batches to one :class:`EngineStats` per engine."""

    def __init__(self, window_s: float = 5.0, rate_window_s: float = 2.0, keep: int = 400) -> None:
        self.engines = [EngineStats(name, window_s, rate_window_s, keep) for name in ENGINES]
        self.last_t_ns = 0

    def feed(self, batch: Batch) -> None:
        engines = self.engines
        for t, e, rid, lane, phase in batch.transitions:
            engines[e].transition(t, rid, lane, phase)
        for t, e, _rid, lat, ok in batch.latencies:
            engines[e].latency(t, lat, ok)
        for t, e, lag in batch.lags:
            engines[e].lag(t, lag)
        if batch.t_ns > self.last_t_ns:
            self.last_t_ns = batch.t_ns

    def __getitem__(self, name: str) -> EngineStats:
        return self.engines[ENGINES.index(name)]

    def counters(self, now_ns: int | None = None) -> dict[str, Counters]:
        now = self.last_t_ns if now_ns is None else now_ns
        return {e.engine: e.counters(now) for e in self.engines}
