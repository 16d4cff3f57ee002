"""How each phase looks: one colour AND one glyph, so the picture reads in monochrome too.

The colours are the Okabe-Ito palette (distinguishable with the common colour-vision
deficiencies); the glyphs grow denser the closer a request is to holding a CPU
(queued ░, ready ▒, blocked ▓, running █), and the parked phases are lines (awaiting ─,
yielded ═). Under ``NO_COLOR`` Textual drops the colours and the glyphs still tell.
"""

from __future__ import annotations

from dataclasses import dataclass

from rich.style import Style
from syncviz.engines.events import Phase


@dataclass(frozen=True)
class PhaseLook:
    phase: Phase
    glyph: str
    color: str
    meaning: str  # one line for the help screen

    @property
    def name(self) -> str:
        return self.phase.name.lower()


LOOKS: dict[Phase, PhaseLook] = {
    look.phase: look
    for look in (
        PhaseLook(Phase.QUEUED, "░", "#9aa0b4", "sent by the client, no worker has taken it yet"),
        PhaseLook(Phase.RUNNING, "█", "#009e73", "a worker executes its Python code (it holds the GIL)"),
        PhaseLook(Phase.BLOCKED, "▓", "#d55e00", "its thread is parked in a blocking call: a pool thread, or the loop"),
        PhaseLook(Phase.AWAITING, "─", "#56b4e9", "coroutine suspended on an await: the loop is free for others"),
        PhaseLook(Phase.YIELDED, "═", "#cc79a7", "greenlet switched to the hub: the hub is free for others"),
        PhaseLook(Phase.READY, "▒", "#e69f00", "runnable again, waiting for its loop, hub or the GIL"),
        PhaseLook(
            Phase.READING, "┄", "#f0e442", "the client is still sending its request (a thread reading it is held)"
        ),
        PhaseLook(Phase.DONE, "│", "#9aa0b4", "the response is written"),
        PhaseLook(Phase.FAILED, "✗", "#ff4d4d", "the request failed (error, 5xx, dropped connection)"),
    )
}

GLYPHS: tuple[str, ...] = tuple(LOOKS[p].glyph for p in Phase)
STYLES: tuple[Style, ...] = tuple(Style(color=LOOKS[p].color) for p in Phase)
LABEL_STYLES: tuple[Style, ...] = tuple(Style(color="#000000", bgcolor=LOOKS[p].color, bold=True) for p in Phase)
"""A request number written inside a run of its phase."""

LEGEND_PHASES: tuple[Phase, ...] = (
    Phase.READING,
    Phase.QUEUED,
    Phase.RUNNING,
    Phase.BLOCKED,
    Phase.AWAITING,
    Phase.YIELDED,
    Phase.READY,
    Phase.FAILED,
)

EIGHTHS = " ▁▂▃▄▅▆▇█"
"""Partial heights: a lane held for part of a column, a queue's depth."""

IDLE_GLYPH = "·"
IDLE_STYLE = Style(color="#4b5063")
RULER_STYLE = Style(color="#7f8699")
NOW_STYLE = Style(color="#f0f0f0", bold=True)


def eighth(fraction: float) -> str:
    """The block whose height is ``fraction`` (0..1) of a cell; never blank above zero."""
    if fraction <= 0:
        return " "
    return EIGHTHS[max(1, min(8, round(fraction * 8)))]
