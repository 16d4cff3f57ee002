"""Recordings: an event stream saved to a file, and played back as an event source.

A recording is a gzip file of pickled frames (the same frames the child process sends):
one header ``{"version": 1, "info": {...}}`` then one :class:`Batch` per drain. Played
back by :class:`Replay`, it feeds the app exactly as a live host does, one batch per
``drain()``, so a picture made from it is the same every time (the snapshot tests use one).
"""

from __future__ import annotations

import gzip
import pickle
import time
from collections import deque
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from .events import Batch
from .source import EngineStatus, EventSource, ProcessInfo, SourceStatus

VERSION = 1


class RecordingError(ValueError):
    """The file is not a syncviz recording; the message is one line."""


def write_recording(path: str | Path, info: dict[str, Any], batches: Iterable[Batch]) -> int:
    """Write ``batches`` to ``path``; returns how many were written."""
    count = 0
    with gzip.open(path, "wb") as f:
        pickle.dump({"version": VERSION, "info": info}, f, protocol=pickle.HIGHEST_PROTOCOL)
        for batch in batches:
            pickle.dump(batch, f, protocol=pickle.HIGHEST_PROTOCOL)
            count += 1
    return count


def read_recording(path: str | Path) -> tuple[dict[str, Any], list[Batch]]:
    """The header's info and every batch, or :class:`RecordingError`."""
    try:
        with gzip.open(path, "rb") as f:
            header = pickle.load(f)
            if not isinstance(header, dict) or header.get("version") != VERSION:
                raise RecordingError(f"{path}: not a syncviz recording (version {VERSION})")
            batches = []
            while True:
                try:
                    batches.append(pickle.load(f))
                except EOFError:
                    break
    except (OSError, pickle.UnpicklingError, EOFError) as exc:
        raise RecordingError(f"{path}: cannot read recording: {exc}") from None
    return header["info"], batches


def record(source: EventSource, seconds: float, interval_s: float = 1 / 30) -> list[Batch]:
    """Drain ``source`` every ``interval_s`` for ``seconds``; the batches, in order."""
    out: list[Batch] = []
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        time.sleep(interval_s)
        batch = source.drain()
        out.append(batch)
    return out


class Replay(EventSource):
    """Plays a recording back: each ``drain()`` returns the next batch (empty at the end).

    Knob changes and scenario switches cannot change what was recorded; they are kept in
    ``commands`` so a test can check what the UI asked for.
    """

    def __init__(self, info: dict[str, Any], batches: list[Batch]) -> None:
        self.info = info
        self.batches = batches
        self.position = 0
        self.commands: list[tuple] = []
        self.errors: deque[str] = deque()

    @classmethod
    def from_file(cls, path: str | Path) -> Replay:
        return cls(*read_recording(path))

    @property
    def finished(self) -> bool:
        return self.position >= len(self.batches)

    def drain(self) -> Batch:
        if self.finished:
            last = self.batches[-1].t_ns if self.batches else 0
            return Batch(t_ns=last)
        batch = self.batches[self.position]
        if self.position == 0 and batch.info is None:
            batch.info = self.info
        self.position += 1
        return batch

    def apply(self, **changes: Any) -> None:
        self.commands.append(("apply", changes))

    def set_scenario(self, name: str, **overrides: Any) -> None:
        self.commands.append(("scenario", name, overrides))

    def close(self) -> None:
        self.position = len(self.batches)

    def status(self) -> SourceStatus:
        """What was recorded: each engine's pid and placement as they were, nothing live."""
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
            )
        return out
