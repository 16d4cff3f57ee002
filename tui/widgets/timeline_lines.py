"""The timeline's rows as cells: the ruler, worker lanes, waiting depth and request rows.

Each row is built as a :class:`Line` (a character and a style index per cell) and becomes one
:class:`~textual.strip.Strip` of runs of one style; :class:`~syncviz.tui.widgets.timeline.TimelineView`
compares lines with the last frame's and sends only the changed ones to the screen.
"""

from __future__ import annotations

import re

from rich.segment import Segment
from rich.style import Style
from syncviz.engines.events import Phase
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
from syncviz.tui.rows import RequestRows, rid_label
from textual.strip import Strip

GUTTER = 7  # lane names on the left
FULL = 0.75  # a lane held this much of a column shows its phase's glyph; less, a partial block
LABEL_MARGIN = 3  # a run shows its request number only with this many cells of its glyph left
CLIPPED = "…"  # before a row's label: the request is drawn from where its row came free, it began earlier

# Style palette: a cell's style is an index into this list.
NPH = len(Phase)
LABEL0 = NPH  # LABEL0 + phase: a request number written on its phase
IDLE, RULER, NOW, HEAD, NAME, PLAIN = range(2 * NPH, 2 * NPH + 6)
PALETTE: list[Style] = [
    *STYLES,
    *LABEL_STYLES,
    IDLE_STYLE,
    RULER_STYLE,
    NOW_STYLE,
    Style(color="#8b93a7", italic=True),
    Style(color="#c0c6d6"),
    Style(),  # plain (a None style breaks the NO_COLOR filter)
]


class Line:
    """A row being built: characters and palette indices, one per cell."""

    __slots__ = ("chars", "styles")

    def __init__(self, name: str = "", style: int = NAME) -> None:
        name = name[: GUTTER - 1].ljust(GUTTER - 1)
        self.chars: list[str] = [*name, "│"]
        self.styles: list[int] = [style] * (GUTTER - 1) + [RULER]

    def add(self, text: str, style: int) -> None:
        self.chars.extend(text)
        self.styles.extend([style] * len(text))

    def label(self, c0: int, c1: int, rid: int, clipped: bool = False) -> None:
        """Write ``#rid`` at the start of a run over window columns c0..c1 when it fits;
        ``…#rid`` when the run is drawn from after the request began (see :mod:`~syncviz.tui.rows`)."""
        text = CLIPPED + rid_label(rid) if clipped else rid_label(rid)
        if c0 < 0:
            return
        if c1 - c0 + 1 < len(text) + LABEL_MARGIN:
            if not clipped or c1 == c0:
                return
            text = CLIPPED  # no room for its number: still not taken for the start of a request
        at = GUTTER + c0
        if at + len(text) > len(self.chars):
            return
        style = self.styles[at]
        if style >= NPH:
            return
        self.chars[at : at + len(text)] = text
        self.styles[at : at + len(text)] = [LABEL0 + style] * len(text)

    def key(self) -> tuple[str, bytes]:
        return "".join(self.chars), bytes(self.styles)

    def strip(self, width: int, palette: list[Style] = PALETTE, key: tuple[str, bytes] | None = None) -> Strip:
        """One Strip of exactly ``width`` cells (every glyph used is one cell wide); ``key``: :meth:`key`, if made."""
        text, styles = key if key is not None else self.key()
        if len(text) != width:
            text = text[:width].ljust(width)
            styles = styles[:width].ljust(width, bytes((PLAIN,)))
        spans = [m.span() for m in _RUNS.finditer(styles)]  # one segment per run of one style, found in C
        new = tuple.__new__  # Segment is a NamedTuple: its generated __new__ cost more than building the line
        return Strip([new(Segment, (text[a:b], palette[styles[a]], None)) for a, b in spans], width)


def tick_step_ns(ns_per_col: int) -> int:
    """A round time between ruler ticks, about every 12 columns."""
    target = ns_per_col * 12
    for step_ms in (1, 2, 5, 10, 20, 50, 100, 200, 500, 1000, 2000, 5000, 10000, 30000, 60000):
        if step_ms * 1_000_000 >= target:
            return step_ms * 1_000_000
    return 60_000_000_000


def ruler(cols: int, ns_per_col: int, edge: str = "now") -> Line:
    """The time axis: ticks back from the right edge, which is ``now`` live (``then`` when scrubbed)."""
    line = Line(_ms(ns_per_col) + "/c", HEAD)
    chars = ["─"] * cols
    step = tick_step_ns(ns_per_col)
    k = 1
    while True:
        j = cols - 1 - round(k * step / ns_per_col)
        label = f"-{_secs(k * step)}"
        if j - len(label) < 0:
            break
        chars[j] = "┴"
        chars[j - len(label) : j] = label
        k += 1
    tail = " " + edge
    line.add("".join(chars[: max(0, cols - len(tail))]), RULER)
    line.add(tail[-min(len(tail), cols) :], NOW)
    return line


def _ms(ns: int) -> str:
    ms = ns / 1e6
    return f"{ms:g}ms" if ms < 1000 else f"{ms / 1000:g}s"


def _secs(ns: int) -> str:
    s = ns / 1e9
    return f"{s:g}s" if s >= 1 else f"{s * 1000:g}ms"


_HELD = (Phase.RUNNING, Phase.BLOCKED, Phase.READY, Phase.READING)  # the order of a lane's per-column slots


def lane_cell(cell: list[int] | tuple[int, ...], ns: int) -> tuple[str, int]:
    """(glyph, style) of one lane column: the phase that held it longest, or a partial block."""
    run, blocked, ready, reading = cell
    total = run + blocked + ready + reading
    if total <= 0:
        return IDLE_GLYPH, IDLE
    run_, blocked_, ready_, reading_ = _HELD  # ties: running, blocked, ready, reading
    phase, most = run_, run
    if blocked > most:
        phase, most = blocked_, blocked
    if ready > most:
        phase, most = ready_, ready
    if reading > most:
        phase = reading_
    return (GLYPHS[phase] if total >= FULL * ns else eighth(total / ns)), phase


class CellCache:
    """A lane's built cells by absolute column, kept while the picture's cell object is the same one.

    The picture replaces a column's cell whenever it changes (a digest record brings it again) and
    the columns held now are fresh copies every frame, so "the same object" means "the same
    content": as time scrolls only the new and the changed columns are worked out again.
    """

    def __init__(self) -> None:
        self._cells: dict[int, tuple[object, str, int]] = {}

    def line(self, name: str, per_col: list, first: int, ns: int) -> Line:
        line = Line(name)
        chars, styles = line.chars, line.styles
        cache = self._cells
        for c, cell in enumerate(per_col, first):
            hit = cache.get(c)
            if hit is None or hit[0] is not cell:
                glyph, style = lane_cell(cell, ns)
                cache[c] = (cell, glyph, style)
            else:
                _, glyph, style = hit
            chars.append(glyph)
            styles.append(style)
        if len(cache) > 2 * len(per_col) + 64:
            for c in [c for c in cache if c < first]:
                del cache[c]
        return line


def lane_line(name: str, per_col: list, ns: int, labels, cache: CellCache | None = None, first: int = 0) -> Line:
    if cache is not None:
        line = cache.line(name, per_col, first, ns)
    else:
        line = Line(name)
        for cell in per_col:
            glyph, style = lane_cell(cell, ns)
            line.chars.append(glyph)
            line.styles.append(style)
    chars, styles = line.chars, line.styles
    for c0, c1, rid in labels:
        c0 = max(0, c0)
        st = styles[GUTTER + c0] if c1 >= c0 else IDLE
        if st < NPH and chars[GUTTER + c0] == GLYPHS[st]:
            line.label(c0, min(c1, len(per_col) - 1), rid)
    return line


def depth_line(name: str, depth: list[float], phase: Phase, scale: float) -> Line:
    line = Line(name)
    for d in depth:
        if d > 0:
            line.chars.append(eighth(d / scale))
            line.styles.append(phase)
        else:
            line.chars.append(IDLE_GLYPH)
            line.styles.append(IDLE)
    return line


# A row's phases (array "b", -1 none) become its cells in C: the bytes (-1 is 255) translated to
# glyphs (as latin-1 text) and to palette indices.
_ROW_GLYPHS = {i: GLYPHS[i] for i in range(NPH)} | {255: " "}
_ROW_STYLES = bytes(i if i < NPH else PLAIN for i in range(256))
_RUNS = re.compile(rb"(.)\1*", re.DOTALL)


def row_line(rows: RequestRows, i: int, first: int, cols: int, ns: int, now_ns: int) -> Line:
    rc = rows.cells(i, first, cols, ns, now_ns)
    line = Line("")
    raw = rc.phases.tobytes()
    line.chars.extend(raw.decode("latin-1").translate(_ROW_GLYPHS))
    line.styles.extend(raw.translate(_ROW_STYLES))
    for col in rc.failed:
        line.chars[GUTTER + col] = GLYPHS[Phase.FAILED]
        line.styles[GUTTER + col] = int(Phase.FAILED)
    phases = rc.phases
    clipped = rc.clipped
    for c0, c1, rid in rc.labels:
        if 0 <= c0 < cols and phases[c0] >= 0:
            line.label(c0, c1, rid, rid in clipped)
    return line
