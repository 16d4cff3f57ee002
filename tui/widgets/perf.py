"""The perf line (key ``f``): what the app itself costs, live, so anyone can check it.

``perf  30.1 fps · 9.8 ms/frame · app cpu 38% · threaded 4% asyncio 19% gevent 18% · 1,240 events/s``

Frames are counted as the app draws them; ms per frame is the app's whole process CPU (its
drawing, Textual's compositor and terminal writes, draining the stream) divided by the frames
in the same second; the engines' CPU comes from their processes (psutil, as their panels
show it); events are the records that crossed the stream in the last second.
"""

from __future__ import annotations

import time
from collections import deque

from rich.text import Text
from syncviz.engines.source import SourceStatus
from textual.widgets import Static

KEY = "#8b93a7"
VALUE = "bold #e8ebf2"
WINDOW_S = 1.0


class PerfMeter:
    """Frames, CPU and stream events over the last second (fed by the app).

    What is older than the second goes as new things come, whether the line is shown or not
    (trimmed only when shown, its two queues grew by ~4 KB a second while it was off: +2.3 MB over
    nine minutes of the app, the largest share of its growth).
    """

    def __init__(self) -> None:
        self._frames: deque[float] = deque()
        self._events: deque[tuple[float, int]] = deque()
        self._cpu: deque[tuple[float, float]] = deque([(time.monotonic(), time.process_time())])

    def frame(self) -> None:
        now = time.monotonic()
        self._frames.append(now)
        self._drop_older(now)

    def events(self, n: int) -> None:
        if n:
            now = time.monotonic()
            self._events.append((now, n))
            self._drop_older(now)

    def _drop_older(self, now: float) -> None:
        start = now - WINDOW_S
        while self._frames and self._frames[0] < start:
            self._frames.popleft()
        while self._events and self._events[0][0] < start:
            self._events.popleft()

    def sample(self) -> tuple[float, float | None, float | None, float]:
        """(fps, ms of process CPU per frame, process CPU % of one core, events/s)."""
        now = time.monotonic()
        self._drop_older(now)
        self._cpu.append((now, time.process_time()))
        while len(self._cpu) > 2 and self._cpu[1][0] <= now - WINDOW_S:
            self._cpu.popleft()
        (t0, c0), (t1, c1) = self._cpu[0], self._cpu[-1]
        span = t1 - t0
        fps = len(self._frames) / WINDOW_S
        cpu = 100 * (c1 - c0) / span if span > 0.2 else None
        ms = (c1 - c0) * 1000 / (fps * span) if cpu is not None and fps > 0 else None
        return fps, ms, cpu, sum(n for _, n in self._events) / WINDOW_S


def perf_text(meter: PerfMeter, status: SourceStatus | None) -> Text:
    fps, ms, cpu, events = meter.sample()
    t = Text(no_wrap=True, overflow="ellipsis")
    t.append(" perf ", "bold")
    t.append(f"{fps:.1f}", VALUE)
    t.append(" fps · ", KEY)
    t.append("—" if ms is None else f"{ms:.1f}", VALUE)
    t.append(" ms/frame · app cpu ", KEY)
    t.append("—" if cpu is None else f"{cpu:.0f}%", VALUE)
    if status is not None:
        for name, st in status.engines.items():
            proc = st.process
            t.append(f" · {name} ", KEY)
            t.append("—" if proc is None or proc.cpu_percent is None else f"{proc.cpu_percent:.0f}%", VALUE)
        if status.load_state == "exited":
            t.append(" · load ", KEY)
            t.append("exited", "bold #ff4d4d")
        elif status.load is not None and status.load.cpu_percent is not None:
            t.append(" · load ", KEY)
            t.append(f"{status.load.cpu_percent:.0f}%", VALUE)
    t.append(" · ", KEY)
    t.append(f"{events:,.0f}", VALUE)
    t.append(" events/s", KEY)
    return t


class PerfLine(Static):
    """One line under the status bar, shown while ``f`` is on (``-on``; styles in app.tcss)."""

    def show(self, meter: PerfMeter, status: SourceStatus | None) -> None:
        self.update(perf_text(meter, status), layout=False)
