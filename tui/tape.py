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

from collections import deque
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from syncviz.engines.counts import ServerSnapshot
from syncviz.engines.events import Batch
from syncviz.engines.recording import RecordingWriter, one_line
from syncviz.engines.served import WINDOW_S, ServedRate
from syncviz.engines.stats import Counters
from syncviz.tui.entries import OBJECT_BYTES, Entries, Entry
from syncviz.tui.history import History
from syncviz.tui.sides import COUNTERS_CODEC, SERVERS_CODEC, Side
from syncviz.tui.spill import Spill

__all__ = ["OBJECT_BYTES", "Entry", "Side", "Spill", "Tape", "settle"]

KEEP_S = 300  # five minutes of stream time
HOT_S = 1
"""The newest seconds kept as objects; older ones packed. At 1,000 clients (~20,000 records a
second) objects take ~240 bytes a record. Objects kept that long are churned by the allocators,
and the app's RSS grew by their high-water marks (glibc's heap, pymalloc's pools): from minute 1
to 10 in tmux, +8.5 MB with 10 s kept (123.5 -> 132.0 MB), +4.6 / +5.3 with 2 s, +4.0 / +5.1
with 1 s (89.4 -> 93.4, 89.0 -> 94.2). Packed they are ~1/25 of that; a scrub unpacks what it feeds
(:mod:`~syncviz.tui.scrub`)."""
MAX_BYTES = 256_000_000  # the tape's size cap
PACK_PER_ADD = 4  # batches packed per batch added (catches up after a burst)
SECOND_NS = 1_000_000_000
SPILL_NS = 30 * SECOND_NS  # stream time one temporary file takes before the next one starts
SPILL_BYTES = 16_000_000  # or its size


class Tape:
    """The last :data:`KEEP_S` seconds of the stream the app was fed (bounded, see the module)."""

    def __init__(
        self, keep_s: float = KEEP_S, max_bytes: int = MAX_BYTES, hot_s: float = HOT_S, spill: bool = True
    ) -> None:
        self.keep_ns = int(keep_s * SECOND_NS)
        self.hot_ns = int(hot_s * SECOND_NS)
        self.max_bytes = max_bytes
        self.entries = Entries()
        self.bytes = 0
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
        newest = self.entries.newest_hot
        if newest is not None and newest.hot is not None:
            settle(newest.hot)  # the board has been fed it by now
        entry = Entry(t, items, self._info, ns_per_col, batch)
        self.entries.append(entry)
        self.bytes += entry.size
        self._pack(t)
        self._trim(t)

    def _pack(self, now: int) -> None:
        entries, floor = self.entries, now - self.hot_ns
        for _ in range(PACK_PER_ADD):
            entry = entries.oldest_hot
            if entry is None or entry.t_ns >= floor:
                return
            self.bytes -= entry.size
            size, failed = entries.pack_oldest(self._spill_for(entry.t_ns))
            if failed is not None:
                self._in_memory("could not write to a temporary file", failed)
            self.bytes += size

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
        self.spill_note = f"minutes older than {self.hot_ns / SECOND_NS:g} s kept in memory: {why} ({one_line(exc)})"

    def spilled_bytes(self) -> int:
        """The size of the temporary files the kept entries are in (their expired parts included)."""
        return self.entries.spilled_bytes()

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
        while entries and (entries.times(0) < floor or (self.bytes > self.max_bytes and len(entries) > 1)):
            old = entries.popleft()
            self.bytes -= old.size
            if old.t_ns >= floor:
                self.capped = True
        start = self.start_ns
        for side in (self._counters, self._samples, self._servers):
            side.trim(start)

    def clear(self) -> None:
        self.entries.clear()
        self.bytes = 0
        self.capped = False
        self._spill, self.spill_note = None, ""  # the files close as their entries go; a new one is tried
        for side in (self._counters, self._samples, self._servers):
            side.clear()

    # -- reading -------------------------------------------------------------------------
    @property
    def start_ns(self) -> int:
        return self.entries.times(0) if self.entries else 0

    @property
    def end_ns(self) -> int:
        return self.entries.times(len(self.entries) - 1) if self.entries else 0

    @property
    def span_s(self) -> float:
        """The stream time kept (with :attr:`capped` and :attr:`spill_note`: what to say about it)."""
        return (self.end_ns - self.start_ns) / SECOND_NS

    def index_after(self, t_ns: int) -> int:
        """Index of the first entry later than ``t_ns``."""
        return self.entries.index_after(t_ns)

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

    def servers_at(self, t_ns: int) -> dict[str, tuple[ServerSnapshot, float | None]]:
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
        side = self._servers
        with RecordingWriter(path) as writer:
            writer.start(info, round(seconds, 3))
            for entry in entries:
                i = side.index_after(entry.t_ns)  # the engines' source counters then (a packed batch has none)
                servers = {name: snap.as_dict() for name, snap in side.value(i - 1).items()} if i else None
                writer.write(entry.batch, servers=servers)
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
