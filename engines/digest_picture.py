"""The picture layers of :class:`~syncviz.engines.digest.ServerDigest`: accumulators per lane and column.

Split from :mod:`~syncviz.engines.digest`, whose ``feed`` does what these helpers do inline for the
common cases (a request's first transition, a segment in one column, its end) and calls them for
the rest: a segment across columns (:meth:`DigestPicture._spread`), a hand-over (``_open`` /
``_close``), a QUEUED (``_sent``), a new zoom (:meth:`DigestPicture.set_zoom`).
"""

from __future__ import annotations

from typing import Any

from .digest_client import BUCKET_NS
from .digest_record import KEEP_COLS, WAITQ

# A followed request is a plain list, indexed by these (building one costs ~45 ns, a slotted
# object's __init__ ~220 ns; the engine process builds one per request): its current phase,
# lane, since when, its segment's code, whether it is a row's request (its transitions are
# passed on), the column of its QUEUED (the client's send time, None before) and from _TOT
# on its time in each phase. ServerDigest.feed builds it as a literal of NPHASES zeros.
_PHASE, _LANE, _SINCE, _CODE, _ROW, _SENT, _TOT = range(7)
_Req = list


class DigestPicture:
    """The picture's layers at one zoom; the digest keeps ``inflight``, ``last_t`` and ``_codes``."""

    inflight: dict[int, _Req]
    last_t: int
    _codes: tuple[tuple[int, ...], tuple[int, ...], tuple[int, ...]]

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
        # the first and the last column take their parts; every column between takes a whole ``ns``
        # (a long wait spans up to KEEP_COLS columns: no min/max per column)
        dirty.update(range(c, last + 1))
        if c == last:
            parts = ((c, t1 - t0),)
        else:
            parts = ((c, (c + 1) * ns - t0), (last, t1 - last * ns))
            for k in range(c + 1, last):
                acc = cols.get(k)
                if acc is None:
                    acc = cols[k] = [0] * width
                acc[slot] += ns
        for k, part in parts:
            acc = cols.get(k)
            if acc is None:
                acc = cols[k] = [0] * width
            acc[slot] += part

    def take_layers(self, now: int) -> dict[str, Any]:
        """The layers' part of a take: the columns changed since the last one, what is open now;
        what fell off the left edge is forgotten (once a second)."""
        ns = self.ns
        floor = now // ns - KEEP_COLS
        if now - self._trimmed > 1_000_000_000:
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
            "open_q": [[c, n] for c, n in self.open_wait[0].items()],  # queued
            "open_r": [[c, n] for c, n in self.open_wait[1].items()],  # ready
            "sent": [[c, n] for c, n in self.sent.items()],
        }
        self.dirty_hold.clear()
        self.dirty_wait.clear()
        return out

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

    def _sent(self, r: _Req, t: int) -> None:
        r[_SENT] = col = t // self.ns
        self.sent[col] = self.sent.get(col, 0) + 1

    def _unsent(self, col: int) -> None:
        n = self.sent.get(col, 0) - 1
        if n > 0:
            self.sent[col] = n
        else:
            self.sent.pop(col, None)


def _bucket_span(bucket: list[int] | None) -> tuple[list[int], int, int]:
    """A :class:`CountWindow` bucket ``[key, count]`` and the times it counts, ``[lo, hi)`` (empty: none yet)."""
    if bucket is None:
        return [0, 0], 0, 0
    return bucket, bucket[0] * BUCKET_NS, (bucket[0] + 1) * BUCKET_NS
