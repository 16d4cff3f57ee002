"""Recordings: an event stream saved to a file, drained live from an event source.

:class:`RecordingWriter` writes one (the format: :mod:`syncviz.engines.recording_format`),
:func:`drain_for` drains a live source on a fixed schedule for it. The rest of a recording's
life has a module each: reading and checking it (:mod:`syncviz.engines.recording_reader`),
summing it up (:mod:`syncviz.engines.recording_summary`) and playing it back
(:mod:`syncviz.engines.replay`); :class:`Replay` and :func:`read_recording` are importable from
here too.
"""

from __future__ import annotations

import contextlib
import gzip
import json
import time
from collections.abc import Iterable, Iterator
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from .events import Batch
from .output import OutputFile
from .recording_format import COMPRESSLEVEL, FORMAT, VERSION, RecordingError, _encode, check_info, one_line
from .recording_reader import read_recording as read_recording  # re-exported: many tests read recordings from here
from .replay import Replay as Replay  # re-exported: the app and many tests play recordings from here
from .source import EventSource
from .wire import batch_to_wire


class RecordingWriter:
    """Writes one recording: to a hidden file beside ``path``, moved into place by :meth:`finish`
    (a device or pipe, ``/dev/null``, is written in place: :class:`~syncviz.engines.output.OutputFile`).

    Opening fails at once (:class:`RecordingError`) when ``path`` cannot be written, before
    anything is recorded; a run that fails or is abandoned leaves no file behind, and never
    half overwrites an older recording. Use as a context manager: an exception aborts.
    """

    def __init__(self, path: str | Path, compresslevel: int = COMPRESSLEVEL) -> None:
        self.path = Path(path)
        try:
            self._out: OutputFile | None = OutputFile(self.path)
        except OSError as exc:
            raise RecordingError(f"cannot write recording {path}: {one_line(exc.strerror or exc)}") from None
        self._gz = gzip.GzipFile(filename="", mode="wb", fileobj=self._out.stream, compresslevel=compresslevel, mtime=0)
        self.count = 0
        self._run = 0
        self._started = False

    def start(self, info: dict[str, Any], seconds: float | None = None) -> None:
        """Write the header: the run's status ``info`` (checked as a reader will check it)."""
        try:
            info = json.loads(_encode(info))
        except (TypeError, ValueError) as exc:
            why = one_line(exc)
            raise RecordingError(f"cannot write recording {self.path}: info is not plain data ({why})") from None
        check_info(info)
        self._run = int(info.get("run", 0))
        created = datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")
        header = {"format": FORMAT, "version": VERSION, "created": created, "seconds": seconds}
        self._put({**header, "settings": info.get("settings"), "info": info})
        self._started = True

    def write(self, batch: Batch, servers: dict[str, dict[str, int]] | None = None) -> None:
        """Append one batch (its ``info`` too, when it has one), with each engine's source counters
        then (``servers``, else the batch's own: ``srvs``, which a replay's panels show)."""
        if not self._started:
            raise RecordingError("write() before start(): a recording begins with its header")
        record = batch_to_wire(batch, self._run)
        servers = servers if servers is not None else batch.servers
        if servers:
            record["srvs"] = servers
        if batch.info is not None:
            self._run = int(batch.info.get("run", self._run))
            record["run"] = self._run
            record["info"] = batch.info
        self._put(record)
        self.count += 1

    def finish(self) -> int:
        """Write the end record, close, move the file into place; how many batches it holds."""
        self._put({"end": True, "batches": self.count})
        try:
            self._gz.close()
            assert self._out is not None
            self._out.commit()
            self._out = None
        except OSError as exc:
            self.abort()
            raise RecordingError(f"cannot write recording {self.path}: {one_line(exc.strerror or exc)}") from None
        return self.count

    def abort(self) -> None:
        """Close and remove the unfinished file (nothing at ``path`` changes)."""
        if self._out is not None:
            with contextlib.suppress(OSError):
                self._gz.close()
            self._out.discard()
            self._out = None

    def _put(self, record: object) -> None:
        try:
            self._gz.write(_encode(record))
        except (TypeError, ValueError) as exc:
            raise RecordingError(f"cannot write recording {self.path}: not plain data ({one_line(exc)})") from None
        except OSError as exc:
            raise RecordingError(f"cannot write recording {self.path}: {one_line(exc.strerror or exc)}") from None

    def __enter__(self) -> RecordingWriter:
        return self

    def __exit__(self, kind: object, *exc: object) -> None:
        if self._out is not None:
            self.abort()


def write_recording(
    path: str | Path, info: dict[str, Any], batches: Iterable[Batch], seconds: float | None = None
) -> int:
    """Write ``batches`` to ``path``; returns how many were written."""
    with RecordingWriter(path) as writer:
        writer.start(info, seconds)
        for batch in batches:
            writer.write(batch)
        return writer.finish()


def drain_for(source: EventSource, seconds: float, interval_s: float = 1 / 30) -> Iterator[Batch]:
    """Drain ``source`` every ``interval_s`` (on a fixed schedule) for ``seconds``."""
    start = time.monotonic()
    end, k = start + seconds, 1
    while (now := time.monotonic()) < end:
        time.sleep(max(0.0, min(start + k * interval_s, end) - now))
        k = max(k + 1, int((time.monotonic() - start) / interval_s) + 1)
        yield source.drain()


def record(source: EventSource, seconds: float, interval_s: float = 1 / 30) -> list[Batch]:
    """Drain ``source`` every ``interval_s`` for ``seconds``; the batches, in order."""
    return list(drain_for(source, seconds, interval_s))
