"""syncviz's engine layer: three real mini-servers, their measured event stream, the load.

Headless by design (never imports textual): ``syncviz bench``, ``syncviz claims`` and the
tests use it alone; the app reads its stream from a child process or in-process.
"""

from .events import ENGINES, Batch, Phase, Recorder
from .host import EngineHost
from .scenarios import SCENARIOS, Scenario, get_scenario
from .settings import Settings, SettingsError
from .source import EventSource, SourceStatus
from .stats import Counters, StreamStats

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
