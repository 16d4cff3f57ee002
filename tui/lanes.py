"""Worker lanes and waiting depth on the time axis, painted from StreamStats' request tracks.

For each engine, :class:`LaneModel` turns the :class:`~syncviz.engines.stats.RequestTrack`
s that :class:`~syncviz.engines.stats.EngineStats` keeps into, per time column:

* for every worker lane (pool thread, loop, hub, offload thread) how many nanoseconds it
  was held RUNNING, BLOCKED or READY (a pool thread waiting for the GIL is still held);
* the mean number of requests QUEUED, and READY for the loop or hub (which is free then);
* which request held a lane for a whole stretch, to write its number there.

Finished requests are painted once, when they finish; the few in flight are painted each
frame. Nothing is invented: every nanosecond comes from a measured transition.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field

from syncviz.engines.events import Phase
from syncviz.engines.stats import EngineStats, RequestTrack

QUEUED, RUNNING, BLOCKED, READY = Phase.QUEUED, Phase.RUNNING, Phase.BLOCKED, Phase.READY
HOLD_INDEX = {Phase.RUNNING: 0, Phase.BLOCKED: 1, Phase.READY: 2}
HOLD_PHASES = (Phase.RUNNING, Phase.BLOCKED, Phase.READY)
KEEP_COLS = 1200  # history kept left of now, in columns (wider than any terminal)


@dataclass
class LaneFrame:
    """What the lanes look like over ``cols`` columns ending at column ``last_col``."""

    first_col: int
    cols: int
    ns_per_col: int
    hold: dict[int, list[list[int]]] = field(default_factory=dict)  # lane -> per col [run, blocked, ready]
    queued: list[float] = field(default_factory=list)  # mean queued requests per col
    ready: list[float] = field(default_factory=list)  # mean requests ready for the loop/hub per col
    labels: list[tuple[int, int, int, int]] = field(default_factory=list)  # (lane, c0, c1, rid), window cols


class LaneModel:
    """One engine's lanes; feed it after every batch with :meth:`consume`."""

    def __init__(self, stats: EngineStats, ns_per_col: int) -> None:
        self.stats = stats
        self.threaded = stats.threaded
        self.ns = ns_per_col
        self._hold: dict[int, dict[int, list[int]]] = {}
        self._wait: dict[int, list[int]] = {}
        self._labels: deque[tuple[int, int, int, int]] = deque()  # (lane, t0, t1, rid) in ns
        self._last: RequestTrack | None = None
        self._trimmed_at = 0
        self.lanes_seen: set[int] = set()

    # -- feeding -------------------------------------------------------------------------
    def consume(self, now_ns: int) -> None:
        """Paint the requests that finished since the last call."""
        new = []
        for track in reversed(self.stats.recent):
            if track is self._last:
                break
            new.append(track)
        if self.stats.recent:
            self._last = self.stats.recent[-1]
        floor = now_ns // self.ns - KEEP_COLS
        for track in reversed(new):
            self._paint(track, track.steps[-1][0], floor, self._add_hold, self._add_wait, self._labels)
        if now_ns - self._trimmed_at > 1_000_000_000:
            self._trim(floor)
            self._trimmed_at = now_ns

    def rezoom(self, ns_per_col: int, now_ns: int) -> None:
        """New column width: repaint what the stats still remember."""
        self.ns = ns_per_col
        self._hold.clear()
        self._wait.clear()
        self._labels.clear()
        self._last = None
        self.consume(now_ns)

    def _trim(self, floor: int) -> None:
        for cols in self._hold.values():
            for c in [c for c in cols if c < floor]:
                del cols[c]
        for c in [c for c in self._wait if c < floor]:
            del self._wait[c]
        floor_ns = floor * self.ns
        while self._labels and self._labels[0][2] < floor_ns:
            self._labels.popleft()

    def _add_hold(self, lane: int, col: int, idx: int, ns: int) -> None:
        cols = self._hold.get(lane)
        if cols is None:
            cols = self._hold[lane] = {}
        acc = cols.get(col)
        if acc is None:
            acc = cols[col] = [0, 0, 0]
        acc[idx] += ns

    def _add_wait(self, col: int, idx: int, ns: int) -> None:
        acc = self._wait.get(col)
        if acc is None:
            acc = self._wait[col] = [0, 0]
        acc[idx] += ns

    def _paint(self, track: RequestTrack, end_ns: int, floor: int, hold, wait, labels) -> None:
        """Spread ``track``'s segments over columns >= ``floor`` through the two adders."""
        ns = self.ns
        steps = track.steps
        span: list[int] | None = None  # [lane, t0, t1] of the current stretch holding a lane
        for i, (t0, phase, lane) in enumerate(steps):
            t1 = steps[i + 1][0] if i + 1 < len(steps) else end_ns
            holds = phase in (RUNNING, BLOCKED) or (phase == READY and (self.threaded or lane > 0))
            if holds and lane >= 0:
                self.lanes_seen.add(lane)
                if span is not None and span[0] == lane:
                    span[2] = t1
                else:
                    if span is not None:
                        labels.append((span[0], span[1], span[2], track.rid))
                    span = [lane, t0, t1]
            elif span is not None:
                labels.append((span[0], span[1], span[2], track.rid))
                span = None
            if t1 <= t0:
                continue
            if holds and lane >= 0:
                idx = HOLD_INDEX[phase]
                _spread(t0, t1, ns, floor, lambda c, v, lane=lane, idx=idx: hold(lane, c, idx, v))
            elif phase == QUEUED:
                _spread(t0, t1, ns, floor, lambda c, v: wait(c, 0, v))
            elif phase == READY:
                _spread(t0, t1, ns, floor, lambda c, v: wait(c, 1, v))
        if span is not None:
            labels.append((span[0], span[1], span[2], track.rid))

    # -- reading -------------------------------------------------------------------------
    def frame(self, now_ns: int, cols: int, lanes: list[int]) -> LaneFrame:
        """The last ``cols`` columns up to ``now_ns``, for the given lanes."""
        ns = self.ns
        last = now_ns // ns
        first = last - cols + 1
        out = LaneFrame(first, cols, ns)
        hold = {lane: [[0, 0, 0] for _ in range(cols)] for lane in lanes}
        queued = [0] * cols
        ready = [0] * cols
        for lane, per_col in hold.items():
            src = self._hold.get(lane, {})
            for c, acc in src.items():
                j = c - first
                if 0 <= j < cols:
                    dst = per_col[j]
                    dst[0] += acc[0]
                    dst[1] += acc[1]
                    dst[2] += acc[2]
        for c, (q, r) in self._wait.items():
            j = c - first
            if 0 <= j < cols:
                queued[j] += q
                ready[j] += r

        def add_hold(lane: int, c: int, idx: int, v: int) -> None:
            per_col = hold.get(lane)
            j = c - first
            if per_col is not None and 0 <= j < cols:
                per_col[j][idx] += v

        def add_wait(c: int, idx: int, v: int) -> None:
            j = c - first
            if 0 <= j < cols:
                (queued if idx == 0 else ready)[j] += v

        labels: list[tuple[int, int, int, int]] = list(self._labels)
        for track in list(self.stats.inflight.values()):
            if track.steps[-1][0] <= now_ns:
                self._paint(track, now_ns, first, add_hold, add_wait, labels)
        out.hold = hold
        out.queued = [q / ns for q in queued]
        out.ready = [r / ns for r in ready]
        shown = set(lanes)
        for lane, t0, t1, rid in labels:
            c0, c1 = t0 // ns - first, t1 // ns - first
            if lane in shown and c1 >= 0 and c0 < cols:
                out.labels.append((lane, c0, c1, rid))
        return out


def _spread(t0: int, t1: int, ns: int, floor: int, add) -> None:
    """Call ``add(col, ns_in_col)`` for every column >= ``floor`` that [t0, t1) touches."""
    c0, c1 = t0 // ns, (t1 - 1) // ns
    if c1 < floor:
        return
    if c0 == c1:
        add(c0, t1 - t0)
        return
    if c0 >= floor:
        add(c0, (c0 + 1) * ns - t0)
    for c in range(max(c0 + 1, floor), c1):
        add(c, ns)
    add(c1, t1 - c1 * ns)
