"""What held an engine's loop or workers: the watchdogs' records, kept, and the one to show.

The watchdogs (:mod:`~syncviz.engines.watchdog`) report each call that held a loop, hub or pool
thread past their threshold as a record of ``batch.blocks``, ``(t_start_ns, duration_ns, lane,
ongoing, where)``; an ongoing one comes again, longer, at every look. Here each becomes a
:class:`BlockedCall`, and :class:`BlockedCalls` (one engine's, the base of
:class:`~syncviz.engines.stats.EngineStats`) keeps them: the finished ones (the detail panel looks
back over :data:`BLOCKS_KEPT` of them), the latest per lane, the latest of all.

A held loop is not always a blocked one: a saturated loop is late because each iteration runs many
short callbacks. The watchdog reports that as the loop's own work (``where`` is
:data:`~syncviz.engines.stall.BUSY`, :attr:`BlockedCall.busy`), kept apart and never counted as
a blocked call: the panel reads ``loop busy 31 ms, no single call held it`` only when no blocked
call is news (:meth:`BlockedCalls.shown_block`), and ``loop blocked 42 ms so far in time.sleep ←
...`` when one is.
"""

from __future__ import annotations

import sys
from collections import deque
from typing import NamedTuple

from .stall import BUSY

BLOCKS_KEPT = 1024  # finished blocked calls kept per engine (the watchdogs'; the detail panel looks back)
BLOCK_RECENT_NS = 5_000_000_000  # a blocked call is news this long after it ended
BLOCK_ONGOING_NS = 250_000_000  # an ongoing one replaces the last finished one once this long and longer


class BlockedCall(NamedTuple):
    """A call that held a loop, hub or worker past the watchdog's threshold (:mod:`~syncviz.engines.watchdog`),
    or a loop's own work that held it that long with no single call holding it (:attr:`busy`)."""

    t_start_ns: int
    duration_ns: int  # so far, while ``ongoing``
    lane: int
    where: str  # "time.sleep ← BlockingWork._sleep (engines/work.py:136) ← ..."
    ongoing: bool

    @property
    def end_ns(self) -> int:
        return self.t_start_ns + self.duration_ns

    @property
    def busy(self) -> bool:
        """The loop's own work (a saturated loop's long iterations), not a blocked call."""
        return self.where == BUSY


class BlockedCalls:
    """One engine's blocked calls, as its watchdogs reported them, and its loop's own work apart."""

    def __init__(self, has_loop: bool) -> None:
        self.has_loop = has_loop  # one loop or hub thread (lane 0) runs every request
        self.blocks: deque[BlockedCall] = deque(maxlen=BLOCKS_KEPT)  # finished, newest last
        self.blocked_lanes: dict[int, BlockedCall] = {}  # the latest per lane (finished or ongoing)
        self.blocked: BlockedCall | None = None  # the latest of all (the newest start)
        self.busy: BlockedCall | None = None  # the loop's latest stretch of its own work (no blocked call)
        self.busy_done: BlockedCall | None = None  # ... the latest finished one

    def take_block(self, t: int, duration: int, lane: int, ongoing: bool, where: str) -> None:
        """A call that held a worker (a record of ``batch.blocks``); an ongoing one comes again, longer.

        A loop's own work (:attr:`BlockedCall.busy`) is kept apart: it is no blocked call, and counts as none.
        """
        rec = BlockedCall(t, duration, lane, sys.intern(where), ongoing)  # the same few call sites, kept once
        if rec.busy:
            if self.busy is None or t >= self.busy.t_start_ns:
                self.busy = rec
            if not ongoing:
                self.busy_done = rec
            return
        prev = self.blocked_lanes.get(lane)
        if prev is None or t >= prev.t_start_ns:
            self.blocked_lanes[lane] = rec
        if not ongoing:
            self.blocks.append(rec)
        latest = self.blocked
        if latest is None or t > latest.t_start_ns or (t == latest.t_start_ns and lane == latest.lane):
            self.blocked = rec

    def shown_block(self, now: int) -> BlockedCall | None:
        """The blocked call to show at ``now``: none once :data:`BLOCK_RECENT_NS` have passed since it ended.

        A loop engine's last finished call, unless a call has been holding it for longer than that
        one took and :data:`BLOCK_ONGOING_NS` (a stall as it happens); a pool's latest of any lane.
        With no blocked call to show, a loop's own work that held it (:attr:`BlockedCall.busy`), the same way.
        """
        shown = _shown(self.blocked, self.blocks[-1] if self.blocks else None, now, self.has_loop)
        return shown if shown is not None else _shown(self.busy, self.busy_done, now, True)


def _shown(latest: BlockedCall | None, done: BlockedCall | None, now: int, loop: bool) -> BlockedCall | None:
    """:meth:`BlockedCalls.shown_block` of one kind: the ``latest`` record (maybe ongoing), or the last ``done``."""
    if latest is None or now - latest.end_ns > BLOCK_RECENT_NS:
        return None
    if not loop or not latest.ongoing:
        return latest
    if done is None or now - done.end_ns > BLOCK_RECENT_NS:
        return latest
    return latest if latest.duration_ns > max(done.duration_ns, BLOCK_ONGOING_NS) else done
