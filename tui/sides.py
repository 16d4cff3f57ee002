"""The tape's side tracks: values noted by stream time beside the batches (counters, source counters, samples).

A :class:`Side` keeps ``(t_ns, value)`` in order. With a codec, values older than ``hot_ns``
behind the newest are packed: their fields as JSON, zlib'd (about a tenth of their size as
objects; no pickle anywhere), appended to one ``bytearray`` with their times and offsets in
``array('q')`` columns, so five minutes of them are three buffers, not thousands of small objects
kept among the app's churn (see :mod:`~syncviz.tui.entries`).
"""

from __future__ import annotations

import bisect
import json
import zlib
from array import array
from collections import deque
from collections.abc import Callable
from dataclasses import fields
from typing import Any

from syncviz.engines.blocked import BlockedCall
from syncviz.engines.counts import ServerSnapshot
from syncviz.engines.stats import Counters

Codec = tuple[Callable[[Any], object], Callable[[Any], Any]]  # a value to JSON-able fields, and back
COMPACT_AT = 256  # rows dropped from the front of columns (and their buffer) before they are moved down ...
COMPACT_SHARE = 8  # ... once they are also an eighth of what the columns hold


def compact_due(dropped: int, held: int) -> bool:
    """Whether columns holding ``held`` rows, the first ``dropped`` of them gone, are moved down now.

    Moving costs the rows kept (one ``memmove`` a column), so it waits for an eighth of them to be
    gone: O(1) a row. It waited for half (and 1,024 or 4,096 rows): at 1,000 clients the tape's
    columns and the counters' buffers then grew for the app's first ten minutes (+1.0 MB from
    minute 1.5 to 5.5 in a census of the app).
    """
    return dropped >= COMPACT_AT and dropped * COMPACT_SHARE >= held


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
    behind the newest are packed (see the module), the newest one never."""

    __slots__ = ("_blob", "_head", "_offsets", "_times", "codec", "hot", "hot_ns")

    def __init__(self, hot_ns: int | None, codec: Codec | None = None) -> None:
        self.hot: deque[tuple[int, Any]] = deque()  # the newest values, as objects
        self.hot_ns = hot_ns if codec is not None else None
        self.codec = codec
        self._times = array("q")  # packed values' times ...
        self._offsets = array("q")  # ... and where each starts in the blob (it ends where the next starts)
        self._blob = bytearray()
        self._head = 0  # packed values before it are gone

    @property
    def packed_count(self) -> int:
        return len(self._times) - self._head

    def __len__(self) -> int:
        return self.packed_count + len(self.hot)

    def append(self, t_ns: int, value: Any) -> None:
        hot = self.hot
        hot.append((t_ns, value))
        if self.hot_ns is None or self.codec is None:
            return
        floor, out = t_ns - self.hot_ns, self.codec[0]
        while len(hot) > 1 and hot[0][0] < floor:
            t, kept = hot.popleft()
            self._times.append(t)
            self._offsets.append(len(self._blob))
            self._blob += zlib.compress(json.dumps(out(kept), separators=(",", ":")).encode(), 1)

    def trim(self, start_ns: int) -> None:
        """Drop what is older than ``start_ns``, but the value in effect at it."""
        while len(self) > 1 and self._time(1) <= start_ns:
            if self.packed_count:
                self._head += 1
            else:
                self.hot.popleft()
        if compact_due(self._head, len(self._times)):
            cut = self._offsets[self._head] if self._head < len(self._offsets) else len(self._blob)
            del self._times[: self._head], self._offsets[: self._head], self._blob[:cut]
            for i in range(len(self._offsets)):
                self._offsets[i] -= cut
            self._head = 0

    def clear(self) -> None:
        self.__init__(self.hot_ns, self.codec)  # type: ignore[misc]

    def _time(self, i: int) -> int:
        packed = self.packed_count
        return self._times[self._head + i] if i < packed else self.hot[i - packed][0]

    def index_after(self, t_ns: int) -> int:
        """Index of the first value noted later than ``t_ns``."""
        k = bisect.bisect_right(self._times, t_ns, self._head)
        if k < len(self._times):
            return k - self._head
        return self.packed_count + bisect.bisect_right(self.hot, t_ns, key=_first)

    def value(self, i: int) -> Any:
        packed = self.packed_count
        if i >= packed:
            return self.hot[i - packed][1]
        k = self._head + i
        end = self._offsets[k + 1] if k + 1 < len(self._offsets) else len(self._blob)
        assert self.codec is not None
        return self.codec[1](json.loads(zlib.decompress(self._blob[self._offsets[k] : end])))

    def values(self, lo: int, hi: int) -> list[Any]:
        return [self.value(i) for i in range(lo, hi)]

    def last(self) -> Any:
        """The newest value (never packed; None: none yet)."""
        return self.hot[-1][1] if self.hot else None


def _first(item: tuple[int, Any]) -> int:
    return item[0]
