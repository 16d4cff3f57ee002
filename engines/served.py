"""Requests served per second, from an engine's successive source counters.

The engines count every response they write (:class:`~syncviz.engines.counts.ServerCounts`),
whoever the client is; the parent gets a :class:`~syncviz.engines.counts.ServerSnapshot` with
each batch. :class:`ServedRate` turns successive snapshots of one engine into ``served_rps``
over a sliding window: the server-side throughput, which counts curl, wrk or a browser as well
as the built-in load generator.
"""

from __future__ import annotations

from collections import deque

from .counts import ServerSnapshot

WINDOW_S = 1.0


class ServedRate:
    """``served_rps`` of one engine over the last ``window_s`` seconds of its snapshots.

    Feed it every snapshot as it arrives (:meth:`update`; ``None`` and repeats are ignored).
    The rate spans from the newest snapshot back to the last one taken at least ``window_s``
    before it (so it covers a whole window once there is one), and is 0 until two snapshots
    have arrived. ``served`` going down means the engine started afresh (a restart): the
    window starts again from that snapshot.
    """

    def __init__(self, window_s: float = WINDOW_S) -> None:
        if not window_s > 0:
            raise ValueError("window_s must be positive")
        self.window_ns = int(window_s * 1e9)
        self._points: deque[tuple[int, int]] = deque()  # (t_ns, served), oldest first

    def update(self, snap: ServerSnapshot | None) -> None:
        if snap is None:
            return
        points = self._points
        if points:
            last_t, last_served = points[-1]
            if snap.t_ns <= last_t:
                return  # the same snapshot again, or an older one
            if snap.served < last_served:
                points.clear()  # a new engine: its counts start from zero
        points.append((snap.t_ns, snap.served))
        start = snap.t_ns - self.window_ns
        while len(points) > 1 and points[1][0] <= start:
            points.popleft()

    def rps(self, now_ns: int | None = None) -> float | None:
        """Responses per second over the window; ``None`` (not known) when ``now_ns`` is a window
        past the newest snapshot. Nothing heard is not nothing served: at 5,000 clients the panel
        read ``served/s 0`` beside ``req/s 3,374`` while its snapshots came late; an engine that
        truly stopped is said by its state (stalled, exited)."""
        points = self._points
        if len(points) < 2:
            return 0.0
        (t0, s0), (t1, s1) = points[0], points[-1]
        if now_ns is not None and now_ns - t1 > self.window_ns:
            return None
        return (s1 - s0) * 1e9 / (t1 - t0)

    def reset(self) -> None:
        self._points.clear()
