"""A held loop is not always a blocked one: a call held it, or its own work did (a saturated loop)."""

from __future__ import annotations

import asyncio
import sys
import threading
import time
from collections.abc import Iterator
from types import FrameType

import pytest
from support import get, wait_for
from syncviz.engines import stall as stall_module
from syncviz.engines.callsite import holding_call, project_path
from syncviz.engines.cpuclock import run_delay_ns, sleeping_on
from syncviz.engines.events import Batch, now_ns
from syncviz.engines.stall import BUSY, CPU_WAIT, GIL_WAIT, _Found, _Stall
from syncviz.engines.stats import StreamStats
from syncviz.engines.work import BlockingWork
from syncviz.tui.widgets.counters import CounterView, counter_text, fmt_n

MS = 1_000_000
SLEEP = "time.sleep ← BlockingWork._sleep (engines/work.py:136)"


def _frames() -> Iterator[FrameType]:
    """Frames of distinct calls, each kept alive (a key's frames are told apart by identity)."""
    kept = []
    while True:
        gen = (x for x in ())
        kept.append(gen)
        assert gen.gi_frame is not None
        yield gen.gi_frame


def _stall(start: int = 0) -> tuple[_Found, _Stall]:
    found = _Found(latest_per_lane=False)
    return found, _Stall(found, 0, start, threshold=20 * MS, min_seen=10 * MS)


def test_many_short_calls_are_the_loop_s_own_work_not_a_blocked_call() -> None:
    """A saturated loop: every look finds another short callback. The first no longer takes the
    blame for the whole wait since the ticker's last run (``blocked 34 ms in …``)."""
    found, stall = _stall()
    frames = _frames()
    for t in range(30, 62, 2):
        key = (next(frames),) if t % 4 else None  # a callback, or the loop's own frames (_run_once)
        stall.seen(t * MS, key, next(frames), resumed=False)
    assert found.take(61 * MS) == [(0, 60 * MS, 0, True, BUSY)]  # busy so far, to the last look
    stall.end(62 * MS)
    assert found.take(62 * MS) == [(0, 62 * MS, 0, False, BUSY)]


def test_one_call_seen_holding_the_loop_is_a_blocked_call() -> None:
    found, stall = _stall()
    frames = _frames()
    call, top = (next(frames), next(frames)), next(frames)
    stall.seen(20 * MS, call, top, resumed=False)
    assert found.take(20 * MS) == []  # seen once: not yet a blocked call, nor the loop's own work
    for t in range(22, 62, 2):
        stall.seen(t * MS, call, top, resumed=False)
    (rec,) = found.take(60 * MS)
    assert rec[:4] == (0, 60 * MS, 0, True) and rec[4] != BUSY  # named, dated from the loop's last free moment
    stall.end(61 * MS)
    assert found.take(61 * MS) == [(0, 61 * MS, 0, False, rec[4])]


@pytest.mark.parametrize(
    ("thread_per_ms", "process_per_ms", "computing"),
    [
        (0.33, 0.4, True),  # a third of a core
        (0.12, 0.5, True),
        (0.03, 0.04, True),  # a crowded machine: 3% of a core, but most of what its process got
        (0.002, 0.05, False),  # parked in time.sleep: microseconds, while the digest thread works
        (None, 0.3, False),  # no thread clock here
    ],
)
def test_a_call_whose_thread_computed_meanwhile_is_named_by_its_frames(
    monkeypatch, thread_per_ms, process_per_ms, computing
) -> None:
    """A CPU loop is seen where it gave up the GIL, at a call it just made (``time.thread_time_ns``):
    the loop thread's CPU clock, read at each look with its process's, tells computing from waiting."""
    asked: list[bool] = []
    monkeypatch.setattr(stall_module, "safe_describe", lambda top, computing=False: asked.append(computing) or "x")
    _found, stall = _stall()
    frames = _frames()
    call, top = (next(frames),), next(frames)
    for t in range(20, 42, 2):
        ran = None if thread_per_ms is None else int((t - 20) * MS * thread_per_ms)
        stall.seen(t * MS, call, top, resumed=False, cpu=(ran, int((t - 20) * MS * process_per_ms)))
    assert asked == [computing]  # named once, when seen holding for 10 ms


@pytest.mark.parametrize(
    ("sleeping_on", "thread_per_ms", "process_per_ms", "delay_per_ms", "call", "waited"),
    [
        ("futex", 0.001, 1.0, 0.0, None, GIL_WAIT),  # --in-process cpu-bound: stopped between two instructions
        ("running", 0.001, 0.9, 0.0, "socket.socket.send", GIL_WAIT),  # woke from the GIL's timed wait
        ("other", 0.001, 1.0, 0.0, None, None),  # a syscall of its own (time.sleep, recv): its call held it
        ("futex", 0.001, 1.0, 0.0, "_thread.lock.acquire", None),  # a lock's wait, not the GIL's
        ("futex", 0.001, 0.2, 0.0, None, None),  # nobody else computed: not the GIL
        ("futex", 0.4, 1.0, 0.0, None, None),  # it computed: named by its frames
        (None, 0.001, 1.0, None, None, None),  # not known here
        ("other", 0.001, 0.001, 0.9, None, CPU_WAIT),  # runnable, not run: three engines on one core
        ("other", 0.001, 0.001, 0.2, None, None),  # runnable a little, then in its call
    ],
)
def test_a_loop_that_waited_for_the_gil_or_a_cpu_says_so(
    monkeypatch, sleeping_on, thread_per_ms, process_per_ms, delay_per_ms, call, waited
) -> None:
    """``--in-process`` cpu-bound: the loop, back from a send that took microseconds, waited for the
    threaded engine's workers to hand the GIL over; the panel said ``loop blocked 140 ms in
    asyncio…Transport.write``. Three engine processes on one core: it waited for the CPU, and the
    panel said the same."""
    monkeypatch.setattr(stall_module, "safe_describe", lambda top, computing=False: "asyncio…Transport.write")
    monkeypatch.setattr(stall_module, "held_call", lambda top: call)
    found = _Found(latest_per_lane=False)
    stall = _Stall(found, 0, 0, threshold=20 * MS, min_seen=10 * MS, sleeping_on=lambda: sleeping_on)
    frames = _frames()
    key, top = (next(frames),), next(frames)
    for t in range(20, 42, 2):
        delay = None if delay_per_ms is None else int((t - 20) * MS * delay_per_ms)
        cpu = (int((t - 20) * MS * thread_per_ms), int((t - 20) * MS * process_per_ms), delay)
        stall.seen(t * MS, key, top, resumed=False, cpu=cpu)
    (rec,) = found.take(42 * MS)
    assert rec[4] == (f"{waited} ← asyncio…Transport.write" if waited else "asyncio…Transport.write")


def test_where_a_thread_sleeps_is_read_from_linux() -> None:
    if sleeping_on(threading.get_native_id())() is None:
        pytest.skip("no /proc/self/task/TID/syscall, or an architecture without a known futex number")
    lock = threading.Lock()
    lock.acquire()
    threads = [
        threading.Thread(target=time.sleep, args=(1.0,), daemon=True),
        threading.Thread(target=lock.acquire, args=(True, 1.0), daemon=True),
    ]
    for thread in threads:
        thread.start()
    try:
        readers = [sleeping_on(thread.native_id) for thread in threads]
        assert wait_for(lambda: [read() for read in readers] == ["other", "futex"], timeout=0.8)
        delays = [run_delay_ns(thread.native_id)() for thread in threads]
        assert all(isinstance(d, int) and d >= 0 for d in delays), delays  # schedstat's run delay
    finally:
        lock.release()
        for thread in threads:
            thread.join()


def test_own_work_then_a_blocked_call_are_two_records() -> None:
    found, stall = _stall()
    frames = _frames()
    for t in range(20, 42, 2):
        stall.seen(t * MS, (next(frames),), next(frames), resumed=False)  # short callbacks
    call, top = (next(frames),), next(frames)
    for t in range(42, 100, 2):
        stall.seen(t * MS, call, top, resumed=False)
    stall.end(100 * MS)
    (busy, blocked) = found.take(100 * MS)
    assert busy == (0, 41 * MS, 0, False, BUSY)
    assert blocked[:4] == (41 * MS, 59 * MS, 0, False) and blocked[4] != BUSY


def test_a_greenlet_that_yielded_between_two_looks_is_two_calls() -> None:
    """A greenlet's frames persist while it is switched out: the hub's poll between tells them apart."""
    found, stall = _stall()
    frames = _frames()
    greenlet, top = (next(frames),), next(frames)
    for t in range(20, 62, 6):
        stall.seen(t * MS, greenlet, top, resumed=True)
    stall.end(62 * MS)
    assert found.take(62 * MS) == [(0, 62 * MS, 0, False, BUSY)]


@pytest.mark.parametrize("name", ["asyncio", "gevent"])
def test_holding_call_tells_a_handler_from_the_loop_s_own_frames(make_engine, name: str) -> None:
    idle = make_engine(name, "native", io_ms=5)
    assert get(idle.port)[0] == 200
    time.sleep(0.05)
    top = sys._current_frames()[idle._thread.ident]
    assert holding_call(top) is None, [f.f_code.co_qualname for f in _stack(top)]  # select() / Hub.run

    eng = make_engine(name, "blocking", io_ms=400)
    client = threading.Thread(target=get, args=(eng.port,))
    client.start()
    sleeping = BlockingWork._sleep.__code__
    assert wait_for(lambda: _in(eng._thread, sleeping), 5.0)
    call = holding_call(sys._current_frames()[eng._thread.ident])
    client.join()
    assert call is not None and call[0].f_code is sleeping


def _stack(top: FrameType | None) -> list[FrameType]:
    out = []
    while top is not None:
        out.append(top)
        top = top.f_back
    return out


def _in(thread: threading.Thread, code: object) -> bool:
    return any(f.f_code is code for f in _stack(sys._current_frames().get(thread.ident)))


def test_a_saturated_asyncio_loop_is_busy_and_counts_no_blocked_call(make_engine) -> None:
    """250,000 ready callbacks of the project's code at once (80 ms on a fast machine), each under a microsecond."""
    eng = make_engine("asyncio", "native", io_ms=5)
    time.sleep(0.05)  # the ticker runs
    loop: asyncio.AbstractEventLoop = eng._loop
    handles = [asyncio.Handle(project_path, (__file__,), loop) for _ in range(250_000)]
    loop.call_soon_threadsafe(loop._ready.extend, handles)  # type: ignore[attr-defined]  # one C call: all ready at once
    found: list[tuple] = []
    end = time.monotonic() + 3.0
    while time.monotonic() < end and not (not loop._ready and any(not b[4] for b in found)):  # type: ignore[attr-defined]
        time.sleep(0.05)
        found += eng.take_blocks(now_ns())
    time.sleep(0.1)  # the busy span the last callbacks were in ends once the loop is back in select()
    found += eng.take_blocks(now_ns())
    done = [b for b in found if not b[4]]  # the whole saturated time, in one record or several
    assert done and all(b[5] == BUSY for b in done), found  # no call is blamed: none held it
    assert sum(b[1] for b in done) >= 50 * MS, done

    stats = StreamStats()
    batch = Batch(t_ns=now_ns())
    batch.blocks = done
    stats.feed(batch)
    asyncio_stats = stats["asyncio"]
    assert not asyncio_stats.blocks and asyncio_stats.blocked is None  # counted as no blocked call
    shown = asyncio_stats.counters(batch.t_ns).blocked
    assert shown is not None and shown.busy
    text = counter_text(_view(asyncio_stats.counters(batch.t_ns)), 64, stacked=False).plain
    assert f"loop busy {fmt_n(shown.duration_ns / MS)} ms, no single call held it" in text, text


def test_the_panel_says_busy_for_the_loop_s_own_work_and_prefers_a_blocked_call() -> None:
    stats = StreamStats()
    t0 = 10_000 * MS
    busy = Batch(t_ns=t0)
    busy.blocks = [(t0 - 100 * MS, 34 * MS, 2, 0, False, BUSY)]
    stats.feed(busy)
    gevent = stats["gevent"]
    text = counter_text(_view(gevent.counters(t0), "hub"), 64, stacked=False).plain
    assert "hub busy 34 ms, no single call held it" in text and "blocked" not in text, text

    blocked = Batch(t_ns=t0)
    blocked.blocks = [(t0 - 300 * MS, 50 * MS, 2, 0, False, SLEEP), (t0 - 50 * MS, 40 * MS, 2, 0, False, BUSY)]
    stats.feed(blocked)
    text = counter_text(_view(gevent.counters(t0), "hub"), 64, stacked=False).plain
    assert "hub blocked 50 ms in time.sleep" in text, text  # the blocked call is the news, the busy one is not
    assert len(gevent.blocks) == 1 and gevent.busy_done is not None and gevent.busy_done.duration_ns == 40 * MS


def _view(c, label: str = "loop") -> CounterView:
    return CounterView(c, None, 1, label, True, [], [], 0, lane_labels={0: label})
