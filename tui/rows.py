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
        self._seen: set[int] = set()
        self._swept_at = 0

    def resize(self, rows: int) -> None:
        self.visible = max(0, min(MAX_ROWS, rows))

    def consume(self, now_ns: int, gap_ns: int, horizon_ns: int) -> None:
        """Seat new in-flight requests; drop requests that left the window ``horizon_ns`` ago."""
        seen = self._seen
        rows = self.rows[: self.visible]
        for row in rows:
            while row and row[0].phase in TERMINAL and row[0].since < now_ns - horizon_ns:
                row.popleft()
        for rid, track in self.stats.inflight.items():
            if rid in seen:
                continue
            seen.add(rid)
            start = track.steps[0][0]
            for row in rows:
                if not row or (row[-1].phase in TERMINAL and row[-1].since + gap_ns <= start):
                    row.append(track)
                    break
        if now_ns - self._swept_at > 1_000_000_000:
            self._swept_at = now_ns
            self._seen = {rid for rid in seen if rid in self.stats.inflight}

    def shown_in_flight(self) -> int:
        return sum(1 for row in self.rows[: self.visible] if row and row[-1].phase not in TERMINAL)

    def cells(self, index: int, first_col: int, cols: int, ns: int, now_ns: int) -> RowCells:
        """Row ``index`` over columns ``first_col .. first_col + cols - 1`` (absolute)."""
        acc: list[list[int] | None] = [None] * cols
        labels: list[tuple[int, int, int]] = []
        ends: list[tuple[int, int]] = []
        first_ns = first_col * ns
        for track in self.rows[index]:
            steps = track.steps
            terminal = track.phase in TERMINAL
            end = steps[-1][0] if terminal else now_ns
            if end < first_ns or steps[0][0] > now_ns:
                continue
            for i, (t0, phase, _lane) in enumerate(steps):
                t1 = steps[i + 1][0] if i + 1 < len(steps) else end
                if t1 <= t0 or phase in TERMINAL:
                    continue
                _spread_into(acc, t0, t1, ns, first_col, phase)
            c0 = max(0, steps[0][0] // ns - first_col)
            c1 = min(cols - 1, end // ns - first_col)
            labels.append((c0, c1, track.rid))
            if terminal and 0 <= end // ns - first_col < cols:
                ends.append((end // ns - first_col, track.phase))
        phases = [-1 if a is None else max(range(NPHASES), key=a.__getitem__) for a in acc]
        return RowCells(phases, labels, ends)


def _spread_into(acc: list[list[int] | None], t0: int, t1: int, ns: int, first: int, phase: int) -> None:
    cols = len(acc)
    c0, c1 = t0 // ns - first, (t1 - 1) // ns - first
    if c1 < 0 or c0 >= cols:
        return
    for j in range(max(c0, 0), min(c1, cols - 1) + 1):
        lo = max(t0, (first + j) * ns)
        hi = min(t1, (first + j + 1) * ns)
        a = acc[j]
        if a is None:
            a = acc[j] = [0] * NPHASES
        a[phase] += hi - lo
