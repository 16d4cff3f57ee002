"""Moving the picture in time and scale: pause (space), scrub (← →, a window with shift), live
(end), home, a replay's speed (< >) and zoom (- +); and ctrl+s, the buffered minutes to a recording.

:class:`TimeControls` is a mixin of :class:`~syncviz.tui.app.SyncvizApp`. Paused, the app draws
the moment :class:`~syncviz.tui.scrub.Scrub` builds from the tape (:mod:`syncviz.tui.tape`, which
keeps filling); a live source's engines run on, a replay's play head stops.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from syncviz.engines.recording import RecordingError, Replay
from syncviz.engines.source import EventSource
from syncviz.tui.board import Board
from syncviz.tui.scrub import Scrub
from syncviz.tui.tape import Entry, Tape
from syncviz.tui.widgets.panel import EnginePanel
from textual.binding import Binding

ZOOM_GROUP = Binding.Group("zoom", compact=True)


TIME_BINDINGS = [
    Binding("minus", "zoom(1)", "zoom out", group=ZOOM_GROUP),
    Binding("plus,equals_sign", "zoom(-1)", "zoom in", group=ZOOM_GROUP),
    Binding("space", "pause", "pause"),
    Binding("left", "scrub(-0.1)", "back", show=False),
    Binding("right", "scrub(0.1)", "forward", show=False),
    Binding("shift+left", "scrub(-1)", "back a window", show=False),
    Binding("shift+right", "scrub(1)", "forward a window", show=False),
    Binding("end", "live", "live", show=False),
    Binding("home", "home", "start", show=False),
    Binding("less_than_sign", "speed(-1)", "slower", show=False),
    Binding("greater_than_sign", "speed(1)", "faster", show=False),
    Binding("ctrl+s", "save", "save minutes", show=False),
]
"""The pause, scrub, speed, zoom and save keys, in the footer's order (after the run's in the app's ``BINDINGS``)."""


class TimeControls:
    """The pause, scrub, live, home, speed, zoom and save actions of :class:`~syncviz.tui.app.SyncvizApp`."""

    # what the app holds and does (tui/app.py)
    board: Board
    source: EventSource
    tape: Tape
    scrub: Scrub
    paused: bool
    replay: bool
    screenshot_dir: Path
    _counters_ns: int
    shown_board: Board
    window_ns: int
    notify: Callable[..., None]
    draw: Callable[..., None]
    run_worker: Callable[..., Any]
    call_from_thread: Callable[..., Any]
    action_close_detail: Callable[[], None]
    _show_status: Callable[[], None]

    def action_zoom(self, direction: int) -> None:
        if self.paused:  # the buffered picture was measured at its zoom (the digests' columns)
            self.notify(f"paused at {self.shown_board.zoom_ms:g} ms/col, as it was measured: zoom when live", timeout=2)
            return
        self.board.zoom_step(direction)
        self._show_status()
        self.draw(force=True)

    def action_pause(self) -> None:
        """Pause on the moment drawn (the tape keeps filling), or go back to live."""
        if self.paused:
            self.action_live()
            return
        self.paused = True
        self.scrub.reset()
        self.scrub.move(self.board.now_ns, self.board.now_ns)
        self._show_status()

    def action_scrub(self, windows: float) -> None:
        """Move the paused picture by ``windows`` of the visible time (pausing first when live)."""
        if not self.tape.entries:
            self.notify("nothing buffered yet", timeout=2)
            return
        if not self.paused:
            self.action_pause()
        live = self.board.now_ns
        at = self.scrub.at_ns if self.scrub.at_ns is not None else live
        self.scrub.move(at + int(windows * self.window_ns), live)
        self._scrubbed()

    def _scrubbed(self) -> None:
        clamped, tape = self.scrub.clamped, self.tape
        if clamped == "oldest":
            cap = f" (capped at {tape.max_bytes / 1e6:,.0f} MB)" if tape.capped else ""
            kept = f"; {tape.spill_note}" if tape.spill_note else ""
            self.notify(f"the oldest moment buffered: {tape.span_s:.1f} s are kept{cap}{kept}", timeout=2)
        elif clamped == "newest":
            self.notify("the newest moment: end or space " + ("plays on" if self.replay else "goes live"), timeout=2)
        self.draw(force=True)
        self._show_status()

    def action_live(self) -> None:
        """Back to live (a replay: playing on from where it paused)."""
        if not self.paused:
            return
        self.paused = False
        self.scrub.reset()
        self.action_close_detail()  # it described a paused moment
        self._show_status()
        self.draw(force=True)

    def action_home(self) -> None:
        """A replay from its first batch; live: the oldest moment buffered."""
        if not isinstance(self.source, Replay):
            if not self.tape.entries:
                return
            if not self.paused:
                self.action_pause()
            self.scrub.move(self.tape.start_ns, self.board.now_ns)
            self._scrubbed()
            return
        self.source.restart()
        for panel in self.query(EnginePanel):
            panel.served.reset()  # its recorded server counts start again, earlier than the last seen
        self.board = Board(dict(self.source.info), zoom_ms=self.board.zoom_ms, on_zoom=self.source.set_zoom)
        self.tape.clear()
        self.scrub.reset()
        self.paused = False
        self._counters_ns = 0
        self.notify("replaying from the start", timeout=1.5)
        self._show_status()
        self.draw(force=True)

    def action_speed(self, direction: int) -> None:
        if not isinstance(self.source, Replay):
            self.notify("speeds are for replays (syncviz replay FILE): live runs at 1x", timeout=2)
            return
        self.notify(f"replay at {self.source.speed_step(direction):g}x", timeout=1.5)
        self._show_status()

    def action_save(self) -> None:
        """ctrl+s: the buffered minutes to a recording beside the screenshots, written off the UI thread."""
        entries = list(self.tape.entries)
        if not entries:
            self.notify("nothing buffered yet", timeout=2)
            return
        name = f"syncviz-{self.board.scenario}-{time.strftime('%H%M%S')}.rec.gz"
        path = self.screenshot_dir / name
        span = (entries[-1].t_ns - entries[0].t_ns) / 1e9
        self.run_worker(lambda: self._save(path, entries, span), thread=True, group="save")

    def _save(self, path: Path, entries: list[Entry], span: float) -> None:
        try:
            count = self.tape.save(path, entries)
        except RecordingError as exc:
            self.call_from_thread(self.notify, str(exc), title="not saved", severity="error", timeout=6)
            return
        note = f"saved {span:.1f} s ({count:,} batches) to {path.resolve()} · open it: syncviz replay {path}"
        self.call_from_thread(self.notify, note, timeout=6)
