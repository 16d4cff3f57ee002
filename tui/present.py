"""Presenter mode (``syncviz --present``): every claim is a scene, stepped through like slides.

A scene is the claim's scenario with its knobs (:func:`~syncviz.engines.claims_live.scene_knobs`:
the same settings every time, so a talk goes the same way twice), the live three-panel
picture, and the claim's verdict judged from the live stream once enough of the scene's own
data has come in (:func:`~syncviz.engines.claims_live.judge_live`). Each scene change
restarts the engines and starts the board afresh, even on the same scenario.
"""

from __future__ import annotations

from typing import Any

from syncviz.engines.claims import CLAIMS, Claim
from syncviz.engines.claims_live import judge_live, min_seconds, scene_knobs, scene_matches
from syncviz.engines.source import EventSource
from syncviz.tui.app import COUNTER_EVERY, ZOOM_GROUP, SyncvizApp, scenario_zoom
from syncviz.tui.widgets.help import HelpScreen
from syncviz.tui.widgets.scene import SceneView
from textual.app import App
from textual.binding import Binding

SCENE_ZOOM_MS = {"not-faster": 1, "threads-needed": 20, "memory": 100}
"""Where the scenario's zoom would not show a whole request (10 ms ones, 200 ms ones, 1 s ones)."""

WATCH: dict[str, str] = {
    "io-throughput": "threaded's 8 lanes are each held for a whole 50 ms wait while the rest of its 200 clients "
    "queue; the loop and the hub keep all 200 awaiting / yielded at once.",
    "not-faster": "one client each: every engine spends the same 10 ms per request (blocked, awaiting or "
    "yielded); compare the three p50s.",
    "cpu-bound": "running (█) takes turns: one GIL runs one request's Python at a time, so the three engines "
    "share one core; the loop's and hub's lag is the wait.",
    "threads-needed": "10 threads hold 10 of the 100 users for 200 ms each and 90 queue; asyncio's one thread "
    "keeps all 100 waiting together.",
    "thousands": "1,000 connections per engine: the loop holds them all, but 1 ms of CPU each is a second per "
    "round, so requests wait ready (▒) for the loop.",
    "blocking-call": "asyncio: one request at a time is blocked (▓) in time.sleep and holds the loop; every "
    "other request is ready (▒) and waits; the lag is in seconds.",
    "greenlets": "gevent: the stdlib time.sleep never yields, so the hub holds one blocked request (▓) while the "
    "rest wait ready (▒); gevent.sleep would have yielded (═).",
    "high-load-only": "64 clients on a pool of 16: threaded keeps 16 running and queues 48; the loop keeps "
    "all 64 awaiting.",
    "offload": "asyncio's loop stays free, but its 40 anyio threads (t1…) are all held: the rest queue, a "
    "thread pool after all.",
    "memory": "200 pool threads each hold one 1 s request; the loop and the hub hold 200 each on one thread.",
    "streaming": "32 clients each read a 500 ms stream of 10 chunks: threaded's 8 lanes each hold one stream "
    "from head to last chunk, blocked (▓) between chunks, while 24 clients queue for a thread; the loop and the "
    "hub keep all 32 streams awaiting / yielded at once.",
    "slow-clients": "16 slow clients per engine trickle a request over 3.5 s: a threaded pool thread reading one "
    "is held until the last byte (its lane shows reading, ┄), so the 100 fast clients queue and req/s falls; the "
    "loop and the hub park the slow ones as reading and keep serving the rest.",
}

KEYS: tuple[tuple[str, str], ...] = (
    ("→ n space pgdn", "next scene (the engines restart on its settings)"),
    ("← p pgup", "previous scene"),
    ("- / +", "zoom the time axis: more / fewer ms per column"),
    ("s", "save an SVG screenshot in the current directory"),
    ("?", "this help"),
    ("q", "quit (stops the engines, leaves nothing running)"),
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
        Binding("s", "shot", "screenshot"),
        Binding("question_mark", "help", "help"),
        Binding("q", "quit", "quit"),
    ]

    def __init__(self, source: EventSource, *, claims: list[Claim] | None = None, **kwargs: Any) -> None:
        super().__init__(source, **kwargs)
        self.claims = list(claims or CLAIMS.values())
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
        self.source.set_scenario(claim.scene, **scene_knobs(claim))
        self.board.set_zoom(SCENE_ZOOM_MS.get(claim.id, scenario_zoom(claim.scene)))
        self.query_one(SceneView).set_scene(claim, self.index, len(self.claims), WATCH.get(claim.id, ""))
        self._show_status()

    def action_scene(self, step: int) -> None:
        index = max(0, min(len(self.claims) - 1, self.index + step))
        if index == self.index:
            self.notify("that was the last scene" if step > 0 else "this is the first scene", timeout=1.5)
            return
        self.index = index
        self.show_scene()

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
        live = judge_live(claim.id, board.counters, board.info, elapsed) if running else None
        views.first().show(live, elapsed, min_seconds(claim.id), running, window=f"at {elapsed:.0f} s")

    def action_help(self) -> None:
        self.push_screen(HelpScreen(self.board.scenario, keys=KEYS))
