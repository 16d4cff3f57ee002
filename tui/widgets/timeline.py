"""One engine's time axis: ruler, worker lanes, waiting depth and request rows.

A line-API widget: every row is turned into a :class:`~textual.strip.Strip` once per
frame, compared with the last one, and only rows that changed are sent to the screen.
"""

from __future__ import annotations

from rich.segment import Segment
from rich.style import Style
from syncviz.engines.events import Phase
from syncviz.tui.lanes import LaneFrame
from syncviz.tui.phases import (
    GLYPHS,
    IDLE_GLYPH,
    IDLE_STYLE,
    LABEL_STYLES,
    NOW_STYLE,
    RULER_STYLE,
    STYLES,
    eighth,
)
from syncviz.tui.rows import RequestRows
from textual.geometry import Region
from textual.strip import Strip
from textual.widget import Widget

GUTTER = 7  # lane names on the left
HEAD_STYLE = Style(color="#7f8699", italic=True)
NAME_STYLE = Style(color="#c0c6d6")
FULL = 0.75  # a lane held this much of a column shows its phase's glyph; less, a partial block
Cell = tuple[str, Style | None]


def cells_to_strip(cells: list[Cell]) -> Strip:
    """Merge runs of one style into segments."""
    segments: list[Segment] = []
    text: list[str] = []
    style: Style | None = None
    for ch, st in cells:
        if st is not style and text:
            segments.append(Segment("".join(text), style))
            text = []
        style = st
        text.append(ch)
    if text:
        segments.append(Segment("".join(text), style))
    return Strip(segments, len(cells))


def gutter(name: str, style: Style = NAME_STYLE) -> list[Cell]:
    name = name[: GUTTER - 1].ljust(GUTTER - 1)
    return [(ch, style) for ch in name] + [("│", RULER_STYLE)]


def write_label(cells: list[Cell], c0: int, c1: int, rid: int, phase: int) -> None:
    """Write ``#rid`` at the start of a run spanning columns c0..c1 when it fits."""
    text = f"#{rid}"
    if c1 - c0 + 1 < len(text) + 1 or c0 < 0:
        return
    style = LABEL_STYLES[phase]
    for k, ch in enumerate(text):
        if GUTTER + c0 + k < len(cells):
            cells[GUTTER + c0 + k] = (ch, style)


def tick_step_ns(ns_per_col: int, cols: int) -> int:
    """A round time between ruler ticks, about every 12 columns."""
    target = ns_per_col * 12
    for step_ms in (1, 2, 5, 10, 20, 50, 100, 200, 500, 1000, 2000, 5000, 10000, 30000, 60000):
        if step_ms * 1_000_000 >= target:
            return step_ms * 1_000_000
    return 60_000_000_000


def ruler(cols: int, ns_per_col: int) -> list[Cell]:
    cells: list[Cell] = gutter(f"{_ms(ns_per_col)}/c", HEAD_STYLE)
    line: list[Cell] = [("─", RULER_STYLE)] * cols
    step = tick_step_ns(ns_per_col, cols)
    k = 1
    while True:
        j = cols - 1 - round(k * step / ns_per_col)
        label = f"-{_secs(k * step)}"
        if j - len(label) < 0:
            break
        line[j] = ("┴", RULER_STYLE)
        for n, ch in enumerate(label):
            line[j - len(label) + n] = (ch, RULER_STYLE)
        k += 1
    line[-1] = ("▕", NOW_STYLE)
    if cols >= 4:
        for n, ch in enumerate("now"):
            line[cols - 4 + n] = (ch, NOW_STYLE)
    return cells + line


def _ms(ns: int) -> str:
    ms = ns / 1e6
    return f"{ms:g}ms" if ms < 1000 else f"{ms / 1000:g}s"


def _secs(ns: int) -> str:
    s = ns / 1e9
    return f"{s:g}s" if s >= 1 else f"{s * 1000:g}ms"


class TimelineView(Widget):
    """Draws a :class:`LaneFrame` and the request rows for one engine."""

    DEFAULT_CSS = """
    TimelineView { height: 1fr; min-height: 4; }
    """

    def __init__(self, *, id: str | None = None) -> None:
        super().__init__(id=id)
        self._strips: list[Strip] = []
        self._keys: list[tuple] = []

    @property
    def cols(self) -> int:
        return max(1, self.size.width - GUTTER)

    def plan(self, lanes: int, waits: int) -> tuple[int, int]:
        """(worker lanes shown, request rows) for this height: requests get what is left."""
        height = self.size.height
        fixed = 1 + waits + 1  # ruler, waiting lanes, requests header
        shown = max(1, min(lanes, (height - fixed) // 2 if lanes > 1 else 1))
        more = 1 if shown < lanes else 0
        rows = max(0, height - fixed - shown - more)
        return shown, rows

    def draw(
        self,
        frame: LaneFrame,
        lanes: list[tuple[int, str]],
        hidden_lanes: int,
        waits: list[tuple[str, list[float], Phase, float]],
        rows: RequestRows,
        header: str,
        now_ns: int,
    ) -> None:
        """Build every row; refresh the ones that changed."""
        cols = frame.cols
        ns = frame.ns_per_col
        lines: list[list[Cell]] = [ruler(cols, ns)]
        by_lane = {}
        for lane, c0, c1, rid in frame.labels:
            by_lane.setdefault(lane, []).append((c0, c1, rid))
        for lane, name in lanes:
            lines.append(self._lane(name, frame.hold[lane], ns, by_lane.get(lane, ())))
        if hidden_lanes:
            lines.append(gutter("") + [(ch, HEAD_STYLE) for ch in f"… {hidden_lanes} more lanes"])
        for name, depth, phase, scale in waits:
            lines.append(self._depth(name, depth, phase, scale))
        lines.append(gutter("") + [(ch, HEAD_STYLE) for ch in header[:cols]])
        for i in range(rows.visible):
            lines.append(self._row(rows, i, frame.first_col, cols, ns, now_ns))
        self._swap(lines)

    def _lane(self, name: str, per_col: list[list[int]], ns: int, labels) -> list[Cell]:
        cells = gutter(name)
        for acc in per_col:
            total = acc[0] + acc[1] + acc[2]
            if total <= 0:
                cells.append((IDLE_GLYPH, IDLE_STYLE))
                continue
            idx = 0 if acc[0] >= acc[1] and acc[0] >= acc[2] else (1 if acc[1] >= acc[2] else 2)
            phase = (Phase.RUNNING, Phase.BLOCKED, Phase.READY)[idx]
            frac = total / ns
            cells.append((GLYPHS[phase] if frac >= FULL else eighth(frac), STYLES[phase]))
        for c0, c1, rid in labels:
            c0c, c1c = max(0, c0), min(len(per_col) - 1, c1)
            if c1c >= c0c:
                phase = _phase_at(cells[GUTTER + c0c][0])
                if phase is not None:
                    write_label(cells, c0c, c1c, rid, phase)
        return cells

    def _depth(self, name: str, depth: list[float], phase: Phase, scale: float) -> list[Cell]:
        cells = gutter(name)
        style = STYLES[phase]
        for d in depth:
            cells.append((eighth(d / scale) if d > 0 else IDLE_GLYPH, style if d > 0 else IDLE_STYLE))
        return cells

    def _row(self, rows: RequestRows, i: int, first: int, cols: int, ns: int, now_ns: int) -> list[Cell]:
        rc = rows.cells(i, first, cols, ns, now_ns)
        cells = gutter("")
        for ph in rc.phases:
            cells.append((" ", None) if ph < 0 else (GLYPHS[ph], STYLES[ph]))
        for col, ph in rc.ends:
            if ph == Phase.FAILED:
                cells[GUTTER + col] = (GLYPHS[ph], STYLES[ph])
        for c0, c1, rid in rc.labels:
            if 0 <= c0 < cols and rc.phases[c0] >= 0:
                write_label(cells, c0, c1, rid, rc.phases[c0])
        return cells

    def _swap(self, lines: list[list[Cell]]) -> None:
        width = self.size.width
        height = self.size.height
        strips: list[Strip] = []
        keys: list[tuple] = []
        for y in range(height):
            cells = lines[y] if y < len(lines) else []
            key = tuple(cells)
            if y < len(self._keys) and self._keys[y] == key:
                strips.append(self._strips[y])
            else:
                strips.append(cells_to_strip(cells).extend_cell_length(width).crop(0, width))
                if y < len(self._keys) or not self._keys:
                    self.refresh(Region(0, y, width, 1))
            keys.append(key)
        if len(keys) != len(self._keys):
            self.refresh()
        self._strips, self._keys = strips, keys

    def render_line(self, y: int) -> Strip:
        if y < len(self._strips):
            return self._strips[y]
        return Strip.blank(self.size.width)

    def on_resize(self) -> None:
        self._keys = []
        self.refresh()


_GLYPH_PHASE = {GLYPHS[p]: p for p in (Phase.RUNNING, Phase.BLOCKED, Phase.READY)}


def _phase_at(glyph: str) -> int | None:
    return _GLYPH_PHASE.get(glyph)
