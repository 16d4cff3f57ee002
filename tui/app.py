"""The live Textual app: three engine panels on one time axis, fed by an event source.

The app pulls ``source.drain()`` on a timer (no thread hands it anything), feeds the
:class:`~syncviz.tui.board.Board`, and redraws the time axes at a modest frame rate and
the counters a few times a second. Its "now" is the stream's time (the last batch's
``t_ns``), so a recording replays to the same picture every time.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from syncviz.engines.events import ENGINES
from syncviz.engines.recording import Replay
from syncviz.engines.scenarios import SCENARIOS
from syncviz.engines.source import EventSource, SourceStatus
from syncviz.engines.stats import stream_items
from syncviz.tui import signals
from syncviz.tui.board import Board
from syncviz.tui.commands import ScenarioCommands
from syncviz.tui.inspect import Drawn, Inspector
from syncviz.tui.memory import (
    FREEZE_AFTER_S,
    TRIM_EVERY_S,
    forget_removed_widgets,
    freeze_startup,
    release_free_memory,
)
from syncviz.tui.pacing import run_frames
from syncviz.tui.run_controls import RUN_BINDINGS, RunControls, scenario_zoom
from syncviz.tui.scrub import Scrub
from syncviz.tui.tape import Tape
from syncviz.tui.time_controls import TIME_BINDINGS, TimeControls
from syncviz.tui.widgets.bars import GIL_NOTE, Bar, SplitNote, caption_text, legend_text, status_text
from syncviz.tui.widgets.detail import DetailPanel
from syncviz.tui.widgets.help import HelpScreen
from syncviz.tui.widgets.panel import EnginePanel
from syncviz.tui.widgets.perf import PerfLine, PerfMeter
from syncviz.tui.widgets.timeline import TimelineView
from textual import events
from textual.app import App, ComposeResult
from textual.binding import Binding
from textual.containers import Container, Vertical
from textual.widgets import Footer, Static

PUMP_HZ = 30  # drains per second (the child sends ~30 batches a second)
STATUS_HZ = 4  # process health and CPU/RSS checks per second (a dead engine shows within 0.25 s)
FPS = 30  # time-axis frames per second
COUNTER_EVERY = 10  # frames between counter redraws (3 Hz)
COUNTERS_NS = 333_000_000  # stream time between counter refreshes (merging HDR windows costs a few ms)
MIN_W, MIN_H = 80, 24
WIDE = 150


class SyncvizApp(RunControls, TimeControls, App[int]):
    """``SyncvizApp(source)``: the source is already started; the caller closes it.

    What the keys change is in :class:`~syncviz.tui.run_controls.RunControls` (scenario, knobs,
    slow-mo, engine swap) and :class:`~syncviz.tui.time_controls.TimeControls` (pause, scrub,
    speed, zoom, save); the loop, the layout and the inspector's glue are here.
    """

    CSS_PATH = "app.tcss"
    TITLE = "syncviz"
    COMMANDS = App.COMMANDS | {ScenarioCommands}
    HORIZONTAL_BREAKPOINTS = [(0, "-tiny"), (MIN_W, "-narrow"), (WIDE, "-wide")]
    VERTICAL_BREAKPOINTS = [(0, "-short"), (MIN_H, "-tall")]
    BINDINGS = [
        *RUN_BINDINGS,
        *TIME_BINDINGS,
        Binding("down,j", "cursor(1)", "inspect", key_display="↓↑"),
        Binding("up,k", "cursor(-1)", "inspect", show=False),
        Binding("right_square_bracket", "cursor_panel(1)", "next panel", show=False),
        Binding("left_square_bracket", "cursor_panel(-1)", "previous panel", show=False),
        Binding("escape", "close_detail", "close detail", show=False),
        Binding("s", "shot", "screenshot"),
        Binding("f", "perf", "perf", show=False),
        Binding("question_mark", "help", "help"),
        Binding("q", "quit", "quit"),
        Binding("ctrl+c", "quit", "quit", show=False, priority=True),  # a key in raw mode: quit, not a hint
        Binding("ctrl+z", "suspend_process", "suspend", show=False),  # the shell's job control: fg resumes
    ]

    def __init__(
        self,
        source: EventSource,
        *,
        in_process: bool = False,
        clock: Callable[[], int] | None = None,
        start_info: dict[str, Any] | None = None,
        live: bool = True,
        screenshot_dir: str | Path = ".",
    ) -> None:
        super().__init__()
        self.source = source
        self.in_process = in_process
        self.clock = clock
        self.live = live
        self.screenshot_dir = Path(screenshot_dir)
        info = dict(start_info or getattr(source, "info", None) or {})
        zoom = info.get("zoom_ms") or scenario_zoom(info.get("scenario", ""))  # a saved tape's, else the scenario's
        self.board = Board(info, zoom_ms=zoom, on_zoom=source.set_zoom)
        source.set_zoom(self.board.ns_per_col)
        self.paused = False
        self.replay = isinstance(source, Replay)
        if isinstance(source, Replay) and live:
            source.clock = time.monotonic  # paced by the recording's own time, at its speed
        self.tape = Tape()  # the last minutes fed, for scrubbing and ctrl+s (tui/tape.py)
        self._spill_told = False  # the tape's spill_note has been shown
        self.scrub = Scrub(self.tape)
        self._counters_ns = 0  # stream time of the last counter refresh
        self._frames = 0
        self.health: SourceStatus | None = None
        self.frame_ms: list[float] = []  # CPU time of recent frames, for the benchmark
        self.perf = PerfMeter()
        self._panels: list[EnginePanel] = []
        self.inspector = Inspector()  # the selected lane or request row (tui/inspect.py)

    # -- layout --------------------------------------------------------------------------
    def compose(self) -> ComposeResult:
        with Vertical(id="main"):
            yield Bar(id="status")
            yield PerfLine(id="perf")
            if self.in_process:
                yield Static(GIL_NOTE, id="gil-note")
            yield SplitNote(id="split-note")
            yield Bar(id="caption")
            with Container(id="panels", classes=f"-n{len(self.board.engines)}"):  # the grid for 2-6 (app.tcss)
                for name in self.board.engines:
                    yield EnginePanel(name)
                yield DetailPanel(id="detail")  # over the panels' right side, on a layer of its own (app.tcss)
            yield Bar(id="legend")
        yield Static("", id="too-small")
        yield Footer()

    def on_mount(self) -> None:
        signals.install(self)  # SIGTERM, SIGINT, SIGHUP: exit as q does (status 128 + signum)
        self.query_one("#legend", Bar).set(legend_text())
        self.check_source()  # the process lines, before the first timer fires (a replay's too)
        self.app_resume_signal.subscribe(self, self._on_resume)  # back from ctrl+z (fg)
        if self.live:
            self.set_interval(1 / PUMP_HZ, self.pump)
            self.run_worker(run_frames(FPS, self.draw), name="frames", group="frames")  # tui/pacing.py
            self.set_interval(1 / STATUS_HZ, self.check_source)
            self.set_interval(TRIM_EVERY_S, release_free_memory)  # the heap's free pages back (tui/memory.py)
            self.set_timer(FREEZE_AFTER_S, freeze_startup)  # what startup made: out of the collector's way

    def _on_resume(self, _app: App) -> None:
        """The shell drew over the screen while suspended: lay out and paint all of it again
        (Textual's ``suspend()`` does; its ctrl+z path only signals). The engines' silence while
        it was suspended was the app's, not theirs: not "stalled" on the way back."""
        self.source.resumed()
        self.refresh(layout=True)

    def on_unmount(self) -> None:
        signals.uninstall(self)
        forget_removed_widgets()  # Textual's style caches would keep every widget drawn (tui/memory.py)

    def on_resize(self, event: events.Resize) -> None:
        w, h = event.size  # self.size still holds the previous size here
        self.query_one("#too-small", Static).update(
            f"syncviz needs at least {MIN_W}x{MIN_H}\nthis terminal is {w}x{h}\n\n"
            "enlarge the window\nor make the font smaller\n\nq quits"
        )
        self.call_after_refresh(self.draw, force=True)

    @property
    def stacked(self) -> bool:
        return not self.screen.has_class("-wide")

    @property
    def now_ns(self) -> int:
        return self.clock() if self.clock is not None else self.board.now_ns

    @property
    def shown_board(self) -> Board:
        """The board drawn: the live one, or while paused the one built for the moment shown."""
        if self.paused and self.scrub.at_ns is not None:
            return self.scrub.view(self.board, self.window_ns)
        return self.board

    @property
    def window_ns(self) -> int:
        """The time the widest time axis shows."""
        cols = max((view.cols for view in self.query(TimelineView)), default=0) or 150
        shown = self.scrub.board if self.paused and self.scrub.board is not None else self.board
        return cols * shown.ns_per_col

    # -- the loop ------------------------------------------------------------------------
    def pump(self) -> bool:
        """Drain the source once and feed the board; True when the engines restarted."""
        if self.paused and self.replay:
            return False  # a paused replay's play head stops; a live source's engines run on
        batch = self.source.drain()
        items = stream_items(batch)
        self.perf.events(items)
        board = self.board
        self.tape.add(batch, items, board.info, board.ns_per_col)
        sampled = board.counters
        restarted = board.feed(batch)
        now = board.now_ns
        if board.counters is not sampled:  # the sparklines took a sample: the tape keeps it
            self.tape.note_counters(now, board.counters, sample=True)
            self._counters_ns = now
        elif restarted or now - self._counters_ns >= COUNTERS_NS:  # what the counters say, taped
            self.tape.note_counters(now, board.refresh_counters())
            self._counters_ns = now
        if restarted and [p.engine for p in self.query(EnginePanel)] != board.engines:
            self.run_worker(self._rebuild_panels(), exclusive=True, group="panels")  # engines swapped
        if batch.info is not None or restarted:
            self._show_status()
        return restarted

    async def _rebuild_panels(self) -> None:
        """One panel per engine the stream now runs (after a swap from the palette), in a fresh grid."""
        box = self.query_one("#panels", Container)
        await self.query(EnginePanel).remove()
        box.set_classes(f"-n{len(self.board.engines)}")
        await box.mount_all([EnginePanel(name) for name in self.board.engines], before=self.query_one("#detail"))
        forget_removed_widgets()  # the old panels' strips with them (tui/memory.py)
        self._panels = []
        self.inspector.close()
        self._show_status()
        self.check_source()

    def play_to_end(self) -> None:
        """Feed a whole recording at once and draw its last frame (snapshots, screenshots, tests)."""
        self.draw(force=True)  # the first frame sizes the request rows
        while not getattr(self.source, "finished", True):
            self.pump()
        self.draw(force=True)

    def check_source(self) -> None:
        """Each engine's process, a few times a second: errors as notices, a dead or stalled
        engine on its panel and in the status bar at once (never ``live`` while one is down)."""
        errors = self.source.errors
        while errors:
            self.notify(errors.popleft(), title="engines", severity="error", timeout=8)
        status = self.source.status()
        self.health = status
        self.board.drop_dead(status)  # an exited process's last counters said requests were in flight
        for perf in self.query("#perf").results(PerfLine):  # none while the app shuts down
            if perf.has_class("-on"):
                perf.show(self.perf, status)
        key = self.restart_key
        for panel in self.query(EnginePanel):
            panel.set_status(status.engines.get(panel.engine), key)
        for note in self.query("#split-note").results(SplitNote):  # none while the app shuts down
            note.look(status.engines, self.board.of_bound())
        servers = {name: e.server for name, e in status.engines.items() if e.server is not None}
        self.tape.note_servers(self.board.now_ns, servers)  # a scrubbed moment's served/s
        if self.tape.spill_note and not self._spill_told:  # once: the tape's minutes fell back to memory
            self._spill_told = True
            self.notify(self.tape.spill_note, title="tape", severity="warning", timeout=8)
        self._show_status()

    @property
    def restart_key(self) -> str:
        """The key that restarts the current scenario (and with it any engine that is down)."""
        names = list(SCENARIOS)
        return str(names.index(self.board.scenario) + 1) if self.board.scenario in names else "1"

    def draw(self, force: bool = False) -> None:
        """One frame: time axes always, counters every few frames."""
        if self.paused and not force:
            return
        t0 = time.thread_time()
        board = self.shown_board
        now = self.now_ns if board is self.board else board.now_ns
        self._frames += 1
        counters = force or self._frames % COUNTER_EVERY == 1
        if force and board is self.board:
            board.refresh_counters()  # else the pump's, a few times a second of stream time
        panels = self._panels
        if not panels or not panels[0].is_attached:
            panels = self._panels = list(self.query(EnginePanel))  # found once, not every frame
        past = self.tape.servers_at(now) if counters and board is not self.board else None  # their own counts then
        shown = True
        for panel in panels:
            if panel.engine not in board.lanes:
                continue  # swapped out: its panel goes once the grid is rebuilt (_rebuild_panels)
            if counters:
                panel.draw_counters(board, self.stacked, None if past is None else past.get(panel.engine, (None, None)))
            if not panel.draw_timeline(board, now, "now" if board is self.board else "then"):
                shown = False  # the screen never rendered the frame before this one
        if shown:
            self.perf.frame()  # frames the screen took, counted one frame late (tui/pacing.py)
        self.frame_ms.append((time.thread_time() - t0) * 1000)
        del self.frame_ms[:-200]
        if self.inspector.selection is not None:
            self._inspect()  # a paused picture drawn again (scrubbed, zoomed): the detail follows it

    def _show_status(self) -> None:
        bars = {bar.id: bar for bar in self.query(Bar)}
        if "status" not in bars:
            return  # a timer fired while the app shuts down
        board = self.shown_board
        bars["status"].set(
            status_text(
                board.scenario,
                board.settings,
                board.zoom_ms,
                self.paused,
                self.replay,
                self.health,
                load=board.info.get("load", True) is not False,
                behind_s=self.scrub.behind_s(self.board.now_ns),
                speed=self.source.speed if isinstance(self.source, Replay) else None,
                truncated=board.truncated(),
            )
        )
        bars["caption"].set(caption_text(board.scenario, board.settings))
        for panel in self.query(EnginePanel):
            panel.set_info(board.engine_info(panel.engine))

    # -- actions -------------------------------------------------------------------------
    def action_perf(self) -> None:
        perf = self.query_one("#perf", PerfLine)
        perf.toggle_class("-on")
        if perf.has_class("-on"):
            perf.show(self.perf, self.health)

    def action_help(self) -> None:
        self.push_screen(HelpScreen(self.board.scenario))

    def action_shot(self) -> None:
        name = f"syncviz-{self.board.scenario}-{time.strftime('%H%M%S')}.svg"
        try:
            path = self.save_screenshot(filename=name, path=str(self.screenshot_dir))
        except OSError as exc:  # an unwritable or missing directory: say so, keep running
            self.notify(f"cannot save {self.screenshot_dir / name}: {exc.strerror or exc}", severity="error", timeout=6)
            return
        self.notify(f"saved {path}", timeout=3)

    # -- inspect -------------------------------------------------------------------------
    def _drawn(self) -> dict[str, Drawn]:
        return {p.engine: p.drawn for p in self.query(EnginePanel) if p.drawn is not None}

    def _inspect(self) -> None:
        """Show the inspector's selection in the detail panel (pausing the live picture), or close it."""
        detail = self.inspector.content(self._drawn())
        if detail is None:
            self.inspector.close()
        elif not self.paused:
            self.action_pause()
        for panel in self.query(EnginePanel):
            panel.mark(self.inspector.line(panel.drawn) if panel.drawn is not None else None)
        self.query_one("#detail", DetailPanel).show(detail)

    def action_cursor(self, step: int) -> None:
        self.inspector.move(self._drawn(), step)
        self._inspect()

    def action_cursor_panel(self, step: int) -> None:
        self.inspector.panel(self._drawn(), step)
        self._inspect()

    def action_close_detail(self) -> None:
        self.inspector.close()
        self._inspect()

    def on_engine_panel_picked(self, event: EnginePanel.Picked) -> None:
        if not any(getattr(b, "action", "") == "close_detail" for b in self.BINDINGS):
            return  # an app without the inspect keys (presenter mode) could not close the panel
        self.inspector.click(event.drawn, event.y, event.t_ns)
        self._inspect()

    async def action_quit(self) -> None:
        self.exit(0)

    async def action_help_quit(self) -> None:  # Textual's ctrl+c hint, where a subclass keeps App.BINDINGS
        await self.action_quit()


def run_app(source: EventSource, *, in_process: bool, start_info: dict[str, Any], present: bool = False) -> int:
    """Run the app on a started source until the user quits; the caller closes the source.

    ``present``: presenter mode, every claim a scene (:mod:`syncviz.tui.present`).
    """
    app_class = SyncvizApp
    if present:
        from syncviz.tui.present import PresenterApp

        app_class = PresenterApp
    app = app_class(source, in_process=in_process, start_info=start_info)
    code = app.run()
    return int(code or 0)


__all__ = ["ENGINES", "SyncvizApp", "run_app"]
