"""Presenter mode (``syncviz --present``): every claim is a scene, stepped through like slides.

A scene is the claim's scenario with its knobs (:func:`~syncviz.engines.claims.live.scene_knobs`:
the same settings every time, so a talk goes the same way twice), the live three-panel
picture, and the claim's verdict judged from the live stream once enough of the scene's own
data has come in (:func:`~syncviz.engines.claims.live.judge_live`); the
scene's zoom and what to watch are the claim's own (:class:`~syncviz.engines.claims.Scene`). Each scene change
restarts the engines and starts the board afresh, even on the same scenario.
"""

from __future__ import annotations

from typing import Any

from syncviz.engines.claims import CLAIM_LIST, Claim
from syncviz.engines.claims.live import judge_live, min_seconds, scene_knobs, scene_matches
from syncviz.engines.source import EventSource
from syncviz.tui.app import COUNTER_EVERY, SyncvizApp
from syncviz.tui.run_controls import scenario_zoom
from syncviz.tui.time_controls import ZOOM_GROUP
from syncviz.tui.widgets.help import SUSPEND_KEY, HelpScreen
from syncviz.tui.widgets.scene import SceneView
from textual.app import App
from textual.binding import Binding

KEYS: tuple[tuple[str, str], ...] = (
    ("→ n space pgdn", "next scene (the engines restart on its settings)"),
    ("← p pgup", "previous scene"),
    ("- / +", "zoom the time axis: more / fewer ms per column"),
    ("r", "restart this scene (and any engine that is down)"),
    ("s", "save an SVG screenshot in the current directory"),
    ("?", "this help"),
    ("q", "quit (stops the engines, leaves nothing running)"),
    SUSPEND_KEY,
)


class PresenterApp(SyncvizApp, inherit_bindings=False):
    """``PresenterApp(source)``: :class:`SyncvizApp` with the claims as scenes, and no knobs or
    scenario keys (a scene's settings are the scene's)."""

    COMMANDS = App.COMMANDS
    BINDINGS = [
        *App.BINDINGS,
        Binding("left,p,pageup", "scene(-1)", "previous", key_display="← p"),
        Binding("right,n,space,pagedown", "scene(1)", "next", key_display="n →"),
        Binding("minus", "zoom(1)", "zoom out", group=ZOOM_GROUP),
        Binding("plus,equals_sign", "zoom(-1)", "zoom in", group=ZOOM_GROUP),
        Binding("r", "restart_scene", "restart", show=False),
        Binding("s", "shot", "screenshot"),
        Binding("question_mark", "help", "help"),
        Binding("q", "quit", "quit"),
        Binding("ctrl+z", "suspend_process", "suspend", show=False),
    ]

    def __init__(self, source: EventSource, *, claims: list[Claim] | None = None, **kwargs: Any) -> None:
        super().__init__(source, **kwargs)
        self.claims = list(claims or CLAIM_LIST)
        self.index = 0
        self.scene_start_ns: int | None = None  # stream time the scene's engines started

    @property
    def claim(self) -> Claim:
        return self.claims[self.index]

    async def on_mount(self) -> None:  # runs before SyncvizApp.on_mount
        self.query_one("#caption").display = False  # the claim is the caption
        await self.query_one("#main").mount(SceneView(id="scene"), after="#status")
        self.show_scene()

    # -- scenes --------------------------------------------------------------------------
    def show_scene(self) -> None:
        claim = self.claim
        self.scene_start_ns = None
        self.source.set_scenario(claim.scene.scenario, **scene_knobs(claim))
        self.board.set_zoom(claim.scene.zoom_ms or scenario_zoom(claim.scene.scenario))
        self.query_one(SceneView).set_scene(claim, self.index, len(self.claims), claim.scene.watch)
        self._show_status()

    def action_scene(self, step: int) -> None:
        index = max(0, min(len(self.claims) - 1, self.index + step))
        if index == self.index:
            self.notify("that was the last scene" if step > 0 else "this is the first scene", timeout=1.5)
            return
        self.index = index
        self.show_scene()

    def action_restart_scene(self) -> None:
        self.show_scene()

    @property
    def restart_key(self) -> str:
        """The panels' "press … to restart it": the scenario keys are not the presenter's."""
        return "r"

    def pump(self) -> bool:
        restarted = super().pump()
        if restarted:
            self.scene_start_ns = self.board.now_ns
        return restarted

    def draw(self, force: bool = False) -> None:
        super().draw(force)
        if force or self._frames % COUNTER_EVERY == 1:  # the counters were just refreshed
            self.judge()

    def judge(self) -> None:
        """Show the live verdict when the scene's engines run and enough of their data is in."""
        views = self.query(SceneView)
        if not views:
            return  # a resize can draw before the scene is mounted
        claim, board = self.claim, self.board
        running = self.scene_start_ns is not None and scene_matches(claim, board.info)
        elapsed = (board.now_ns - self.scene_start_ns) / 1e9 if running and self.scene_start_ns else 0.0
        down = self.health.down if self.health is not None else {}
        live = judge_live(claim, board.counters, board.info, elapsed, down=down) if running else None
        views.first().show(live, elapsed, min_seconds(claim), running, window=f"at {elapsed:.0f} s")

    def action_help(self) -> None:
        self.push_screen(HelpScreen(self.board.scenario, keys=KEYS))
