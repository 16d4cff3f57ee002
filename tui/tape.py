"""The app's tape: the last minutes of the batches it was fed, to draw any of those moments again.

The :class:`~syncviz.tui.board.Board` is a function of the batches it is fed, so a past moment
is drawn by feeding a fresh board the taped batches up to it (:mod:`syncviz.tui.scrub`). The
tape keeps, by stream time, the last :data:`KEEP_S` seconds of:

* every batch, with the status ``info`` and the column width in effect when it arrived
  (digested streams carry their picture at that width only);
* the counters the app showed (:class:`~syncviz.engines.stats.Counters`, a few times a second)
  and the once-a-second samples of its sparklines (req/s and p99), so the counters of a past
  moment are what the app said at that moment, cumulative ones included, whatever the stream's kind;
* the engines' own source counters (:class:`~syncviz.engines.counts.ServerSnapshot`), from
  which a past moment's ``served/s`` is worked out.

Counters and source counters older than :data:`HOT_S` are kept in memory as their fields in
JSON, zlib'd (:class:`Side`: about a tenth of their size as objects; no pickle anywhere), so five
minutes of them take well under a megabyte at any load.

Batches older than :data:`HOT_S` are packed (their wire record as JSON, zlib'd: about a
twentieth of their size as Python objects) and written out of the process's memory, to unlinked
temporary files (:class:`Spill`: gone on exit, even on ``kill -9``), each entry keeping its
offset and length; they are read back, unpacked and checked by the wire decoder when a moment
that far back is drawn or saved. A file takes :data:`SPILL_NS` of stream time (or
:data:`SPILL_BYTES`), then the next one starts; a file is closed, its space freed, once none of
its entries is kept (nor held by a save in progress), so the files hold the tape's minutes and
at most one file's worth more, however long the app runs. When no temporary file can be made or
written (an unwritable temporary directory, a full disk), packed batches stay in memory and
:attr:`Tape.spill_note` says so in one line.

The tape is bounded by stream time and by :data:`MAX_BYTES` (objects counted at
:data:`OBJECT_BYTES` per record as :func:`~syncviz.engines.stats.stream_items` counts them,
packed ones by their size, in a file or not), so memory stays bounded at any load; when the
cap cuts the minutes short, :attr:`Tape.capped` says so and :attr:`Tape.span_s` is the span it
really holds. :meth:`Tape.save` writes it as a recording (v2) that ``syncviz replay`` opens.
"""

from __future__ import annotations

import bisect
import json
import zlib
from collections import deque
from collections.abc import Callable, Iterator
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any

from syncviz.engines.counts import ServerSnapshot
from syncviz.engines.events import Batch
from syncviz.engines.recording import RecordingError, RecordingWriter
from syncviz.engines.served import WINDOW_S, ServedRate
from syncviz.engines.stats import BlockedCall, Counters
from syncviz.engines.wire import batch_to_wire, decode_batch
from syncviz.tui.history import History
from syncviz.tui.spill import Spill

KEEP_S = 300  # five minutes of stream time
HOT_S = 10
"""The newest seconds kept as objects (drawn at once); older ones packed. A step back from live
(the visible window at the default zoom and scrub's 6 s margin) stays within them. At 1,000
clients (~20,000 records a second) 10 s are ~50 MB as objects: 30 s were ~150 MB, the app's RSS
212 MB at minute 1 against 124 MB with 10 (headless, io-bound)."""
MAX_BYTES = 256_000_000  # the tape's size cap
OBJECT_BYTES = 240  # memory per stream record kept as objects (measured: io-bound, digest stream)
PACK_PER_ADD = 4  # batches packed per batch added (catches up after a burst)
SECOND_NS = 1_000_000_000
SPILL_NS = 30 * SECOND_NS  # stream time one temporary file takes before the next one starts
SPILL_BYTES = 16_000_000  # or its size


@dataclass(slots=True)
class Entry:
    """One batch as the app received it, with what was in effect when it arrived."""

    t_ns: int
    items: int
    info: dict[str, Any]  # the board's status info before this batch
    ns_per_col: int
    hot: Batch | None  # the batch, or None once packed
    packed: bytes = b""  # packed, kept in memory (no temporary file)
    spill: Spill | None = None  # packed, in this file at offset, length bytes
    offset: int = 0
    length: int = 0

    @property
    def size(self) -> int:
        if self.hot is not None:
            return self.items * OBJECT_BYTES
        return self.length if self.spill is not None else len(self.packed)

    @property
    def batch(self) -> Batch:
        """The batch (unpacked and checked by the wire decoder when packed; :class:`RecordingError`
        in one line when it cannot be read back)."""
        if self.hot is not None:
            return self.hot
        try:
            data = self.packed if self.spill is None else self.spill.read(self.offset, self.length)
            record = json.loads(zlib.decompress(data))
            batch = decode_batch(record).batch  # the same checks as a pipe's or a file's
        except (OSError, zlib.error, ValueError) as exc:
            raise RecordingError(f"a buffered batch could not be read back: {_line(exc)}") from None
        batch.info = record.get("info")
        return batch

    def pack(self, spill: Spill | None) -> OSError | None:
        """Pack the batch, into ``spill`` (or memory: ``None``, or when the write fails: the error)."""
        if self.hot is None:
            return None
        record = batch_to_wire(self.hot, 0)
        if self.hot.info is not None:
            record["info"] = self.hot.info
        self.hot, self.packed = None, zlib.compress(json.dumps(record, separators=(",", ":")).encode(), 1)
        if spill is None:
            return None
        try:
            self.offset = spill.write(self.packed)
        except OSError as exc:
            return exc
        self.spill, self.length, self.packed = spill, len(self.packed), b""
        return None


Codec = tuple[Callable[[Any], object], Callable[[Any], Any]]  # a value to JSON-able fields, and back
_COUNTER_FIELDS = tuple(f.name for f in fields(Counters))


def _counters_out(value: dict[str, Counters]) -> object:
    return {name: [getattr(c, f) for f in _COUNTER_FIELDS] for name, c in value.items()}


def _counters_in(plain: dict[str, list[Any]]) -> dict[str, Counters]:
    out = {}
    for name, values in plain.items():
        c = Counters(**dict(zip(_COUNTER_FIELDS, values, strict=True)))
        if c.blocked is not None:
            c.blocked = BlockedCall(*c.blocked)
        out[name] = c
    return out


COUNTERS_CODEC: Codec = (_counters_out, _counters_in)
SERVERS_CODEC: Codec = (
    lambda value: {name: s.as_dict() for name, s in value.items()},
    lambda plain: {name: ServerSnapshot.from_dict(d) for name, d in plain.items()},
)


class Side:
    """Values noted by stream time (oldest first); with a ``codec``, those older than ``hot_ns``
    behind the newest are kept as their fields in JSON, zlib'd, the newest one never."""

    __slots__ = ("_packed_to", "codec", "hot_ns", "items")

    def __init__(self, hot_ns: int | None, codec: Codec | None = None) -> None:
        self.items: deque[tuple[int, Any]] = deque()
        self.hot_ns = hot_ns if codec is not None else None
        self.codec = codec
        self._packed_to = 0  # items before this index are packed

    def append(self, t_ns: int, value: Any) -> None:
        items = self.items
        items.append((t_ns, value))
        if self.hot_ns is None or self.codec is None:
            return
        floor, out = t_ns - self.hot_ns, self.codec[0]
        while self._packed_to < len(items) - 1 and items[self._packed_to][0] < floor:
            t, kept = items[self._packed_to]
            plain = json.dumps(out(kept), separators=(",", ":"))
            items[self._packed_to] = (t, zlib.compress(plain.encode(), 1))
            self._packed_to += 1

    def trim(self, start_ns: int) -> None:
        """Drop what is older than ``start_ns``, but the value in effect at it."""
        items = self.items
        while len(items) > 1 and items[1][0] <= start_ns:
            items.popleft()
            self._packed_to = max(0, self._packed_to - 1)

    def clear(self) -> None:
        self.items.clear()
        self._packed_to = 0

    def index_after(self, t_ns: int) -> int:
        """Index of the first value noted later than ``t_ns``."""
        return bisect.bisect_right(self.items, t_ns, key=_first)

    def value(self, i: int) -> Any:
        kept = self.items[i][1]
        if isinstance(kept, bytes) and self.codec is not None:
            return self.codec[1](json.loads(zlib.decompress(kept)))
        return kept

    def values(self, lo: int, hi: int) -> list[Any]:
        return [self.value(i) for i in range(lo, hi)]

    def last(self) -> Any:
        """The newest value (never packed; None: none yet)."""
        return self.items[-1][1] if self.items else None


class Tape:
    """The last :data:`KEEP_S` seconds of the stream the app was fed (bounded, see the module)."""

    def __init__(
        self, keep_s: float = KEEP_S, max_bytes: int = MAX_BYTES, hot_s: float = HOT_S, spill: bool = True
    ) -> None:
        self.keep_ns = int(keep_s * SECOND_NS)
        self.hot_ns = int(hot_s * SECOND_NS)
        self.max_bytes = max_bytes
        self.entries: deque[Entry] = deque()
        self.bytes = 0
        self._packed_to = 0  # entries before this index are packed
        self.capped = False  # the cap dropped batches younger than keep_s
        self.spill = spill  # packed batches to temporary files (False: in memory)
        self.spill_note = ""  # why they are in memory after all (one line; "" when they are not)
        self._spill: Spill | None = None  # the file being appended to
        self._counters = Side(self.hot_ns, COUNTERS_CODEC)  # dict[str, Counters]
        self._samples = Side(None)  # dict[str, (rps, p99_ms)]: what the sparklines take of them
        self._servers = Side(self.hot_ns, SERVERS_CODEC)  # dict[str, ServerSnapshot]
        self._info_seen: dict[str, Any] | None = None
        self._info: dict[str, Any] = {}

    # -- filling -------------------------------------------------------------------------
    def add(self, batch: Batch, items: int, info: dict[str, Any], ns_per_col: int) -> None:
        if info is not self._info_seen:  # a copy per status (the app may update its own in place)
            self._info_seen, self._info = info, dict(info)
        t = max(batch.t_ns, self.end_ns)
        if self.entries and self.entries[-1].hot is not None:
            settle(self.entries[-1].hot)  # the board has been fed it by now
        entry = Entry(t, items, self._info, ns_per_col, batch)
        self.entries.append(entry)
        self.bytes += entry.size
        self._pack(t)
        self._trim(t)

    def _pack(self, now: int) -> None:
        entries, floor = self.entries, now - self.hot_ns
        for _ in range(PACK_PER_ADD):
            i = self._packed_to
            if i >= len(entries) or entries[i].t_ns >= floor:
                return
            entry = entries[i]
            self.bytes -= entry.size
            failed = entry.pack(self._spill_for(entry.t_ns))
            if failed is not None:
                self._in_memory("could not write to a temporary file", failed)
            self.bytes += entry.size
            self._packed_to += 1

    def _spill_for(self, t_ns: int) -> Spill | None:
        """The file to pack into (a new one every SPILL_NS or SPILL_BYTES), None: keep in memory."""
        if not self.spill or self.spill_note:
            return None
        current = self._spill
        if current is None or current.size >= SPILL_BYTES or t_ns - current.t0_ns >= SPILL_NS:
            try:
                current = self._spill = Spill(t_ns)
            except OSError as exc:
                self._in_memory("no temporary file", exc)
                return None
        return current

    def _in_memory(self, why: str, exc: OSError) -> None:
        self._spill = None
        self.spill_note = f"minutes older than {self.hot_ns / SECOND_NS:g} s kept in memory: {why} ({_line(exc)})"

    def spilled_bytes(self) -> int:
        """The size of the temporary files the kept entries are in (their expired parts included)."""
        return sum({id(e.spill): e.spill.size for e in self.entries if e.spill is not None}.values())

    def note_counters(self, t_ns: int, counters: dict[str, Counters], sample: bool = False) -> None:
        """The counters the app showed at ``t_ns``; ``sample``: also a point of its sparklines."""
        self._counters.append(t_ns, counters)
        if sample:
            self._samples.append(t_ns, {name: (c.rps, c.p99_ms) for name, c in counters.items()})

    def note_servers(self, t_ns: int, servers: dict[str, ServerSnapshot]) -> None:
        """The engines' own source counters, as the source reported them at stream time ``t_ns``."""
        if servers and self._servers.last() != servers:
            self._servers.append(t_ns, servers)

    def _trim(self, now: int) -> None:
        entries = self.entries
        floor = now - self.keep_ns
        while entries and (entries[0].t_ns < floor or (self.bytes > self.max_bytes and len(entries) > 1)):
            old = entries.popleft()
            self.bytes -= old.size
            self._packed_to = max(0, self._packed_to - 1)
            if old.t_ns >= floor:
                self.capped = True
        start = self.start_ns
        for side in (self._counters, self._samples, self._servers):
            side.trim(start)

    def clear(self) -> None:
        self.entries.clear()
        self.bytes = 0
        self._packed_to = 0
        self.capped = False
        self._spill, self.spill_note = None, ""  # the files close as their entries go; a new one is tried
        for side in (self._counters, self._samples, self._servers):
            side.clear()

    # -- reading -------------------------------------------------------------------------
    @property
    def start_ns(self) -> int:
        return self.entries[0].t_ns if self.entries else 0

    @property
    def end_ns(self) -> int:
        return self.entries[-1].t_ns if self.entries else 0

    @property
    def span_s(self) -> float:
        """The stream time kept (with :attr:`capped` and :attr:`spill_note`: what to say about it)."""
        return (self.end_ns - self.start_ns) / SECOND_NS

    def index_after(self, t_ns: int) -> int:
        """Index of the first entry later than ``t_ns``."""
        return bisect.bisect_right(self.entries, t_ns, key=_entry_t)

    def entry_at(self, t_ns: int) -> Entry | None:
        """The last entry at or before ``t_ns``."""
        i = self.index_after(t_ns)
        return self.entries[i - 1] if i else None

    def between(self, t0_ns: int, t1_ns: int) -> Iterator[Entry]:
        """Entries later than ``t0_ns`` and not later than ``t1_ns``, in order."""
        entries = self.entries
        for i in range(self.index_after(t0_ns), self.index_after(t1_ns)):
            yield entries[i]

    def counters_at(self, t_ns: int) -> dict[str, Counters]:
        """The counters the app showed last at or before ``t_ns`` (empty: none yet)."""
        side = self._counters
        i = side.index_after(t_ns)
        return side.value(i - 1) if i else {}

    def history_at(self, t_ns: int, keep_s: int | None = None) -> History:
        """The sparklines as they were at ``t_ns``."""
        history = History() if keep_s is None else History(keep_s)
        i = self._samples.index_after(t_ns)
        for sample in self._samples.values(max(0, i - history.keep_s), i):
            for name, (rps, p99) in sample.items():
                history.rps.setdefault(name, deque(maxlen=history.keep_s)).append(rps)
                history.p99.setdefault(name, deque(maxlen=history.keep_s)).append(p99)
        return history

    def servers_at(self, t_ns: int) -> dict[str, tuple[ServerSnapshot, float]]:
        """Each engine's source counters at ``t_ns`` and its ``served/s`` (:class:`ServedRate`) then."""
        side = self._servers
        i = side.index_after(t_ns)
        if not i:
            return {}
        lo = side.index_after(t_ns - 2 * int(WINDOW_S * SECOND_NS) - 1)
        rates: dict[str, ServedRate] = {}
        window = side.values(lo, i)
        for servers in window:
            for name, snap in servers.items():
                rates.setdefault(name, ServedRate()).update(snap)
        last = window[-1]
        return {name: (snap, rates[name].rps(snap.t_ns)) for name, snap in last.items()}

    # -- saving --------------------------------------------------------------------------
    def save(self, path: str | Path, entries: list[Entry] | None = None) -> int:
        """Write the tape (or ``entries`` taken from it) as a recording; how many batches.

        Raises :class:`~syncviz.engines.recording.RecordingError` (one line) when it cannot.
        """
        entries = list(self.entries) if entries is None else entries
        info = dict(entries[0].info) if entries else {}
        if entries:  # digested pictures come at one zoom: a replay opens at the newest
            info["zoom_ms"] = entries[-1].ns_per_col / 1e6
        seconds = (entries[-1].t_ns - entries[0].t_ns) / SECOND_NS if entries else 0.0
        with RecordingWriter(path) as writer:
            writer.start(info, round(seconds, 3))
            for entry in entries:
                writer.write(entry.batch)
            return writer.finish()


def settle(batch: Batch) -> None:
    """Make a batch that has been fed cheap to keep: its lists (and its digests' lists) as tuples.

    The cyclic garbage collector looks into every list on every full collection, item by item;
    a tuple of numbers it stops tracking at its first look. At 1,000 clients the hot window's
    lists held ~600,000 records: full collections came every ~3 s and took ~0.2 s each (measured
    in the app, frames held meanwhile). Only read from then on: scrubbing feeds it to fresh
    boards, packing and saving encode it.
    """
    for name in ("transitions", "latencies", "lags", "sizes", "blocks"):
        value = getattr(batch, name, None)
        if type(value) is list:
            setattr(batch, name, tuple(value))
    for _e, rec in batch.digests:
        for part in rec.values():
            for key, value in part.items():
                if type(value) is list:
                    part[key] = tuple(value)
    if type(batch.digests) is list:
        batch.digests = tuple(batch.digests)  # type: ignore[assignment]


def _entry_t(entry: Entry) -> int:
    return entry.t_ns


def _first(item: tuple[int, Any]) -> int:
    return item[0]


def _line(exc: object) -> str:
    return " ".join(str(exc).split())
