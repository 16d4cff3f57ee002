"""Request rows: which requests get a row on screen, and each row's phases per column.

There are more requests in flight than rows, so rows are handed out like seats: a new
request takes the first row whose last request finished before it started (one column
apart), drawn whole. A request the server learned of late, queued for a while before it was
read (its ``queued`` is dated back to when its client sent it), finds every row busy since it
began. If it began on screen it waits, and takes the first row that comes free before it ends
(a row is free again once its requests have left the window): drawn whole. If it began left of
the window, where it could never be drawn whole, it takes the row that came free first, drawn
from a blank column after that row's last request ended: its label reads ``…#n``, or ``…``
where its number does not fit (it began earlier; the detail panel has all of it). Without the
wait, the ``blocking-call`` loop, reading 100 requests at once, drew no row for half of every
cycle; without the second rule, a pool of 8 threads behind 92 waiting connections drew no row in
flight at all at 10 ms a column (each read ~600 ms after its client sent it, the window ~560 ms
wide). A request never seated is not drawn (the panel says how many in flight have a row). A
row therefore shows a sequence of real requests, each a run of its measured phases. Placement
happens as batches arrive (not per frame), so a replay draws the same rows.
"""

from __future__ import annotations

from array import array
from bisect import bisect_left, insort
from collections import deque
from dataclasses import dataclass
from functools import lru_cache
from operator import itemgetter

from syncviz.engines.events import TERMINAL, Phase
from syncviz.engines.picture import RequestTrack
from syncviz.engines.slowclients import client_of
from syncviz.engines.stats import EngineStats

NPHASES = len(Phase)
MAX_ROWS = 64
MAX_RETRY = 64  # waiting requests tried per batch when a row may be free (oldest first)
KEEP_COLS = 1024
"""Columns a row keeps laid out left of its newest request (at least twice the window's width;
the array grows to twice that, then drops the older half). It kept 4,096: at 1,000 clients each
row's array grew for the app's first ten minutes (~3.5 KB a row from minute 1.5 to 5.5, in a census)."""
_END_COL = itemgetter(1)  # a label's (c0, c1, rid) last column
_NONE = array("b", [-1])  # a column without a phase, to repeat


@dataclass
class RowCells:
    """One row over the window: a phase per column (-1 none) and where to write numbers."""

    phases: array  # array("b"): -1 none
    labels: list[tuple[int, int, int]]  # (c0, c1, rid) of each request's run in window columns
    failed: list[int]  # window columns where a request ended FAILED (drawn over its last phase)
    clipped: frozenset[int] | set[int] = frozenset()  # the rids drawn from after they began (``…#n``)


class _DoneRow:
    """A row's finished requests: phase per absolute column from ``start``, labels and failures."""

    __slots__ = ("failed", "labels", "live", "ns", "phases", "rids", "start")

    def __init__(self, ns: int) -> None:
        self.ns = ns
        self.start = 0
        self.phases = array("b")  # signed bytes (-1 none): 1/8 of a list's size, no int objects
        self.labels: list[tuple[int, int, int]] = []  # (c0, c1, rid), absolute columns, by c1
        self.failed: list[int] = []  # absolute columns of FAILED ends (a DONE end draws nothing of its own)
        self.rids: set[int] = set()
        self.live: list[RequestTrack] = []

    def add(self, track: RequestTrack, ns: int, floor: int, keep: int = KEEP_COLS, from_col: int = 0) -> None:
        """Lay a finished request from column ``max(floor, from_col)``; ``from_col``: where its row
        came free, when it was seated after it began (its label then starts there)."""
        steps = track.steps
        end = steps[-1][0]
        start, cells = track_columns(steps, end, ns, max(floor, from_col))
        self.rids.add(track.rid)
        if not cells:
            return
        if not self.phases:
            self.start = start
        if start < self.start:  # a request seated late, older than what is laid: grow to the left
            self.phases[:0] = _NONE * (self.start - start)
            self.start = start
        stop = start + len(cells) - self.start
        if stop > len(self.phases):
            self.phases.extend(_NONE * (stop - len(self.phases)))
        a = start - self.start
        for i, ph in enumerate(cells):  # only where it has a phase: never blank out a neighbour
            if ph >= 0:
                self.phases[a + i] = ph
        label = (max(steps[0][0] // ns, from_col), end // ns, track.rid)
        if self.labels and label[1] < self.labels[-1][1]:
            insort(self.labels, label, key=_END_COL)  # seated late: kept in order of their last column
        else:
            self.labels.append(label)
        if track.phase == Phase.FAILED:
            self.failed.append(end // ns)
        if len(self.phases) > 2 * keep:
            cut = len(self.phases) - keep
            del self.phases[:cut]
            self.start += cut

    def forget(self, rids: set[int]) -> None:
        self.rids &= rids
        self.labels = [x for x in self.labels if x[2] in rids]
        first = min((c0 for c0, _, _ in self.labels), default=self.start + len(self.phases))
        self.failed = [c for c in self.failed if c >= first]


class RequestRows:
    """Seats requests in rows; ``rows`` is how many the view can show."""

    def __init__(self, stats: EngineStats, rows: int = 12) -> None:
        self.stats = stats
        self.rows: list[deque[RequestTrack]] = [deque() for _ in range(MAX_ROWS)]
        self.visible = rows
        self.cols = 400  # the window's width, as last drawn
        self._seen: set[int] = set()
        self._waiting: dict[int, RequestTrack] = {}  # in flight, not seated yet: oldest first
        self._live: dict[int, tuple[tuple[int, int], int, list[int]]] = {}  # in flight: up to the last step
        self._done: dict[int, _DoneRow] = {}  # row index -> its finished requests, laid out once
        self._from: dict[int, int] = {}  # rid -> the time it is drawn from, if seated after it began
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
                row.popleft()
        if len(self._live) > 4 * MAX_ROWS:  # finished ones have their own cache
            inflight = self.stats.inflight
            self._live = {rid: v for rid, v in self._live.items() if rid in inflight}
        inflight, waiting, clip = self.stats.inflight, self._waiting, self._from
        off_screen = now_ns - ns_per_col * self.cols  # a request begun before this is never drawn whole
        for rid, track in inflight.items():
            if rid in seen:
                continue
            seen.add(rid)
            if not _seat(rows, track, gap_ns, clip, off_screen):
                waiting[rid] = track
        if waiting and any(not row or row[-1].phase in TERMINAL for row in rows):  # a row has come free
            for rid, track in list(waiting.items())[:MAX_RETRY]:
                if inflight.get(rid) is not track:
                    del waiting[rid]  # finished
                elif _seat(rows, track, gap_ns, clip, off_screen):
                    del waiting[rid]
        if now_ns - self._swept_at > 1_000_000_000:
            self._swept_at = now_ns
            self._seen = {rid for rid in seen if rid in inflight}
            self._waiting = {rid: t for rid, t in waiting.items() if inflight.get(rid) is t}
            held = {t.rid for row in self.rows for t in row}
            self._from = {rid: t for rid, t in clip.items() if rid in held}

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
        """Row ``index`` over columns ``first_col .. first_col + cols - 1`` (absolute).

        The row's finished requests are laid once into an array by absolute column (their
        phases never change again), so a frame slices it and lays only the requests in flight.
        """
        self.cols = cols
        done = self._done_row(index, ns, first_col - cols)
        base, abs0 = done.phases, done.start
        lo = first_col - abs0
        if lo >= 0 and lo + cols <= len(base):
            phases = base[lo : lo + cols]
        else:
            phases = _NONE * cols
            a, b = max(first_col, abs0), min(first_col + cols, abs0 + len(base))
            if b > a:
                phases[a - first_col : b - first_col] = base[a - abs0 : b - abs0]
        last_col = first_col + cols
        labels = []
        laid = done.labels  # by last column; a row's requests do not overlap, so by first column too
        for i in range(bisect_left(laid, first_col, key=_END_COL), len(laid)):
            c0, c1, rid = laid[i]
            if c0 >= last_col:
                break
            labels.append((max(0, c0 - first_col), min(cols - 1, c1 - first_col), rid))
        failed = [c - first_col for c in done.failed if first_col <= c < last_col]
        first_ns = first_col * ns
        clip = self._from
        for track in done.live:
            steps = track.steps
            if now_ns < first_ns or steps[0][0] > now_ns:
                continue
            from_col = clip[track.rid] // ns if track.rid in clip else 0
            start, cells = self._live_columns(track, now_ns, ns, max(first_col, from_col))
            a, b = max(start, first_col), min(start + len(cells), last_col)
            if b > a:
                phases[a - first_col : b - first_col] = array("b", cells[a - start : b - start])
            c0 = max(steps[0][0] // ns, from_col)
            labels.append((max(0, c0 - first_col), min(cols - 1, now_ns // ns - first_col), track.rid))
        clipped = {rid for _, _, rid in labels if rid in clip} if clip else frozenset()  # a row's few labels
        return RowCells(phases, labels, failed, clipped)

    def _done_row(self, index: int, ns: int, floor: int) -> _DoneRow:
        """Row ``index``'s finished requests by absolute column (brought up to date), and those in flight."""
        done = self._done.get(index)
        if done is None or done.ns != ns:
            done = self._done[index] = _DoneRow(ns)
        row = self.rows[index]
        # Only a row's last request can be in flight (a request is seated behind a finished one),
        # and the finished ones before the newest laid out are laid out: read the row from its end.
        live, new, rids = [], [], done.rids
        for track in reversed(row):
            if track.phase not in TERMINAL:
                live.append(track)
            elif track.rid in rids:
                break
            else:
                new.append(track)
        clip = self._from
        for track in reversed(new):
            from_col = clip[track.rid] // ns if track.rid in clip else 0
            done.add(track, ns, floor, max(KEEP_COLS, 2 * self.cols), from_col)
        done.live = live
        if len(done.rids) > 2 * len(row) + 16:  # forget what the row no longer holds
            done.forget({t.rid for t in row})
        return done


def _seat(
    rows: list[deque[RequestTrack]], track: RequestTrack, gap_ns: int, clip: dict[int, int], off_screen: int
) -> bool:
    """Seat ``track`` in the first row free a column before it started, else in the first free
    at all. Else, when it began left of the window (before ``off_screen``: it can never be drawn
    whole), in the row that came free first, drawn from a blank column after that row's last
    request ended (``clip[rid]``: the time it is drawn from). False when it waits: every row is in
    flight, or its start is on screen and a row free since then will come (the last has left)."""
    start, seat, first_free = track.start_ns, None, None
    for row in rows:
        if not row or (row[-1].phase in TERMINAL and row[-1].since + gap_ns <= start):
            seat = row
            break
        if row[-1].phase not in TERMINAL:
            continue
        if seat is None and row[-1].since <= start:
            seat = row
        if first_free is None or row[-1].since < first_free[-1].since:
            first_free = row
    if seat is None:
        if first_free is None or start >= off_screen:
            return False
        seat = first_free
        clip[track.rid] = first_free[-1].since + 2 * gap_ns  # a blank column between the two
    seat.append(track)
    return True


@lru_cache(maxsize=512)  # every row's labels, every frame: ~100 requests on screen (full: 4,096 0.89 MB, 512 0.11)
def rid_label(rid: int) -> str:
    """``#42`` for the load generator's requests, ``s3`` for its slow clients', ``↗7`` for an outside client's."""
    kind, n = client_of(rid)
    return {"outside": "↗", "slow": "s"}.get(kind, "#") + str(n)


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
