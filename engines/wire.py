"""The pipe between the engine processes and their parent: versioned, validated plain records.

A frame is a 4-byte big-endian length and a JSON array ``[kind, payload]``; nothing read
from a pipe is ever unpickled. Batches travel as flat integer lists (five per transition,
five per latency sample, three per lag sample) and are checked on the way in: a frame that
is not what it claims raises :class:`WireError`, one line.

An engine process's batch also carries ``srv``, its server's source counters
(:class:`~syncviz.engines.counts.ServerSnapshot` as a plain record), and ``stall_ns``, how long
its loop has been held; both are optional (the load process sends neither, and older frames
without them stay valid). So is ``bk``, the calls the engine's watchdog found holding its loop or
a worker (:mod:`~syncviz.engines.watchdog`): ``[[t_start_ns, duration_ns, engine, lane, ongoing,
where], ...]``, ``ongoing`` 0 or 1, ``where`` one short line of text. And ``sz``, finished
requests' bytes, five integers each (``t, engine, request, bytes_in, bytes_out``, -1 where not
known; absent in older frames and recordings). :func:`decode_batch` reads all of it.
"""

from __future__ import annotations

import itertools
import json
import struct
import sys
from typing import Any, BinaryIO, NamedTuple

from .counts import ServerSnapshot
from .digest_record import check_record
from .events import ENGINES, Batch, Block, Phase

VERSION = 1
FRAME = struct.Struct(">I")
MAX_FRAME = 64 * 1024 * 1024
MAX_BLOCKS = 1024  # blocked-call records in one batch
MAX_WHERE = 400  # characters of one blocked call's ``where``
INT64 = 1 << 63
KINDS = frozenset(
    {"start", "started", "batch", "error", "apply", "scenario", "targets", "halt", "stop", "stopped", "view"}
)


class WireError(ValueError):
    """A frame that is not a valid syncviz record; the message is one line."""


def frame_bytes(kind: str, payload: object = None) -> bytes:
    """One frame as written: its length, then ``[kind, payload]`` as JSON."""
    data = json.dumps([kind, payload], separators=(",", ":")).encode()
    return FRAME.pack(len(data)) + data


def write_frame(stream: BinaryIO, kind: str, payload: object = None) -> None:
    stream.write(frame_bytes(kind, payload))
    stream.flush()


def read_frame(stream: BinaryIO) -> tuple[str, Any] | None:
    """The next ``(kind, payload)``, ``None`` at end of stream, or :class:`WireError`."""
    got = read_frame_bytes(stream)
    return None if got is None else (got[0], got[1])


def read_frame_bytes(stream: BinaryIO) -> tuple[str, Any, bytes] | None:
    """:func:`read_frame`, and the frame's JSON as it was read (``[kind, payload]``)."""
    head = stream.read(FRAME.size)
    if len(head) < FRAME.size:
        return None
    (size,) = FRAME.unpack(head)
    if size > MAX_FRAME:
        raise WireError(f"frame of {size} bytes is over the {MAX_FRAME} limit")
    data = stream.read(size)
    if len(data) < size:
        return None
    try:
        frame = json.loads(data)
    except (ValueError, UnicodeDecodeError) as exc:
        raise WireError(f"frame is not JSON: {exc}") from None
    if not (isinstance(frame, list) and len(frame) == 2 and frame[0] in KINDS):
        raise WireError("frame is not [kind, payload] with a known kind")
    return frame[0], frame[1], data


def batch_to_wire(batch: Batch, run: int, server: ServerSnapshot | None = None) -> dict[str, Any]:
    """A batch as a plain record; ``server``: the engine's source counters, sent as ``srv``.

    Its digests (:mod:`~syncviz.engines.digest` records) travel as ``dg``: ``[[engine, record], ...]``.
    """
    chain = itertools.chain.from_iterable
    out = {
        "v": VERSION,
        "run": run,
        "t": batch.t_ns,
        "dropped": batch.dropped,
        "tr": list(chain(batch.transitions)),
        "lat": [int(x) for x in chain(batch.latencies)],
        "lag": list(chain(batch.lags)),
    }
    sizes = getattr(batch, "sizes", ())
    if sizes:
        out["sz"] = list(chain(sizes))
    if server is not None:
        out["srv"] = server.as_dict()
    if batch.digests:
        out["dg"] = [[e, rec] for e, rec in batch.digests]
    blocks = getattr(batch, "blocks", ())
    if blocks:
        out["bk"] = [[t, d, e, lane, int(ongoing), where] for t, d, e, lane, ongoing, where in blocks]
    return out


def _ints(payload: dict[str, Any], key: str, width: int) -> list[tuple[int, ...]]:
    flat = payload.get(key)
    if not isinstance(flat, list) or len(flat) % width:
        raise WireError(f"batch field {key!r} is not a list of {width}-tuples")
    if not {int}.issuperset(map(type, flat)):  # ints only (not bools), checked in C: ~2x the generator's speed
        raise WireError(f"batch field {key!r} holds a value that is not an integer")
    it = iter(flat)
    return list(zip(*([it] * width), strict=True))


INT64 = 1 << 63
_ENGINE = (0, len(ENGINES))
_TIME = (0, INT64)
_ANY = (-INT64, INT64)
# (low, high) of each field of a flat record, high excluded
_BOUNDS = {
    "tr": (_TIME, _ENGINE, (0, INT64), (-2, 1 << 31), (0, len(Phase))),  # t, engine, request, lane, phase
    "lat": (_TIME, _ENGINE, (-(1 << 31), INT64), _ANY, (0, 2)),  # t, engine, request (<0: errno), latency, ok
    "lag": (_TIME, _ENGINE, _ANY),  # t, engine, lag
    "sz": (_TIME, _ENGINE, (0, INT64), (-1, INT64), (-1, INT64)),  # t, engine, request, bytes in, bytes out
}


def check_ranges(record: dict[str, Any]) -> None:
    """Raise ValueError unless every integer of a decoded batch record lies in its field's range."""
    if record["t"] >= INT64 or record.get("dropped", 0) >= INT64:
        raise ValueError("batch time or drop count out of range")
    for key, bounds in _BOUNDS.items():
        flat = record.get(key)  # "sz" is optional (older frames)
        if not flat:
            continue
        width = len(bounds)
        for i, (low, high) in enumerate(bounds):
            column = flat[i::width]
            if min(column) < low or max(column) >= high:
                raise ValueError(f"batch field {key!r} holds a value out of range (item {i} of each {width})")


_LOW, _HIGH = (0, 7) if sys.byteorder == "little" else (7, 0)  # an int64's lowest and highest byte


def _byte(j: int) -> int:
    """Where an int64's byte of significance ``j`` (0: the lowest) lies in its native bytes."""
    return j if sys.byteorder == "little" else 7 - j


def _power_of_two(n: int) -> bool:
    return n > 0 and n & (n - 1) == 0


def check_packed(key: str, data: bytes) -> None:
    """:func:`check_ranges` for field ``key``'s records packed as native int64s
    (:data:`~syncviz.engines.events.RECORD`), in C: where a range allows it a column is checked on
    its bytes (a sign bit clear, high bytes zero), ~10x faster than ``min`` and ``max`` over it;
    the others (lanes, bytes in and out) as :func:`check_ranges` does. Raises ValueError."""
    bounds = _BOUNDS[key]
    width = len(bounds)
    stride = 8 * width
    if len(data) % stride:
        raise ValueError(f"packed field {key!r} is not a whole number of records")
    n = len(data) // stride
    if not n:
        return
    ints = memoryview(data).cast("q")
    for i, (low, high) in enumerate(bounds):
        at = 8 * i
        if low == 0 and high == INT64:
            ok = data[at + _HIGH :: stride].isascii()  # no sign bit: 0 <= v < 2**63
        elif low == 0 and high <= 256:  # one low byte below high, the other seven zero
            rest = (j for j in range(8) if j != _LOW)
            ok = max(data[at + _LOW :: stride]) < high and all(data[at + j :: stride].count(0) == n for j in rest)
        elif low < 0 and data[at + _HIGH :: stride].isascii() and _power_of_two(high):
            # none negative (the commonest: a lane, bytes in and out), so above low: the bound below 2**k
            # is the bytes from the k-th bit up being zero
            whole, bits = divmod(high.bit_length() - 1, 8)
            ok = high == INT64 or (
                all(data[at + _byte(j) :: stride].count(0) == n for j in range(whole + (bits != 0), 8))
                and (bits == 0 or max(data[at + _byte(whole) :: stride]) < 1 << bits)
            )
        else:
            column = ints[i::width]
            ok = min(column) >= low and max(column) < high
        if not ok:
            raise ValueError(f"batch field {key!r} holds a value out of range (item {i} of each {width})")


class WireBatch(NamedTuple):
    """One decoded ``batch`` frame: the events, their run, and what the engine process adds."""

    batch: Batch
    run: int
    server: ServerSnapshot | None  # the server's source counters when the batch was drained
    stall_ns: int  # how long the engine's loop has been held so far (0: not held, or no loop)


def decode_batch(payload: object) -> WireBatch:
    """A ``batch`` frame's payload, validated; :class:`WireError` (one line) when it is not one."""
    if not isinstance(payload, dict) or payload.get("v") != VERSION:
        raise WireError(f"batch is not a version {VERSION} record")
    t, run, dropped = payload.get("t"), payload.get("run"), payload.get("dropped", 0)
    if not all(type(x) is int and x >= 0 for x in (t, run, dropped)):
        raise WireError("batch header fields must be non-negative integers")
    stall = payload.get("stall_ns", 0)
    if type(stall) is not int or stall < 0:
        raise WireError("batch field 'stall_ns' is not a non-negative integer")
    batch = Batch(t_ns=t, dropped=dropped)
    batch.transitions = _ints(payload, "tr", 5)  # type: ignore[assignment]
    batch.latencies = [(a, b, c, d, bool(ok)) for a, b, c, d, ok in _ints(payload, "lat", 5)]
    batch.lags = _ints(payload, "lag", 3)  # type: ignore[assignment]
    batch.sizes = _ints(payload, "sz", 5) if "sz" in payload else []  # type: ignore[assignment]
    try:
        check_ranges(payload)  # after the types: engine ids, phases, lanes and times in range
    except ValueError as exc:
        raise WireError(str(exc)) from None
    batch.digests = _digests(payload.get("dg", []))
    batch.blocks = blocks_from_wire(payload.get("bk", []))
    return WireBatch(batch, run, server_from_wire(payload), stall)


def batch_from_wire(payload: object) -> tuple[Batch, int]:
    """The batch and the run number it belongs to, validated."""
    got = decode_batch(payload)
    return got.batch, got.run


def _digests(items: object) -> list[tuple[int, dict[str, Any]]]:
    if not isinstance(items, list):
        raise WireError("batch field 'dg' is not a list")
    out = []
    for item in items:
        if not (isinstance(item, list) and len(item) == 2 and type(item[0]) is int and 0 <= item[0] < len(ENGINES)):
            raise WireError("batch field 'dg' holds an item that is not [engine, record]")
        try:
            check_record(item[1])
        except ValueError as exc:
            raise WireError(f"batch field 'dg': {exc}") from None
        out.append((item[0], _rows_as_tuples(item[1])))
    return out


def _rows_as_tuples(rec: dict[str, Any]) -> dict[str, Any]:
    """A checked digest record with its rows of integers (the picture's columns) as tuples.

    Lists are always tracked by the cyclic garbage collector; tuples of integers are untracked at
    its first look. At 1,000 clients the app keeps ~10 s of batches (:mod:`syncviz.tui.tape`):
    as lists their ~200,000 rows reached the oldest generation and set off a full collection every
    ~3 s (~0.3 s each, measured); as tuples the collector leaves them alone.
    """
    for part in rec.values():
        for key, rows in part.items():
            if type(rows) is list and rows and type(rows[0]) is list:
                part[key] = [tuple(r) for r in rows]
    return rec


def blocks_from_wire(items: object) -> list[Block]:
    """A batch's ``bk`` records, checked: every integer in its range, ``where`` printable text."""
    if not isinstance(items, list) or len(items) > MAX_BLOCKS:
        raise WireError(f"batch field 'bk' is not a list of at most {MAX_BLOCKS} blocked calls")
    out: list[Block] = []
    for item in items:
        if not (isinstance(item, list) and len(item) == 6 and all(type(x) is int for x in item[:5])):
            raise WireError("batch field 'bk' holds an item that is not [t, duration, engine, lane, ongoing, where]")
        t, d, e, lane, ongoing, where = item
        in_range = 0 <= t < INT64 and 0 <= d < INT64 and -1 <= lane < INT64
        if not (in_range and 0 <= e < len(ENGINES) and ongoing in (0, 1)):
            raise WireError("batch field 'bk' holds a value out of range")
        if not (isinstance(where, str) and 0 < len(where) <= MAX_WHERE and where.isprintable()):
            raise WireError(f"batch field 'bk' holds a 'where' that is not one line of up to {MAX_WHERE} characters")
        out.append((t, d, e, lane, bool(ongoing), sys.intern(where)))  # one string per call site, kept once
    return out


def server_from_wire(payload: dict[str, Any]) -> ServerSnapshot | None:
    """The batch's ``srv`` record (``None`` when it has none), or :class:`WireError`."""
    srv = payload.get("srv")
    if srv is None:
        return None
    try:
        return ServerSnapshot.from_dict(srv)
    except (ValueError, TypeError) as exc:
        raise WireError(f"batch field 'srv' is not server counts: {exc}") from None
