"""Counters and picture layers kept where the events happen: O(1) per event, bounded output.

An engine's digest process (:mod:`~syncviz.engines.digester`) digests the engine's transitions
with a :class:`ServerDigest` (or the engine's own process, where none can start); the load
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
from itertools import islice
from operator import add, sub
from typing import Any

from .digest_client import CountWindow, HdrWindow, percentiles
from .digest_picture import _LANE, _PHASE, _ROW, _SENT, _SINCE, _TOT, DigestPicture, _bucket_span, _Req
from .digest_record import DONE, FAILED, KEEP_COLS, NONE, NPHASES, QUEUED, READING, WAITQ, segment_codes
from .events import HANDED_OVER, Phase, Size, Transition
from .request import EXTERNAL_IDS_START

LIVE_PHASES = tuple(p for p in Phase if p not in (DONE, FAILED))
_TERMINAL = frozenset((DONE, FAILED))  # plain ints
WAIT_QUEUED, WAIT_READY = 0, 1
ROW_RATE = 300  # requests per second per engine whose every transition is passed on (for rows)
ENDED_ROWS = 4096  # finished row requests remembered, whose size record may still come

FOLD_DONE = 4096  # done requests' phase times summed into the window's at most this late
assert NPHASES == 9, "ServerDigest.feed's request literal holds one total per phase"


class ServerDigest(DigestPicture):
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
        self._done: deque[tuple[int, int, list[int]]] = deque()  # per fold: (t, requests, phase totals), window
        self._done_sum = [0] * NPHASES  # the phase totals of _done
        self._done_n = 0  # the requests of _done
        self._done_new: list[list] = []  # the latest done requests (their records), not folded yet
        self._handed: tuple[int, _Req] | None = None
        self._row_window = CountWindow(1_000_000_000)  # new requests a second
        self._arrivals = 0
        self._every = 0
        self.rows: list[tuple[int, int, int, int, int]] = []  # transitions passed on since the last take
        self.sizes: list[int] = []  # flat (rid, bytes_in, bytes_out) of row requests since the last take
        self._ended_rows: dict[int, None] = {}  # row requests finished lately (oldest first)
        self.last_t = 0
        self.set_zoom(ns_per_col)

    # -- feeding -------------------------------------------------------------------------
    def transition(self, t: int, rid: int, lane: int, phase: int) -> None:
        """Digest one transition (see :meth:`feed`)."""
        self.feed(((t, 0, rid, lane, phase),))

    def feed(self, transitions: Iterable[Transition]) -> None:
        """Digest transitions ``(t, engine, rid, lane, phase)`` in order (the hot path: every
        transition of every request, in the engine's digest process).

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
        rows, ended, done_new = self.rows, self._ended_rows, self._done_new
        no_lane, on_loop, on_lane = self._codes
        rw_add, rw_rate, rw_newest = self._row_window.add, self._row_window.rate, self._row_window.newest
        rw_bucket, rw_lo, rw_hi = _bucket_span(rw_newest())  # new requests in [rw_lo, rw_hi) go in rw_bucket
        ns, last_t, outside = self.ns, self.last_t, self.outside
        arrivals, every = self._arrivals, self._every
        floor = last_t // ns - KEEP_COLS
        floor_end = (floor + KEEP_COLS + 1) * ns  # floor moves on when last_t reaches this (no division till then)
        # The accumulators last added to (a lane's column, a waits' column), valid for this call: take
        # and set_zoom, which drop or replace them, run between calls; columns already marked dirty.
        h_lane, h_col, h_acc, w_col, w_acc = -1, -1, [], -1, []
        done_, terminal, queued, waitq, handed_over = DONE, _TERMINAL, QUEUED, WAITQ, HANDED_OVER
        tot, external = _TOT, EXTERNAL_IDS_START
        for t, _e, rid, lane, phase in transitions:
            if t > last_t:
                last_t = t
                if t >= floor_end:
                    floor = t // ns - KEEP_COLS
                    floor_end = (floor + KEEP_COLS + 1) * ns
            r = get(rid)
            if r is None or lane == handed_over:
                if lane == handed_over:
                    self.outside = outside
                    self._hand_over(t, rid, phase)
                    outside = self.outside
                    continue
                # -- its first transition: follow it from here
                if phase in terminal:
                    continue  # began before we listened
                handed = self._handed
                if handed is not None:
                    self._handed = None
                    if phase == READING:  # the same bytes: keep their start and their row decision
                        r = handed[1]
                        r[_LANE] = lane
                        r[_PHASE], r[_SINCE] = phase, t
                if r is None:
                    if rw_lo <= t < rw_hi:  # pass on every k-th new request, k chosen so ~ROW_RATE a second go
                        rw_bucket[1] += 1  # rw_add(t) without the call: t is in its newest bucket
                    else:
                        rw_add(t)
                        rw_bucket, rw_lo, rw_hi = _bucket_span(rw_newest())
                    arrivals += 1
                    if arrivals % 64 == 0 or every == 0:
                        every = max(1, math.ceil(rw_rate(t) / ROW_RATE))
                    r = [phase, lane, t, NONE, arrivals % every == 0, None, 0, 0, 0, 0, 0, 0, 0, 0, 0]
                inflight[rid] = r
                if rid >= external:
                    outside += 1
                if r[_ROW]:
                    rows.append((t, 0, rid, lane, phase))
            else:
                # -- close its segment
                rphase, rlane, since, code = r[0], r[1], r[2], r[3]  # _PHASE, _LANE, _SINCE, _CODE
                if t < since:
                    t = since  # recorded out of order by a few microseconds: keep time moving forward
                if code >= 0:
                    if code < waitq:
                        held = holders.get(rlane)
                        if held is not None and held[0] == rid:
                            del holders[rlane]
                    else:
                        layer = open_wait[code - waitq]
                        col = since // ns
                        n = layer.get(col, 0) - 1
                        if n > 0:
                            layer[col] = n
                        else:
                            layer.pop(col, None)
                    if t > since:
                        c = since // ns
                        if c == (t - 1) // ns and c >= floor:  # the common case: the segment lies in one column
                            if code < waitq:
                                if c == h_col and rlane == h_lane:  # the same lane and column as last time
                                    h_acc[code] += t - since
                                else:
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
                                    h_lane, h_col, h_acc = rlane, c, acc
                            elif c == w_col:
                                w_acc[code - waitq] += t - since
                            else:
                                acc = wait.get(c)
                                if acc is None:
                                    acc = wait[c] = [0, 0]
                                acc[code - waitq] += t - since
                                dirty_wait.add(c)
                                w_col, w_acc = c, acc
                        else:
                            self.last_t = last_t
                            self._spread(since, t, rlane, code)
                if t > since:
                    r[tot + rphase] += t - since
                by_phase[rphase] -= 1
                if r[_ROW]:
                    rows.append((t, 0, rid, lane, phase))
                if phase in terminal:  # -- its end: forget it
                    del inflight[rid]
                    if rid >= external:
                        outside -= 1
                    if r[_ROW]:  # its size record comes after its end
                        ended[rid] = None
                        if len(ended) > ENDED_ROWS:
                            del ended[next(iter(ended))]
                    if r[_SENT] is not None:
                        self._unsent(r[_SENT])
                    if phase == done_:  # its phase times join the window's means at the next fold
                        done_new.append(r)
                    continue
            # -- open its next segment (or its first)
            code = no_lane[phase] if lane < 0 else on_loop[phase] if lane == 0 else on_lane[phase]
            r[0], r[1], r[2], r[3] = phase, lane, t, code  # _PHASE, _LANE, _SINCE, _CODE
            by_phase[phase] += 1
            if phase == queued and r[5] is None:  # _SENT
                self._sent(r, t)
            if code >= 0:
                if code < waitq:
                    holders[lane] = (rid, code, t)
                else:
                    layer = open_wait[code - waitq]
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

    def _fold_done(self) -> None:
        """Sum the latest done requests' phase times into one part of the window (column by column, in
        C), dated by the latest transition seen. Folds come with every take of the counters (each
        :data:`~syncviz.engines.stats.COUNTERS_EVERY_NS`) and every :data:`FOLD_DONE` requests: the
        window's means are of the requests done in its length, give or take one such part at its
        old end (a request at a time, this window took ~0.3 us of the digest's ~3.6 a request at zero
        latency, offline)."""
        new = self._done_new
        if new:
            sums = [sum(column) for column in islice(zip(*new, strict=True), _TOT, None)]
            self._done.append((self.last_t, len(new), sums))
            self._done_sum = list(map(add, self._done_sum, sums))
            self._done_n += len(new)
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
        while done and done[0][0] < before:
            _t, gone, sums = done.popleft()
            self._done_sum = list(map(sub, self._done_sum, sums))
            self._done_n -= gone
        acc = self._done_sum
        n = self._done_n
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
        """What changed since the last take, JSON-ready (see :func:`picture_record`): the picture's
        layers (:meth:`~syncviz.engines.digest_picture.DigestPicture.take_layers`), the rows'
        transitions and bytes, and the counters when ``with_counters``."""
        out = self.take_layers(now)
        out["rows"] = [x for tr in self.rows for x in (tr[0], tr[2], tr[3], tr[4])]
        if self.sizes:
            out["sizes"] = self.sizes
            self.sizes = []
        self.rows = []
        if with_counters:
            out["counters"] = self.counters(now)
        return out
