"""Presenter mode under Pilot: the first scene on open, next and previous, the board starting
afresh on every scene, and the live verdict hidden until enough of the scene's data is in."""

from __future__ import annotations

from pathlib import Path

import pytest
from rich.console import Console
from support import laid_out
from syncviz.engines.claims import CLAIM_LIST, CLAIMS
from syncviz.engines.claims.live import scene_settings
from syncviz.engines.events import ENGINE_IDS, Batch
from syncviz.engines.recording import Replay
from syncviz.tui.board import Board
from syncviz.tui.present import PresenterApp
from syncviz.tui.widgets.help import HelpScreen, help_text
from syncviz.tui.widgets.scene import SceneView

DATA = Path(__file__).parent / "data"
pytestmark = pytest.mark.anyio


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


def scene_command(i: int) -> tuple:
    claim = CLAIM_LIST[i]
    return ("scenario", claim.scene.scenario, claim.scene.knobs)


def synthetic_scene(seconds: float, rps: dict[str, int]) -> Replay:
    """The first scene's stream, made up: ``rps`` ok answers a second per engine, 10 batches a second."""
    claim = CLAIM_LIST[0]
    info = {"scenario": claim.scene.scenario, "settings": scene_settings(claim).as_dict(), "engines": list(ENGINE_IDS)}
    t0, step = 10**12, 100_000_000
    batches = []
    for i in range(int(seconds * 10)):
        t = t0 + (i + 1) * step
        lat = [
            (t - j * 1000, ENGINE_IDS[e], i * 10_000 + j, 50_000_000 if e != "threaded" else 1_250_000_000, True)
            for e, n in rps.items()
            for j in range(n // 10)
        ]
        batches.append(Batch(latencies=lat, t_ns=t))
    batches[0].info = {**info, "run": 2}  # the engines restarted on the scene, as a live host reports it
    return Replay(info, batches)


async def test_opens_on_the_first_scene_next_and_previous() -> None:
    source = Replay.from_file(DATA / "io-bound.rec.gz")
    app = PresenterApp(source, live=False)
    async with app.run_test(size=(200, 50)) as pilot:
        await pilot.pause()
        assert source.commands == [scene_command(0)]
        scene = app.query_one(SceneView)
        assert str(scene.border_title).startswith(f"[b]scene 1/{len(CLAIMS)}[/b]")
        await pilot.press("p")  # nothing before the first scene
        await pilot.press("n", "space", "right", "pagedown")
        await pilot.pause()
        assert source.commands == [scene_command(i) for i in range(5)]
        assert f"scene 5/{len(CLAIMS)}" in str(scene.border_title)
        await pilot.press("p", "left", "pageup")
        await pilot.pause()
        assert source.commands[5:] == [scene_command(3), scene_command(2), scene_command(1)]
        assert app.board.zoom_ms == 1  # not-faster's 10 ms requests need a finer axis
        await pilot.press("c", "1", "m")  # no knobs or scenario keys: a scene's settings are the scene's
        await pilot.pause()
        assert len(source.commands) == 8
        await pilot.press("r")  # the scene again: how a panel's "press r to restart it" brings an engine back
        await pilot.pause()
        assert source.commands[8:] == [scene_command(1)] and app.restart_key == "r"
        # a recording of something else is never judged
        app.play_to_end()
        assert not app.query_one("#scene-verdict").display
        assert "waiting for the engines" in str(app.query_one("#scene-wait").render())
        await pilot.press("question_mark")
        await pilot.pause()
        assert isinstance(app.screen, HelpScreen)


async def test_verdict_appears_once_enough_data_is_in() -> None:
    source = synthetic_scene(5, {"threaded": 160, "asyncio": 3500, "gevent": 3500})
    app = PresenterApp(source, live=False)
    async with app.run_test(size=(200, 50)) as pilot:
        await pilot.pause()
        verdict, wait = app.query_one("#scene-verdict"), app.query_one("#scene-wait")
        for _ in range(20):  # 2 s of the scene
            app.pump()
        app.draw(force=True)
        assert app.scene_start_ns is not None
        assert not verdict.display and wait.display
        assert "measuring" in str(wait.render())
        app.play_to_end()
        await pilot.pause()
        assert verdict.display and not wait.display
        text = str(verdict.render())
        assert "does not hold: async/sync was 22x at pool 8" in text
        assert "req/s with 8 threads: 22x (200 clients)" in text  # the figures, beside the verdict
        assert "syncviz claims --id io-throughput" in str(app.query_one("#scene-scope").render())


def test_a_same_scenario_restart_starts_the_board_afresh() -> None:
    claim = CLAIMS["not-faster"]
    settings = scene_settings(claim).as_dict()
    board = Board({"run": 1, "scenario": "io-bound", "settings": scene_settings(CLAIM_LIST[0]).as_dict()})
    old = Batch(transitions=[(1, 0, 7, 0, 0)], t_ns=1)
    assert not board.feed(old)
    assert board.stats["threaded"].inflight
    # knobs applied to the running engines: the same run, nothing starts afresh
    assert not board.feed(
        Batch(t_ns=2, info={"run": 1, "scenario": "io-bound", "settings": {**settings, "clients": 5}})
    )
    # the engines restarted on the same scenario (the next scene): a new run
    assert board.feed(Batch(t_ns=3, info={"run": 2, "scenario": "io-bound", "settings": settings}))
    assert not board.stats["threaded"].inflight  # the old engines' request will never finish
    assert board.info["run"] == 2 and not board.feed(Batch(t_ns=4))  # the restart was taken once


def test_help_links_the_scenario_to_its_claims() -> None:
    console = Console(width=160, record=True)
    console.print(help_text("blocking-call"))
    text = console.export_text()
    assert CLAIMS["blocking-call"].claim in text
    assert CLAIMS["greenlets"].claim in text
    assert "io-throughput, threads-needed, thousands, high-load-only" in text  # the other scenarios' claims
    assert "syncviz --present" in text


def test_first_scene_snapshot(snap_compare) -> None:
    async def settle(pilot) -> None:
        await laid_out(pilot)  # the first frame sizes the request rows: drawn early, it had fewer
        pilot.app.play_to_end()
        await pilot.pause()

    app = PresenterApp(Replay.from_file(DATA / "io-bound.rec.gz"), live=False)
    assert snap_compare(app, terminal_size=(200, 50), run_before=settle)
