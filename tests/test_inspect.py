"""The detail panel's content (tui/inspect.py), from hand-made streams: no Textual, no engines."""

from __future__ import annotations

from syncviz.engines.events import Batch, Phase
from syncviz.engines.http import EXTERNAL_IDS_START
from syncviz.engines.picture import RequestTrack
from syncviz.engines.stats import EngineStats
from syncviz.tui.board import Board
from syncviz.tui.inspect import Drawn, Inspector, LaneDetail, RequestDetail, request_at, request_detail

MS = 1_000_000
T0 = 10_000 * MS  # stream time of the first transition
Q, RUN, BLK, AW, RDY, DONE = Phase.QUEUED, Phase.RUNNING, Phase.BLOCKED, Phase.AWAITING, Phase.READY, Phase.DONE
NAMES = {0: "w0", 1: "w1", 2: "w2", 3: "w3"}


def track(rid: int, steps: list[tuple[float, int, int]]) -> RequestTrack:
    """A request's track from (ms after T0, phase, lane) steps."""
    first = steps[0]
    tr = RequestTrack(rid, T0 + int(first[0] * MS), first[1], first[2])
    for ms, phase, lane in steps[1:]:
        tr.steps.append((T0 + int(ms * MS), phase, lane))
        tr.phase, tr.since = phase, T0 + int(ms * MS)
    return tr


BLOCKING = [(0, Q, -1), (0, Q, -1), (10, RUN, 2), (10.1, BLK, 2), (60.1, RDY, 2), (60.5, RUN, 2), (61, DONE, 2)]


def test_a_request_s_phases_workers_latency_and_the_call_that_blocked_its_worker() -> None:
    stats = EngineStats("threaded")
    ours = (T0 + int(10.2 * MS), 49 * MS, 2, False, "time.sleep ← _sleep (engines/work.py:136)")
    stats.take_block(*ours)
    stats.take_block(T0 + int(10.2 * MS), 49 * MS, 3, False, "time.sleep ← another thread's")  # another lane
    stats.take_block(T0 + 200 * MS, 49 * MS, 2, False, "time.sleep ← later, same lane")  # another time
    d = request_detail(stats, track(7, BLOCKING), NAMES, T0 + 500 * MS)
    assert (d.label, d.client, d.outcome, d.engine) == ("#7", "built-in load generator", "done", "threaded")
    assert [(p.phase, p.worker) for p in d.phases] == [
        (Q, ""),
        (RUN, "w2"),
        (BLK, "w2"),
        (RDY, "w2"),
        (RUN, "w2"),
        (DONE, ""),
    ]
    assert [p.duration_ns for p in d.phases] == [10 * MS, int(0.1 * MS), 50 * MS, int(0.4 * MS), int(0.5 * MS), None]
    assert d.phases[2].start_ns - d.start_ns == int(10.1 * MS)
    assert d.workers == ["w2"]
    assert d.latency_ns == 61 * MS
    assert [(w, b.where) for w, b in d.blocked] == [("w2", ours[-1])]
    assert (d.bytes_in, d.bytes_out) == (None, None)  # no source measures them: the panel says n/a


def test_a_request_in_flight_is_measured_up_to_now_and_its_last_phase_is_ongoing() -> None:
    stats = EngineStats("asyncio")
    tr = track(EXTERNAL_IDS_START + 5, [(0, Phase.READING, 0), (3, Q, -1), (5, RUN, 0), (6, AW, 0)])
    d = request_detail(stats, tr, {0: "loop"}, T0 + 56 * MS)
    assert (d.label, d.client, d.outcome) == ("↗5", "outside client (no X-Req-Id)", "in flight")
    assert d.latency_ns == 56 * MS
    last = d.phases[-1]
    assert (last.phase, last.ongoing, last.duration_ns, last.worker) == (
        AW,
        True,
        50 * MS,
        "",
    )  # awaiting frees the loop
    assert d.workers == ["loop"]  # reading and running held it
    assert request_detail(stats, tr, {0: "loop"}, T0 + 4 * MS).phases[-1].phase == Q  # nothing after the moment shown


def feed(board: Board, engine: int, steps: list[tuple[float, int, int, int]], end_ms: float) -> None:
    """(ms after T0, rid, lane, phase) transitions of one engine, then a batch at ``end_ms``."""
    batch = Batch(
        [(T0 + int(ms * MS), engine, rid, lane, ph) for ms, rid, lane, ph in steps], t_ns=T0 + int(end_ms * MS)
    )
    board.feed(batch)


def drawn_of(board: Board, engine: str, cols: int, targets, rows) -> Drawn:
    ns, now = board.ns_per_col, board.now_ns
    names = dict(board.engine_info(engine).lanes)
    first = now // ns - cols + 1
    return Drawn(engine, now, first, cols, ns, targets, rows, board.stats[engine], board.lanes[engine], names)


def test_a_lane_s_busy_share_counts_the_picture_and_lists_the_requests_it_served() -> None:
    board = Board(zoom_ms=10)
    steps = []
    for i in range(10):  # every 100 ms a request holds the loop 20 ms (running 5, blocked 15), then waits
        t = i * 100.0
        rid = i + 1
        steps += [(t, rid, -1, Q), (t + 1, rid, 0, RUN), (t + 6, rid, 0, BLK), (t + 21, rid, 0, RDY)]
        steps += [(t + 40, rid, 0, RUN), (t + 41, rid, 0, DONE)]
    feed(board, 1, steps, 1000)
    drawn = drawn_of(board, "asyncio", 50, [None, ("lane", 0)], [])  # 500 ms: requests 6 to 10
    insp = Inspector()
    insp.click(drawn, 1, None)
    d = insp.content({"asyncio": drawn})
    assert isinstance(d, LaneDetail) and d.name == "loop"
    assert d.busy is not None
    held = sum(d.busy.values())
    assert abs(held / d.window_ns - 0.21) < 0.03  # 21 ms of every 100 (the READY wait does not hold the loop)
    assert d.busy["blocked"] > 2 * d.busy["running"]
    assert [s.label for s in d.served] == ["#6", "#7", "#8", "#9", "#10"]
    assert all(abs(s.held_ns - 21 * MS) < MS and s.done for s in d.served[1:])
    assert abs(d.served[0].held_ns - 12 * MS) < MS  # #6 held it from 501 ms: the window starts at 510
    assert d.served[0].latency_ns == 41 * MS


def test_the_cursor_moves_over_lanes_and_rows_and_across_panels() -> None:
    board = Board(zoom_ms=10)
    feed(board, 0, [(0, 1, -1, Q), (1, 1, 0, RUN), (30, 1, 0, DONE), (40, 2, -1, Q), (41, 2, 1, RUN)], 100)
    stats = board.stats["threaded"]
    first, second = stats.recent[-1], stats.inflight[2]
    targets = [None, ("lane", 0), ("lane", 1), None, None, ("row", 0), ("row", 1)]
    a = drawn_of(board, "threaded", 20, targets, [(first, second), ()])  # row 1 shows nothing: skipped
    b = drawn_of(board, "asyncio", 20, [None, ("lane", 0), None, ("row", 0)], [()])
    drawn = {"threaded": a, "asyncio": b}
    insp = Inspector()
    assert insp.move(drawn, 1).target == ("lane", 0)
    insp.move(drawn, 1)
    sel = insp.move(drawn, 1)
    assert (sel.target, sel.rid) == (("row", 0), 2)  # a row's newest request
    assert insp.line(a) == 5 and insp.line(b) is None
    assert insp.move(drawn, 1).target == ("row", 0)  # the last line that shows something: it stays
    assert insp.panel(drawn, 1).engine == "asyncio"
    assert insp.selection.target == ("lane", 0)  # the nearest line there that shows something
    assert insp.click(a, 5, T0 + 10 * MS).rid == 1  # a click picks the request under it
    d = insp.content(drawn)
    assert isinstance(d, RequestDetail) and d.rid == 1 and d.workers == ["w0"]
    assert insp.click(a, 3, None) is None and insp.selection.rid == 1  # the queued lane: nothing to select
    insp.close()
    assert insp.content(drawn) is None


def test_request_at_picks_the_one_under_the_time_or_the_nearest() -> None:
    board = Board(zoom_ms=10)
    early, late = track(1, [(0, Q, -1), (10, DONE, 0)]), track(2, [(50, Q, -1), (60, DONE, 0)])
    drawn = drawn_of(board, "threaded", 10, [None, ("row", 0)], [(early, late)])
    drawn.now_ns = T0 + 100 * MS
    assert request_at(drawn, 0, T0 + 5 * MS) is early
    assert request_at(drawn, 0, T0 + 40 * MS) is late
    assert request_at(drawn, 0) is late
    assert request_at(drawn, 1) is None


def test_a_lane_held_throughout_is_busy_all_of_the_window_and_no_more() -> None:
    board = Board(zoom_ms=10)
    feed(board, 0, [(0, 1, -1, Q), (1, 1, 3, RUN), (2, 1, 3, BLK)], 1000.5)  # still blocked at now, mid-column
    drawn = drawn_of(board, "threaded", 40, [None, ("lane", 3)], [])
    insp = Inspector()
    insp.click(drawn, 1, None)
    d = insp.content({"threaded": drawn})
    assert isinstance(d, LaneDetail) and d.busy is not None
    assert sum(d.busy.values()) == d.window_ns
    assert [(s.label, s.done, s.held_ns) for s in d.served] == [("#1", False, d.window_ns)]
