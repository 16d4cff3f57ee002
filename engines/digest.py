"""Counters and picture layers kept where the events happen: O(1) per event, bounded output.

A server's process digests its own transitions with a :class:`ServerDigest`; the load
process digests what its clients saw with a
:class:`~syncviz.engines.digest_client.ClientDigest`. Each turns an unbounded stream (every
transition of every request) into what the counters and the picture need:

* gauges kept incrementally (in flight, per phase, busy workers, reading, outside);
* windowed figures (:mod:`~syncviz.engines.digest_client`): latency, loop lag, phase means, req/s;
* the picture at the viewer's zoom: per worker lane and column, how long it was held in
  each holding phase; per column, how many requests waited queued or ready; and the
  segments still open now (a lane held since t, requests queued since t).

:meth:`ServerDigest.take` / :meth:`~syncviz.engines.digest_client.ClientDigest.take` return
plain, JSON-ready records of what changed since the last take (coded and checked in
:mod:`~syncviz.engines.digest_record`): their size is bounded by the picture (lanes x columns),
not by req/s. The rows' requests (``rows``, their every transition) also get their bytes in
and out (``sizes``); the others' are dropped here. :class:`~syncviz.engines.stats.StreamStats` merges them back into
:class:`~syncviz.engines.stats.Counters`; the same classes run on raw batches in the
consumer's process where there is no server process (in-process mode, recordings, bench).
"""

from __future__ import annotations

import math
from collections import deque
from collections.abc import Iterable
from operator import add, sub
from typing import Any

from .digest_client import CountWindow, HdrWindow, percentiles
from .digest_record import DONE, FAILED, KEEP_COLS, NONE, NPHASES, QUEUED, READING, WAITQ, segment_codes
from .events import HANDED_OVER, Phase, Size, Transition
from .http import EXTERNAL_IDS_START

LIVE_PHASES = tuple(p for p in Phase if p not in (DONE, FAILED))
WAIT_QUEUED, WAIT_READY = 0, 1
ROW_RATE = 300  # requests per second per engine whose every transition is passed on (for rows)
ENDED_ROWS = 4096  # finished row requests remembered, whose size record may still come

# A followed request is a plain list, indexed by these (building one costs ~45 ns, a slotted
# object's __init__ ~220 ns; the engine process builds one per request): its current phase,
# lane, since when, its segment's code, whether it is a row's request (its transitions are
# passed on), the column of its QUEUED (the client's send time, None before) and from _TOT
# on its time in each phase. ServerDigest.feed builds it as a literal of NPHASES zeros.
_PHASE, _LANE, _SINCE, _CODE, _ROW, _SENT, _TOT = range(7)
_Req = list
FOLD_DONE = 4096  # done requests' phase times summed into the window's at most this late
assert NPHASES == 9, "ServerDigest.feed's request literal holds one total per phase"


class ServerDigest:
    """One engine's transitions and loop lag, digested (see the module docstring).

    ``has_loop``: lane 0 is a loop or hub, which a READY request does not hold.
    """

    def __init__(self, has_loop: bool, ns_per_col: int, window_s: float = 5.0) -> None:
        self.has_loop = has_loop
        self._codes = segment_codes(has_loop)
        self.window_ns = int(window_s * 1e9)
        self.inflight: dict[int, _Req] = {}
        self.by_phase = [0] * NPHASES
        self.outside = 0
        self.lag = HdrWindow(self.window_ns)
        self._done: deque[tuple[int, tuple[int, ...]]] = deque()  # (t_done, phase totals), window
        self._done_sum = [0] * NPHASES  # the phase totals of _done, but for _done_new's
        self._done_new: list[tuple[int, ...]] = []  # phase totals of the latest done requests, not summed yet
        self._handed: tuple[int, _Req] | None = None
        self._row_window = CountWindow(1_000_000_000)  # new requests a second
        self._arrivals = 0
        self._every = 0
        self.rows: list[tuple[int, int, int, int, int]] = []  # transitions passed on since the last take
        self.sizes: list[int] = []  # flat (rid, bytes_in, bytes_out) of row requests since the last take
        self._ended_rows: dict[int, None] = {}  # row requests finished lately (oldest first)
        self.last_t = 0
        self.set_zoom(ns_per_col)

    # -- the picture's accumulators ------------------------------------------------------
    def set_zoom(self, ns_per_col: int) -> None:
        """Start the picture afresh at another zoom (the counters keep going)."""
        self.ns = max(1, ns_per_col)
        self.hold: dict[int, dict[int, list[int]]] = {}  # lane -> col -> [run, blocked, ready, reading] ns
        self.wait: dict[int, list[int]] = {}  # col -> [queued, ready] request-ns
        self.dirty_hold: dict[int, set[int]] = {}  # lane -> columns changed since the last take
        self.dirty_wait: set[int] = set()
        self._trimmed = 0
        self.holders: dict[int, tuple[int, int, int]] = {}  # lane -> (rid, slot, since): held now
        self.open_wait: list[dict[int, int]] = [{}, {}]  # queued / ready now: since-col -> requests
        self.sent: dict[int, int] = {}  # send col -> requests with a QUEUED here and not finished
        for rid, r in self.inflight.items():  # what is open now stays on the picture
            self._open(rid, r)

    def _spread(self, t0: int, t1: int, lane: int, code: int) -> None:
        """Add [t0, t1) to the accumulators of ``lane`` (held, ``code`` a slot) or of the waits."""
        ns = self.ns
        c, last = t0 // ns, (t1 - 1) // ns
        floor = self.last_t // ns - KEEP_COLS
        if c < floor:
            if last < floor:
                return
            c, t0 = floor, floor * ns
        if code < WAITQ:
            cols = self.hold.get(lane)
            if cols is None:
                cols = self.hold[lane] = {}
            slot = code
            dirty = self.dirty_hold.get(lane)
            if dirty is None:
                dirty = self.dirty_hold[lane] = set()
        else:
            cols = self.wait
            slot = code - WAITQ
            dirty = self.dirty_wait
        width = 4 if code < WAITQ else 2
        while c <= last:
            acc = cols.get(c)
            if acc is None:
                acc = cols[c] = [0] * width
            acc[slot] += min(t1, (c + 1) * ns) - max(t0, c * ns)
            dirty.add(c)
            c += 1

    def holds(self, phase: int, lane: int) -> bool:
        """Whether ``phase`` on ``lane`` holds that worker (the same rule as :meth:`EngineStats.holds_worker`)."""
        return 0 <= self._code(phase, lane) < WAITQ

    def _code(self, phase: int, lane: int) -> int:
        no_lane, loop, on_lane = self._codes
        return no_lane[phase] if lane < 0 else loop[phase] if lane == 0 else on_lane[phase]

    def _open(self, rid: int, r: _Req) -> None:
        """Put ``r``'s current segment on the 'open now' layers (:meth:`feed` does the same inline)."""
        code = r[_CODE] = self._code(r[_PHASE], r[_LANE])
        if code < 0:
            return
        if code < WAITQ:
            self.holders[r[_LANE]] = (rid, code, r[_SINCE])
        else:
            layer = self.open_wait[code - WAITQ]
            col = r[_SINCE] // self.ns
            layer[col] = layer.get(col, 0) + 1

    def _close(self, rid: int, r: _Req, t: int) -> None:
        """End ``r``'s current segment at ``t``: into the accumulators, off the open layers
        (:meth:`feed` does the same inline)."""
        code, since = r[_CODE], r[_SINCE]
        if code >= 0:
            if code < WAITQ:
                held = self.holders.get(r[_LANE])
                if held is not None and held[0] == rid:
                    del self.holders[r[_LANE]]
            else:
                layer, col = self.open_wait[code - WAITQ], since // self.ns
                n = layer.get(col, 0) - 1
                if n > 0:
                    layer[col] = n
                else:
                    layer.pop(col, None)
            if t > since:
                self._spread(since, t, r[_LANE], code)
        if t > since:
            r[_TOT + r[_PHASE]] += t - since

    # -- feeding -------------------------------------------------------------------------
    def transition(self, t: int, rid: int, lane: int, phase: int) -> None:
        """Digest one transition (see :meth:`feed`)."""
        self.feed(((t, 0, rid, lane, phase),))

    def feed(self, transitions: Iterable[Transition]) -> None:
        """Digest transitions ``(t, engine, rid, lane, phase)`` in order (the hot path: every
        transition of every request, in the engine's process).

        Each closes its request's segment and opens the next. Everything common is inline here,
        with the state in locals, written back at the end (a request of three transitions, its
        take included: ~4.0 us through per-transition helpers, ~2.7 us here): beginning a
        request, its segment lying in one column, its end; the rest (a hand-over, a segment
        across columns, a QUEUED) goes through the helpers, which read ``self.last_t``, so it
        is written back before them.
        """
        inflight = self.inflight
        get = inflight.get
        by_phase, holders, open_wait = self.by_phase, self.holders, self.open_wait
        hold, dirty_hold, wait, dirty_wait = self.hold, self.dirty_hold, self.wait, self.dirty_wait
        rows, ended, done = self.rows, self._ended_rows, self._done
        done_new = self._done_new
        no_lane, on_loop, on_lane = self._codes
        rw_add, rw_rate = self._row_window.add, self._row_window.rate
        ns, last_t, outside = self.ns, self.last_t, self.outside
        arrivals, every = self._arrivals, self._every
        floor = last_t // ns - KEEP_COLS
        for t, _e, rid, lane, phase in transitions:
            if t > last_t:
                last_t = t
                floor = t // ns - KEEP_COLS
            r = get(rid)
            if r is None or lane == HANDED_OVER:
                if lane == HANDED_OVER:
                    self.outside = outside
                    self._hand_over(t, rid, phase)
                    outside = self.outside
                    continue
                # -- its first transition: follow it from here
                if phase in (DONE, FAILED):
                    continue  # began before we listened
                handed = self._handed
                if handed is not None:
                    self._handed = None
                    if phase == READING:  # the same bytes: keep their start and their row decision
                        r = handed[1]
                        r[_LANE] = lane
                        r[_PHASE], r[_SINCE] = phase, t
                if r is None:
                    rw_add(t)  # pass on every k-th new request, k chosen so ~ROW_RATE a second go
                    arrivals += 1
                    if arrivals % 64 == 0 or every == 0:
                        every = max(1, math.ceil(rw_rate(t) / ROW_RATE))
                    r = [phase, lane, t, NONE, arrivals % every == 0, None, 0, 0, 0, 0, 0, 0, 0, 0, 0]
                inflight[rid] = r
                by_phase[phase] += 1
                if rid >= EXTERNAL_IDS_START:
                    outside += 1
                if phase == QUEUED:
                    self._sent(r, t)
                code = r[_CODE] = no_lane[phase] if lane < 0 else on_loop[phase] if lane == 0 else on_lane[phase]
                if code >= 0:
                    if code < WAITQ:
                        holders[lane] = (rid, code, t)
                    else:
                        layer = open_wait[code - WAITQ]
                        col = t // ns
                        layer[col] = layer.get(col, 0) + 1
                if r[_ROW]:
                    rows.append((t, 0, rid, lane, phase))
                continue
            # -- close its segment
            rphase, rlane, since, code = r[0], r[1], r[2], r[3]  # _PHASE, _LANE, _SINCE, _CODE
            if t < since:
                t = since  # recorded out of order by a few microseconds: keep time moving forward
            if code >= 0:
                if code < WAITQ:
                    held = holders.get(rlane)
                    if held is not None and held[0] == rid:
                        del holders[rlane]
                else:
                    layer = open_wait[code - WAITQ]
                    col = since // ns
                    n = layer.get(col, 0) - 1
                    if n > 0:
                        layer[col] = n
                    else:
                        layer.pop(col, None)
                if t > since:
                    c = since // ns
                    if c == (t - 1) // ns and c >= floor:  # the common case: the segment lies in one column
                        if code < WAITQ:
                            cols = hold.get(rlane)
                            if cols is None:
                                cols = hold[rlane] = {}
                            acc = cols.get(c)
                            if acc is None:
                                acc = cols[c] = [0, 0, 0, 0]
                            acc[code] += t - since
                            dirty = dirty_hold.get(rlane)
                            if dirty is None:
                                dirty = dirty_hold[rlane] = set()
                            dirty.add(c)
                        else:
                            acc = wait.get(c)
                            if acc is None:
                                acc = wait[c] = [0, 0]
                            acc[code - WAITQ] += t - since
                            dirty_wait.add(c)
                    else:
                        self.last_t = last_t
                        self._spread(since, t, rlane, code)
            if t > since:
                r[_TOT + rphase] += t - since
            by_phase[rphase] -= 1
            if r[_ROW]:
                rows.append((t, 0, rid, lane, phase))
            if phase in (DONE, FAILED):  # -- its end: forget it
                del inflight[rid]
                if rid >= EXTERNAL_IDS_START:
                    outside -= 1
                if r[_ROW]:  # its size record comes after its end
                    ended[rid] = None
                    if len(ended) > ENDED_ROWS:
                        del ended[next(iter(ended))]
                if r[_SENT] is not None:
                    self._unsent(r[_SENT])
                if phase == DONE:  # its phase times join the window's means (ints only: never GC-tracked)
                    totals = tuple(r[_TOT:])
                    done.append((t, totals))
                    done_new.append(totals)
                continue
            # -- open the next one
            r[0], r[1], r[2] = phase, lane, t  # _PHASE, _LANE, _SINCE
            by_phase[phase] += 1
            if phase == QUEUED and r[_SENT] is None:
                self._sent(r, t)
            code = r[_CODE] = no_lane[phase] if lane < 0 else on_loop[phase] if lane == 0 else on_lane[phase]
            if code >= 0:
                if code < WAITQ:
                    holders[lane] = (rid, code, t)
                else:
                    layer = open_wait[code - WAITQ]
                    col = t // ns
                    layer[col] = layer.get(col, 0) + 1
        self.last_t, self.outside, self._arrivals, self._every = last_t, outside, arrivals, every
        if len(done_new) >= FOLD_DONE:
            self._fold_done()

    def _hand_over(self, t: int, rid: int, phase: int) -> None:
        """The provisional id's reading goes on under the request's own id (:data:`HANDED_OVER`)."""
        r = self.inflight.pop(rid, None)
        if r is not None:
            self._close(rid, r, r[_SINCE])  # off the open layers; nothing painted yet
            self.by_phase[r[_PHASE]] -= 1
            if rid >= EXTERNAL_IDS_START:
                self.outside -= 1
            if r[_ROW]:
                self.rows.append((t, 0, rid, HANDED_OVER, phase))
            self._handed = (rid, r)

    def _sent(self, r: _Req, t: int) -> None:
        r[_SENT] = col = t // self.ns
        self.sent[col] = self.sent.get(col, 0) + 1

    def _unsent(self, col: int) -> None:
        n = self.sent.get(col, 0) - 1
        if n > 0:
            self.sent[col] = n
        else:
            self.sent.pop(col, None)

    def _fold_done(self) -> None:
        """Sum the latest done requests' phase times into the window's (column by column, in C)."""
        new = self._done_new
        if new:
            self._done_sum = list(map(add, self._done_sum, map(sum, zip(*new, strict=True))))
            self._done_new = []

    def lag_sample(self, t: int, lag_ns: int) -> None:
        self.lag.record(t, lag_ns)

    def size(self, rid: int, bytes_in: int, bytes_out: int) -> None:
        """A finished request's bytes (-1: not known): passed on if it is one of the rows' requests."""
        self.feed_sizes(((0, 0, rid, bytes_in, bytes_out),))

    def feed_sizes(self, sizes: Iterable[Size]) -> None:
        """:meth:`size` for each record ``(t, engine, rid, bytes_in, bytes_out)``, in one loop."""
        get, ended, out = self.inflight.get, self._ended_rows, self.sizes
        for _t, _e, rid, bytes_in, bytes_out in sizes:
            r = get(rid)
            if (r[_ROW] if r is not None else rid in ended) and (bytes_in >= 0 or bytes_out >= 0):
                out += (rid, bytes_in, bytes_out)

    # -- reading -------------------------------------------------------------------------
    def busy(self) -> int:
        return len(self.holders)

    def counters(self, now: int) -> dict[str, Any]:
        self._fold_done()
        done, before = self._done, now - self.window_ns
        gone = []
        while done and done[0][0] < before:
            gone.append(done.popleft()[1])
        if gone:
            self._done_sum = list(map(sub, self._done_sum, map(sum, zip(*gone, strict=True))))
        acc = self._done_sum
        n = len(done)
        lag = percentiles(self.lag.merged(now))
        return {
            "in_flight": len(self.inflight),
            "by_phase": {Phase(p).name.lower(): self.by_phase[p] for p in LIVE_PHASES},
            "busy": self.busy(),
            "outside": self.outside,
            "lag_ms": [lag["p50"], lag["p99"], lag["max"]],
            "phase_ms": {
                Phase(p).name.lower(): (acc[p] / n / 1e6 if n else 0.0) for p in Phase if p not in (DONE, FAILED)
            },
            "sent": sum(self.sent.values()),
        }

    def take(self, now: int, with_counters: bool) -> dict[str, Any]:
        """What changed since the last take, JSON-ready (see :func:`picture_record`)."""
        ns = self.ns
        floor = now // ns - KEEP_COLS
        if now - self._trimmed > 1_000_000_000:  # forget what fell off the left edge, once a second
            self._trimmed = now
            for cols in self.hold.values():
                for c in [c for c in cols if c < floor]:
                    del cols[c]
            for c in [c for c in self.wait if c < floor]:
                del self.wait[c]
        out: dict[str, Any] = {
            "ns": ns,
            "now": now,
            "hold": [
                [lane, c, *cols[c]]
                for lane, dirty in self.dirty_hold.items()
                if (cols := self.hold.get(lane))
                for c in dirty
                if c in cols and c >= floor
            ],
            "wait": [[c, *self.wait[c]] for c in self.dirty_wait if c in self.wait and c >= floor],
            "held": [[lane, slot, since] for lane, (_rid, slot, since) in self.holders.items()],
            "open_q": [[c, n] for c, n in self.open_wait[WAIT_QUEUED].items()],
            "open_r": [[c, n] for c, n in self.open_wait[WAIT_READY].items()],
            "sent": [[c, n] for c, n in self.sent.items()],
            "rows": [x for tr in self.rows for x in (tr[0], tr[2], tr[3], tr[4])],
        }
        if self.sizes:
            out["sizes"] = self.sizes
            self.sizes = []
        self.dirty_hold.clear()
        self.dirty_wait.clear()
        self.rows = []
        if with_counters:
            out["counters"] = self.counters(now)
        return out
