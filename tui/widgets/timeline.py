"""One engine's time axis: ruler, worker lanes, waiting depth and request rows.

A line-API widget: every row is built as a string and a style index per cell
(:mod:`~syncviz.tui.widgets.timeline_lines`), compared with the last frame's, and only rows that
changed become new :class:`~textual.strip.Strip` s and are sent to the screen.
"""

from __future__ import annotations

from rich.segment import Segment
from rich.style import Style
from syncviz.engines.events import Phase
from syncviz.tui.lanes import LaneFrame
from syncviz.tui.rows import RequestRows
from syncviz.tui.widgets.timeline_lines import (
    GUTTER,
    HEAD,
    NOW,
    PALETTE,
    RULER,
    CellCache,
    Line,
    depth_line,
    lane_line,
    row_line,
    ruler,
)
from textual.filter import ANSIToTruecolor
from textual.geometry import Region
from textual.strip import Strip
from textual.widget import Widget

__all__ = ["GUTTER", "TimelineView"]


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
