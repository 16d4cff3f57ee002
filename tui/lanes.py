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
HOLD_INDEX = {Phase.RUNNING: 0, Phase.BLOCKED: 1, Phase.READY: 2, Phase.READING: 3}
HOLD_PHASES = (Phase.RUNNING, Phase.BLOCKED, Phase.READY, Phase.READING)
LABEL_SLACK_NS = 100_000_000
LABEL_MIN_COLS = 6
KEEP_COLS = 1200  # history kept left of now, in columns (wider than any terminal)


@dataclass
class LaneFrame:
    """What the lanes look like over ``cols`` columns ending at column ``last_col``."""

    first_col: int
    cols: int
    ns_per_col: int
    hold: dict[int, list[list[int]]] = field(default_factory=dict)  # lane -> per col [run, blocked, ready, reading]
    queued: list[float] = field(default_factory=list)  # mean queued requests per col
    ready: list[float] = field(default_factory=list)  # mean requests ready for the loop/hub per col
    labels: list[tuple[int, int, int, int]] = field(default_factory=list)  # (lane, c0, c1, rid), window cols


class LaneModel:
    """One engine's lanes; feed it after every batch with :meth:`consume`."""

    def __init__(self, stats: EngineStats, ns_per_col: int) -> None:
        self.stats = stats
        self.holds_worker = stats.holds_worker  # the one rule for who holds a worker
        self.ns = ns_per_col
        self._hold: dict[int, dict[int, list[int]]] = {}
        self._wait: dict[int, list[int]] = {}
        # (lane, t0, t1, rid, t_finished) in ns, in the order the requests finished
        self._labels: deque[tuple[int, int, int, int, int]] = deque()
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
            labels: list[tuple[int, int, int, int]] = []
            end = track.steps[-1][0]
            self._paint(track, end, floor, self._add_hold, self._add_wait, labels)
            self._labels.extend((*lab, end) for lab in labels)
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
        while self._labels and self._labels[0][4] < floor_ns:
            self._labels.popleft()

    def _add_hold(self, lane: int, col: int, idx: int, ns: int) -> None:
        cols = self._hold.get(lane)
        if cols is None:
            cols = self._hold[lane] = {}
        acc = cols.get(col)
        if acc is None:
            acc = cols[col] = [0, 0, 0, 0]
        acc[idx] += ns

    def _add_wait(self, col: int, idx: int, ns: int) -> None:
        acc = self._wait.get(col)
        if acc is None:
            acc = self._wait[col] = [0, 0]
        acc[idx] += ns

    def _paint(self, track: RequestTrack, end_ns: int, floor: int, hold, wait, labels) -> None:
        """Spread ``track``'s segments over columns >= ``floor`` through the two adders."""
        ns = self.ns
        min_ns = LABEL_MIN_COLS * ns  # shorter holds have no room for a number
        steps = track.steps
        span: list[int] | None = None  # [lane, t0, t1] of the current stretch holding a lane
        for i, (t0, phase, lane) in enumerate(steps):
            t1 = steps[i + 1][0] if i + 1 < len(steps) else end_ns
            holds = self.holds_worker(phase, lane)
            if holds:
                self.lanes_seen.add(lane)
                if span is not None and span[0] == lane:
                    span[2] = t1
                else:
                    if span is not None and span[2] - span[1] >= min_ns:
                        labels.append((span[0], span[1], span[2], track.rid))
                    span = [lane, t0, t1]
            elif span is not None:
                if span[2] - span[1] >= min_ns:
                    labels.append((span[0], span[1], span[2], track.rid))
                span = None
            if t1 <= t0:
                continue
            if holds:
                idx = HOLD_INDEX[phase]
                _spread(t0, t1, ns, floor, lambda c, v, lane=lane, idx=idx: hold(lane, c, idx, v))
            elif phase == QUEUED:
                _spread(t0, t1, ns, floor, lambda c, v: wait(c, 0, v))
            elif phase == READY:
                _spread(t0, t1, ns, floor, lambda c, v: wait(c, 1, v))
        if span is not None and span[2] - span[1] >= min_ns:
            labels.append((span[0], span[1], span[2], track.rid))

    # -- reading -------------------------------------------------------------------------
    def frame(self, now_ns: int, cols: int, lanes: list[int]) -> LaneFrame:
        """The last ``cols`` columns up to ``now_ns``, for the given lanes."""
        ns = self.ns
        first = now_ns // ns - cols + 1
        out = LaneFrame(first, cols, ns)
        hold: dict[int, list[list[int]]] = {}
        for lane in lanes:
            src = self._hold.get(lane, {})
            hold[lane] = [list(src.get(c, _ZERO)) for c in range(first, first + cols)]
        queued = [0] * cols
        ready = [0] * cols
        wait = self._wait
        for j in range(cols):
            acc = wait.get(first + j)
            if acc is not None:
                queued[j], ready[j] = acc

        def add_hold(lane: int, c: int, idx: int, v: int) -> None:
            per_col = hold.get(lane)
            j = c - first
            if per_col is not None and 0 <= j < cols:
                per_col[j][idx] += v

        qdiff = [0] * (cols + 1)
        rdiff = [0] * (cols + 1)

        def add_wait_span(t0: int, t1: int, idx: int) -> None:
            direct, diff = (queued, qdiff) if idx == 0 else (ready, rdiff)
            _spread_diff(direct, diff, t0, t1, ns, first, cols)

        labels: list[tuple[int, int, int, int]] = []
        for track in list(self.stats.inflight.values()):
            if track.steps[-1][0] <= now_ns:
                self._paint_live(track, now_ns, first, add_hold, add_wait_span, labels)
        for k in (qdiff, rdiff):
            run = 0
            direct = queued if k is qdiff else ready
            for j in range(cols):
                run += k[j]
                direct[j] += run
        out.hold = hold
        out.queued = [q / ns for q in queued]
        out.ready = [r / ns for r in ready]
        first_ns = first * ns
        for lab in reversed(self._labels):
            if lab[4] < first_ns - LABEL_SLACK_NS:
                break  # finished before the window (give or take the threads' append order)
            labels.append(lab[:4])
        shown = set(lanes)
        for lane, t0, t1, rid in labels:
            c0, c1 = t0 // ns - first, t1 // ns - first
            if lane in shown and c1 >= 0 and c0 < cols:
                out.labels.append((lane, c0, c1, rid))
        return out

    def _paint_live(self, track: RequestTrack, now_ns: int, first: int, hold, wait_span, labels) -> None:
        """An in-flight track: holds through ``hold``, waiting spans through ``wait_span``."""
        steps = track.steps
        n = len(steps)
        if n == 1 and steps[0][1] == QUEUED:  # the common case: still in the queue
            wait_span(steps[0][0], now_ns, 0)
            return
        for i in range(n):
            t0, phase, lane = steps[i]
            t1 = steps[i + 1][0] if i + 1 < n else now_ns
            if phase == QUEUED:
                wait_span(t0, t1, 0)
            elif phase == READY and not self.holds_worker(phase, lane):
                wait_span(t0, t1, 1)
        self._paint(track, now_ns, first, hold, lambda *a: None, labels)


_ZERO = (0, 0, 0, 0)


def _spread_diff(direct: list[int], diff: list[int], t0: int, t1: int, ns: int, first: int, cols: int) -> None:
    """Add [t0, t1) to window columns: partial ends directly, whole columns through ``diff``."""
    if t1 <= t0:
        return
    c0, c1 = t0 // ns - first, (t1 - 1) // ns - first
    if c1 < 0 or c0 >= cols:
        return
    if c0 == c1:
        direct[c0] += t1 - t0
        return
    if c0 >= 0:
        direct[c0] += (first + c0 + 1) * ns - t0
    lo, hi = max(c0 + 1, 0), min(c1, cols)
    if hi > lo:
        diff[lo] += ns
        diff[hi] -= ns
    if c1 < cols:
        direct[c1] += t1 - (first + c1) * ns


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
