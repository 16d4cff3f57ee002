"""What a digest record holds, and its check where it crosses a pipe.

The digests (:class:`~syncviz.engines.digest.ServerDigest`,
:class:`~syncviz.engines.digest_client.ClientDigest`) send ``{"server": ...}`` and
``{"client": ...}`` records of per-column figures, coded here: a worker lane's slots
(:data:`SLOT`), the segment codes (:func:`segment_codes`: the one rule of who holds a worker,
which the traces follow too) and the columns kept left of now (:data:`KEEP_COLS`).
:func:`check_record` checks a record on the way in.
"""

from __future__ import annotations

from .events import Phase

# plain ints: comparing and hashing IntEnum members costs more on the server digest's hot path
READING, QUEUED, READY, DONE, FAILED = (
    int(p) for p in (Phase.READING, Phase.QUEUED, Phase.READY, Phase.DONE, Phase.FAILED)
)
NPHASES = len(Phase)
SLOT = {int(Phase.RUNNING): 0, int(Phase.BLOCKED): 1, int(Phase.READY): 2, int(Phase.READING): 3}
"""A worker lane's per-column slots: how long it was held running, blocked, ready (GIL) and reading."""
KEEP_COLS = 1200  # columns of the picture kept left of now (wider than any terminal)

NONE, WAITQ, WAITR = -1, 4, 5
"""Segment codes: 0-3 a lane held in that slot, WAITQ / WAITR waiting queued / ready, NONE neither."""


def segment_codes(has_loop: bool) -> tuple[tuple[int, ...], tuple[int, ...], tuple[int, ...]]:
    """Codes per phase for lane < 0, lane 0 and lane > 0: the one rule of who holds a worker.

    A pool or offload thread stays its request's while it waits for the GIL (READY); the loop
    or hub (lane 0 of asyncio and gevent) is free for others while a request is READY.
    """
    no_lane = tuple(WAITQ if p == QUEUED else WAITR if p == READY else NONE for p in Phase)
    on_lane = tuple(SLOT.get(p, NONE) if p != QUEUED else WAITQ for p in Phase)
    loop = tuple(WAITR if (p == READY and has_loop) else c for p, c in zip(Phase, on_lane, strict=True))
    return no_lane, loop, on_lane


# -- what crosses a pipe: checked on the way in ------------------------------------------
_INT_ROWS = {"hold": 6, "wait": 3, "held": 3, "open_q": 2, "open_r": 2, "sent": 2, "out": 2}


def check_record(rec: object) -> None:
    """Raise ValueError (one line) unless ``rec`` is a well-formed ``{"server"|"client": ...}`` record."""
    if not isinstance(rec, dict) or not rec or set(rec) - {"server", "client"}:
        raise ValueError("a digest record is {'server': ...} or {'client': ...}")
    for side, part in rec.items():
        if not isinstance(part, dict):
            raise ValueError(f"digest {side} part is not a record")
        for key in ("ns", "now"):
            if type(part.get(key)) is not int or part[key] < 0:
                raise ValueError(f"digest field {key!r} is not a non-negative integer")
        if part["ns"] < 1:
            raise ValueError("digest column width must be at least 1 ns")
        for key in ("hold", "wait", "held", "open_q", "open_r", "sent") if side == "server" else ("out",):
            rows = part.get(key)
            width = _INT_ROWS[key]
            if not isinstance(rows, list) or not all(
                isinstance(r, list) and len(r) == width and all(type(x) is int for x in r) for r in rows
            ):
                raise ValueError(f"digest field {key!r} is not a list of {width} integers each")
        if side == "server":
            flat = part.get("rows")
            if not isinstance(flat, list) or len(flat) % 4 or not all(type(x) is int for x in flat):
                raise ValueError("digest field 'rows' is not a flat list of 4-integer transitions")
            phases = flat[3::4]
            if any(not 0 <= p < NPHASES for p in phases):
                raise ValueError("digest field 'rows' holds an unknown phase")
            _check_sizes(part.get("sizes", []))  # absent in records made before it
        counters = part.get("counters")
        if counters is not None:
            _check_counters(counters)


def _check_sizes(flat: object) -> None:
    """``sizes``: a flat list of (rid >= 0, bytes_in >= -1, bytes_out >= -1) integer triples."""
    if not isinstance(flat, list) or len(flat) % 3 or not all(type(x) is int for x in flat):
        raise ValueError("digest field 'sizes' is not a flat list of 3-integer records")
    if flat and (min(flat[0::3]) < 0 or min(flat[1::3]) < -1 or min(flat[2::3]) < -1 or max(flat) >= 1 << 63):
        raise ValueError("digest field 'sizes' holds a value out of range")


def _check_counters(counters: object) -> None:
    if not isinstance(counters, dict):
        raise ValueError("digest counters are not a record")
    for key, value in counters.items():
        if isinstance(value, bool) or not isinstance(key, str):
            raise ValueError(f"digest counter {key!r} is not a number")
        if isinstance(value, dict):
            if not all(isinstance(k, str) and isinstance(v, (int, float)) for k, v in value.items()):
                raise ValueError(f"digest counter {key!r} is not a table of numbers")
        elif isinstance(value, list):
            if not all(v is None or (isinstance(v, (int, float)) and not isinstance(v, bool)) for v in value):
                raise ValueError(f"digest counter {key!r} is not a list of numbers")
        elif not isinstance(value, (int, float)):
            raise ValueError(f"digest counter {key!r} is not a number")
