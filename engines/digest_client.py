"""The load side's digest, and the windowed figures both digests keep.

The load process digests what its clients saw of each engine with a :class:`ClientDigest`:
completions, failures, latency and req/s over a window, and per column of the picture the
requests sent and not answered yet. Its :meth:`ClientDigest.take` returns a plain, JSON-ready
``client`` record, bounded by the picture's width, not by req/s.

Windowed figures (here, and in :class:`~syncviz.engines.digest.ServerDigest`'s loop lag and row
rate) move in time buckets: latency and loop lag in HDR histograms (``hdrhistogram``, as wrk2
and most latency tools; :class:`HdrWindow`), counts in :class:`CountWindow`.
"""

from __future__ import annotations

from array import array
from bisect import bisect_left
from collections import deque
from itertools import accumulate, compress
from typing import Any

from hdrh.histogram import HdrHistogram

BUCKET_NS = 100_000_000  # windowed figures move in steps of 0.1 s
HDR_LOW, HDR_HIGH, HDR_DIGITS = 1_000, 3_600_000_000_000, 2  # 1 us .. 1 h; 2 digits: within 1%


def _hist() -> HdrHistogram:
    return HdrHistogram(HDR_LOW, HDR_HIGH, HDR_DIGITS)


class HdrWindow:
    """Values in HDR histograms per 0.1 s bucket, merged over the last ``window_ns`` on demand.

    The closed buckets (all but the newest, which still records) are kept summed, added as each
    closes and taken out as it leaves the window, so :meth:`merged` costs two additions however
    long the window (it merged all ~50 buckets of a 5 s window at every read: ~0.8 ms, a few times
    a second per engine, in the load process at 1,000 clients ~5% of a core). ``now`` moves
    forward between reads (a digest's clock).
    """

    def __init__(self, window_ns: int) -> None:
        self.window_ns = window_ns
        self._buckets: deque[tuple[int, HdrHistogram]] = deque()
        self._closed = _hist()  # the sum of every bucket but the newest

    def record(self, t: int, value: int) -> None:
        key = t // BUCKET_NS
        b = self._buckets
        if not b or b[-1][0] < key:
            if b:
                self._closed.add(b[-1][1])
            b.append((key, _hist()))
            self._drop_below(key - self.window_ns // BUCKET_NS)
        b[-1][1].record_value(max(HDR_LOW, min(HDR_HIGH, value)))

    def _drop_below(self, low: int) -> None:
        """Forget the closed buckets older than ``low`` (the newest stays until a newer opens)."""
        b = self._buckets
        while len(b) > 1 and b[0][0] < low:
            _subtract(self._closed, b.popleft()[1])

    def merged(self, now: int) -> HdrHistogram | None:
        low = (now - self.window_ns) // BUCKET_NS
        self._drop_below(low)
        b = self._buckets
        newest = b[-1][1] if b and b[-1][0] >= low else None
        if not self._closed.get_total_count() and (newest is None or not newest.get_total_count()):
            return None
        out = _hist()
        out.add(self._closed)
        if newest is not None:
            out.add(newest)
        return out


def _subtract(total: HdrHistogram, part: HdrHistogram) -> None:
    """Take ``part``'s counts out of ``total``, which holds them (C loops but over ``part``'s non-zero cells)."""
    counts, gone = total.counts, array("Q", bytes(part.counts))
    for i in compress(range(len(gone)), gone):
        counts[i] -= gone[i]
    total.total_count -= part.total_count
    left = list(compress(range(total.counts_len), array("Q", bytes(counts))))
    if left:
        total.set_internal_tacking_values(left[0], left[-1], total.total_count)
    else:
        total.reset()


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

    def newest(self) -> list[int] | None:
        """The newest bucket, ``[key, count]`` (None before any): a caller may add to its count in place
        for an event in it, as :meth:`add` would (the server digest's ``feed`` does, saving the call)."""
        return self._buckets[-1] if self._buckets else None

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
    """p50, p95, p99 and max in ms (``None`` without samples): hdrh's figures, each by a binary
    search of the running counts (its own walk is a Python loop over every cell: ~0.26 ms)."""
    if h is None or not h.get_total_count():
        return {"p50": None, "p95": None, "p99": None, "max": None, "n": 0}
    running = list(accumulate(array("Q", bytes(h.counts))))
    value = h.get_highest_equivalent_value
    at = {
        p: value(h.get_value_from_index(bisect_left(running, h.get_target_count_at_percentile(p)))) for p in PERCENTILES
    }
    return in_ms(h, at)


PERCENTILES = (50, 95, 99)


def in_ms(h: HdrHistogram, at: dict[int, int]) -> dict[str, float | None]:
    """:func:`percentiles`' record from the values ``at`` each of :data:`PERCENTILES` (ns)."""
    return {
        "p50": at[50] / 1e6,
        "p95": at[95] / 1e6,
        "p99": at[99] / 1e6,
        "max": h.get_max_value() / 1e6,
        "n": h.get_total_count(),
    }


class ClientDigest:
    """What the load generator's clients saw of one engine: completions, latency, requests out."""

    def __init__(self, ns_per_col: int, window_s: float = 5.0, rate_window_s: float = 2.0) -> None:
        self.window_ns = int(window_s * 1e9)
        self.completed = 0
        self.failed = 0
        self.latency = HdrWindow(self.window_ns)
        self.rate = CountWindow(int(rate_window_s * 1e9))
        self.sends = CountWindow(int(rate_window_s * 1e9))  # requests sent (an open loop's arrivals)
        self._out: dict[int, int] = {}  # rid -> send time of requests sent and not answered
        self.connecting = 0  # clients whose connection is not open yet (told by the load generator)
        self.last_t = 0
        self.set_zoom(ns_per_col)

    def set_zoom(self, ns_per_col: int) -> None:
        self.ns = max(1, ns_per_col)
        self.out_cols: dict[int, int] = {}
        for t in self._out.values():
            c = t // self.ns
            self.out_cols[c] = self.out_cols.get(c, 0) + 1

    def gone(self) -> None:
        """The clients are gone (their process died): none of their requests is outstanding."""
        self._out.clear()
        self.out_cols = {}
        self.connecting = 0

    def sent(self, t: int, rid: int) -> None:
        if rid in self._out:
            return
        self._out[rid] = t
        self.sends.add(t)
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
            "sent_rps": self.sends.rate(now),
            "latency_ms": [lat["p50"], lat["p95"], lat["p99"], lat["max"]],
            "samples": lat["n"],
            "outstanding": len(self._out),
            "connecting": self.connecting,
        }

    def take(self, now: int, with_counters: bool) -> dict[str, Any]:
        out: dict[str, Any] = {"ns": self.ns, "now": now, "out": [[c, n] for c, n in self.out_cols.items()]}
        if with_counters:
            out["counters"] = self.counters(now)
        return out
