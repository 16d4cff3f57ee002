"""One stall of a loop or hub, told apart call by call, and the records the watchdogs keep.

A :class:`~syncviz.engines.watchdog.LoopWatchdog` that finds its loop held samples its stack until
it runs again and hands each look to a :class:`_Stall`: the calls seen holding the loop (a blocked
call once seen for half the threshold and held for the threshold), the loop's own work between
them (:data:`BUSY`), and, for a call that neither computed nor waited in it, what it waited for
instead: the GIL (:data:`GIL_WAIT`) or a CPU (:data:`CPU_WAIT`), told by
:func:`~syncviz.engines.cpuclock.what_held`. :class:`_Found` keeps what was found for the watchdog's
``take``.
"""

from __future__ import annotations

import operator
from collections import deque
from collections.abc import Callable
from types import FrameType

from .callsite import ARROW, held_call, safe_describe
from .cpuclock import what_held

BUSY = "no single call held it"
"""The ``where`` of a loop's own work (:class:`_Stall`): held that long, and no one call was seen
holding it (a saturated loop running many short callbacks, or a thread the OS did not run)."""
GIL_WAIT = "a wait for the GIL"
"""Put before the call a loop thread returned from and then waited to take the GIL back in, while
other threads of its process computed (:func:`~syncviz.engines.cpuclock.waiting_for_gil`)."""
CPU_WAIT = "a wait for a CPU"
"""Put before the call a loop thread was in while it was runnable and not run: the OS ran other
processes on its CPU (:func:`~syncviz.engines.cpuclock.what_held`)."""
WAITS = {"cpu": CPU_WAIT, "gil": GIL_WAIT}
Clocks = tuple[int | None, int] | tuple[int | None, int, int | None]
"""The loop thread's CPU clock (``None``: not known), its process's, and (when known) its run delay."""
MAX_KEPT = 64  # finished records kept between two takes (the oldest go first)
MAX_TAKE = 8  # records per take from a pool (the latest per thread, newest first kept)

Found = tuple[int, int, int, bool, str]
"""``(t_start_ns, duration_ns, lane, ongoing, where)``."""


class _Found:
    """Calls found so far: finished ones (bounded) and those still holding their thread.

    The watchdog thread writes, the draining thread takes; every step is one GIL-atomic
    operation, and a call leaves ``ongoing`` before it enters ``done``.
    """

    def __init__(self, latest_per_lane: bool) -> None:
        self.done: deque[Found] = deque(maxlen=MAX_KEPT)
        self.ongoing: dict[int, tuple[int, str, int]] = {}  # lane -> (t_start_ns, where, last seen holding)
        self.latest_per_lane = latest_per_lane

    def finish(self, lane: int, start: int, end: int, where: str | None, threshold: int) -> None:
        self.ongoing.pop(lane, None)
        if where is not None and end - start >= threshold:
            self.done.append((start, end - start, lane, False, where))

    def take(self, now: int) -> list[Found]:
        done = self.done
        out = [done.popleft() for _ in range(len(done))]
        # An ongoing call's duration so far is up to the last look that saw it: what is known.
        ongoing = list(self.ongoing.items())
        out += [(t, max(0, min(seen, now) - t), lane, True, where) for lane, (t, where, seen) in ongoing]
        if self.latest_per_lane and out:
            latest: dict[int, Found] = {}
            for rec in out:  # ongoing ones come last: they win over a finished one of the same start
                prev = latest.get(rec[2])
                if prev is None or rec[0] >= prev[0]:
                    latest[rec[2]] = rec
            out = sorted(latest.values())[-MAX_TAKE:]
        return out


class _Stall:
    """One stall of a loop, told apart: the calls seen holding it, and the loop's own work.

    A call is a blocked call (a record naming it) once the samples have seen it holding the loop
    for ``min_seen`` and its estimated duration reaches the threshold. The rest of the stall
    (the loop's own frames, and calls seen too briefly: many short callbacks of a saturated loop,
    the first of which would otherwise take the blame for the whole wait since the ticker's last
    run) is the loop's own work: one :data:`BUSY` record per stretch of at least the threshold.
    """

    def __init__(
        self,
        found: _Found,
        lane: int,
        start: int,
        threshold: int,
        min_seen: int,
        sleeping_on: Callable[[], str | None] | None = None,
    ) -> None:
        """``sleeping_on``: where the loop thread sleeps now (:func:`~.cpuclock.sleeping_on`)."""
        self.found, self.lane, self.threshold, self.min_seen = found, lane, threshold, min_seen
        self.sleeping_on = sleeping_on
        self.busy_from = start  # when the current stretch of the loop's own work began
        self.last = start  # the latest sample (or the stall's start)
        self.sampled = False
        self.key: tuple[FrameType, ...] | None = None  # the call seen now (callsite.holding_call)
        self.start = start  # ... when it began (an estimate), first seen, named once a blocked call
        self.first = 0
        self.cpu_first: Clocks | None = None  # the loop thread's and process's CPU (and its run delay) at ``first``
        self.where: str | None = None

    def seen(
        self,
        now: int,
        key: tuple[FrameType, ...] | None,
        top: FrameType,
        resumed: bool,
        cpu: Clocks | None = None,
    ) -> None:
        """A sample at ``now``: the call holding the loop (``None``: its own work), its stack, and the
        clocks (:data:`Clocks`): the loop thread's CPU (``None``: not known), the process's, its run delay."""
        prev = self.key
        same = prev is not None and key is not None and not resumed and _same_call(prev, key)
        if prev is not None and not same:
            self._close((self.last + now) // 2)  # another call holds it now: this one ended between two looks
            prev = None
        if key is not None and prev is None:
            self.key, self.first, self.cpu_first = key, now, cpu
            self.start = (self.last + now) // 2 if self.sampled else self.last  # the first: since the loop was free
        self.last, self.sampled = now, True
        held = self.key is not None and now - self.first >= self.min_seen and now - self.start >= self.threshold
        if held and self.where is None:  # a blocked call: the own work before it is one stretch
            inner = top if key is None or len(key) == len(self.key) else self.key[0]  # not a call it makes
            kind = self._what_held(cpu, now, top)
            self.where = safe_describe(inner, computing=kind == "computing")
            if kind in WAITS:
                self.where = WAITS[kind] + ARROW + self.where
            self._busy(self.start)
        ongoing = self.found.ongoing
        busy = (now if self.key is None else self.start) - self.busy_from  # not a call's that may yet be blocked
        if self.where is not None:
            ongoing[self.lane] = (self.start, self.where, now)
        elif busy >= self.threshold:
            ongoing[self.lane] = (self.busy_from, BUSY, now)

    def _what_held(self, cpu: Clocks | None, now: int, top: FrameType) -> str:
        """:func:`~syncviz.engines.cpuclock.what_held` the call first seen at ``self.first``, from the
        clocks then and now (``"call"`` when the thread's clock is not known)."""
        first = self.cpu_first
        if cpu is None or first is None or cpu[0] is None or first[0] is None:
            return "call"
        delay = None
        if len(cpu) > 2 and len(first) > 2 and cpu[2] is not None and first[2] is not None:  # type: ignore[misc]
            delay = cpu[2] - first[2]  # type: ignore[misc]
        where = self.sleeping_on or _unknown
        return what_held(cpu[0] - first[0], cpu[1] - first[1], delay, now - self.first, where, lambda: _call(top))

    def end(self, end: int) -> None:
        """The ticker ran again at ``end``: the loop is free."""
        self._close(end)
        self._busy(end)
        self.found.ongoing.pop(self.lane, None)

    def _close(self, end: int) -> None:
        if self.where is not None:
            self.found.finish(self.lane, self.start, end, self.where, self.threshold)
            self.busy_from = end
        self.key = self.where = None  # a call seen too briefly: its time is the loop's own work

    def _busy(self, end: int) -> None:
        self.found.finish(self.lane, self.busy_from, end, BUSY, self.threshold)
        self.busy_from = end


def _unknown() -> None:
    """Where a thread sleeps, where it cannot be read."""


def _call(top: FrameType) -> str | None:
    """The function the innermost frame is calling, named (``None``: not known)."""
    try:
        return held_call(top)
    except Exception:
        return None


def _same_call(current: tuple[FrameType, ...], seen: tuple[FrameType, ...]) -> bool:
    """Whether a sample's frames ``seen`` are still the call ``current``: the same frames (``is``
    for ``is``), or more of them inside it. A call held long calls into the project now and then
    (a CPU loop records a GIL gap through ``Work.emit_at``): a sample taken there is the same call
    one frame deeper, not a new one (a 570 ms burn was reported as two). Fewer frames are not: the
    call returned, and its caller goes on (a burn, then the response's write)."""
    if len(seen) < len(current):
        return False
    return all(map(operator.is_, current, seen[len(seen) - len(current) :]))
