"""The thin bars around the panels: status and knobs, the in-process note, the uneven-split note,
caption, legend."""

from __future__ import annotations

from collections.abc import Mapping

from rich.text import Text
from syncviz.engines.bottleneck import Split, uneven_split
from syncviz.engines.scenarios import SCENARIOS
from syncviz.engines.settings import Settings
from syncviz.engines.source import EngineStatus, SourceStatus
from syncviz.tui.knobs import changed_knobs, knob_line
from syncviz.tui.phases import EIGHTHS, IDLE_GLYPH, LEGEND_PHASES, LOOKS
from textual.widgets import Static

KEY = "#8b93a7"
WARN = "bold #1b1e28 on #e69f00"  # amber: stalled, slow motion, records lost
MINUS = "\u2212"  # how far back a paused picture is: a minus sign, not a hyphen
WARN_TEXT = "bold #e69f00"  # amber words: what a reader must not take at face value
SPLIT_LOOKS = 3  # looks in a row (a few a second) that must agree before the split note comes or goes


def health_label(status: SourceStatus | None) -> tuple[str, str]:
    """The status badge: ``● live`` only while every engine is; else what is down, or restarting."""
    if status is None:
        return " ● live ", "bold #1b1e28 on #009e73"
    exited = [n for n, e in status.engines.items() if e.state == "exited"]
    stalled = [n for n, e in status.engines.items() if e.state == "stalled"]
    if status.load_state in ("exited", "stalled"):  # no requests are sent: the counters are its last
        (exited if status.load_state == "exited" else stalled).append("load")
    if exited:
        return f" ✖ {', '.join(exited)} exited ", "bold #ffffff on #c0392b"
    if status.restarting:
        return " ↻ restarting ", "bold #1b1e28 on #56b4e9"
    if stalled:
        return f" ▲ {', '.join(stalled)} stalled ", WARN
    return " ● live ", "bold #1b1e28 on #009e73"


def status_text(
    scenario: str,
    settings: Settings,
    zoom_ms: float,
    paused: bool,
    replay: bool,
    health: SourceStatus | None = None,
    load: bool = True,
    behind_s: float | None = None,
    speed: float | None = None,
    truncated: bool = False,
) -> Text:
    """The first line; ``load`` false: the built-in load is off (``syncviz serve``): say so, not its knobs.

    ``behind_s``: paused, this far behind live (or a replay's play head): ``❚❚ -12.4 s`` (a minus sign, :data:`MINUS`).
    ``speed``: a replay's speed, beside its badge unless 1x.
    ``truncated``: records were lost lately (a full buffer, batches a slow reader let go): said beside the badge.
    """
    t = Text(no_wrap=True, overflow="ellipsis")
    t.append(" syncviz ", "bold #1b1e28 on #56b4e9")
    t.append(f" {scenario} ", "bold")
    names = list(SCENARIOS)
    if scenario in names:
        t.append(f"({names.index(scenario) + 1}/{len(names)})  ", KEY)
    if not load:
        t.append(" load off: serving outside clients ", "bold #1b1e28 on #f0e442")
        t.append("  ")
    for label, value in knob_line(settings):
        if not load and label in ("clients", "rate", "slow clients"):
            continue  # knobs of the load that is not running
        t.append(f"{label} ", KEY)
        t.append(f"{value}  ", "bold")
    if settings.slow != 1:
        t.append(" slow motion x", WARN)
        t.append(f"{settings.slow:g} ", WARN)
        t.append("  ")
    t.append("zoom ", KEY)
    t.append(f"{zoom_ms:g} ms/col  ", "bold")
    if paused:
        t.append(f" ❚❚ {behind_text(behind_s or 0.0)} ", "bold #1b1e28 on #f0e442")
        t.append(" ← → scrub · end: " + ("play" if replay else "live"), KEY)
    elif replay:
        t.append(f" ▶ replay{f' {speed:g}x' if speed not in (None, 1) else ''} ", "bold #1b1e28 on #cc79a7")
    else:
        t.append(*health_label(health))
    if truncated:
        t.append(" ")
        t.append(" ▲ truncated: records lost ", WARN)
    return t


def behind_text(seconds: float) -> str:
    """How far back a paused picture is: ``-12.4 s``, ``-3:05.2`` past a minute (a minus sign)."""
    if seconds < 60:
        return f"{MINUS}{seconds:.1f} s"
    minutes, rest = divmod(seconds, 60)
    return f"{MINUS}{int(minutes)}:{rest:04.1f}"


def caption_text(scenario: str, settings: Settings | None = None) -> Text:
    """The scenario's description and lines; when ``settings`` differ from the scenario's own (a knob
    turned, a flag given), which ones, so its words are not read as the settings shown."""
    sc = SCENARIOS.get(scenario)
    t = Text()
    if sc is None:
        return t
    t.append(sc.description, "bold")
    changed = changed_knobs(sc.settings, settings) if settings is not None else []
    if changed:
        t.append(f"  (said of its own settings; changed: {', '.join(changed)})", WARN_TEXT)
    for line in sc.caption:
        t.append("\n▸ ", "#56b4e9")
        t.append(line)
    return t


def legend_text() -> Text:
    t = Text(no_wrap=True, overflow="ellipsis")
    t.append(" ? help ", "bold")
    for phase in LEGEND_PHASES:
        look = LOOKS[phase]
        t.append(f" {look.glyph * 2}", look.color)
        t.append(f" {look.name} ")
    t.append(f"  {IDLE_GLYPH} idle", KEY)
    t.append(f"  {EIGHTHS[2]}{EIGHTHS[5]}{EIGHTHS[8]}", KEY)
    t.append(" part of a column / queue depth", KEY)
    return t


GIL_NOTE = (
    "⚠ in-process: this app's own drawing shares the GIL with the three servers, "
    "so their figures here are lower than in the default child-process mode."
)


def split_text(split: Split) -> str:
    """One line for engines whose shared CPUs the OS splits unevenly (``bottleneck.uneven_split``)."""
    where = "cpu " + ",".join(map(str, split.cpus))
    parts = " · ".join(f"{name} {cpu:.0f}%" for name, cpu in split.cpu.items())
    starved = " and ".join(split.starved)
    how = f"{where} is full and the OS splits it" if split.full else f"each engine waits for {where} and the OS gives"
    return (
        f"⚠ {how} {parts}, not {split.even:.0f}% each: {starved} "
        f"{'waits' if len(split.starved) == 1 else 'wait'} for it, so req/s here rank that split, not the models"
    )


class Bar(Static):
    """A Static that skips identical updates."""

    def __init__(self, *, id: str | None = None, classes: str | None = None) -> None:
        super().__init__("", id=id, classes=classes)
        self._last: str | None = None
        self._lines = -1

    def set(self, text: Text | str) -> None:
        key = text.markup if isinstance(text, Text) else text
        if key != self._last:
            self._last = key
            lines = key.count("\n")
            self.update(text, layout=lines != self._lines)  # a layout pass costs tens of ms at 200x50
            self._lines = lines


class SplitNote(Bar):
    """The uneven-split warning, shown while the split holds: after :data:`SPLIT_LOOKS` looks in a row
    find it, gone after as many find none (a look's CPU figures cover a quarter of a second)."""

    def __init__(self, *, id: str | None = None) -> None:
        super().__init__(id=id)
        self._seen = 0  # looks in a row that found it (negative: that found none)
        self.display = False

    def look(self, engines: Mapping[str, EngineStatus], of_bound: Mapping[str, float | None]) -> None:
        """``of_bound``: each engine's req/s over its bound, now (None: no bound)."""
        measured = {
            name: (e.process.cpus, e.process.cpu_percent, e.process.wait_percent, of_bound.get(name))
            for name, e in engines.items()
            if e.process is not None and e.state == "live" and not e.shared_gil
        }
        split = uneven_split(measured)
        self._seen = max(1, self._seen + 1) if split is not None else min(-1, self._seen - 1)
        if split is not None and self._seen >= SPLIT_LOOKS:
            self.set(split_text(split))
            self.display = True
        elif self._seen <= -SPLIT_LOOKS:
            self.display = False
