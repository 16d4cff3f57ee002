"""The pipe between the engine processes and their parent: versioned, validated plain records.

A frame is a 4-byte big-endian length and a JSON array ``[kind, payload]``; nothing read
from a pipe is ever unpickled. Batches travel as flat integer lists (five per transition,
five per latency sample, three per lag sample) and are checked on the way in: a frame that
is not what it claims raises :class:`WireError`, one line.
"""

from __future__ import annotations

import itertools
import json
import struct
from typing import Any, BinaryIO

from .events import Batch

VERSION = 1
FRAME = struct.Struct(">I")
MAX_FRAME = 64 * 1024 * 1024
KINDS = frozenset({"start", "started", "batch", "error", "apply", "scenario", "targets", "halt", "stop", "stopped"})


class WireError(ValueError):
    """A frame that is not a valid syncviz record; the message is one line."""


def write_frame(stream: BinaryIO, kind: str, payload: object = None) -> None:
    data = json.dumps([kind, payload], separators=(",", ":")).encode()
    stream.write(FRAME.pack(len(data)) + data)
    stream.flush()


def read_frame(stream: BinaryIO) -> tuple[str, Any] | None:
    """The next ``(kind, payload)``, ``None`` at end of stream, or :class:`WireError`."""
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
    return frame[0], frame[1]


def batch_to_wire(batch: Batch, run: int) -> dict[str, Any]:
    chain = itertools.chain.from_iterable
    return {
        "v": VERSION,
        "run": run,
        "t": batch.t_ns,
        "dropped": batch.dropped,
        "tr": list(chain(batch.transitions)),
        "lat": [int(x) for x in chain(batch.latencies)],
        "lag": list(chain(batch.lags)),
    }


def _ints(payload: dict[str, Any], key: str, width: int) -> list[tuple[int, ...]]:
    flat = payload.get(key)
    if not isinstance(flat, list) or len(flat) % width:
        raise WireError(f"batch field {key!r} is not a list of {width}-tuples")
    if not all(type(x) is int for x in flat):
        raise WireError(f"batch field {key!r} holds a value that is not an integer")
    it = iter(flat)
    return list(zip(*([it] * width), strict=True))


def batch_from_wire(payload: object) -> tuple[Batch, int]:
    """The batch and the run number it belongs to, validated."""
    if not isinstance(payload, dict) or payload.get("v") != VERSION:
        raise WireError(f"batch is not a version {VERSION} record")
    t, run, dropped = payload.get("t"), payload.get("run"), payload.get("dropped", 0)
    if not all(type(x) is int and x >= 0 for x in (t, run, dropped)):
        raise WireError("batch header fields must be non-negative integers")
    batch = Batch(t_ns=t, dropped=dropped)
    batch.transitions = _ints(payload, "tr", 5)  # type: ignore[assignment]
    batch.latencies = [(a, b, c, d, bool(ok)) for a, b, c, d, ok in _ints(payload, "lat", 5)]
    batch.lags = _ints(payload, "lag", 3)  # type: ignore[assignment]
    return batch, run
