"""Counters and picture layers kept where the events happen: O(1) per event, bounded output.

A server's process digests its own transitions with a :class:`ServerDigest`; the load
process digests what its clients saw with a :class:`ClientDigest`. Each turns an unbounded
stream (every transition of every request) into what the counters and the picture need:

* gauges kept incrementally (in flight, per phase, busy workers, reading, outside);
* windowed figures: latency and loop lag in HDR histograms (``hdrhistogram``, as wrk2 and
  most latency tools), phase means and req/s in time buckets;
* the picture at the viewer's zoom: per worker lane and column, how long it was held in
  each holding phase; per column, how many requests waited queued or ready; and the
  segments still open now (a lane held since t, requests queued since t).

:meth:`ServerDigest.take` / :meth:`ClientDigest.take` return plain, JSON-ready records of
what changed since the last take: their size is bounded by the picture (lanes x columns),
not by req/s. The rows' requests (``rows``, their every transition) also get their bytes in
and out (``sizes``); the others' are dropped here. :class:`~syncviz.engines.stats.StreamStats` merges them back into
:class:`~syncviz.engines.stats.Counters`; the same classes run on raw batches in the
consumer's process where there is no server process (in-process mode, recordings, bench).
"""

from __future__ import annotations

import math
from collections import deque
from operator import add, sub
from typing import Any

from hdrh.histogram import HdrHistogram

from .events import HANDED_OVER, Phase
from .http import EXTERNAL_IDS_START

# plain ints: comparing and hashing IntEnum members costs more on this hot path
READING, QUEUED, READY, DONE, FAILED = (
    int(p) for p in (Phase.READING, Phase.QUEUED, Phase.READY, Phase.DONE, Phase.FAILED)
)
NPHASES = len(Phase)
LIVE_PHASES = tuple(p for p in Phase if p not in (DONE, FAILED))
SLOT = {int(Phase.RUNNING): 0, int(Phase.BLOCKED): 1, int(Phase.READY): 2, int(Phase.READING): 3}
"""A worker lane's per-column slots: how long it was held running, blocked, ready (GIL) and reading."""
WAIT_QUEUED, WAIT_READY = 0, 1
KEEP_COLS = 1200  # columns of the picture kept left of now (wider than any terminal)
BUCKET_NS = 100_000_000  # windowed figures move in steps of 0.1 s
HDR_LOW, HDR_HIGH, HDR_DIGITS = 1_000, 3_600_000_000_000, 2  # 1 us .. 1 h; 2 digits: within 1%
ROW_RATE = 300  # requests per second per engine whose every transition is passed on (for rows)
ENDED_ROWS = 4096  # finished row requests remembered, whose size record may still come


def _hist() -> HdrHistogram:
    return HdrHistogram(HDR_LOW, HDR_HIGH, HDR_DIGITS)


class HdrWindow:
    """Values in HDR histograms per 0.1 s bucket, merged over the last ``window_ns`` on demand."""

    def __init__(self, window_ns: int) -> None:
        self.window_ns = window_ns
        self._buckets: deque[tuple[int, HdrHistogram]] = deque()

    def record(self, t: int, value: int) -> None:
        key = t // BUCKET_NS
        b = self._buckets
        if not b or b[-1][0] < key:
            b.append((key, _hist()))
            while b and b[0][0] <= key - self.window_ns // BUCKET_NS - 1:
                b.popleft()
        b[-1][1].record_value(max(HDR_LOW, min(HDR_HIGH, value)))

    def merged(self, now: int) -> HdrHistogram | None:
        low = (now - self.window_ns) // BUCKET_NS
        out = None
        for key, h in self._buckets:
            if key >= low and h.get_total_count():
                if out is None:
                    out = _hist()
                out.add(h)
        return out


class CountWindow:
    """Counts per 0.1 s bucket (req/s over a window, O(1) per event)."""

    def __init__(self, window_ns: int) -> None:
        self.window_ns = window_ns
        self._buckets: deque[list[int]] = deque()  # [key, count]

    def add(self, t: int, n: int = 1) -> None:
        key = t // BUCKET_NS
        b = self._buckets
        if b and b[-1][0] == key:
            b[-1][1] += n
        elif not b or b[-1][0] < key:
            b.append([key, n])
            while b and b[0][0] <= key - self.window_ns // BUCKET_NS - 1:
                b.popleft()
        else:  # late: count it in the newest bucket
            b[-1][1] += n

    def rate(self, now: int) -> float:
        start = now - self.window_ns
        low = start // BUCKET_NS
        part = 1.0 - (start - low * BUCKET_NS) / BUCKET_NS  # the share of the oldest bucket inside the window
        total = 0.0
        for key, n in self._buckets:
            if key > low:
                total += n
            elif key == low:
                total += n * part
        return total / (self.window_ns / 1e9)


def percentiles(h: HdrHistogram | None) -> dict[str, float | None]:
    """p50, p95, p99 and max in ms (``None`` without samples)."""
    if h is None or not h.get_total_count():
        return {"p50": None, "p95": None, "p99": None, "max": None, "n": 0}
    at = h.get_percentile_to_value_dict([50, 95, 99])  # one pass over the counts for all three
    return {
        "p50": at[50] / 1e6,
        "p95": at[95] / 1e6,
        "p99": at[99] / 1e6,
        "max": h.get_max_value() / 1e6,
        "n": h.get_total_count(),
    }


class _Req:
    """One request the server digest follows: its current phase, lane, since when, and its segment's code."""

    __slots__ = ("code", "lane", "phase", "row", "sent_col", "since", "totals")

    def __init__(self, phase: int, lane: int, since: int, row: bool) -> None:
        self.phase = phase
        self.lane = lane
        self.since = since
        self.code = NONE
        self.row = row  # its transitions are passed on (it may get a row on screen)
        self.sent_col: int | None = None  # the column of its QUEUED (the client's send time)
        self.totals = [0] * NPHASES


NONE, WAITQ, WAITR = -1, 4, 5
"""Segment codes: 0-3 a lane held in that slot, WAITQ / WAITR waiting queued / ready, NONE neither."""


def segment_codes(has_loop: bool) -> tuple[tuple[int, ...], tuple[int, ...], tuple[int, ...]]:
    """Codes per phase for lane < 0, lane 0 and lane > 0: the one rule of who holds a worker.

    A pool or offload thread stays its request's while it waits for the GIL (READY); the loop
    or hub (lane 0 of asyncio and gevent) is free for others while a request is READY.
    """
    no_lane = tuple(WAITQ if p == QUEUED else WAITR if p == READY else NONE for p in Phase)
    on_lane = tuple(SLOT.get(p, NONE) if p != QUEUED else WAITQ for p in Phase)
    loop = tuple(WAITR if (p == READY and has_loop) else c for p, c in zip(Phase, on_lane, strict=True))
    return no_lane, loop, on_lane


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
        self._done_sum = [0] * NPHASES
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
        if c == last:  # the common case: the segment lies in one column
            acc = cols.get(c)
            if acc is None:
                acc = cols[c] = [0] * width
            acc[slot] += t1 - t0
            dirty.add(c)
            return
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
        """Put ``r``'s current segment on the 'open now' layers."""
        code = r.code = self._code(r.phase, r.lane)
        if code < 0:
            return
        if code < WAITQ:
            self.holders[r.lane] = (rid, code, r.since)
        else:
            layer = self.open_wait[code - WAITQ]
            col = r.since // self.ns
            layer[col] = layer.get(col, 0) + 1

    def _close(self, rid: int, r: _Req, t: int) -> None:
        """End ``r``'s current segment at ``t``: into the accumulators, off the open layers."""
        code, since = r.code, r.since
        if code >= 0:
            if code < WAITQ:
                held = self.holders.get(r.lane)
                if held is not None and held[0] == rid:
                    del self.holders[r.lane]
            else:
                layer, col = self.open_wait[code - WAITQ], since // self.ns
                n = layer.get(col, 0) - 1
                if n > 0:
                    layer[col] = n
                else:
                    layer.pop(col, None)
            if t > since:
                self._spread(since, t, r.lane, code)
        if t > since:
            r.totals[r.phase] += t - since

    # -- feeding -------------------------------------------------------------------------
    def transition(self, t: int, rid: int, lane: int, phase: int) -> None:
        """Digest one transition (the hot path: every transition of every request, in the engine's process).

        A request already followed closes its segment and opens the next inline (the common case,
        a segment inside one column, never leaves this method); the rest goes through the helpers.
        """
        if t > self.last_t:
            self.last_t = t
        if lane == HANDED_OVER:
            self._hand_over(t, rid, phase)
            return
        r = self.inflight.get(rid)
        if r is None:
            self._begin(t, rid, lane, phase)
            return
        since = r.since
        if t < since:
            t = since  # recorded out of order by a few microseconds: keep time moving forward
        self._close(rid, r, t)
        by_phase = self.by_phase
        by_phase[r.phase] -= 1
        if r.row:
            self.rows.append((t, 0, rid, lane, phase))
        if phase in (DONE, FAILED):
            self._end(t, rid, r, phase)
            return
        r.phase, r.lane, r.since = phase, lane, t
        by_phase[phase] += 1
        if phase == QUEUED and r.sent_col is None:
            self._sent(r, t)
        self._open(rid, r)

    def _hand_over(self, t: int, rid: int, phase: int) -> None:
        """The provisional id's reading goes on under the request's own id (:data:`HANDED_OVER`)."""
        r = self.inflight.pop(rid, None)
        if r is not None:
            self._close(rid, r, r.since)  # off the open layers; nothing painted yet
            self.by_phase[r.phase] -= 1
            if rid >= EXTERNAL_IDS_START:
                self.outside -= 1
            if r.row:
                self.rows.append((t, 0, rid, HANDED_OVER, phase))
            self._handed = (rid, r)

    def _begin(self, t: int, rid: int, lane: int, phase: int) -> None:
        """A request's first transition: follow it from here."""
        if phase in (DONE, FAILED):
            return  # began before we listened
        handed, self._handed = self._handed, None
        if handed is not None and phase == READING:
            r = handed[1]  # the same bytes: keep their start and their row decision
            r.lane = lane
        else:
            r = _Req(phase, lane, t, self._row_wanted(t))
        r.phase, r.since = phase, t
        self.inflight[rid] = r
        self.by_phase[phase] += 1
        if rid >= EXTERNAL_IDS_START:
            self.outside += 1
        if phase == QUEUED:
            self._sent(r, t)
        self._open(rid, r)
        if r.row:
            self.rows.append((t, 0, rid, lane, phase))

    def _end(self, t: int, rid: int, r: _Req, phase: int) -> None:
        """A request ended (DONE or FAILED): forget it; a done one's phase times join the window's means."""
        del self.inflight[rid]
        if rid >= EXTERNAL_IDS_START:
            self.outside -= 1
        if r.row:  # its size record comes after its end
            ended = self._ended_rows
            ended[rid] = None
            if len(ended) > ENDED_ROWS:
                del ended[next(iter(ended))]
        if r.sent_col is not None:
            self._unsent(r.sent_col)
        if phase == DONE:
            self._done.append((t, tuple(r.totals)))  # ints only: the collector stops tracking it
            self._done_sum = list(map(add, self._done_sum, r.totals))

    def _sent(self, r: _Req, t: int) -> None:
        r.sent_col = col = t // self.ns
        self.sent[col] = self.sent.get(col, 0) + 1

    def _unsent(self, col: int) -> None:
        n = self.sent.get(col, 0) - 1
        if n > 0:
            self.sent[col] = n
        else:
            self.sent.pop(col, None)

    def _row_wanted(self, t: int) -> bool:
        """Pass on every k-th new request, k chosen so ~ROW_RATE a second go (enough for every row)."""
        rw = self._row_window
        rw.add(t)
        self._arrivals += 1
        every = (
            max(1, math.ceil(rw.rate(t) / ROW_RATE)) if self._arrivals % 64 == 0 or self._every == 0 else self._every
        )
        self._every = every
        return self._arrivals % every == 0

    def lag_sample(self, t: int, lag_ns: int) -> None:
        self.lag.record(t, lag_ns)

    def size(self, rid: int, bytes_in: int, bytes_out: int) -> None:
        """A finished request's bytes (-1: not known): passed on if it is one of the rows' requests."""
        r = self.inflight.get(rid)
        if (r.row if r is not None else rid in self._ended_rows) and (bytes_in >= 0 or bytes_out >= 0):
            self.sizes += (rid, bytes_in, bytes_out)

    # -- reading -------------------------------------------------------------------------
    def busy(self) -> int:
        return len(self.holders)

    def counters(self, now: int) -> dict[str, Any]:
        done, acc, before = self._done, self._done_sum, now - self.window_ns
        while done and done[0][0] < before:
            acc = list(map(sub, acc, done.popleft()[1]))
        self._done_sum = acc
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


class ClientDigest:
    """What the load generator's clients saw of one engine: completions, latency, requests out."""

    def __init__(self, ns_per_col: int, window_s: float = 5.0, rate_window_s: float = 2.0) -> None:
        self.window_ns = int(window_s * 1e9)
        self.completed = 0
        self.failed = 0
        self.latency = HdrWindow(self.window_ns)
        self.rate = CountWindow(int(rate_window_s * 1e9))
        self._out: dict[int, int] = {}  # rid -> send time of requests sent and not answered
        self.last_t = 0
        self.set_zoom(ns_per_col)

    def set_zoom(self, ns_per_col: int) -> None:
        self.ns = max(1, ns_per_col)
        self.out_cols: dict[int, int] = {}
        for t in self._out.values():
            c = t // self.ns
            self.out_cols[c] = self.out_cols.get(c, 0) + 1

    def sent(self, t: int, rid: int) -> None:
        if rid in self._out:
            return
        self._out[rid] = t
        c = t // self.ns
        self.out_cols[c] = self.out_cols.get(c, 0) + 1
        if t > self.last_t:
            self.last_t = t

    def answered(self, t_done: int, rid: int, latency_ns: int, ok: bool) -> None:
        t = self._out.pop(rid, None)
        if t is not None:
            c = t // self.ns
            n = self.out_cols.get(c, 0) - 1
            if n > 0:
                self.out_cols[c] = n
            else:
                self.out_cols.pop(c, None)
        if t_done > self.last_t:
            self.last_t = t_done
        if ok:
            self.completed += 1
            self.rate.add(t_done)
            self.latency.record(t_done, latency_ns)
        else:
            self.failed += 1

    def counters(self, now: int) -> dict[str, Any]:
        lat = percentiles(self.latency.merged(now))
        return {
            "completed": self.completed,
            "failed": self.failed,
            "rps": self.rate.rate(now),
            "latency_ms": [lat["p50"], lat["p95"], lat["p99"], lat["max"]],
            "samples": lat["n"],
            "outstanding": len(self._out),
        }

    def take(self, now: int, with_counters: bool) -> dict[str, Any]:
        out: dict[str, Any] = {"ns": self.ns, "now": now, "out": [[c, n] for c, n in self.out_cols.items()]}
        if with_counters:
            out["counters"] = self.counters(now)
        return out


# -- what crosses a pipe: checked on the way in ------------------------------------------
_INT_ROWS = {"hold": 6, "wait": 3, "held": 3, "open_q": 2, "open_r": 2, "sent": 2, "out": 2}


def check_record(rec: object) -> None:
    """Raise ValueError (one line) unless ``rec`` is a well-formed ``{"server"|"client": ...}`` record."""
    if not isinstance(rec, dict) or not rec or set(rec) - {"server", "client"}:
        raise ValueError("a digest record is {'server': ...} or {'client': ...}")
    for side, part in rec.items():
        if not isinstance(part, dict):
            raise ValueError(f"digest {side} part is not a record")
        for key in ("ns", "now"):
            if type(part.get(key)) is not int or part[key] < 0:
                raise ValueError(f"digest field {key!r} is not a non-negative integer")
        if part["ns"] < 1:
            raise ValueError("digest column width must be at least 1 ns")
        for key in ("hold", "wait", "held", "open_q", "open_r", "sent") if side == "server" else ("out",):
            rows = part.get(key)
            width = _INT_ROWS[key]
            if not isinstance(rows, list) or not all(
                isinstance(r, list) and len(r) == width and all(type(x) is int for x in r) for r in rows
            ):
                raise ValueError(f"digest field {key!r} is not a list of {width} integers each")
        if side == "server":
            flat = part.get("rows")
            if not isinstance(flat, list) or len(flat) % 4 or not all(type(x) is int for x in flat):
                raise ValueError("digest field 'rows' is not a flat list of 4-integer transitions")
            phases = flat[3::4]
            if any(not 0 <= p < NPHASES for p in phases):
                raise ValueError("digest field 'rows' holds an unknown phase")
            _check_sizes(part.get("sizes", []))  # absent in records made before it
        counters = part.get("counters")
        if counters is not None:
            _check_counters(counters)


def _check_sizes(flat: object) -> None:
    """``sizes``: a flat list of (rid >= 0, bytes_in >= -1, bytes_out >= -1) integer triples."""
    if not isinstance(flat, list) or len(flat) % 3 or not all(type(x) is int for x in flat):
        raise ValueError("digest field 'sizes' is not a flat list of 3-integer records")
    if flat and (min(flat[0::3]) < 0 or min(flat[1::3]) < -1 or min(flat[2::3]) < -1 or max(flat) >= 1 << 63):
        raise ValueError("digest field 'sizes' holds a value out of range")


def _check_counters(counters: object) -> None:
    if not isinstance(counters, dict):
        raise ValueError("digest counters are not a record")
    for key, value in counters.items():
        if isinstance(value, bool) or not isinstance(key, str):
            raise ValueError(f"digest counter {key!r} is not a number")
        if isinstance(value, dict):
            if not all(isinstance(k, str) and isinstance(v, (int, float)) for k, v in value.items()):
                raise ValueError(f"digest counter {key!r} is not a table of numbers")
        elif isinstance(value, list):
            if not all(v is None or (isinstance(v, (int, float)) and not isinstance(v, bool)) for v in value):
                raise ValueError(f"digest counter {key!r} is not a list of numbers")
        elif not isinstance(value, (int, float)):
            raise ValueError(f"digest counter {key!r} is not a number")
