"""What a trace is made from: the event stream's batches gathered per request.

:class:`TraceCollector` takes drained batches in any order of arrival and keeps every request's
transitions (a provisional reading id handed over to a real one, ``HANDED_OVER``, is dropped),
the client's latencies, the loop-lag samples of the loop engines, the watchdog's calls (the
longest report of each) and the servers' own counts (``Batch.servers``: recordings and live
drains); :func:`collect` feeds it a whole stream. What it holds becomes
Chrome Trace Event JSON in :mod:`syncviz.engines.trace`.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from .events import ENGINE_IDS, ENGINES, HANDED_OVER, Batch, Phase
from .stall import BUSY

Step = tuple[int, int, int]  # (t_ns, phase, lane)
Block = tuple[int, int, str]  # (t0, t1, where): a call the watchdog saw holding a loop or worker

_NPHASES = len(Phase)


class TraceCollector:
    """Every request's transitions, the client's latencies and the loop-lag samples, from batches.

    Feed it batches in any order of arrival (:meth:`feed`); a request's steps are put in time
    order when it is exported.
    """

    def __init__(self) -> None:
        self.steps: dict[tuple[int, int], list[Step]] = {}  # (engine id, rid) -> steps, first seen first
        self.latency: dict[tuple[int, int], tuple[int, bool]] = {}  # (engine id, rid) -> (ns, ok)
        self.lags: list[tuple[int, int, int]] = []
        self.servers: list[tuple[int, int, dict[str, int]]] = []  # (t_ns, engine id, source counters), each once
        self.blocks: dict[tuple[int, int, int], tuple[int, str]] = {}  # (engine, lane, t0) -> (ns, where)
        self.info: dict[str, Any] = {}
        self.engines_seen: set[int] = set()
        self.t_min: int | None = None
        self.t_max = 0
        self.dropped = 0  # drains whose buffers were full (their oldest records lost)
        self.handed = 0
        self._handed: set[tuple[int, int]] = set()

    def feed(self, batch: Batch) -> None:
        """Take one drained batch."""
        if isinstance(batch.info, dict):
            self.info = batch.info
        self.dropped += int(batch.dropped or 0)
        steps, handed, seen = self.steps, self._handed, self.engines_seen
        lo, hi = self.t_min, self.t_max
        for t, e, rid, lane, phase in batch.transitions:
            if not (0 <= e < len(ENGINES) and 0 <= phase < _NPHASES):
                continue
            key = (e, rid)
            if lane == HANDED_OVER:  # the provisional reading id goes on under the request's own id
                if steps.pop(key, None) is not None:
                    self.handed += 1
                handed.add(key)
                continue
            if key in handed:
                continue
            track = steps.get(key)
            if track is None:
                steps[key] = [(t, phase, lane)]
                seen.add(e)
            else:
                track.append((t, phase, lane))
            if lo is None or t < lo:
                lo = t
            if t > hi:
                hi = t
        for _t, e, rid, lat, ok in batch.latencies:
            if 0 <= e < len(ENGINES):
                self.latency[(e, rid)] = (int(lat), bool(ok))
        for lag in batch.lags:
            t, e = lag[0], lag[1]
            if 0 <= e < len(ENGINES):
                self.lags.append(lag)
                seen.add(e)
                if lo is None or t < lo:
                    lo = t
                if t > hi:
                    hi = t
        self.t_min, self.t_max = lo, hi
        for rec in getattr(batch, "blocks", None) or ():
            self._block(rec)
        for name, snap in (getattr(batch, "servers", None) or {}).items():
            e = ENGINE_IDS.get(name)
            t = snap.get("t_ns", 0) if isinstance(snap, dict) else 0
            if e is not None and t and not any(s[0] == t and s[1] == e for s in self.servers[-len(ENGINES) :]):
                self.servers.append((t, e, snap))  # a drain repeats the last counters until the next come

    def _block(self, rec: Any) -> None:
        """One watchdog record ``(t0, ns, engine, lane, ongoing, where)``: an ongoing call is reported
        again and again with its duration so far, so the longest report of one call is kept."""
        try:
            t0, dur, e, lane, _ongoing, where = rec
        except (TypeError, ValueError):
            return
        if not (isinstance(t0, int) and isinstance(dur, int) and isinstance(e, int) and isinstance(lane, int)):
            return
        if not isinstance(where, str) or not 0 <= e < len(ENGINES) or dur < 0:
            return
        if where == BUSY:
            return  # a loop's own work: no call held it, no request to put it on
        key = (e, lane, t0)
        old = self.blocks.get(key)
        if old is None or dur >= old[0]:
            self.blocks[key] = (dur, where)

    def blocks_by_lane(self) -> dict[tuple[int, int], list[Block]]:
        """The watchdog's calls per (engine, lane), in time order."""
        out: dict[tuple[int, int], list[Block]] = {}
        for (e, lane, t0), (dur, where) in sorted(self.blocks.items()):
            out.setdefault((e, lane), []).append((t0, t0 + dur, where))
        return out

    def engines(self) -> list[int]:
        """The engines to show: those the run had (its info), and any that sent records."""
        named = {ENGINES.index(n) for n in self.info.get("engines") or () if n in ENGINES}
        return sorted(named | self.engines_seen)


def collect(batches: Iterable[Batch]) -> TraceCollector:
    """A :class:`TraceCollector` fed every batch, in order."""
    col = TraceCollector()
    for batch in batches:
        col.feed(batch)
    return col
