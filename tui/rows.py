"""Request rows: which requests get a row on screen, and each row's phases per column.

There are more requests in flight than rows, so rows are handed out like seats: a new
request takes the first row whose last request finished before it started (one column
apart); when no row is free it is not drawn (the panel says how many are not shown).
A row therefore shows a sequence of real requests, each a run of its measured phases.
Placement happens as batches arrive (not per frame), so a replay draws the same rows.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass

from syncviz.engines.events import TERMINAL, Phase
from syncviz.engines.http import EXTERNAL_IDS_START
from syncviz.engines.slowclients import SLOW_IDS_START
from syncviz.engines.stats import EngineStats, RequestTrack

NPHASES = len(Phase)
MAX_ROWS = 64


@dataclass
class RowCells:
    """One row over the window: a phase per column (-1 none) and where to write numbers."""

    phases: list[int]
    labels: list[tuple[int, int, int]]  # (c0, c1, rid) of each request's run in window columns
    ends: list[tuple[int, int]]  # (col, phase) of terminal transitions


class RequestRows:
    """Seats requests in rows; ``rows`` is how many the view can show."""

    def __init__(self, stats: EngineStats, rows: int = 12) -> None:
        self.stats = stats
        self.rows: list[deque[RequestTrack]] = [deque() for _ in range(MAX_ROWS)]
        self.visible = rows
        self.cols = 400  # the window's width, as last drawn
        self._seen: set[int] = set()
        self._cache: dict[int, tuple[int, int, list[int]]] = {}  # rid -> (ns, first col, phases)
        self._live: dict[int, tuple[tuple[int, int], int, list[int]]] = {}  # in flight: up to the last step
        self._swept_at = 0

    def resize(self, rows: int) -> None:
        self.visible = max(0, min(MAX_ROWS, rows))

    def consume(self, now_ns: int, ns_per_col: int) -> None:
        """Seat new in-flight requests (one column apart); drop requests left of the window."""
        gap_ns = ns_per_col
        horizon_ns = ns_per_col * (self.cols + 2)
        seen = self._seen
        rows = self.rows[: self.visible]
        for row in rows:
            while row and row[0].phase in TERMINAL and row[0].since < now_ns - horizon_ns:
                self._cache.pop(row.popleft().rid, None)
        if len(self._live) > 4 * MAX_ROWS:  # finished ones have their own cache
            inflight = self.stats.inflight
            self._live = {rid: v for rid, v in self._live.items() if rid in inflight}
        for rid, track in self.stats.inflight.items():
            if rid in seen:
                continue
            seen.add(rid)
            start = track.steps[0][0]
            seat = None
            for row in rows:  # the first row free for a column, else the first free at all
                if not row or (row[-1].phase in TERMINAL and row[-1].since + gap_ns <= start):
                    seat = row
                    break
                if seat is None and row[-1].phase in TERMINAL and row[-1].since <= start:
                    seat = row
            if seat is not None:
                seat.append(track)
        if now_ns - self._swept_at > 1_000_000_000:
            self._swept_at = now_ns
            self._seen = {rid for rid in seen if rid in self.stats.inflight}

    def shown_in_flight(self) -> int:
        return sum(1 for row in self.rows[: self.visible] if row and row[-1].phase not in TERMINAL)

    def _live_columns(self, track: RequestTrack, now_ns: int, ns: int, floor: int) -> tuple[int, list[int]]:
        """An in-flight request's columns: those before its last step's column are built once
        (until it takes another step), only the rest up to now each frame."""
        steps = track.steps
        last_col = steps[-1][0] // ns
        key = (ns, len(steps))
        cached = self._live.get(track.rid)
        if cached is None or cached[0] != key:
            whole = last_col * ns > steps[0][0]  # some columns lie wholly before the last step's
            base = track_columns(steps, last_col * ns, ns, steps[0][0] // ns) if whole else (0, [])
            cached = self._live[track.rid] = (key, *base)
        _, start0, cells0 = cached
        start1, cells1 = track_columns(steps, now_ns, ns, max(last_col, floor))
        if not cells0 or start0 + len(cells0) <= floor:
            return start1, cells1
        lo = max(0, floor - start0)  # drop what lies left of the window
        return start0 + lo, cells0[lo:] + cells1

    def cells(self, index: int, first_col: int, cols: int, ns: int, now_ns: int) -> RowCells:
        """Row ``index`` over columns ``first_col .. first_col + cols - 1`` (absolute)."""
        self.cols = cols
        phases = [-1] * cols
        labels: list[tuple[int, int, int]] = []
        ends: list[tuple[int, int]] = []
        first_ns = first_col * ns
        last_col = first_col + cols
        for track in self.rows[index]:
            steps = track.steps
            terminal = track.phase in TERMINAL
            end = steps[-1][0] if terminal else now_ns
            if end < first_ns or steps[0][0] > now_ns:
                continue
            if terminal:
                cached = self._cache.get(track.rid)
                if cached is None or cached[0] != ns:
                    cached = self._cache[track.rid] = (ns, *track_columns(steps, end, ns, first_col - cols))
                _, start, cells = cached
            else:
                start, cells = self._live_columns(track, end, ns, first_col)
            lo, hi = max(start, first_col), min(start + len(cells), last_col)
            if hi > lo:
                phases[lo - first_col : hi - first_col] = cells[lo - start : hi - start]
            c0 = max(0, steps[0][0] // ns - first_col)
            c1 = min(cols - 1, end // ns - first_col)
            labels.append((c0, c1, track.rid))
            if terminal and 0 <= end // ns - first_col < cols:
                ends.append((end // ns - first_col, track.phase))
        return RowCells(phases, labels, ends)


def rid_label(rid: int) -> str:
    """``#42`` for the load generator's requests, ``s3`` for its slow clients', ``↗7`` for an outside client's."""
    if rid >= EXTERNAL_IDS_START:
        return f"↗{rid - EXTERNAL_IDS_START}"
    if rid >= SLOW_IDS_START:
        return f"s{rid - SLOW_IDS_START}"
    return f"#{rid}"


def track_columns(steps: list[tuple[int, int, int]], end: int, ns: int, floor: int) -> tuple[int, list[int]]:
    """(first column, dominant phase per column) of a request's life, from column ``floor`` on.

    A column wholly inside one phase takes it; a column shared by several takes the one
    that lasted longest in it.
    """
    start = max(steps[0][0] // ns, floor)
    size = (end - 1) // ns - start + 1
    if size <= 0:
        return start, []
    out = [-1] * size
    edges: dict[int, list[int]] = {}
    n = len(steps)
    for i in range(n):
        t0, phase, _ = steps[i]
        t1 = steps[i + 1][0] if i + 1 < n else end
        if t1 <= t0 or phase in TERMINAL:
            continue
        c0, c1 = t0 // ns - start, (t1 - 1) // ns - start
        if c1 < 0:
            continue
        if c1 - c0 >= 2:
            out[max(c0 + 1, 0) : c1] = [phase] * (c1 - max(c0 + 1, 0))
        for c in {c0, c1}:
            if 0 <= c < size:
                lo = max(t0, (start + c) * ns)
                hi = min(t1, (start + c + 1) * ns)
                acc = edges.get(c)
                if acc is None:
                    acc = edges[c] = [0] * NPHASES
                acc[phase] += hi - lo
    for c, acc in edges.items():
        out[c] = max(range(NPHASES), key=acc.__getitem__)
    return start, out
