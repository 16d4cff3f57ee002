"""A reader that stops taking batches keeps a bounded queue, and the picture says records were lost."""

from __future__ import annotations

from collections import deque

from syncviz.engines.events import Batch
from syncviz.engines.proc_handle import MAX_BATCHES, ProcHandle
from syncviz.engines.settings import Settings
from syncviz.tui.board import TRUNCATED_FOR_S, Board
from syncviz.tui.widgets.bars import status_text


def _handle() -> ProcHandle:
    handle = ProcHandle.__new__(ProcHandle)  # the queue alone: no child process
    handle._batches = deque()
    return handle


def test_an_untaken_queue_stays_bounded_and_counts_what_it_let_go() -> None:
    handle = _handle()
    extra = 37
    for i in range(MAX_BATCHES + extra):
        handle._keep(Batch(t_ns=i, dropped=1 if i == 0 else 0), 1)  # the first one had overflowed itself
    taken = handle.take()
    assert len(taken) == MAX_BATCHES
    assert [b.t_ns for b, _ in taken] == list(range(extra, MAX_BATCHES + extra))  # the newest kept, in order
    assert sum(b.dropped for b, _ in taken) == extra + 1  # each batch let go, and what the first had lost
    assert handle.take() == []


def test_a_queue_taken_in_time_loses_nothing() -> None:
    handle = _handle()
    for i in range(3 * MAX_BATCHES):
        handle._keep(Batch(t_ns=i), 1)
        if i % 100 == 99:
            assert sum(b.dropped for b, _ in handle.take()) == 0


def test_the_status_bar_says_truncated_after_a_loss_and_stops_saying_it_later() -> None:
    board = Board({"engines": ["threaded", "asyncio"]})
    s = 1_000_000_000

    def status() -> str:
        return status_text(board.scenario, Settings(), board.zoom_ms, False, False, truncated=board.truncated()).plain

    board.feed(Batch(t_ns=1 * s))
    assert "truncated" not in status()
    board.feed(Batch(t_ns=2 * s, dropped=3))
    assert board.dropped == 3 and "truncated" in status()
    board.feed(Batch(t_ns=int((2 + TRUNCATED_FOR_S + 1) * s)))
    assert "truncated" not in status()
