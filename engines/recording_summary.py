"""A recording's totals: each engine's completed requests and latency percentiles.

:class:`Summary` turns batches into them through :class:`~syncviz.engines.stats.StreamStats`,
fed live (``record --json``) or from a file (:func:`summarize`, ``replay --summary``).
"""

from __future__ import annotations

import threading
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from .events import DEFAULT_ENGINES, ENGINES, Batch
from .recording_reader import RecordingReader
from .stats import StreamStats

SUMMARY_WINDOW_S = 300.0  # the percentiles are the whole run's, up to the last 5 minutes of a longer one
SUMMARY_CHUNK_NS = 30_000_000_000  # stream time fed to the stats at a time


class Summary:
    """Each engine's completed requests and latency percentiles over every batch added.

    Computed by :class:`~syncviz.engines.stats.StreamStats` from the load generator's latency
    samples (the only records the three figures depend on), with a window as long as the run
    (up to :data:`SUMMARY_WINDOW_S`), so ``record --json`` (fed live) and ``replay --summary``
    (fed from the file) agree. The stats recompute their windowed counters at every feed, at a
    cost that grows with the window: the samples are fed :data:`SUMMARY_CHUNK_NS` of stream time
    at a time, on a thread of its own when ``background`` (so a live recording keeps its pace).
    """

    def __init__(self, engines: Iterable[str] = DEFAULT_ENGINES, background: bool = False) -> None:
        wanted = set(engines)
        self.engines = [e for e in ENGINES if e in wanted]
        self.stats = StreamStats(window_s=SUMMARY_WINDOW_S)
        self.background = background
        self.batches = 0
        self._pending = Batch()
        self._since: int | None = None
        self._feeder: threading.Thread | None = None
        self.latencies = 0
        self._digested: dict[str, tuple[int, int]] = {}  # engine -> (completed at the first digest, at the last)

    def add(self, batch: Batch) -> None:
        pending = self._pending
        pending.latencies.extend(batch.latencies)
        self.latencies += len(batch.latencies)
        for engine, record in batch.digests:  # a digest stream (the app's, saved with ctrl+s): its counts
            done = record.get("client", {}).get("completed") if isinstance(record, dict) else None
            if type(done) is int and 0 <= engine < len(ENGINES):
                first, _ = self._digested.get(ENGINES[engine], (done, done))
                self._digested[ENGINES[engine]] = (first, done)
        pending.t_ns = max(pending.t_ns, batch.t_ns)
        self.batches += 1
        if self._since is None:
            self._since = batch.t_ns
        elif batch.t_ns - self._since >= SUMMARY_CHUNK_NS:
            self._feed(self.background)

    def _feed(self, background: bool) -> None:
        pending, self._pending, self._since = self._pending, Batch(), None
        if self._feeder is not None:
            self._feeder.join()  # one feed at a time: the stats are not shared between threads
            self._feeder = None
        if background:
            self._feeder = threading.Thread(target=self.stats.feed, args=(pending,), name="summary", daemon=True)
            self._feeder.start()
        else:
            self.stats.feed(pending)

    def result(self) -> dict[str, Any]:
        """``{"engines": {name: {"completed": int, "p50_ms": float, "p99_ms": float}}}`` (null: no samples)."""
        self._feed(background=False)
        if not self.latencies and self._digested:  # digests carry counts, and percentiles only per window
            return {
                "engines": {
                    name: {"completed": last - first, "p50_ms": None, "p99_ms": None}
                    for name, (first, last) in ((n, self._digested.get(n, (0, 0))) for n in self.engines)
                },
                "note": "a digest recording (saved from the app): completed from its counts; "
                "p50/p99 over the whole recording are n/a (its percentiles are windowed)",
            }
        counters = self.stats.counters()
        return {
            "engines": {
                name: {
                    "completed": counters[name].completed,
                    "p50_ms": _ms(counters[name].p50_ms),
                    "p99_ms": _ms(counters[name].p99_ms),
                }
                for name in self.engines
            }
        }


def _ms(value: float | None) -> float | None:
    return None if value is None else round(float(value), 3)


def summarize(path: str | Path) -> dict[str, Any]:
    """A recording's :class:`Summary`, read a batch at a time (never the whole file in memory)."""
    with RecordingReader(path) as reader:
        summary = Summary(reader.info.get("engines") or DEFAULT_ENGINES)
        for batch in reader:
            summary.add(batch)
    return summary.result()
