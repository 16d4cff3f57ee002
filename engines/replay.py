"""Playing a recording back as an event source, at its own pace or faster.

Played back by :class:`Replay`, a recording feeds the app exactly as a live host does, one
batch per ``drain()``, so a picture made from it is the same every time (the snapshot tests use
one).
"""

from __future__ import annotations

from collections import deque
from pathlib import Path
from typing import Any

from .counts import ServerSnapshot
from .events import Batch
from .recording_reader import read_recording
from .source import EngineStatus, EventSource, ProcessInfo, SourceStatus

SPEEDS = (0.1, 0.25, 0.5, 1.0, 2.0, 5.0, 10.0)
"""Replay speeds (``<`` / ``>`` in the app)."""
CATCH_UP_S = 0.25  # a consumer that did not drain for longer (paused, busy) does not fast-forward


class Replay(EventSource):
    """Plays a recording back, one batch per ``drain()`` (empty at the end), or paced.

    With a ``clock`` (wall seconds, as ``time.monotonic``), playback is paced by the recording's
    own stream time at :attr:`speed` (:data:`SPEEDS`, 0.1x to 10x): each ``drain()`` returns the
    batches that have come due since the last, merged (never across a status change), or an
    empty batch at the time of the last one played. :meth:`restart` plays it from the start.

    Knob changes and scenario switches cannot change what was recorded; they are kept in
    ``commands`` so a test can check what the UI asked for.
    """

    def __init__(self, info: dict[str, Any], batches: list[Batch], clock: Any = None) -> None:
        self.info = info
        self.batches = batches
        self.position = 0
        self.commands: list[tuple] = []
        self.errors: deque[str] = deque()
        self.clock = clock
        self.speed = 1.0
        self._head: int | None = None  # stream time played up to (paced)
        self._wall = 0.0  # the clock at the last paced drain
        self._servers: dict[str, dict[str, int]] = {}  # each engine's source counters as last played (srvs)

    @classmethod
    def from_file(cls, path: str | Path) -> Replay:
        """The recording at ``path``, read and checked whole, or
        :class:`~syncviz.engines.recording_format.RecordingError`."""
        return cls(*read_recording(path))

    @property
    def finished(self) -> bool:
        return self.position >= len(self.batches)

    def set_speed(self, speed: float) -> float:
        """Play at ``speed`` (kept within :data:`SPEEDS`' range); the speed set."""
        self.speed = min(SPEEDS[-1], max(SPEEDS[0], float(speed)))
        return self.speed

    def speed_step(self, direction: int) -> float:
        """The next speed of :data:`SPEEDS` up (+1) or down (-1) from the current one."""
        near = min(range(len(SPEEDS)), key=lambda i: abs(SPEEDS[i] - self.speed))
        return self.set_speed(SPEEDS[max(0, min(len(SPEEDS) - 1, near + direction))])

    def restart(self) -> None:
        """Play again from the first batch."""
        self.position = 0
        self._head = None
        self._servers = {}

    def drain(self) -> Batch:
        if self.finished:
            last = self.batches[-1].t_ns if self.batches else 0
            return Batch(t_ns=last)
        if self.clock is None:
            return self._next()
        wall = float(self.clock())
        if self._head is None:
            self._wall = wall
            batch = self._next()
            self._head = batch.t_ns
            return batch
        elapsed = min(CATCH_UP_S, max(0.0, wall - self._wall))
        self._wall = wall
        self._head += int(elapsed * self.speed * 1e9)
        due: list[Batch] = []
        while not self.finished and self.batches[self.position].t_ns <= self._head:
            if due and self.batches[self.position].info is not None:
                break  # a status change starts a drain of its own (a restart drops its batch)
            due.append(self._next())
        if not due:
            return Batch(t_ns=self.batches[self.position - 1].t_ns if self.position else 0)
        if len(due) == 1:
            return due[0]
        out = Batch()
        for batch in due:
            out.extend(batch)
        return out

    def _next(self) -> Batch:
        batch = self.batches[self.position]
        if self.position == 0 and batch.info is None:
            batch.info = self.info
        if batch.servers:
            self._servers = batch.servers
        self.position += 1
        return batch

    def apply(self, **changes: Any) -> None:
        self.commands.append(("apply", changes))

    def set_scenario(self, name: str, **overrides: Any) -> None:
        self.commands.append(("scenario", name, overrides))

    def close(self) -> None:
        self.position = len(self.batches)

    def status(self) -> SourceStatus:
        """What was recorded: each engine's pid and placement as they were, and its source counters
        as of the batch played last (a recording made before they were kept has none)."""
        pids = self.info.get("pids") or {}
        places = self.info.get("placement") or {}
        out = SourceStatus("replay")
        for name in self.info.get("engines") or ():
            pid = pids.get(name)
            out.engines[name] = EngineStatus(
                name,
                state="replay",
                process=ProcessInfo(pid) if isinstance(pid, int) else None,
                placement=str(places.get(name, "")),
                server=ServerSnapshot.from_dict(self._servers[name]) if name in self._servers else None,
            )
        return out
