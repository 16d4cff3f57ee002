"""Recordings: an event stream saved to a file, and played back as an event source.

A recording (format ``syncviz-recording``, version 2) is a gzip file of JSON lines, nothing
else; no byte of it is ever unpickled or executed. The first line is the header::

    {"format": "syncviz-recording", "version": 2, "created": "2026-11-23T10:00:00Z",
     "seconds": 3.0, "settings": {...}, "info": {...}}

then one line per drained :class:`~syncviz.engines.events.Batch`, in the shape the engine
processes send it over their pipes (:func:`~syncviz.engines.wire.batch_to_wire`: flat integer
lists), with the batch's ``info`` when it has one, and last ``{"end": true, "batches": N}``.

Reading checks everything (:class:`RecordingReader`): the header, each batch through the wire
decoder, every integer's range (engine ids, phases, lanes, times) and each ``info``'s keys and
settings, so a consumer never meets a value it cannot handle. Whatever is wrong is one
:class:`RecordingError`, one line: a file cut short says it is truncated (and how many batches
came before the cut), a corrupt one where it broke, an old pickle recording or a foreign file
what it is.

Played back by :class:`Replay`, a recording feeds the app exactly as a live host does, one
batch per ``drain()``, so a picture made from it is the same every time (the snapshot tests use
one). :class:`Summary` turns the batches into each engine's completed requests and latency
percentiles through :class:`~syncviz.engines.stats.StreamStats` (``record --json``, ``replay
--summary``).
"""

from __future__ import annotations

import contextlib
import gzip
import json
import math
import os
import threading
import time
import zlib
from collections import deque
from collections.abc import Iterable, Iterator
from datetime import datetime, timezone
from pathlib import Path
from typing import IO, Any

from .events import DEFAULT_ENGINES, ENGINE_IDS, ENGINES, Batch
from .scenarios import SCENARIOS
from .settings import Settings, SettingsError
from .source import EngineStatus, EventSource, ProcessInfo, SourceStatus
from .stats import StreamStats
from .wire import WireError, batch_to_wire, decode_batch

FORMAT = "syncviz-recording"
VERSION = 2
MAX_LINE = 64 * 1024 * 1024  # one record; a drain of 10,000 clients' traffic is well under 1 MB
COMPRESSLEVEL = 6  # level 9 costs twice the CPU for 3% less
INT64 = 1 << 63
GZIP_MAGIC = b"\x1f\x8b"
PICKLE_PROTO = b"\x80"  # a pickle of protocol 2 or later starts with this opcode
MODES = frozenset({"native", "blocking", "offload"})


class RecordingError(ValueError):
    """The file cannot be read or written as a syncviz recording; the message is one line."""


def one_line(text: object) -> str:
    """An error (or any text) as one line: its whitespace runs, newlines included, as one space."""
    return " ".join(str(text).split())


# -- writing ---------------------------------------------------------------------------------


def _encode(record: object) -> bytes:
    return json.dumps(record, separators=(",", ":"), allow_nan=False).encode() + b"\n"


class RecordingWriter:
    """Writes one recording: to a hidden file beside ``path``, moved into place by :meth:`finish`.

    Opening fails at once (:class:`RecordingError`) when ``path`` cannot be written, before
    anything is recorded; a run that fails or is abandoned leaves no file behind, and never
    half overwrites an older recording. Use as a context manager: an exception aborts.
    """

    def __init__(self, path: str | Path, compresslevel: int = COMPRESSLEVEL) -> None:
        self.path = Path(path)
        if self.path.is_dir():
            raise RecordingError(f"cannot write recording {path}: it is a directory")
        self._tmp = self.path.with_name(f".{self.path.name}.{os.getpid()}.partial")
        try:
            self._raw: IO[bytes] | None = open(self._tmp, "wb")  # noqa: SIM115 (closed by finish/abort)
        except OSError as exc:
            raise RecordingError(f"cannot write recording {path}: {one_line(exc.strerror or exc)}") from None
        self._gz = gzip.GzipFile(filename="", mode="wb", fileobj=self._raw, compresslevel=compresslevel, mtime=0)
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

    def write(self, batch: Batch) -> None:
        """Append one batch (its ``info`` too, when it has one)."""
        if not self._started:
            raise RecordingError("write() before start(): a recording begins with its header")
        record = batch_to_wire(batch, self._run)
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
            assert self._raw is not None
            self._raw.close()
            self._raw = None
            os.replace(self._tmp, self.path)
        except OSError as exc:
            self.abort()
            raise RecordingError(f"cannot write recording {self.path}: {one_line(exc.strerror or exc)}") from None
        return self.count

    def abort(self) -> None:
        """Close and remove the unfinished file (nothing at ``path`` changes)."""
        if self._raw is not None:
            with contextlib.suppress(OSError):
                self._gz.close()
            self._raw.close()
            self._raw = None
        self._tmp.unlink(missing_ok=True)

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
        if self._raw is not None:
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


# -- checking --------------------------------------------------------------------------------


def _engine_map(info: dict[str, Any], key: str, ok: Any) -> None:
    value = info.get(key)
    if value is None:
        return
    if not isinstance(value, dict) or not all(k in ENGINE_IDS and ok(v) for k, v in value.items()):
        raise ValueError(f"info field {key!r} is not a map of engine to valid values")


def _is_int(v: object) -> bool:
    return type(v) is int and -INT64 <= v < INT64


def _is_share(v: object) -> bool:
    return type(v) in (int, float) and math.isfinite(v) and 0 < v <= 1024  # type: ignore[arg-type]


def check_info(info: object) -> dict[str, Any]:
    """``info`` if it is a status record the app can show, else ValueError (one line)."""
    if not isinstance(info, dict):
        raise ValueError("info is not a record")
    engines = info.get("engines")
    if engines is not None and not (
        isinstance(engines, list)
        and engines
        and all(isinstance(e, str) and e in ENGINE_IDS for e in engines)
        and len(set(engines)) == len(engines)
    ):
        raise ValueError("info field 'engines' is not a list of known engines")
    scenario = info.get("scenario")
    if scenario is not None and not (isinstance(scenario, str) and scenario in SCENARIOS):
        raise ValueError(f"info names an unknown scenario {one_line(scenario)[:40]!r}")
    settings = info.get("settings")
    if settings is not None:
        if not isinstance(settings, dict):
            raise ValueError("info field 'settings' is not a record")
        try:
            Settings().with_changes(**settings)
        except (SettingsError, TypeError) as exc:
            raise ValueError(f"recorded settings: {one_line(exc)}") from None
    _engine_map(info, "modes", lambda v: isinstance(v, str) and v in MODES)
    _engine_map(info, "ports", lambda v: v is None or (_is_int(v) and 0 <= v < 65536))
    _engine_map(info, "pids", lambda v: v is None or (_is_int(v) and v >= 0))
    _engine_map(info, "placement", lambda v: isinstance(v, str))
    _engine_map(info, "cpu_share", _is_share)
    for key in ("run", "pid"):
        if key in info and not (_is_int(info[key]) and info[key] >= 0):
            raise ValueError(f"info field {key!r} is not a non-negative integer")
    if "zoom_ms" in info and not _is_share(info["zoom_ms"]):  # the picture's zoom (a tape saved by the app)
        raise ValueError("info field 'zoom_ms' is not a zoom in ms per column")
    if "load" in info and not isinstance(info["load"], bool):
        raise ValueError("info field 'load' is not true or false")
    return info


# -- reading ---------------------------------------------------------------------------------


def _no_constant(name: str) -> None:
    raise ValueError(f"{name} is not a number a recording holds")


class RecordingReader:
    """Reads and checks one recording, a batch at a time; every failure is a :class:`RecordingError`.

    Opening reads the header (``header``, ``info``); iterating yields every batch, and ends
    only after the end record and the gzip trailer (its CRC) have been read.
    """

    def __init__(self, path: str | Path) -> None:
        self.path = str(path)
        self.count = 0
        try:
            self._raw: IO[bytes] = open(path, "rb")  # noqa: SIM115 (closed by close())
        except OSError as exc:
            raise RecordingError(f"cannot read recording {path}: {one_line(exc.strerror or exc)}") from None
        try:
            self.header = self._read_header()
        except BaseException:
            self.close()
            raise
        self.info: dict[str, Any] = self.header["info"]

    # -- errors, one line each
    def _truncated(self) -> RecordingError:
        return RecordingError(f"recording {self.path} is truncated ({self.count} batches read)")

    def _corrupt(self, why: object) -> RecordingError:
        return RecordingError(f"recording {self.path} is corrupt after {self.count} batches: {one_line(why)}")

    def _foreign(self, what: str) -> RecordingError:
        return RecordingError(f"{self.path} is not a syncviz recording ({what})")

    def _read_header(self) -> dict[str, Any]:
        magic = self._raw.read(2)
        if magic != GZIP_MAGIC:
            if not magic:
                raise self._foreign("the file is empty")
            if magic == GZIP_MAGIC[:1]:
                raise self._truncated()
            if magic.startswith(PICKLE_PROTO):
                raise self._foreign("it is a pickle, which syncviz never loads")
            raise self._foreign("not gzip-compressed")
        self._raw.seek(0)
        self._gz = gzip.GzipFile(filename="", mode="rb", fileobj=self._raw)
        first = self._call(lambda: self._gz.peek(1)[:1])
        if first == PICKLE_PROTO:
            raise RecordingError(
                f"{self.path} is an old-format (pickle, version 1) recording, which this syncviz does not read "
                "(loading one could run code): record it again with `syncviz record`"
            )
        if first != b"{":
            raise self._foreign("its content is not a syncviz-recording header" if first else "it is empty")
        header = self._parse(self._next_line(), header=True)
        if not isinstance(header, dict) or header.get("format") != FORMAT:
            raise self._foreign("no syncviz-recording header")
        version = header.get("version")
        if version != VERSION or type(version) is not int:
            raise RecordingError(
                f"{self.path} is syncviz-recording format version {one_line(version)[:20]}, "
                f"which this syncviz does not read (it reads version {VERSION})"
            )
        try:
            check_info(header.get("info"))
            if header.get("settings") is not None:
                check_info({"settings": header["settings"]})
        except ValueError as exc:
            raise self._corrupt(f"header: {exc}") from None
        if not isinstance(header.get("created", ""), str):
            raise self._corrupt("header: 'created' is not text")
        seconds = header.get("seconds")
        if seconds is not None and not (type(seconds) in (int, float) and 0 <= seconds < INT64):
            raise self._corrupt("header: 'seconds' is not a duration")
        return header

    def _call(self, read: Any) -> bytes:
        """Run one read of the gzip stream, its failures as one-line errors."""
        try:
            return read()
        except EOFError:
            raise self._truncated() from None
        except (gzip.BadGzipFile, zlib.error) as exc:
            raise self._corrupt(exc) from None
        except OSError as exc:
            raise RecordingError(f"cannot read recording {self.path}: {one_line(exc.strerror or exc)}") from None

    def _next_line(self) -> bytes | None:
        """The next record's bytes (without its newline); ``None`` at the end of the file."""
        line = self._call(lambda: self._gz.readline(MAX_LINE + 1))
        if not line:
            return None  # the gzip trailer (length, CRC) has been checked by now
        if len(line) > MAX_LINE:
            raise self._corrupt(f"a record longer than {MAX_LINE} bytes")
        if not line.endswith(b"\n"):
            raise self._truncated()  # the file ends inside a record
        return line[:-1]

    def _parse(self, line: bytes | None, header: bool = False) -> Any:
        if line is None:
            raise self._foreign("no header") if header else self._truncated()
        try:
            return json.loads(line, parse_constant=_no_constant)
        except (ValueError, RecursionError) as exc:
            if header:
                raise self._foreign("its header is not JSON") from None
            raise self._corrupt(f"a record is not JSON ({exc.__class__.__name__})") from None

    def __iter__(self) -> Iterator[Batch]:
        while True:
            record = self._parse(self._next_line())  # the file ending before the end record: truncated
            if isinstance(record, dict) and "end" in record:
                if record != {"end": True, "batches": self.count}:
                    raise self._corrupt("the end record does not match the batches read")
                if self._next_line() is not None:
                    raise self._corrupt("data after the end record")
                return
            yield self._batch(record)

    def _batch(self, record: Any) -> Batch:
        try:
            batch = decode_batch(record).batch  # types and ranges checked there
            info = record.get("info")
            if info is not None:
                batch.info = check_info(info)
        except (WireError, ValueError) as exc:
            raise self._corrupt(f"batch {self.count + 1}: {exc}") from None
        self.count += 1
        return batch

    def close(self) -> None:
        gz = getattr(self, "_gz", None)
        if gz is not None:
            gz.close()
        self._raw.close()

    def __enter__(self) -> RecordingReader:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def read_recording(path: str | Path) -> tuple[dict[str, Any], list[Batch]]:
    """The header's info and every batch, or :class:`RecordingError`."""
    with RecordingReader(path) as reader:
        return reader.info, list(reader)


# -- recording and summing up ----------------------------------------------------------------


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


# -- playing back ----------------------------------------------------------------------------


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

    @classmethod
    def from_file(cls, path: str | Path) -> Replay:
        """The recording at ``path``, read and checked whole, or :class:`RecordingError`."""
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
