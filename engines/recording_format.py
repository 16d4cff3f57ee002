"""The recording format's facts: its name and version, its one error, and the check of a run's ``info``.

A recording (format ``syncviz-recording``, version 2) is a gzip file of JSON lines, nothing
else; no byte of it is ever unpickled or executed. The first line is the header::

    {"format": "syncviz-recording", "version": 2, "created": "2026-11-23T10:00:00Z",
     "seconds": 3.0, "settings": {...}, "info": {...}}

then one line per drained :class:`~syncviz.engines.events.Batch`, in the shape the engine
processes send it over their pipes (:func:`~syncviz.engines.wire.batch_to_wire`: flat integer
lists), with the batch's ``info`` when it has one and the engines' own source counters at the
time (``srvs``: engine -> :class:`~syncviz.engines.counts.ServerSnapshot` record, which a replay's
panels show; files made before them have none, and readers before them skip them), and last
``{"end": true, "batches": N}``.

Whatever is wrong with a file, or with what is to be written, is one :class:`RecordingError`,
one line (:func:`one_line`). :func:`check_info` checks a status record's keys and settings, for
the writer (:mod:`syncviz.engines.recording`) and the reader
(:mod:`syncviz.engines.recording_reader`) alike.
"""

from __future__ import annotations

import json
import math
from typing import Any

from .events import ENGINE_IDS
from .scenarios import SCENARIOS
from .settings import Settings, SettingsError

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


def _encode(record: object) -> bytes:
    return json.dumps(record, separators=(",", ":"), allow_nan=False).encode() + b"\n"


def _engine_map(info: dict[str, Any], key: str, ok: Any) -> None:
    value = info.get(key)
    if value is None:
        return
    if not isinstance(value, dict) or not all(k in ENGINE_IDS and ok(v) for k, v in value.items()):
        raise ValueError(f"info field {key!r} is not a map of engine to valid values")


def _is_int(v: object) -> bool:
    return type(v) is int and -INT64 <= v < INT64


def _is_cpus(v: object) -> bool:
    return isinstance(v, list) and 0 < len(v) <= 1024 and all(_is_int(c) and c >= 0 for c in v)


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
    _engine_map(info, "cpus", _is_cpus)
    for key in ("run", "pid"):
        if key in info and not (_is_int(info[key]) and info[key] >= 0):
            raise ValueError(f"info field {key!r} is not a non-negative integer")
    if "zoom_ms" in info and not _is_share(info["zoom_ms"]):  # the picture's zoom (a tape saved by the app)
        raise ValueError("info field 'zoom_ms' is not a zoom in ms per column")
    if "load" in info and not isinstance(info["load"], bool):
        raise ValueError("info field 'load' is not true or false")
    return info
