"""Scrubbing: the paused picture moved back and forward through the tape (:mod:`syncviz.tui.tape`).

:class:`Scrub` holds the moment shown while paused (``at_ns``, stream time) and a
:class:`~syncviz.tui.board.Board` built for it: a fresh board fed the taped batches from
``at_ns`` minus the visible window and :data:`MARGIN_NS` up to ``at_ns`` (the digests' picture
columns, the held lanes and open queues they carry as state, the rows' transitions and the
blocked calls all come again), with the counters and sparklines the app showed at that moment
put in (:meth:`~syncviz.tui.tape.Tape.counters_at`), so what it draws is what the stream said
then. Moving forward feeds the same board on; moving back builds it afresh. Of the margin,
only its last :data:`ROWS_NS` bring the digests' row transitions (the costly part: thousands a
second): the rest brings the picture's state, the counters and the blocked calls.

Most of what it feeds is packed on the tape (all but its newest seconds). A batch unpacked for
the board being built is kept while it is within the span that board was fed from, so a step
back (a fresh board, most of its span the same) unpacks only the seconds it adds: at 1,000
clients 9 s unpack in ~0.23 s, their feeding ~0.1 s (measured). Going live lets them go.
"""

from __future__ import annotations

from syncviz.engines.events import Batch
from syncviz.tui.board import Board
from syncviz.tui.tape import Entry, Tape

MARGIN_NS = 6_000_000_000
"""Stream time fed before the window: a blocked call stays news 5 s (blocked.BLOCK_RECENT_NS), and
requests that started before the window need their first steps for their rows."""
ROWS_NS = 3_500_000_000
"""Row transitions fed before the window: a request's phase longer than this (a 3 s queue in
``blocking-call``, a slow client's 3.5 s of reading) that began earlier starts its row late."""


class Scrub:
    """The moment a paused app shows, and the board that draws it."""

    def __init__(self, tape: Tape) -> None:
        self.tape = tape
        self.at_ns: int | None = None  # None: not scrubbed (live, or paused on the frame drawn last)
        self.board: Board | None = None
        self._fed_to = 0
        self.clamped = ""  # why the last move stopped short ("" when it did not)
        self._unpacked: dict[int, tuple[int, Batch]] = {}  # row -> (stream time, batch) of packed entries fed

    def reset(self) -> None:
        self.at_ns = None
        self.board = None
        self._fed_to = 0
        self.clamped = ""
        self._unpacked = {}

    def move(self, target_ns: int, live_ns: int) -> int:
        """Set the moment to ``target_ns``, kept within the tape and not later than ``live_ns``."""
        tape = self.tape
        self.clamped = ""
        if target_ns >= live_ns:
            target_ns, self.clamped = live_ns, "newest"
        if target_ns <= tape.start_ns:
            target_ns, self.clamped = tape.start_ns, "oldest"
        self.at_ns = target_ns
        return target_ns

    def view(self, live: Board, window_ns: int) -> Board:
        """The board for ``at_ns`` (built or fed on as needed); ``live`` lends its row layout."""
        at = self.at_ns if self.at_ns is not None else live.now_ns
        board = self.board
        entry = self.tape.entry_at(at)
        ns = entry.ns_per_col if entry is not None else live.ns_per_col
        if board is None or at < self._fed_to or board.ns_per_col != ns:
            board = self.board = self._fresh(live, at - window_ns - MARGIN_NS, ns)
        rows_from = at - window_ns - ROWS_NS
        for e in self.tape.between(self._fed_to, at):
            batch = self._batch(e)
            board.feed(batch if e.t_ns >= rows_from else without_rows(batch))
        self._fed_to = max(self._fed_to, at)
        floor = at - window_ns - MARGIN_NS
        if len(self._unpacked) > 64 and min(t for t, _ in self._unpacked.values()) < floor:
            self._unpacked = {row: kept for row, kept in self._unpacked.items() if kept[0] >= floor}
        board.counters = self.tape.counters_at(board.now_ns)
        board.history = self.tape.history_at(board.now_ns)
        return board

    def _batch(self, entry: Entry) -> Batch:
        """The entry's batch (a packed one unpacked once while it stays in the span fed)."""
        if entry.hot is not None:
            return entry.hot
        kept = self._unpacked.get(entry.row)
        if kept is None:
            kept = self._unpacked[entry.row] = (entry.t_ns, entry.batch)
        return kept[1]

    def _fresh(self, live: Board, from_ns: int, ns_per_col: int) -> Board:
        tape = self.tape
        first = tape.entries[tape.index_after(from_ns)] if tape.index_after(from_ns) < len(tape.entries) else None
        info = first.info if first is not None else live.info
        board = Board(info, zoom_ms=ns_per_col / 1e6)
        for name, rows in live.rows.items():
            board.set_rows(name, rows.visible)
            board.rows[name].cols = rows.cols
        self._fed_to = from_ns
        return board

    def behind_s(self, live_ns: int) -> float | None:
        """How far the moment shown is behind ``live_ns`` (None: not scrubbed)."""
        if self.at_ns is None:
            return None
        shown = self.board.now_ns if self.board is not None and self.board.now_ns else self.at_ns
        return max(0.0, (live_ns - shown) / 1e9)


def without_rows(batch: Batch) -> Batch:
    """``batch`` without its digests' row transitions (raw transitions stay: they make the picture)."""
    if not batch.digests:
        return batch
    out = Batch(batch.transitions, batch.latencies, batch.lags, batch.t_ns, batch.dropped, batch.info)
    out.blocks = batch.blocks
    out.digests = [
        (e, {side: {**part, "rows": []} if side == "server" else part for side, part in rec.items()})
        for e, rec in batch.digests
    ]
    return out
