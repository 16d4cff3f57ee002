"""Request rows as drawn: a row's finished and in-flight requests become the right glyphs per column."""

from __future__ import annotations

from types import SimpleNamespace

import pytest
from syncviz.engines.events import Phase
from syncviz.engines.picture import RequestTrack
from syncviz.tui import rows as rows_module
from syncviz.tui.phases import GLYPHS
from syncviz.tui.rows import RequestRows
from syncviz.tui.widgets.timeline_lines import GUTTER, Line, row_line

NS = 1_000_000  # 1 ms a column
T0 = 1_000 * NS


def track(rid: int, steps: list[tuple[int, Phase]], end: Phase | None) -> RequestTrack:
    t = RequestTrack(rid, T0 + steps[0][0] * NS, int(steps[0][1]), 1)
    for ms, phase in steps[1:]:
        t.step(T0 + ms * NS, int(phase), 1)
    if end is not None:
        ms = steps[-1][0] + 10
        t.step(T0 + ms * NS, int(end), 1)
        t.phase, t.since = int(end), T0 + ms * NS
    else:
        t.phase, t.since = int(steps[-1][1]), T0 + steps[-1][0] * NS
    return t


def test_a_row_shows_done_failed_and_in_flight_requests_in_their_columns() -> None:
    done = track(1, [(0, Phase.QUEUED), (4, Phase.RUNNING)], Phase.DONE)  # 0-14 ms
    failed = track(2, [(20, Phase.RUNNING)], Phase.FAILED)  # 20-30 ms
    live = track(3, [(40, Phase.QUEUED), (45, Phase.RUNNING)], None)  # 40 ms on, in flight
    stats = SimpleNamespace(inflight={3: live})
    rows = RequestRows(stats, rows=1)  # type: ignore[arg-type]
    rows.rows[0].extend([done, failed, live])
    now = T0 + 60 * NS
    first = now // NS - 59  # 60 columns ending at now
    line = row_line(rows, 0, first, 60, NS, now)
    cells = "".join(line.chars[GUTTER:])
    col = lambda ms: (T0 // NS + ms) - first  # noqa: E731
    assert cells[col(3)] == GLYPHS[Phase.QUEUED] and cells[col(8)] not in (" ", GLYPHS[Phase.QUEUED])
    assert line.styles[GUTTER + col(25)] == Phase.RUNNING
    assert cells[col(30)] == GLYPHS[Phase.FAILED] and line.styles[GUTTER + col(30)] == Phase.FAILED
    assert cells[col(14)] != GLYPHS[Phase.FAILED]  # a DONE end draws nothing of its own
    assert cells[col(35)] == " " and line.styles[GUTTER + col(35)] not in range(len(Phase))
    assert cells[col(50)] != " " and line.styles[GUTTER + col(50)] == Phase.RUNNING  # in flight, up to now
    assert "#3" in cells  # the in-flight request's number, on its run
    assert len(line.chars) == len(line.styles) == GUTTER + 60


def test_a_row_drawn_frame_after_frame_matches_one_drawn_once(monkeypatch: pytest.MonkeyPatch) -> None:
    """The laid-out finished requests (read from the row's end, labels found by bisection) give what a
    fresh row gives at every frame, as requests finish between frames and one older than the others
    is seated last (laid out to the left of what is laid, its label sorted in), and long enough
    that the kept row drops its older columns (twice the window's width kept) on the way."""
    monkeypatch.setattr(rows_module, "KEEP_COLS", 100)  # the window's 120 columns: 240 kept
    tracks = [track(10 + i, [(i * 30, Phase.QUEUED), (i * 30 + 5, Phase.RUNNING)], Phase.DONE) for i in range(40)]
    late = track(99, [(171, Phase.RUNNING)], Phase.FAILED)  # between two others, seated after both
    kept = RequestRows(SimpleNamespace(inflight={}), rows=1)  # type: ignore[arg-type]
    row, seen = kept.rows[0], set()
    for frame in range(4, 41):
        now = T0 + frame * 30 * NS
        row.extend(t for t in tracks if t.steps[-1][0] <= now and t not in row)  # finished by now
        if frame == 9:
            row.append(late)
        fresh = RequestRows(SimpleNamespace(inflight={}), rows=1)  # type: ignore[arg-type]
        fresh.rows[0].extend(row)
        first = now // NS - 119
        a, b = kept.cells(0, first, 120, NS, now), fresh.cells(0, first, 120, NS, now)
        assert a.phases == b.phases and a.failed == b.failed
        assert sorted(a.labels) == sorted(b.labels) and a.labels
        seen |= {rid for _, _, rid in a.labels if a.failed}
    assert 99 in seen  # the late one was drawn, its failure with it
    assert kept._done[0].start > T0 // NS  # columns were dropped from the row's left


def test_a_request_learned_of_late_waits_for_a_row_and_takes_it_when_it_comes_free() -> None:
    """Queued since 5 ms and read at 45 ms, it finds the row held by a request that ended at 14 ms,
    after it began: not drawn then (its start is on screen: it can be drawn whole later). Once
    that one has left the window, the row is free: it takes it then (a loop that reads 100
    requests at once drew no row for half of every cycle: each was looked at once, when every row
    was busy), drawn whole, its start off the window."""
    done = track(1, [(0, Phase.QUEUED), (4, Phase.RUNNING)], Phase.DONE)  # 0-14 ms
    late = track(2, [(5, Phase.QUEUED), (45, Phase.RUNNING)], None)
    rows = RequestRows(SimpleNamespace(inflight={2: late}), rows=1)  # type: ignore[arg-type]
    rows.cols = 60
    rows.rows[0].append(done)
    rows.consume(T0 + 50 * NS, NS)
    assert rows.shown_in_flight() == 0 and list(rows.rows[0]) == [done]
    now = T0 + 100 * NS  # 14 ms is past the window's 60 columns (and the two beyond it)
    rows.consume(now, NS)
    assert rows.shown_in_flight() == 1 and list(rows.rows[0]) == [late]
    first = now // NS - 59
    cells = "".join(row_line(rows, 0, first, 60, NS, now).chars[GUTTER:])
    assert cells.startswith("#2") and cells[-2] != " ", cells
    rows.stats.inflight.clear()  # it ended: nothing waits any more
    rows.consume(now + NS, NS)
    assert not rows._waiting


def test_a_request_begun_left_of_the_window_takes_the_row_that_came_free_drawn_from_there() -> None:
    """Read at 35 ms, in a 30-column window: begun at 5 ms, left of the window at 40 ms, it can never
    be drawn whole. It takes the row at once, drawn from two columns after 14 ms (one left blank,
    so the two never read as one), its label ``…#2`` (it began earlier); the first request's
    columns are untouched. Waiting, a pool of 8 behind 92 waiting connections drew no row in
    flight (each read ~600 ms after it was sent, the window 560 ms wide)."""
    done = track(1, [(0, Phase.QUEUED), (4, Phase.RUNNING)], Phase.DONE)  # 0-14 ms
    late = track(2, [(5, Phase.QUEUED), (35, Phase.RUNNING)], None)
    rows = RequestRows(SimpleNamespace(inflight={2: late}), rows=1)  # type: ignore[arg-type]
    rows.cols = 30
    rows.rows[0].append(done)
    now = T0 + 40 * NS
    rows.consume(now, NS)
    assert rows.shown_in_flight() == 1 and list(rows.rows[0]) == [done, late]
    first = now // NS - 39  # drawn 40 columns wide, to see the first request too
    col = lambda ms: (T0 // NS + ms) - first  # noqa: E731
    whole = RequestRows(SimpleNamespace(inflight={}), rows=1)  # type: ignore[arg-type]
    whole.rows[0].append(done)  # the first request alone, as it was drawn
    alone = "".join(row_line(whole, 0, first, 40, NS, now).chars[GUTTER:])
    cells = "".join(row_line(rows, 0, first, 40, NS, now).chars[GUTTER:])
    assert cells[: col(14)] == alone[: col(14)], (cells, alone)  # its columns are the first's
    assert cells[col(14)] == " " and cells[col(16) :].startswith("…#2"), cells  # a blank column between
    assert cells[col(37)] == GLYPHS[Phase.RUNNING] and cells[col(25)] == GLYPHS[Phase.QUEUED]


def test_a_request_learned_of_late_waits_while_every_row_is_in_flight() -> None:
    """Every row held by a request in flight: it waits, and (begun left of the 20-column window)
    takes the first row to come free."""
    busy = track(1, [(0, Phase.QUEUED), (4, Phase.RUNNING)], None)
    late = track(2, [(5, Phase.QUEUED), (45, Phase.RUNNING)], None)
    rows = RequestRows(SimpleNamespace(inflight={1: busy, 2: late}), rows=1)  # type: ignore[arg-type]
    rows.cols = 20
    rows.rows[0].append(busy)
    rows.consume(T0 + 50 * NS, NS)
    assert list(rows.rows[0]) == [busy] and 2 in rows._waiting
    busy.step(T0 + 52 * NS, int(Phase.DONE), 1)
    busy.phase, busy.since = int(Phase.DONE), T0 + 52 * NS
    del rows.stats.inflight[1]
    now = T0 + 60 * NS
    rows.consume(now, NS)
    assert list(rows.rows[0]) == [busy, late] and not rows._waiting
    cells = "".join(row_line(rows, 0, now // NS - 19, 20, NS, now).chars[GUTTER:])
    assert cells.rstrip().endswith(GLYPHS[Phase.RUNNING] + "  …#2" + GLYPHS[Phase.RUNNING] * 3), cells
    rows.stats.inflight.clear()
    rows.consume(now + NS, NS)
    assert not rows._waiting


def test_a_clipped_run_too_short_for_its_number_still_says_it_began_earlier() -> None:
    """``…`` alone: a late request's run of a few columns, right after another, is not drawn as
    the start of a request (nor as part of the one before)."""
    line = row_line_of([(0, Phase.RUNNING)], cols=4)
    line.label(0, 3, 7, clipped=True)
    assert "".join(line.chars[GUTTER:]) == "…" + GLYPHS[Phase.RUNNING] * 3
    plain = row_line_of([(0, Phase.RUNNING)], cols=4)
    plain.label(0, 3, 7)
    assert "".join(plain.chars[GUTTER:]) == GLYPHS[Phase.RUNNING] * 4  # no room for "#7": nothing written


def row_line_of(steps: list[tuple[int, Phase]], cols: int) -> Line:
    t = track(7, steps, None)
    rows = RequestRows(SimpleNamespace(inflight={7: t}), rows=1)  # type: ignore[arg-type]
    rows.rows[0].append(t)
    now = T0 + cols * NS
    return row_line(rows, 0, T0 // NS, cols, NS, now)
