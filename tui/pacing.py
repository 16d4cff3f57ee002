"""When the app draws its next frame: a fixed grid of frame times that a late frame does not break.

Textual's interval timer skips a tick whenever the previous one ended after it was due. The
app's process shares its core with the load generator (two cores: the engines on one, the UI
and the load on the other, :mod:`syncviz.engines.placement`), so a frame that starts a few
milliseconds late and takes ~15 ms (at 1,000 clients) often ended past the next tick: measured
in tmux at 1,000 clients, 24-27 frames a second with the app's main thread idle a third of the
time (py-spy). :class:`FramePacer` keeps the grid instead: a frame that ran late is followed by
the next one on the grid, or :data:`MIN_GAP` after it when the grid time is already past, so the
screen (Textual renders at most 60 times a second) shows every frame and none is drawn back to
back; only a frame more than a whole period behind is dropped, and the grid starts again from
now. It never draws more than ``fps`` frames a second.

The frame counter of the perf line (:class:`~syncviz.tui.widgets.perf.PerfMeter`) counts
frames the screen took, not frames built (:attr:`~syncviz.tui.widgets.timeline.TimelineView.taken`),
so a frame built but overwritten before Textual rendered it is not counted.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable

MIN_GAP = 0.5  # of a period: the least time between two frames


class FramePacer:
    """The delays between frames at ``fps`` (see the module); a pure clock-in, delay-out object."""

    __slots__ = ("due", "min_gap", "period")

    def __init__(self, fps: float, now: float, min_gap: float = MIN_GAP) -> None:
        self.period = 1.0 / fps
        self.min_gap = min_gap * self.period
        self.due = now  # the grid time of the frame last drawn (none yet: now)

    def delay(self, now: float) -> float:
        """Seconds from ``now`` (a frame just ended) to the next frame; advances the grid."""
        due = self.due + self.period
        if due < now - self.period:  # more than a whole period behind: drop the missed frames
            due = now
        self.due = due
        return max(due - now, self.min_gap)


async def run_frames(fps: float, draw: Callable[[], object], clock: Callable[[], float] = time.monotonic) -> None:
    """Call ``draw`` at ``fps`` paced by :class:`FramePacer`, until cancelled."""
    pacer = FramePacer(fps, clock())
    while True:
        await asyncio.sleep(pacer.delay(clock()))
        draw()
