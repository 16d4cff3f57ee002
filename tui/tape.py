"""The app's tape: the last minutes of the batches it was fed, to draw any of those moments again.

The :class:`~syncviz.tui.board.Board` is a function of the batches it is fed, so a past moment
is drawn by feeding a fresh board the taped batches up to it (:mod:`syncviz.tui.scrub`). The
tape keeps, by stream time, the last :data:`KEEP_S` seconds of:

* every batch, with the status ``info`` and the column width in effect when it arrived
  (digested streams carry their picture at that width only);
* the counters the app showed (:class:`~syncviz.engines.stats.Counters`, a few times a second)
  and the once-a-second samples of its sparklines, so the counters of a past moment are what
  the app said at that moment, cumulative ones included, whatever the stream's kind;
* the engines' own source counters (:class:`~syncviz.engines.counts.ServerSnapshot`), from
  which a past moment's ``served/s`` is worked out.

Batches older than :data:`HOT_S` are packed (their wire record as JSON, zlib'd: about a
twentieth of their size as Python objects) and unpacked, checked by the wire decoder, when a
moment that far back is drawn. The tape is bounded by stream time and by :data:`MAX_BYTES`
(objects counted at :data:`OBJECT_BYTES` per record as :func:`~syncviz.engines.stats.stream_items`
counts them, packed ones by their size), so memory stays bounded at any load; when the cap
cuts the minutes short, :attr:`Tape.capped` says so and :attr:`Tape.span_s` is the span it
really holds. :meth:`Tape.save` writes it as a recording (v2) that ``syncviz
replay`` opens.
"""

from __future__ import annotations

import bisect
import json
import zlib
from collections import deque
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from syncviz.engines.counts import ServerSnapshot
from syncviz.engines.events import Batch
from syncviz.engines.recording import RecordingWriter
from syncviz.engines.served import WINDOW_S, ServedRate
from syncviz.engines.stats import Counters
from syncviz.engines.wire import batch_to_wire, decode_batch
from syncviz.tui.history import History

KEEP_S = 300  # five minutes of stream time
HOT_S = 30  # the newest seconds kept as objects (drawn at once); older ones packed
MAX_BYTES = 256_000_000  # the tape's size cap
OBJECT_BYTES = 240  # memory per stream record kept as objects (measured: io-bound, digest stream)
PACK_PER_ADD = 4  # batches packed per batch added (catches up after a burst)
SECOND_NS = 1_000_000_000


@dataclass(slots=True)
class Entry:
    """One batch as the app received it, with what was in effect when it arrived."""

    t_ns: int
    items: int
    info: dict[str, Any]  # the board's status info before this batch
    ns_per_col: int
    hot: Batch | None  # the batch, or None once packed
    packed: bytes = b""

    @property
    def size(self) -> int:
        return self.items * OBJECT_BYTES if self.hot is not None else len(self.packed)

    @property
    def batch(self) -> Batch:
        if self.hot is not None:
            return self.hot
        record = json.loads(zlib.decompress(self.packed))
        batch = decode_batch(record).batch  # the same checks as a pipe's or a file's
        batch.info = record.get("info")
        return batch

    def pack(self) -> None:
        if self.hot is None:
            return
        record = batch_to_wire(self.hot, 0)
        if self.hot.info is not None:
            record["info"] = self.hot.info
        self.packed = zlib.compress(json.dumps(record, separators=(",", ":")).encode(), 1)
        self.hot = None


class Tape:
    """The last :data:`KEEP_S` seconds of the stream the app was fed (bounded, see the module)."""

    def __init__(self, keep_s: float = KEEP_S, max_bytes: int = MAX_BYTES, hot_s: float = HOT_S) -> None:
        self.keep_ns = int(keep_s * SECOND_NS)
        self.hot_ns = int(hot_s * SECOND_NS)
        self.max_bytes = max_bytes
        self.entries: deque[Entry] = deque()
        self.bytes = 0
        self._packed_to = 0  # entries before this index are packed
        self.capped = False  # the cap dropped batches younger than keep_s
        self._counters: deque[tuple[int, dict[str, Counters]]] = deque()
        self._samples: deque[tuple[int, dict[str, Counters]]] = deque()
        self._servers: deque[tuple[int, dict[str, ServerSnapshot]]] = deque()
        self._info_seen: dict[str, Any] | None = None
        self._info: dict[str, Any] = {}

    # -- filling -------------------------------------------------------------------------
    def add(self, batch: Batch, items: int, info: dict[str, Any], ns_per_col: int) -> None:
        if info is not self._info_seen:  # a copy per status (the app may update its own in place)
            self._info_seen, self._info = info, dict(info)
        t = max(batch.t_ns, self.end_ns)
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
            entry.pack()
            self.bytes += entry.size
            self._packed_to += 1

    def note_counters(self, t_ns: int, counters: dict[str, Counters], sample: bool = False) -> None:
        """The counters the app showed at ``t_ns``; ``sample``: also a point of its sparklines."""
        self._counters.append((t_ns, counters))
        if sample:
            self._samples.append((t_ns, counters))

    def note_servers(self, t_ns: int, servers: dict[str, ServerSnapshot]) -> None:
        """The engines' own source counters, as the source reported them at stream time ``t_ns``."""
        if servers and (not self._servers or self._servers[-1][1] != servers):
            self._servers.append((t_ns, servers))

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
            while len(side) > 1 and side[1][0] <= start:  # keep the one in effect at the start
                side.popleft()

    def clear(self) -> None:
        self.entries.clear()
        self.bytes = 0
        self._packed_to = 0
        self.capped = False
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
        return _last_at(self._counters, t_ns) or {}

    def history_at(self, t_ns: int, keep_s: int | None = None) -> History:
        """The sparklines as they were at ``t_ns``."""
        history = History() if keep_s is None else History(keep_s)
        i = bisect.bisect_right(self._samples, t_ns, key=_first)
        for _, counters in list(self._samples)[max(0, i - history.keep_s) : i]:
            for name, c in counters.items():
                history.rps.setdefault(name, deque(maxlen=history.keep_s)).append(c.rps)
                history.p99.setdefault(name, deque(maxlen=history.keep_s)).append(c.p99_ms)
        return history

    def servers_at(self, t_ns: int) -> dict[str, tuple[ServerSnapshot, float]]:
        """Each engine's source counters at ``t_ns`` and its ``served/s`` (:class:`ServedRate`) then."""
        i = bisect.bisect_right(self._servers, t_ns, key=_first)
        if not i:
            return {}
        lo = bisect.bisect_left(self._servers, t_ns - 2 * int(WINDOW_S * SECOND_NS), key=_first)
        rates: dict[str, ServedRate] = {}
        for _, servers in list(self._servers)[lo:i]:
            for name, snap in servers.items():
                rates.setdefault(name, ServedRate()).update(snap)
        last = self._servers[i - 1][1]
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


def _entry_t(entry: Entry) -> int:
    return entry.t_ns


def _first(item: tuple[int, Any]) -> int:
    return item[0]


def _last_at(side: deque[tuple[int, Any]], t_ns: int) -> Any:
    i = bisect.bisect_right(side, t_ns, key=_first)
    return side[i - 1][1] if i else None
