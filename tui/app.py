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
from syncviz.engines.recording import RecordingError, Replay
from syncviz.engines.registry import EngineError
from syncviz.engines.scenarios import SCENARIOS
from syncviz.engines.source import EventSource, SourceStatus
from syncviz.engines.stats import stream_items
from syncviz.tui import signals
from syncviz.tui.board import DEFAULT_ZOOM_MS, Board
from syncviz.tui.commands import ScenarioCommands
from syncviz.tui.inspect import Drawn, Inspector
from syncviz.tui.knobs import KNOBS, next_slow
from syncviz.tui.memory import FREEZE_AFTER_S, TRIM_EVERY_S, freeze_startup, release_free_memory
from syncviz.tui.scrub import Scrub
from syncviz.tui.tape import Entry, Tape
from syncviz.tui.widgets.bars import GIL_NOTE, Bar, caption_text, legend_text, status_text
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

KNOB_KEYS = {"c": "clients", "w": "pool", "i": "io_ms", "u": "cpu_ms", "r": "rate", "l": "slow_clients", "p": "workers"}


def _knob_bindings() -> list[Binding]:
    out = []
    for key, name in KNOB_KEYS.items():
        group = Binding.Group(KNOBS[name].label, compact=True)
        out.append(Binding(key, f"knob('{name}', -1)", f"{KNOBS[name].label}-", group=group))
        out.append(Binding(key.upper(), f"knob('{name}', 1)", f"{KNOBS[name].label}+", group=group))
    return out


ZOOM_GROUP = Binding.Group("zoom", compact=True)


SCENARIO_ZOOM_MS = {"blocking-call": 50, "streaming": 20, "burst": 20, "cpu-bound": 5}
"""Where the default 10 ms per column would hide the story (a 3 s queue, a 200 ms stream)."""


def scenario_zoom(name: str) -> float:
    return SCENARIO_ZOOM_MS.get(name, DEFAULT_ZOOM_MS)


class SyncvizApp(App[int]):
    """``SyncvizApp(source)``: the source is already started; the caller closes it."""

    CSS_PATH = "app.tcss"
    TITLE = "syncviz"
    COMMANDS = App.COMMANDS | {ScenarioCommands}
    HORIZONTAL_BREAKPOINTS = [(0, "-tiny"), (MIN_W, "-narrow"), (WIDE, "-wide")]
    VERTICAL_BREAKPOINTS = [(0, "-short"), (MIN_H, "-tall")]
    BINDINGS = [
        Binding("1", "scenario(0)", "scenario · restart", key_display=f"1…{len(SCENARIOS)}"),
        *(Binding(str(i + 1), f"scenario({i})", name, show=False) for i, name in enumerate(SCENARIOS) if i),
        *_knob_bindings(),
        Binding("m", "slow", "slow-mo"),
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
        if self.live:
            self.set_interval(1 / PUMP_HZ, self.pump)
            self.set_interval(1 / FPS, self.draw)
            self.set_interval(1 / STATUS_HZ, self.check_source)
            self.set_interval(TRIM_EVERY_S, release_free_memory)  # the heap's free pages back (tui/memory.py)
            self.set_timer(FREEZE_AFTER_S, freeze_startup)  # what startup made: out of the collector's way

    def on_unmount(self) -> None:
        signals.uninstall(self)

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
        self._panels = []
        self.inspector.close()
        self._show_status()
        self.check_source()

    def swap_engine(self, old: str, new: str) -> None:
        """Run ``new`` in ``old``'s place (the command palette's swap)."""
        names = [new if name == old else name for name in self.board.engines]
        try:
            self.source.set_engines(names)
        except EngineError as exc:
            self.notify(str(exc), severity="error", timeout=6)
            return
        self.notify(f"starting {new} in place of {old}…", timeout=2)

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
        for perf in self.query("#perf").results(PerfLine):  # none while the app shuts down
            if perf.has_class("-on"):
                perf.show(self.perf, status)
        key = self.restart_key
        for panel in self.query(EnginePanel):
            panel.set_status(status.engines.get(panel.engine), key)
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
        self.perf.frame()
        counters = force or self._frames % COUNTER_EVERY == 1
        if force and board is self.board:
            board.refresh_counters()  # else the pump's, a few times a second of stream time
        panels = self._panels
        if not panels or not panels[0].is_attached:
            panels = self._panels = list(self.query(EnginePanel))  # found once, not every frame
        past = self.tape.servers_at(now) if counters and board is not self.board else None  # their own counts then
        for panel in panels:
            if panel.engine not in board.lanes:
                continue  # swapped out: its panel goes once the grid is rebuilt (_rebuild_panels)
            if counters:
                panel.draw_counters(board, self.stacked, None if past is None else past.get(panel.engine, (None, None)))
            panel.draw_timeline(board, now, "now" if board is self.board else "then")
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
            )
        )
        bars["caption"].set(caption_text(board.scenario))
        for panel in self.query(EnginePanel):
            panel.set_info(board.engine_info(panel.engine))

    # -- actions -------------------------------------------------------------------------
    def switch_scenario(self, name: str) -> None:
        self.source.set_scenario(name)
        self.board.set_zoom(scenario_zoom(name))
        self.notify(f"restarting the engines on {name}…", timeout=2)
        self.check_source()

    def action_scenario(self, index: int) -> None:
        self.switch_scenario(list(SCENARIOS)[index])

    def action_knob(self, name: str, direction: int) -> None:
        knob = KNOBS[name]
        current = getattr(self.board.settings, name)
        value = knob.step(current, direction)
        if value == current:
            self.notify(f"{knob.label} stays at {knob.show(current)}", timeout=1.5)
            return
        self.source.apply(**{name: value})
        self._optimistic(**{name: value})

    def action_slow(self) -> None:
        old = self.board.settings.slow
        new = next_slow(old)
        self.source.apply(slow=new)
        self._optimistic(slow=new)
        self.board.set_zoom(self.board.zoom_ms * new / old)
        self._show_status()

    def _optimistic(self, **changes: Any) -> None:
        """Show the new setting at once; the stream's next status confirms it."""
        settings = dict(self.board.info.get("settings") or self.board.settings.as_dict())
        settings.update(changes)
        self.board.info["settings"] = settings
        self._show_status()

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
