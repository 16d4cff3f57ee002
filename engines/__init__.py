"""syncviz's engine layer: three real mini-servers, their measured event stream, the load.

Headless by design (never imports textual): ``syncviz bench``, ``syncviz claims`` and the
tests use it alone; the app reads its stream from a child process or in-process.

The names below load on first use (PEP 562): importing any ``syncviz.engines.<module>`` runs
this file first, and an eager import here cost every engine process, prefork worker and CLI
process the host, the load generator and asyncio (about 65 ms of CPU each with bytecode,
300 ms without) whether it used them or not. ``from syncviz.engines import EngineHost`` works
as before.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .events import ENGINES, Batch, Phase, Recorder
    from .host import EngineHost
    from .scenarios import SCENARIOS, Scenario, get_scenario
    from .settings import Settings, SettingsError
    from .source import EventSource, SourceStatus
    from .stats import Counters, StreamStats

_HOMES = {
    "ENGINES": "events",
    "Batch": "events",
    "Phase": "events",
    "Recorder": "events",
    "EngineHost": "host",
    "SCENARIOS": "scenarios",
    "Scenario": "scenarios",
    "get_scenario": "scenarios",
    "Settings": "settings",
    "SettingsError": "settings",
    "EventSource": "source",
    "SourceStatus": "source",
    "Counters": "stats",
    "StreamStats": "stats",
}

__all__ = [
    "ENGINES",
    "SCENARIOS",
    "Batch",
    "Counters",
    "EngineHost",
    "EventSource",
    "Phase",
    "Recorder",
    "Scenario",
    "Settings",
    "SettingsError",
    "SourceStatus",
    "StreamStats",
    "get_scenario",
]


def __getattr__(name: str) -> Any:
    """Load an exported name from its module the first time it is asked for."""
    home = _HOMES.get(name)
    if home is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(f".{home}", __name__), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    """The module's own names and the lazily loaded ones, as ``dir()`` showed them before."""
    return sorted({*globals(), *__all__})
