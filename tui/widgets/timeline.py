"""One engine's time axis: ruler, worker lanes, waiting depth and request rows.

A line-API widget: every row is built as a string and a style index per cell, compared
with the last frame's, and only rows that changed become new
:class:`~textual.strip.Strip` s and are sent to the screen.
"""

from __future__ import annotations

import re

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
from syncviz.tui.rows import RequestRows, rid_label
from textual.filter import ANSIToTruecolor
from textual.geometry import Region
from textual.strip import Strip
from textual.widget import Widget

GUTTER = 7  # lane names on the left
FULL = 0.75  # a lane held this much of a column shows its phase's glyph; less, a partial block
LABEL_MARGIN = 3  # a run shows its request number only with this many cells of its glyph left

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

    def label(self, c0: int, c1: int, rid: int) -> None:
        """Write ``#rid`` at the start of a run over window columns c0..c1 when it fits."""
        text = rid_label(rid)
        if c0 < 0 or c1 - c0 + 1 < len(text) + LABEL_MARGIN:
            return
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


_ROW_GLYPHS = (*GLYPHS, " ")  # index -1: no request in that column
_ROW_STYLES = (*range(NPH), PLAIN)
_RUNS = re.compile(rb"(.)\1*", re.DOTALL)


def row_line(rows: RequestRows, i: int, first: int, cols: int, ns: int, now_ns: int) -> Line:
    rc = rows.cells(i, first, cols, ns, now_ns)
    line = Line("")
    phases = rc.phases
    line.chars.extend([_ROW_GLYPHS[ph] for ph in phases])
    line.styles.extend([_ROW_STYLES[ph] for ph in phases])
    for col, ph in rc.ends:
        if ph == Phase.FAILED:
            line.chars[GUTTER + col] = GLYPHS[ph]
            line.styles[GUTTER + col] = ph
    for c0, c1, rid in rc.labels:
        if 0 <= c0 < cols and rc.phases[c0] >= 0:
            line.label(c0, c1, rid)
    return line


def _uncycle(strip: Strip) -> None:
    """Let a strip the widget no longer shows be freed at once, not by the cyclic collector.

    Textual's compositor divides every strip at the screen's cuts, and a strip that is one piece
    caches ``[itself]`` (``Strip.divide``): a reference cycle. Our ~80 strips a frame were then
    freed only by the collector, which walked each of them (and their segments and caches) in
    two or three collections first (measured at 1,000 clients: ~2,400 strips, 25,000 segments and
    17,000 caches of cyclic garbage every 2 s). Clearing the cache breaks the cycle; Textual
    fills it again if the strip is divided again.
    """
    cache = getattr(strip, "_divide_cache", None)
    if cache is not None:
        cache.clear()


_MARK = {True: ("▶", NOW), False: ("│", RULER)}  # the gutter's rule with the cursor on the line, and without


def _marked(key: tuple[str, bytes], on: bool) -> tuple[str, bytes]:
    """A line's key with the cursor's mark in its gutter's rule (or the rule back)."""
    text, styles = key
    at = GUTTER - 1
    if len(text) <= at:
        return key
    char, style = _MARK[on]
    return text[:at] + char + text[at + 1 :], styles[:at] + bytes((style,)) + styles[at + 1 :]


class TimelineView(Widget):
    """Draws a :class:`LaneFrame` and the request rows for one engine."""

    DEFAULT_CSS = """
    TimelineView { width: 1fr; height: 1fr; min-height: 4; }
    """

    def __init__(self, *, id: str | None = None) -> None:
        super().__init__(id=id)
        self._strips: list[Strip] = []
        self._keys: list[tuple[str, bytes]] = []
        self._palette: list[Style] | None = None  # PALETTE on this widget's background
        self._lane_cells: dict[int, CellCache] = {}
        self._cells_ns = 0
        self._blank: Strip | None = None
        self.targets: list[tuple[str, int] | None] = []  # per line: ("lane", lane), ("row", i) or None
        self.cursor: int | None = None  # the line the detail panel shows, marked in the gutter
        self.taken = True  # the screen has rendered the strips last built (render_lines ran since)
        self.was_taken = True  # ... and had rendered the ones before the last build (a frame shown)

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
        edge: str = "now",
    ) -> None:
        """Build every row; refresh the ones that changed."""
        cols, ns = frame.cols, frame.ns_per_col
        lines = [ruler(cols, ns, edge)]
        by_lane: dict[int, list[tuple[int, int, int]]] = {}
        for lane, c0, c1, rid in frame.labels:
            by_lane.setdefault(lane, []).append((c0, c1, rid))
        caches = self._lane_cells
        if self._cells_ns != ns:
            caches.clear()
            self._cells_ns = ns
        for lane, name in lanes:
            cache = caches.get(lane)
            if cache is None:
                cache = caches[lane] = CellCache()
            lines.append(lane_line(name, frame.hold[lane], ns, by_lane.get(lane, ()), cache, frame.first_col))
        if hidden_lanes:
            more = Line("")
            more.add(f"… {hidden_lanes} more lanes", HEAD)
            lines.append(more)
        for name, depth, phase, scale in waits:
            lines.append(depth_line(name, depth, phase, scale))
        head = Line("")
        head.add(header[:cols], HEAD)
        lines.append(head)
        for i in range(rows.visible):
            lines.append(row_line(rows, i, frame.first_col, cols, ns, now_ns))
        fixed: list[tuple[str, int] | None] = [None] * (len(lines) - len(lanes) - rows.visible - 1)  # more, waits, head
        self.targets = [None, *(("lane", n) for n, _ in lanes), *fixed, *(("row", i) for i in range(rows.visible))]
        self._swap(lines)

    def set_cursor(self, y: int | None) -> None:
        """Mark line ``y`` in the gutter (``None``: no mark), at once: a paused picture is not redrawn."""
        old, self.cursor = self.cursor, y
        width, at = self.size.width, GUTTER - 1
        for row in {old, y} - {None}:
            if row is None or row >= len(self._strips) or width <= at:
                continue
            if row < len(self._keys):
                self._keys[row] = _marked(self._keys[row], row == y)
            char, style = _MARK[row == y]
            strip = self._strips[row]
            mark = Strip([Segment(char, self.palette[style])], 1)
            self._strips[row] = Strip.join([strip.crop(0, at), mark, strip.crop(at + 1, width)])
            self.refresh(Region(0, row, width, 1))

    def _swap(self, lines: list[Line]) -> None:
        width, height = self.size
        fresh = len(self._keys) != height
        strips: list[Strip] = []
        keys: list[tuple[str, bytes]] = []
        changed: list[int] = []
        for y in range(height):
            line = lines[y] if y < len(lines) else Line("")
            key = line.key() if y != self.cursor else _marked(line.key(), True)
            if not fresh and self._keys[y] == key:
                strips.append(self._strips[y])
            else:
                strips.append(line.strip(width, self.palette, key))
                changed.append(y)
            keys.append(key)
        for old in self._strips if fresh else [self._strips[y] for y in changed if y < len(self._strips)]:
            _uncycle(old)
        self._strips, self._keys = strips, keys
        self.was_taken = self.taken
        if changed:
            self.taken = False  # until the screen renders them
        if fresh or len(changed) * 3 > height:
            self.refresh()  # most rows move as time scrolls: one region is cheaper than one per row
        else:
            for y in changed:
                self.refresh(Region(0, y, width, 1))

    @property
    def palette(self) -> list[Style]:
        if self._palette is None:
            base, bg = self.background_colors
            back = Style(bgcolor=(base + bg).rich_color)
            self._palette = [back + style for style in PALETTE]
            self._blank = Strip.blank(self.size.width, back)
        return self._palette

    def render_lines(self, crop: Region) -> list[Strip]:
        """The strips as built, cropped, through the app's line filters (NO_COLOR and the like).

        The lines carry their own colours and the widget's background (:attr:`palette`), and
        the widget has no border or padding, so Textual's per-line styling pass is skipped:
        it cost more than building the lines (a ~110-line picture changes every frame).
        """
        self.taken = True
        strips = self._strips
        blank = self._blank or Strip.blank(self.size.width, self.rich_style)
        out = [strips[y] if y < len(strips) else blank for y in crop.line_range]
        x1, x2 = crop.column_span
        if (x1, x2) != (0, self.size.width):
            out = [strip.crop(x1, x2) for strip in out]
        # The palette is truecolor only: converting ANSI colours would find none to convert.
        filters = [f for f in self.get_line_filters() if not isinstance(f, ANSIToTruecolor)]
        if filters:
            background = self.background_colors[1]
            for f in filters:
                out = [strip.apply_filter(f, background) for strip in out]
        return out

    def render_line(self, y: int) -> Strip:
        if y < len(self._strips):
            return self._strips[y]
        return Strip.blank(self.size.width, self.rich_style)

    def on_resize(self) -> None:
        self._keys = []
        self._palette = None  # the blank line's width, and the background if the theme changed
