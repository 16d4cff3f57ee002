"""The watchdogs: what held the loop, the hub or a pool thread, from the engine to the panel."""

from __future__ import annotations

import contextlib
import re
import sys
import threading
import time

import pytest
from support import get, wait_for
from syncviz.engines.base import Engine, engine_class
from syncviz.engines.blocked import BLOCK_RECENT_NS
from syncviz.engines.callsite import describe
from syncviz.engines.counts import ServerSnapshot
from syncviz.engines.events import ENGINE_IDS, Batch, Recorder, now_ns
from syncviz.engines.settings import Settings
from syncviz.engines.stall import BUSY, _Found, _Stall
from syncviz.engines.stats import Counters, StreamStats
from syncviz.engines.watchdog import WorkerWatchdog
from syncviz.engines.wire import WireError, batch_to_wire, decode_batch
from syncviz.engines.work import BlockingWork, Stopping, Work
from syncviz.tui.widgets.counters import CounterView, counter_text

WORK_LINE = re.compile(r"\(engines/work\.py:\d+\)")


def _finished(eng: Engine, timeout: float = 2.0) -> list[tuple]:
    """The finished records the engine's watchdog has, once it has some (or after ``timeout``)."""
    out: list[tuple] = []
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        out += [b for b in eng.take_blocks(now_ns()) if not b[4]]
        if out:
            time.sleep(0.05)  # anything after it
            return out + [b for b in eng.take_blocks(now_ns()) if not b[4]]
        time.sleep(0.02)
    return out


def _watchdogs() -> list[str]:
    return [t.name for t in threading.enumerate() if t.name.endswith("-watchdog")]


@pytest.mark.parametrize("name", ["asyncio", "gevent"])
def test_a_blocked_loop_names_time_sleep_and_the_project_line(make_engine, name: str) -> None:
    # 120 ms: the watchdog names a call it has seen holding the loop for 10 ms (a saturated loop's
    # short callbacks are not blocked calls); a sampler the OS runs late on a loaded machine saw a
    # 60 ms sleep only within 2 ms (once in ~6 suite runs, the sleep then read as the loop's own work).
    eng = make_engine(name, "blocking", io_ms=120)
    time.sleep(0.05)  # the ticker runs
    assert get(eng.port)[0] == 200
    found = _finished(eng)
    # On a loaded machine the OS can also hold the loop's thread over 20 ms while it waits for work
    # (in run_until_complete / Hub.run): the loop's own work (watchdog.BUSY); the handler's sleep is the call.
    blocks = [b for b in found if "time.sleep" in b[5]]
    assert len(blocks) == 1, found
    _t, d, e, lane, ongoing, where = blocks[0]
    assert (e, lane, ongoing) == (ENGINE_IDS[name], 0, False)
    assert 115e6 <= d <= 170e6, d / 1e6  # the handler's 120 ms sleep (its start is known to a ticker period)
    assert where.startswith("time.sleep ← BlockingWork._sleep (engines/work.py:"), where
    assert WORK_LINE.search(where), where


@pytest.mark.parametrize("name", ["asyncio", "gevent"])
def test_a_loop_held_by_pure_python_cpu_is_named_by_its_frames_not_the_call_it_was_at(upstream, name: str) -> None:
    # A CPU loop gives up the GIL at the call it has just made (time.thread_time_ns in burn_cpu):
    # the sampler saw the thread there, and named that call as what held the loop. Its CPU clock ran:
    # it was computing, and the name is the frame it computes in.
    eng = engine_class(name)(Recorder(), Settings(io_ms=0, cpu_ms=150, pool=4), "native", upstream.port)
    eng.start()
    try:
        time.sleep(0.05)  # the ticker runs
        assert get(eng.port)[0] == 200
        blocks = [b for b in _finished(eng) if b[5] != BUSY]
    finally:
        eng.stop()
    assert blocks and all(b[1] >= 100e6 for b in blocks), blocks
    for where in (b[5] for b in blocks):
        assert where.startswith("burn_cpu (engines/work.py:"), where


def _a_call_and_a_call_it_makes() -> tuple:
    def makes() -> object:
        return sys._getframe()

    inner = makes()
    return sys._getframe(), inner  # this call's frame, and the frame of one it made


def test_a_call_seen_one_frame_deeper_now_and_then_is_one_call_not_two() -> None:
    # A CPU loop calls Work.emit_at when it sees a GIL gap (often, on a busy machine): a sample taken
    # in there saw a longer stack, taken for another call, and one 570 ms burn was reported as two.
    outer, inner = _a_call_and_a_call_it_makes()
    ms = 1_000_000
    found = _Found(latest_per_lane=False)
    stall = _Stall(found, 0, 0, threshold=20 * ms, min_seen=10 * ms)
    for i in range(1, 100):
        deeper = i % 5 == 0
        stall.seen(i * 2 * ms, (inner, outer) if deeper else (outer,), inner if deeper else outer, False)
    stall.end(200 * ms)
    calls = [rec for rec in found.take(200 * ms) if rec[4] != BUSY]
    assert len(calls) == 1 and calls[0][1] >= 190 * ms, calls
    # a different call (not the same frames outward) is still another call
    stall = _Stall(found, 0, 0, threshold=20 * ms, min_seen=10 * ms)
    for i in range(1, 100):
        stall.seen(i * 2 * ms, (outer,) if i < 50 else (inner,), outer if i < 50 else inner, False)
    stall.end(200 * ms)
    assert len([rec for rec in found.take(200 * ms) if rec[4] != BUSY]) == 2
    # nor is its caller once it returned (a burn, then the response's write): the burn is not named by the write
    stall = _Stall(found, 0, 0, threshold=20 * ms, min_seen=10 * ms)
    for i in range(1, 100):
        stall.seen(i * 2 * ms, (inner, outer) if i < 50 else (outer,), inner if i < 50 else outer, False)
    stall.end(200 * ms)
    assert len([rec for rec in found.take(200 * ms) if rec[4] != BUSY]) == 2


@pytest.mark.parametrize("name", ["asyncio", "gevent"])
def test_a_healthy_loop_reports_nothing(make_engine, name: str) -> None:
    eng = make_engine(name, "native", io_ms=30)
    for _ in range(4):
        assert get(eng.port)[0] == 200
    time.sleep(0.1)
    # No call is named. On a loaded machine (the suite's 4 workers on 2 cores) the OS can hold the
    # loop's thread past the 20 ms threshold while it waits for work: the loop's own time (BUSY,
    # seen once: 25 ms on gevent), never counted as a blocked call, and far shorter than a held loop.
    found = eng.take_blocks(now_ns())
    assert [b for b in found if b[5] != BUSY] == [], found
    assert all(b[1] < 100e6 for b in found), found


def test_an_ongoing_block_shows_as_it_happens(make_engine) -> None:
    eng = make_engine("asyncio", "blocking", io_ms=400)
    time.sleep(0.05)
    client = threading.Thread(target=get, args=(eng.port,))
    client.start()
    time.sleep(0.2)
    now = now_ns()
    # the loop's own time (BUSY) may come first on a loaded machine (the OS held the loop's thread
    # 32 ms before the request's sleep began, with 6 workers on 2 cores): the test is the blocked call
    ongoing = [b for b in eng.take_blocks(now) if b[5] != BUSY]
    client.join()
    assert len(ongoing) == 1 and ongoing[0][4], ongoing
    assert now - 20e6 <= ongoing[0][0] + ongoing[0][1] <= now and ongoing[0][1] >= 100e6  # so far: to the last look
    assert ongoing[0][5].startswith("time.sleep ← ")
    final = [b for b in _finished(eng) if b[5] != BUSY]
    assert len(final) == 1 and final[0][0] == ongoing[0][0] and final[0][1] >= 350e6, final


def test_a_pool_thread_shows_its_blocking_call(make_engine) -> None:
    eng = make_engine("threaded", "native", io_ms=80)
    assert get(eng.port)[0] == 200
    blocks = _finished(eng)
    assert len(blocks) == 1, blocks
    _t, d, e, lane, _ongoing, where = blocks[0]
    assert e == ENGINE_IDS["threaded"] and 0 <= lane < 4
    assert 60e6 <= d <= 130e6, d / 1e6
    assert where.startswith("time.sleep ← BlockingWork._sleep (engines/work.py:"), where


def test_a_large_pool_is_looked_at_a_window_at_a_time() -> None:
    """40 threads parked at once (more than one window): every one is reported, each once."""
    work = BlockingWork(Recorder(), 0, None)
    threads = {
        lane: threading.Thread(target=work.io, args=(lane, lane, 1.5, False)) for lane in range(40)
    }  # 1.5 s: both windows look, even on a busy machine
    for thread in threads.values():
        thread.start()

    def parked(thread: threading.Thread) -> bool:
        frame = sys._current_frames().get(thread.ident)
        while frame is not None and frame.f_code is not BlockingWork._sleep.__code__:
            frame = frame.f_back
        return frame is not None

    # every thread parked before the first look (a busy machine starts 40 threads slowly: a lane the
    # first window missed would be found later, by a later window, and count among the newest)
    assert wait_for(lambda: all(parked(t) for t in threads.values()), 1.0)
    dog = WorkerWatchdog("pool", lambda: threads, [Work.io.__code__]).start()
    for thread in threads.values():
        thread.join()
    time.sleep(0.15)
    dog.stop()
    dog.thread.join()
    found = dog.take(now_ns())
    assert sorted(lane for _t, _d, lane, _o, _w in found)[-8:] == list(range(32, 40))  # the newest MAX_TAKE
    assert all(not ongoing and d >= 200e6 and w.startswith("time.sleep ← ") for _t, d, _l, ongoing, w in found), found


@pytest.mark.parametrize("name", ["threaded", "asyncio", "gevent"])
def test_stop_joins_the_watchdog(make_engine, name: str) -> None:
    eng = make_engine(name, "native", io_ms=5)
    assert _watchdogs() == [f"{eng.watchdog.thread.name}"]
    eng.stop()
    assert _watchdogs() == []
    quiet = make_engine(name, "native", io_ms=5, recorder=Recorder(enabled=False))  # the overhead baseline
    assert quiet.watchdog is None and _watchdogs() == []


def test_describe_names_the_c_call_on_the_project_line_or_only_the_line() -> None:
    work = BlockingWork(Recorder(), 0, None)
    long_call = threading.Event()  # set as the step to sample starts (after warm's short calls)

    def quietly(step) -> None:
        with contextlib.suppress(Stopping):
            step()

    def warm() -> None:  # a call run often enough to be specialized (3.11 calls it from its PRECALL)
        for _ in range(40):
            work.io(1, 0, 0.0002, False)
        long_call.set()
        work.io(1, 0, 3.0, False)

    def io() -> None:
        long_call.set()
        work.io(1, 0, 3.0, False)

    def cpu() -> None:
        long_call.set()
        work.cpu(1, 0, 3.0)

    def inside(thread: threading.Thread, function: str) -> bool:
        """The thread is in the long step's ``function`` (a loaded machine may start it late)."""
        frame = sys._current_frames().get(thread.ident) if long_call.is_set() else None
        while frame is not None and frame.f_code.co_name != function:
            frame = frame.f_back
        return frame is not None

    for run, function, expect in [
        (io, "_sleep", "time.sleep ← BlockingWork._sleep (engines/work.py:"),
        (warm, "_sleep", "time.sleep ← BlockingWork._sleep (engines/work.py:"),
        # Pure Python: no call to name, unless the sample lands in a C call it makes (a clock
        # read, range): describe names whichever it caught; the loop watchdog, which has measured
        # the thread computing, asks for its frames alone (computing=True, below).
        (cpu, "burn_cpu", re.compile(r"([\w.]+ ← )?burn_cpu \(engines/work\.py:")),
    ]:
        long_call.clear()
        thread = threading.Thread(target=quietly, args=(run,))
        thread.start()
        # the step runs 3 s unless stopped: wait until it is under way, then sample it (not a fixed sleep)
        assert wait_for(lambda: inside(thread, function), 10.0), f"{function} never ran"  # noqa: B023
        time.sleep(0.02)  # well inside it, not on its way in
        top = sys._current_frames()[thread.ident]
        where, frames_only = describe(top), describe(top, computing=True)
        top = None
        work.stopping = True  # the step ends (raising Stopping in its thread: caught there)
        thread.join()
        work.stopping = False
        assert where.startswith(expect) if isinstance(expect, str) else expect.match(where), where
        assert WORK_LINE.search(where), where
        ours = "burn_cpu (engines/work.py:" if function == "burn_cpu" else "BlockingWork._sleep (engines/work.py:"
        assert frames_only.startswith(ours), frames_only


BLOCK = (1_000, 50_000_000, 1, 0, False, "time.sleep ← BlockingWork._sleep (engines/work.py:136)")


def test_blocks_round_trip_the_wire() -> None:
    batch = Batch(t_ns=10)
    batch.blocks = [BLOCK, (2_000, 7, 0, 3, True, "x (engines/a.py:1)")]
    wire = batch_to_wire(batch, 2)
    assert wire["bk"][1] == [2_000, 7, 0, 3, 1, "x (engines/a.py:1)"]
    assert decode_batch(wire).batch.blocks == batch.blocks
    assert "bk" not in batch_to_wire(Batch(t_ns=10), 2) and decode_batch(batch_to_wire(Batch(), 0)).batch.blocks == []


@pytest.mark.parametrize(
    "bad",
    [
        {},
        [[1, 2, 1, 0, 0]],  # no where
        [[1, 2, 9, 0, 0, "x"]],  # no such engine
        [[-1, 2, 1, 0, 0, "x"]],
        [[1, 2, 1, 0, 2, "x"]],  # ongoing is 0 or 1
        [[1, 2.5, 1, 0, 0, "x"]],
        [[1, 2, 1, 0, 0, ""]],
        [[1, 2, 1, 0, 0, "two\nlines"]],
        [[1, 2, 1, 0, 0, "\x1b[2Jescape"]],
        [[1, 2, 1, 0, 0, "x" * 401]],
        [[1, 2, 1, 0, 0, 7]],
    ],
)
def test_malformed_blocks_are_refused(bad: object) -> None:
    wire = batch_to_wire(Batch(t_ns=10), 1)
    wire["bk"] = bad
    with pytest.raises(WireError, match="'bk'"):
        decode_batch(wire)


def test_the_stats_keep_the_latest_and_the_panel_says_it() -> None:
    stats = StreamStats()
    old = Batch(t_ns=5)
    del old.blocks  # a batch from before the watchdogs
    stats.feed(old)
    t0 = 10_000_000_000
    batch = Batch(t_ns=t0)
    batch.blocks = [
        (t0 - 100_000_000, 50_200_000, 1, 0, False, BLOCK[5]),
        (t0 - 40_000_000, 40_000_000, 1, 0, True, BLOCK[5]),  # the next call, still going
    ]
    stats.feed(batch)
    asyncio = stats["asyncio"]
    assert asyncio.blocked is not None and asyncio.blocked.ongoing
    shown = asyncio.counters(t0).blocked  # the finished one: the ongoing one is not longer yet
    assert shown is not None and not shown.ongoing and shown.duration_ns == 50_200_000
    text = counter_text(_view(asyncio.counters(t0)), 64, stacked=False).plain
    assert "loop blocked 50 ms in time.sleep ← _sleep (engines/work.py:136)" in text, text
    assert asyncio.counters(t0 + BLOCK_RECENT_NS + 100_000_000).blocked is None  # old news
    assert stats["gevent"].counters(t0).blocked is None

    stall = Batch(t_ns=t0 + 900_000_000)
    stall.blocks = [(t0 - 40_000_000, 940_000_000, 1, 0, True, BLOCK[5])]
    stats.feed(stall)
    text = counter_text(_view(asyncio.counters(t0 + 900_000_000)), 64, stacked=False).plain
    assert "loop blocked 940 ms so far in time.sleep" in text, text

    pool = Batch(t_ns=t0)
    pool.blocks = [(t0 - 60_000_000, 50_000_000, 0, 3, False, BLOCK[5])]
    stats.feed(pool)
    text = counter_text(_view(stats["threaded"].counters(t0), {3: "w3"}), 64, stacked=False).plain
    assert "w3 blocked in time.sleep ← _sleep (engines/work.py:136)" in text, text


def _view(c, labels: dict[int, str] | None = None) -> CounterView:
    return CounterView(c, None, 1, "loop", True, [], [], 0, lane_labels=labels or {0: "loop"})


def test_a_counters_line_too_long_for_the_panel_goes_on_two_lines_not_past_its_edge() -> None:
    # offload's workers ("busy 40/41 loop+40 thr") made the in-flight line 69 wide in a 64-wide panel:
    # Textual wrapped its last word alone onto the next line
    c = Counters("asyncio", in_flight=100, queued=60, by_phase={"queued": 60, "ready": 0}, busy=40)
    view = CounterView(c, 800.0, 41, "loop+40 thr", True, [], [], 0, server=ServerSnapshot(workers=41))
    for width in (64, 70, 100):
        lines = counter_text(view, width, stacked=False).plain.splitlines()
        assert all(len(line) <= width for line in lines), (width, lines)
        busy = next(line for line in lines if "busy" in line)
        assert "busy 40/41 loop+40 thr" in busy and ("in flight" in busy) == (width >= 70), (width, lines)
