"""What held the loop: a watchdog thread that looks at a held thread's stack and names the call.

gevent's monitor thread (``max_blocking_time``) and asyncio's debug mode (``slow_callback_duration``)
say *which call* held a loop, in a log. Here a watchdog thread lives beside each engine and puts
it on the event stream, as the innermost frames of the call: the library call first, then the
project's own frames (file:line relative to the package; named by :mod:`~syncviz.engines.callsite`)::

    time.sleep ← BlockingWork._sleep (engines/work.py:136) ← Work.io (engines/work.py:99)

It costs a healthy engine nothing. :class:`LoopWatchdog` only reads when the loop's lag ticker
is next due and sleeps until that moment plus half :data:`BLOCK_THRESHOLD_NS`; a loop that has not
run its ticker by then is held, and only then is its stack sampled (``sys._current_frames()``),
every :data:`LOOP_SAMPLE_S`, until the ticker runs again. A held loop is not always a blocked one:
a saturated loop is late because each iteration runs many short callbacks. So a call is a blocked
call (one record naming it) only when the samples saw that one call (the same frames:
:func:`~syncviz.engines.callsite.holding_call`) holding the loop for half the threshold, and it
held it for the threshold; back-to-back calls (two requests' sleeps) are told apart by their
frames. The rest of a stall, the loop's own frames (``_run_once``, ``Hub.run``) and calls seen
too briefly, is its own work: a record of :data:`BUSY`, never counted as a blocked call.

:class:`WorkerWatchdog` looks at a pool's threads every :data:`WORKER_SAMPLE_S` and reports those
parked in a blocking wait (a frame of ``Work.io`` on the stack: phase ``blocked``), one wait per
thread every :data:`WORKER_REPORT_NS` at most: a pool blocks all the time, thousands of waits a
second, and each thread's latest is what the picture needs. A large pool is looked at
:data:`LANES_PER_LOOK` threads at a time, resting :data:`POOL_REST_S` between two windows
(``sys._current_frames()`` costs in proportion to the process's threads: 50 a second cost 2% of a
core with 200 busy threads, where a thread that only wakes up costs 0.3%), so in such a pool a
reported wait's end is known to the rest's length.

A record is ``(t_start_ns, duration_ns, lane, ongoing, where)``. Times are estimates bounded by
what was seen: a loop's first held call is dated from the latest moment the loop was seen free
(the ticker's last run, or the gevent hub's last poll), so it may read up to one ticker period
long; calls after it from the midpoint between the samples that saw the change (a few ms). A
worker wait begins when its ``Work.io`` says (its ``t0``, the moment of its ``blocked`` transition)
and ends at that midpoint. A hub that polled between two samples went round: a greenlet seen at both
yielded in between (its frames persist), so they are two calls. A call still
holding its thread is reported ``ongoing``, with its duration so far (to the last look that saw
it), at every :meth:`~Watchdog.take`.

A held call whose thread's CPU clock ran meanwhile was computing, not waiting in the call its
instruction was at (:func:`~syncviz.engines.cpuclock.computing`): it is named by its frames alone;
one that did not compute, on a futex outside a lock's wait while its process computed, waited for
the GIL (:func:`~syncviz.engines.cpuclock.waiting_for_gil`, :mod:`~syncviz.engines.stall`).
The held call is named from the code alone, never by guessing
(:func:`~syncviz.engines.callsite.describe`): this module holds the threads that sample the stacks
and the records they keep.
"""

from __future__ import annotations

import contextlib
import gc
import sys
import threading
import time
from collections.abc import Callable, Iterable, Mapping
from types import CodeType, FrameType

from .callsite import holding_call, safe_describe
from .cpuclock import run_delay_ns, sleeping_on, thread_cpu_ns
from .events import now_ns
from .stall import BUSY, Found, _Found, _Stall

__all__ = ["BLOCK_THRESHOLD_NS", "BUSY", "Found", "LoopWatchdog", "Watchdog", "WorkerWatchdog"]

BLOCK_THRESHOLD_NS = 20_000_000
"""A loop held longer than this is reported (20 ms: two of the lag ticker's periods). The anchors,
gevent's ``max_blocking_time`` and asyncio's ``slow_callback_duration``, default to 100 ms; a
lower bar catches the 50 ms ``time.sleep`` of the ``blocking-call`` scenario."""
LOOP_SAMPLE_S = 0.002  # how often a held loop's stack is sampled
WORKER_SAMPLE_S = 0.020  # how often a pool's threads are looked at
WORKER_REPORT_NS = 500_000_000  # a pool thread's waits are reported (named, sent) at most this often each
LANES_PER_LOOK = 32  # pool threads looked at per sample (a window moving through a large pool)
POOL_REST_S = 0.1  # a pool larger than that rests between two windows: sampling a stack is O(threads)
IDLE_CHECK_S = 0.1  # the longest sleep between two looks at a loop that is not ticking yet
WAIT_DEPTH = 6  # how far up a worker's stack its wait frame is looked for


def current_frames() -> dict[int, FrameType]:
    """``sys._current_frames()`` with the collector off meanwhile (when it was on).

    On CPython before 3.11.9 the call can deadlock the process: it holds the runtime's thread list
    lock while it allocates, a collection run there may switch threads, and every other thread then
    waits for the GIL its holder never gives back (CPython gh-106883, fixed upstream the same way).
    Seen once here: a pytest process with the threaded engine's watchdog, stuck for 19 minutes.
    """
    if not gc.isenabled():
        return sys._current_frames()
    gc.disable()
    try:
        return sys._current_frames()
    finally:
        gc.enable()


# -- the watchdogs ---------------------------------------------------------------------------
class Watchdog:
    """A daemon thread looking at other threads' stacks; :meth:`take` returns what it found.

    It never keeps the process alive (daemon) nor raises: a failure ends its looking, quietly.
    The engine that starts it stops and joins it (:meth:`stop`, then ``thread.join``).
    """

    def __init__(self, name: str, threshold_ns: int, latest_per_lane: bool) -> None:
        self.threshold_ns = threshold_ns
        self.found = _Found(latest_per_lane)
        self._stopping = threading.Event()
        self.thread = threading.Thread(target=self._main, name=name, daemon=True)

    def start(self) -> Watchdog:
        self.thread.start()
        return self

    def stop(self) -> None:
        self._stopping.set()

    def take(self, now: int) -> list[Found]:
        """Calls finished since the last take, and those still going on (their duration so far)."""
        return self.found.take(now)

    def _main(self) -> None:
        with contextlib.suppress(Exception):  # never a traceback, never the engine's problem: it stops looking
            self._watch()

    def _watch(self) -> None:
        raise NotImplementedError


class LoopWatchdog(Watchdog):
    """Watches one loop (or hub) thread through its lag ticker's due time (``due()``, 0: not yet).

    ``free_since()``, when given, is the latest moment the loop is known to have been free (a hub's
    last poll), a closer start for a stall's first call than the ticker's last run.
    """

    def __init__(
        self,
        thread: threading.Thread,
        due: Callable[[], int],
        period_ns: int,
        free_since: Callable[[], int] | None = None,
        lane: int = 0,
        threshold_ns: int = BLOCK_THRESHOLD_NS,
        sample_s: float = LOOP_SAMPLE_S,
    ) -> None:
        super().__init__(f"{thread.name}-watchdog", threshold_ns, latest_per_lane=False)
        self._loop_thread = thread
        self._cpu_ns: Callable[[], int | None] = lambda: None  # the loop thread's CPU clock, once it is watched
        self._sleeping_on: Callable[[], str | None] = lambda: None  # where it sleeps (cpuclock.sleeping_on)
        self._run_delay: Callable[[], int | None] = lambda: None  # its time runnable, not run (cpuclock)
        self._due = due
        self._free_since = free_since
        self.period_ns = period_ns
        self.lane = lane
        self.sample_s = sample_s
        self.min_seen_ns = threshold_ns // 2  # a blocked call is seen holding the loop this long, at least

    def _watch(self) -> None:
        self._cpu_ns = thread_cpu_ns(self._loop_thread)
        self._sleeping_on = sleeping_on(self._loop_thread.native_id)
        self._run_delay = run_delay_ns(self._loop_thread.native_id)
        wait, due_of = self._stopping.wait, self._due
        look_after = self.threshold_ns - self.min_seen_ns  # a call seen that long by the threshold
        while not self._stopping.is_set():
            due = due_of()
            if not due:
                wait(IDLE_CHECK_S)
                continue
            late = due + look_after - now_ns()
            if late > 0:  # healthy so far: look again when it would be late
                wait(min(IDLE_CHECK_S, late / 1e9))
                continue
            self._held(due)

    def _held(self, due: int) -> None:
        """Sample the held loop until its ticker runs again: what held it, call by call (:class:`_Stall`)."""
        ident, period = self._loop_thread.ident, self.period_ns
        start = due - period  # the ticker's last run: the latest moment the loop was seen free
        free_since = self._free_since
        polled = free_since() if free_since is not None else 0
        if polled:
            start = max(start, min(polled, now_ns()))
        stall = _Stall(self.found, self.lane, start, self.threshold_ns, self.min_seen_ns, self._sleeping_on)
        cpu_ns, run_delay = self._cpu_ns, self._run_delay
        while True:
            top = current_frames().get(ident)  # type: ignore[arg-type]
            now, again, cpu = now_ns(), self._due(), (cpu_ns(), time.process_time_ns(), run_delay())
            if again != due or top is None or self._stopping.is_set():
                stall.end(max(stall.last, min(now, again - period)) if again != due else now)  # the ticker's new run
                return
            poll = free_since() if free_since is not None else 0
            stall.seen(now, holding_call(top), top, poll != polled, cpu)  # a poll between: the hub went round
            polled = poll
            top = None  # type: ignore[assignment]
            self._stopping.wait(self.sample_s)


class _Wait:
    __slots__ = ("named", "seen", "start", "top", "where")

    def __init__(self, top: FrameType, start: int, seen: int) -> None:
        self.top = top
        self.start = start
        self.seen = seen
        self.where: str | None = None
        self.named = False  # looked at once it passed the threshold (named, or skipped: reported lately)


class WorkerWatchdog(Watchdog):
    """Watches a pool's threads (``workers()``: lane -> thread) for waits longer than the threshold.

    A thread is waiting when a frame of ``wait_codes`` (``Work.io``: the phase ``blocked``) is on
    its stack; it is the same wait while its innermost frame stays the same (one call of it).
    """

    def __init__(
        self,
        name: str,
        workers: Callable[[], Mapping[int, threading.Thread]],
        wait_codes: Iterable[CodeType],
        threshold_ns: int = BLOCK_THRESHOLD_NS,
        sample_s: float = WORKER_SAMPLE_S,
    ) -> None:
        super().__init__(f"{name}-watchdog", threshold_ns, latest_per_lane=True)
        self._workers = workers
        self._wait_codes = {id(c): c for c in wait_codes}  # by id: a code object's hash is not cached
        self.sample_s = sample_s

    def _watch(self) -> None:
        waits: dict[int, _Wait] = {}
        reported: dict[int, int] = {}  # lane -> when its last reported wait began
        found, threshold = self.found, self.threshold_ns
        half = int(self.sample_s * 1e9) // 2
        order: list[int] = []
        pos = looks = 0
        rest = 0.0
        while not self._stopping.wait(self.sample_s + rest):
            pool = dict(self._workers())
            if len(order) != len(pool):
                order, pos = sorted(pool), 0
            # A window of the pool, looked at twice (a wait seen twice is longer than the threshold),
            # then the next one; and every thread whose wait is being reported, until it ends.
            n = len(order)
            look = {order[(pos + i) % n] for i in range(min(n, LANES_PER_LOOK))}
            looks += 1
            rest = 0.0
            if looks == 2:
                looks, pos = 0, (pos + LANES_PER_LOOK) % max(1, n)
                rest = POOL_REST_S if n > LANES_PER_LOOK else 0.0
            look.update(lane for lane, w in waits.items() if w.where is not None)
            frames = current_frames()
            now = now_ns()
            for lane in look:
                thread = pool.get(lane)
                top = frames.get(thread.ident) if thread is not None else None  # type: ignore[arg-type]
                w = waits.get(lane)
                if w is not None:
                    if top is w.top:  # still the same wait (the same call: a sleep's slices are one wait)
                        w.seen = now
                        if not w.named and now - w.start >= threshold:
                            w.named = True
                            if now - reported.get(lane, -WORKER_REPORT_NS) >= WORKER_REPORT_NS:
                                reported[lane] = now
                                w.where = safe_describe(top)
                        if w.where is not None:
                            found.ongoing[lane] = (w.start, w.where, now)
                        continue
                    del waits[lane]
                    found.finish(lane, w.start, (w.seen + now) // 2, w.where, threshold)
                waiting = self._waiting(top) if top is not None else None
                if waiting is not None:
                    waits[lane] = _Wait(top, _began(waiting, now, now - half), now)  # type: ignore[arg-type]
            for lane in waits.keys() - look:  # out of the window, not reported: forgotten
                del waits[lane]
            del frames, pool

    def _waiting(self, top: FrameType) -> FrameType | None:
        """The frame of ``wait_codes`` on ``top``'s stack (the thread is waiting), or ``None``."""
        f: FrameType | None = top
        codes = self._wait_codes
        for _ in range(WAIT_DEPTH):
            if f is None:
                return None
            code = f.f_code
            if codes.get(id(code)) is code:
                return f
            f = f.f_back
        return None


def _began(frame: FrameType, now: int, guess: int) -> int:
    """When the wait in ``frame`` began: its own ``t0`` (``Work.io`` records it as the phase's start),
    read once, when the wait is first seen; else ``guess``. A sampler run late on a loaded machine
    first saw an 80 ms sleep 31 ms in and, guessing, reported 49 ms."""
    t0 = frame.f_locals.get("t0")
    return t0 if type(t0) is int and t0 <= now else guess
