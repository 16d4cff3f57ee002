"""The last minute of each engine's req/s and p99, one sample per second of stream time."""

from __future__ import annotations

from collections import deque

from syncviz.engines.stats import Counters, StreamStats

SECOND_NS = 1_000_000_000
KEEP_S = 60


class History:
    """Samples :meth:`StreamStats.counters` whenever stream time crosses a whole second."""

    def __init__(self, keep_s: int = KEEP_S) -> None:
        self.rps: dict[str, deque[float]] = {}
        self.p99: dict[str, deque[float | None]] = {}
        self.keep_s = keep_s
        self._next_ns = 0

    def observe(self, stats: StreamStats, now_ns: int) -> dict[str, Counters] | None:
        """Take a sample when a second has passed; returns the counters it took, if any."""
        if now_ns < self._next_ns:
            return None
        self._next_ns = (now_ns // SECOND_NS + 1) * SECOND_NS
        counters = stats.counters(now_ns)
        for name, c in counters.items():
            self.rps.setdefault(name, deque(maxlen=self.keep_s)).append(c.rps)
            self.p99.setdefault(name, deque(maxlen=self.keep_s)).append(c.p99_ms)
        return counters


BARS = "▁▂▃▄▅▆▇█"


def sparkline(values: list[float | None], width: int) -> str:
    """The last ``width`` values as bars scaled to their maximum (gaps where unknown)."""
    values = values[-width:] if width > 0 else []
    known = [v for v in values if v is not None]
    top = max(known, default=0.0)
    out = []
    for v in values:
        if v is None:
            out.append(" ")
        elif top <= 0:
            out.append(BARS[0])
        else:
            out.append(BARS[min(7, int(v / top * 7.999))])
    return "".join(out)
