"""The tape's entries: the newest batches as objects, the older ones packed, as columns of numbers.

An :class:`Entry` is one batch as the app received it. The newest :data:`~syncviz.tui.tape.HOT_S`
seconds of them hold their batch as objects; older ones hold it packed (:func:`pack_batch`: the
wire record as JSON, zlib'd), in a temporary file (:class:`~syncviz.tui.spill.Spill`) or, when no
file can be written, in memory. :class:`Entries` keeps them in order, the packed ones not as
objects but as rows of ``array('q')`` columns (time, records, column width, offset, length, file):
five minutes at 1,000 clients are ~9,000 batches, and one object each (with its numbers as int
objects, ~200 bytes apiece) made and kept among the hot window's churn grew the app's memory
minute after minute until the tape was full, and pinned the allocator's arenas after that.
Reading one (indexing, iterating) makes a fresh :class:`Entry` view of its row.
"""

from __future__ import annotations

import bisect
import json
import zlib
from array import array
from collections import deque
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from syncviz.engines.events import Batch
from syncviz.engines.recording import RecordingError, one_line
from syncviz.engines.wire import batch_to_wire, decode_batch
from syncviz.tui.sides import compact_due
from syncviz.tui.spill import Spill

OBJECT_BYTES = 240  # memory per stream record kept as objects (measured: io-bound, digest stream)
IN_MEMORY = -1  # the file column of a row packed in memory


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
    row: int = -1  # a packed entry's row: the same batch whatever view of it (-1: hot)

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
            return unpack_record(json.loads(zlib.decompress(data)))  # the same checks as a pipe's or a file's
        except (OSError, zlib.error, ValueError) as exc:
            raise RecordingError(f"a buffered batch could not be read back: {one_line(exc)}") from None


def pack_batch(batch: Batch) -> bytes:
    """A batch's wire record (with its status info) as JSON, zlib'd: ~1/20 of it as objects.

    A batch that is all of some pipe frames (``batch.frames``: the digest stream) keeps those
    frames' bytes as they came, ``{"t", "dropped", "info", "frames": [[kind, payload], ...]}``:
    encoding the objects again cost ~1 ms a batch at 1,000 clients (a tenth of the app's frame).
    """
    if batch.frames:
        head = {"t": batch.t_ns, "dropped": batch.dropped, "info": batch.info}
        data = json.dumps(head, separators=(",", ":")).encode()[:-1] + b',"frames":[' + b",".join(batch.frames) + b"]}"
        return zlib.compress(data, 1)
    record = batch_to_wire(batch, 0)
    if batch.info is not None:
        record["info"] = batch.info
    return zlib.compress(json.dumps(record, separators=(",", ":")).encode(), 1)


def unpack_record(record: object) -> Batch:
    """The batch :func:`pack_batch` packed, every frame checked as the pipe's are (``ValueError``)."""
    if not isinstance(record, dict):
        raise ValueError("a packed batch is not a record")
    frames = record.get("frames")
    if frames is None:
        batch = decode_batch(record).batch
    else:
        t, dropped = record.get("t"), record.get("dropped")
        if not isinstance(frames, list) or type(t) is not int or type(dropped) is not int:
            raise ValueError("a packed batch's frames, time or drop count is malformed")
        batch = Batch(t_ns=t, dropped=dropped)
        for frame in frames:
            if not (isinstance(frame, list) and len(frame) == 2 and frame[0] == "batch"):
                raise ValueError("a packed frame is not a batch frame")
            part = decode_batch(frame[1]).batch
            part.t_ns, part.dropped = 0, 0  # the packed batch's own, above
            batch.extend(part)
    info = record.get("info")
    batch.info = info if isinstance(info, dict) else None
    return batch


class Entries:
    """The tape's entries in stream order: packed rows (columns), then the hot entries (objects).

    What the tape does with them: :meth:`append` a hot one, :meth:`pack_oldest` (the oldest hot
    one becomes the newest packed row), :meth:`popleft`; and read them like a deque (``len``,
    ``e[i]``, iteration: :class:`Entry` views of the rows).
    """

    __slots__ = (
        "_base",
        "_cols",
        "_files",
        "_head",
        "_hot",
        "_info_rows",
        "_infos",
        "_last_file",
        "_mem",
        "_next_file",
        "_refs",
    )

    def __init__(self) -> None:
        self._hot: deque[Entry] = deque()
        self._cols = tuple(array("q") for _ in range(6))  # t_ns, items, ns_per_col, offset, length, file
        self._head = 0  # rows of the columns before it are gone
        self._base = 0  # the row number of the columns' index 0 (rows are numbered from the first ever)
        self._mem: dict[int, bytes] = {}  # row -> packed bytes kept in memory
        self._files: dict[int, Spill] = {}  # file number -> the file, while a kept row is in it
        self._refs: dict[int, int] = {}  # file number -> kept rows in it
        self._last_file: tuple[Spill, int] | None = None  # the file last packed into, and its number
        self._next_file = 0
        self._info_rows = array("q")  # the row from which each status info held
        self._infos: list[dict[str, Any]] = []

    # -- the deque's worth -----------------------------------------------------------------
    def __len__(self) -> int:
        return self.packed_count + len(self._hot)

    @property
    def packed_count(self) -> int:
        return len(self._cols[0]) - self._head

    def __getitem__(self, i: int) -> Entry:
        n = len(self)
        if i < 0:
            i += n
        if not 0 <= i < n:
            raise IndexError("tape entry index out of range")
        packed = self.packed_count
        return self._view(self._head + i) if i < packed else self._hot[i - packed]

    def __iter__(self) -> Iterator[Entry]:
        for k in range(self._head, len(self._cols[0])):
            yield self._view(k)
        yield from self._hot

    def times(self, i: int) -> int:
        """The stream time of entry ``i`` (no view made)."""
        packed = self.packed_count
        return self._cols[0][self._head + i] if i < packed else self._hot[i - packed].t_ns

    def index_after(self, t_ns: int) -> int:
        """Index of the first entry later than ``t_ns``."""
        cols = self._cols[0]
        k = bisect.bisect_right(cols, t_ns, self._head)
        if k < len(cols):
            return k - self._head
        return self.packed_count + bisect.bisect_right(self._hot, t_ns, key=_entry_t)

    # -- filling ---------------------------------------------------------------------------
    def append(self, entry: Entry) -> None:
        self._hot.append(entry)

    @property
    def newest_hot(self) -> Entry | None:
        return self._hot[-1] if self._hot else None

    @property
    def oldest_hot(self) -> Entry | None:
        return self._hot[0] if self._hot else None

    def pack_oldest(self, spill: Spill | None) -> tuple[int, OSError | None]:
        """Pack the oldest hot entry into ``spill`` (None: memory; memory too when the write fails,
        with the error); the bytes it takes now."""
        entry = self._hot.popleft()
        assert entry.hot is not None
        data = pack_batch(entry.hot)
        row = self._base + len(self._cols[0])
        failed, offset, file = None, 0, IN_MEMORY
        if spill is not None:
            try:
                offset = spill.write(data)
                file = self._file_number(spill)
            except OSError as exc:
                failed = exc
        if file == IN_MEMORY:
            self._mem[row] = data
        for col, value in zip(
            self._cols, (entry.t_ns, entry.items, entry.ns_per_col, offset, len(data), file), strict=True
        ):
            col.append(value)
        if not self._infos or self._infos[-1] is not entry.info:
            self._info_rows.append(row)
            self._infos.append(entry.info)
        return len(data), failed

    def _file_number(self, spill: Spill) -> int:
        last = self._last_file
        if last is None or last[0] is not spill:
            self._last_file = last = (spill, self._next_file)
            self._files[self._next_file] = spill
            self._next_file += 1
        self._refs[last[1]] = self._refs.get(last[1], 0) + 1
        return last[1]

    def popleft(self) -> Entry:
        """Drop the oldest entry; a view of it (its file stays open while the view is held)."""
        if not self.packed_count:
            return self._hot.popleft()
        k = self._head
        entry = self._view(k)
        row, file = self._base + k, self._cols[5][k]
        if file == IN_MEMORY:
            self._mem.pop(row, None)
        else:
            self._refs[file] -= 1
            if not self._refs[file]:
                del self._refs[file], self._files[file]  # the file closes once no view holds it
                if self._last_file is not None and self._last_file[1] == file:
                    self._last_file = None
        while len(self._info_rows) > 1 and self._info_rows[1] <= row + 1:
            del self._info_rows[0], self._infos[0]
        self._head += 1
        if compact_due(self._head, len(self._cols[0])):
            for col in self._cols:
                del col[: self._head]
            self._base += self._head
            self._head = 0
        return entry

    def clear(self) -> None:
        rows = self._base + len(self._cols[0])
        self.__init__()  # type: ignore[misc]
        self._base = rows  # row numbers are never given twice (a scrub keeps unpacked batches by row)

    def spilled_bytes(self) -> int:
        """The size of the files kept rows are in (their expired parts included)."""
        return sum(spill.size for spill in self._files.values())

    def _view(self, k: int) -> Entry:
        t, items, ns, offset, length, file = (col[k] for col in self._cols)
        row = self._base + k
        info = self._infos[bisect.bisect_right(self._info_rows, row) - 1]
        if file == IN_MEMORY:
            return Entry(t, items, info, ns, None, packed=self._mem[row], row=row)
        return Entry(t, items, info, ns, None, spill=self._files[file], offset=offset, length=length, row=row)


def _entry_t(entry: Entry) -> int:
    return entry.t_ns
