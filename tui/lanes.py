"""Worker lanes and waiting depth on the time axis, from the engine's digested picture.

For each engine, :class:`LaneModel` turns the :class:`~syncviz.engines.picture.Picture` that
:class:`~syncviz.engines.stats.EngineStats` merges from the digests (computed where the
events happen, :mod:`syncviz.engines.digest`) into, per time column:

* for every worker lane (pool thread, loop, hub, offload thread) how many nanoseconds it
  was held RUNNING, BLOCKED, READY (a pool thread waiting for the GIL is still held) or
  READING (a pool thread blocked reading a slow client);
* the mean number of requests QUEUED, and READY for the loop or hub (which is free then);
* which request held a lane for a whole stretch, to write its number there (from the
  requests passed on for rows).

Closed segments come as accumulated columns; what is open now (a lane held since t, requests
queued since t) is extended to now each frame. Nothing is invented: every nanosecond comes
from a measured transition.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field

from syncviz.engines.events import Phase
from syncviz.engines.picture import RequestTrack
from syncviz.engines.stats import EngineStats

LABEL_SLACK_NS = 100_000_000
LABEL_MIN_COLS = 6
KEEP_LABELS = 2000


@dataclass
class LaneFrame:
    """What the lanes look like over ``cols`` columns starting at column ``first_col``."""

    first_col: int
    cols: int
    ns_per_col: int
    hold: dict[int, list[list[int]]] = field(default_factory=dict)  # lane -> per col [run, blocked, ready, reading]
    queued: list[float] = field(default_factory=list)  # mean queued requests per col
    ready: list[float] = field(default_factory=list)  # mean requests ready for the loop/hub per col
    labels: list[tuple[int, int, int, int]] = field(default_factory=list)  # (lane, c0, c1, rid), window cols


class LaneModel:
    """One engine's lanes; call :meth:`consume` after every batch (it collects the labels)."""

    def __init__(self, stats: EngineStats, ns_per_col: int) -> None:
        self.stats = stats
        self.holds_worker = stats.holds_worker  # the one rule for who holds a worker
        self.ns = ns_per_col
        # (lane, t0, t1, rid, t_finished) in ns, in the order the requests finished
        self._labels: deque[tuple[int, int, int, int, int]] = deque(maxlen=KEEP_LABELS)
        self._last: RequestTrack | None = None

    @property
    def lanes_seen(self) -> set[int]:
        return self.stats.picture.lanes_seen

    def consume(self, now_ns: int) -> None:
        """Take the labels of the row requests that finished since the last call."""
        recent = self.stats.recent
        new = []
        for track in reversed(recent):
            if track is self._last:
                break
            new.append(track)
        if recent:
            self._last = recent[-1]
        for track in reversed(new):
            end = track.end_ns
            self._labels.extend((*lab, end) for lab in self._spans(track, end))

    def rezoom(self, ns_per_col: int, now_ns: int) -> None:
        """New column width (the stats start their picture afresh at it)."""
        self.ns = ns_per_col
        self._labels.clear()
        self._last = None

    def _spans(self, track: RequestTrack, end_ns: int) -> list[tuple[int, int, int, int]]:
        """(lane, t0, t1, rid) of each stretch the track held one lane long enough for its number."""
        out = []
        min_ns = LABEL_MIN_COLS * self.ns
        steps = track.steps
        span: list[int] | None = None
        for i, (t0, phase, lane) in enumerate(steps):
            t1 = steps[i + 1][0] if i + 1 < len(steps) else end_ns
            if self.holds_worker(phase, lane):
                if span is not None and span[0] == lane:
                    span[2] = t1
                    continue
                if span is not None and span[2] - span[1] >= min_ns:
                    out.append((span[0], span[1], span[2], track.rid))
                span = [lane, t0, t1]
            elif span is not None:
                if span[2] - span[1] >= min_ns:
                    out.append((span[0], span[1], span[2], track.rid))
                span = None
        if span is not None and span[2] - span[1] >= min_ns:
            out.append((span[0], span[1], span[2], track.rid))
        return out

    # -- reading -------------------------------------------------------------------------
    def frame(self, now_ns: int, cols: int, lanes: list[int]) -> LaneFrame:
        """The last ``cols`` columns up to ``now_ns``, for the given lanes."""
        pic = self.stats.picture
        ns = pic.ns
        first = now_ns // ns - cols + 1
        out = LaneFrame(first, cols, ns)
        zero = (0, 0, 0, 0)
        get = {lane: pic.hold.get(lane, {}).get for lane in lanes}
        for lane in lanes:  # the accumulated columns as they are (not copied: only read)
            out.hold[lane] = list(map(get[lane], range(first, first + cols), [zero] * cols))
        for lane, slot, since in pic.held:  # held now: from since to now
            per_col = out.hold.get(lane)
            if per_col is not None:
                _add_span(per_col, slot, since, now_ns, ns, first, cols)
        queued = [0.0] * cols
        ready = [0.0] * cols
        wait = pic.wait
        for j in range(cols):
            acc = wait.get(first + j)
            if acc is not None:
                queued[j], ready[j] = acc[0] / ns, acc[1] / ns
        _add_open(queued, pic.open_q, first, cols, now_ns, ns)
        _add_open(ready, pic.open_r, first, cols, now_ns, ns)
        out.queued, out.ready = queued, ready
        labels: list[tuple[int, int, int, int]] = []
        for track in list(self.stats.inflight.values()):
            if track.end_ns <= now_ns:
                labels.extend(self._spans(track, now_ns))
        first_ns = first * ns
        for lab in reversed(self._labels):
            if lab[4] < first_ns - LABEL_SLACK_NS:
                break  # finished before the window
            labels.append(lab[:4])
        shown = set(lanes)
        for lane, t0, t1, rid in labels:
            c0, c1 = t0 // ns - first, t1 // ns - first
            if lane in shown and c1 >= 0 and c0 < cols:
                out.labels.append((lane, c0, c1, rid))
        return out


def _add_span(per_col: list, slot: int, t0: int, t1: int, ns: int, first: int, cols: int) -> None:
    """Add [t0, t1) to a lane's window columns in ``slot`` (on copies: the cells are the picture's own)."""
    if t1 <= t0:
        return
    c0, c1 = max(t0 // ns, first), min((t1 - 1) // ns, first + cols - 1)
    for c in range(c0, c1 + 1):
        lo, hi = max(t0, c * ns), min(t1, (c + 1) * ns)
        cell = list(per_col[c - first])
        cell[slot] += hi - lo
        per_col[c - first] = cell


def _add_open(depth: list[float], open_by_col: dict[int, int], first: int, cols: int, now_ns: int, ns: int) -> None:
    """Requests waiting now, by the column they started in: each counts from that column to now."""
    if not open_by_col:
        return
    now_col = now_ns // ns
    diff = [0] * (cols + 1)
    for c, n in open_by_col.items():
        j = max(0, c - first)
        if j < cols and c <= now_col:
            diff[j] += n
    run = 0
    last = min(cols, now_col - first + 1)
    for j in range(max(0, last)):
        run += diff[j]
        if run:
            frac = 1.0 if j < last - 1 else (now_ns - (first + j) * ns) / ns
            depth[j] += run * frac


__all__ = ["LaneFrame", "LaneModel", "Phase"]
