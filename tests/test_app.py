"""The app under Pilot: keys reach the source, scenario switches restart the engines,
quitting leaves nothing behind, and a replay draws the same picture every time."""

from __future__ import annotations

import os
import signal
import threading
import time
from pathlib import Path

import pytest
from support import laid_out
from syncviz.engines.child import ChildHost
from syncviz.engines.host import EngineHost
from syncviz.engines.recording import Replay
from syncviz.tui.app import SyncvizApp
from syncviz.tui.widgets.help import KEYS, SUSPEND_KEY, HelpScreen
from syncviz.tui.widgets.panel import EnginePanel

DATA = Path(__file__).parent / "data"
pytestmark = pytest.mark.anyio


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


def replay(name: str = "io-bound") -> Replay:
    return Replay.from_file(DATA / f"{name}.rec.gz")


async def play_all(app: SyncvizApp, pilot) -> None:
    """Feed every recorded batch, then draw one frame (what the snapshot tests do too)."""
    assert isinstance(app.source, Replay)
    await laid_out(pilot)
    app.play_to_end()
    await pilot.pause()


async def test_knob_keys_reach_the_source() -> None:
    source = replay()
    app = SyncvizApp(source, live=False)
    async with app.run_test(size=(200, 50)) as pilot:
        await play_all(app, pilot)
        await pilot.press("C", "w", "I", "U", "R", "m")
        await pilot.pause()
    applied = [cmd[1] for cmd in source.commands if cmd[0] == "apply"]
    assert applied == [
        {"clients": 50},  # the recording ran 20 clients; the next rung up is 50
        {"pool": 4},
        {"io_ms": 100},
        {"cpu_ms": 0.5},
        {"rate": 10},
        {"slow": 10.0},
    ]


async def test_scenario_keys_and_palette_switch_scenario() -> None:
    source = replay()
    app = SyncvizApp(source, live=False)
    async with app.run_test(size=(200, 50)) as pilot:
        await pilot.press("4")
        await pilot.pause()
        assert source.commands[-1] == ("scenario", "blocking-call", {})
        assert app.board.zoom_ms == 50  # that scenario's story needs a wider window
        await pilot.press("ctrl+p")
        await pilot.pause()
        await pilot.press(*"Scenario: offload", "enter")
        await pilot.pause()
        assert source.commands[-1] == ("scenario", "offload", {})


async def test_pause_zoom_help_and_screenshot(tmp_path: Path) -> None:
    source = replay()
    app = SyncvizApp(source, live=False, screenshot_dir=tmp_path)
    async with app.run_test(size=(200, 50)) as pilot:
        await play_all(app, pilot)
        zoom = app.board.zoom_ms
        await pilot.press("minus")
        assert app.board.zoom_ms > zoom
        await pilot.press("plus", "plus")
        assert app.board.zoom_ms < zoom
        await pilot.press("space")
        assert app.paused
        await pilot.press("space")
        assert not app.paused
        await pilot.press("s")
        await pilot.pause()
        assert len(list(tmp_path.glob("syncviz-io-bound-*.svg"))) == 1
        await pilot.press("question_mark")
        await pilot.pause()
        assert isinstance(app.screen, HelpScreen)
        await pilot.press("escape")
        await pilot.pause()
        assert not isinstance(app.screen, HelpScreen)


async def test_a_screenshot_that_cannot_be_written_is_one_notice_and_the_app_goes_on(tmp_path: Path) -> None:
    app = SyncvizApp(replay(), live=False, screenshot_dir=tmp_path / "missing" / "dir")
    async with app.run_test(size=(200, 50)) as pilot:
        await pilot.press("s")
        await pilot.pause()
        notes = [n.message for n in app._notifications]
        assert any(m.startswith("cannot save") for m in notes), notes
        assert app.is_running and app.return_code is None


async def test_a_replay_draws_the_same_picture_every_time() -> None:
    pictures = []
    for _ in range(2):
        app = SyncvizApp(replay("blocking-call"), live=False)
        async with app.run_test(size=(200, 50)) as pilot:
            await play_all(app, pilot)
            pictures.append(app.export_screenshot())
    same = pictures[0] == pictures[1]
    # the first differing lines, not pytest's diff of two SVGs (difflib took minutes over them)
    lines = zip(pictures[0].splitlines(), pictures[1].splitlines(), strict=False)
    assert same, [(a, b) for a, b in lines if a != b][:3]


async def test_too_small_says_so() -> None:
    app = SyncvizApp(replay(), live=False)
    async with app.run_test(size=(60, 15)) as pilot:
        await pilot.pause()
        message = app.query_one("#too-small")
        assert message.display and message.region.width > 0
        assert "at least 80x24" in str(message.render())
        assert app.query_one("#main").region.width == 0


async def test_in_process_says_it_shares_the_gil() -> None:
    app = SyncvizApp(replay(), live=False, in_process=True)
    async with app.run_test(size=(200, 50)) as pilot:
        await pilot.pause()
        assert "shares the GIL" in str(app.query_one("#gil-note").render())


async def test_scenario_switch_restarts_real_engines() -> None:
    host = EngineHost(clients=5, pool=4, io_ms=20).start()
    try:
        app = SyncvizApp(host, in_process=True, start_info=host.info())
        async with app.run_test(size=(200, 50)) as pilot:
            ports = dict(host.info()["ports"])
            await _until(pilot, lambda: app.board.counters.get("asyncio") and app.board.counters["asyncio"].completed)
            await pilot.press("C")  # clients 5 -> 10, applied to the running host
            await pilot.pause()
            assert host.settings.clients == 10
            await pilot.press("4")
            await _until(pilot, lambda: app.board.scenario == "blocking-call")
            assert host.info()["ports"] != ports  # new servers
            assert host.info()["modes"]["asyncio"] == "blocking"
            await _until(pilot, lambda: app.board.stats["threaded"].completed > 0)
    finally:
        host.close()


async def test_quit_leaves_no_thread_or_process() -> None:
    before = {t.ident for t in threading.enumerate()}
    child = ChildHost(clients=5, pool=4, io_ms=20).start()
    procs = [p._popen for p in [*child.procs.values(), child.loadproc] if p is not None]
    assert len(procs) == 4
    app = SyncvizApp(child, start_info=child.info())
    async with app.run_test(size=(200, 50)) as pilot:
        await _until(pilot, lambda: app.board.stats["gevent"].completed > 0)
        await pilot.press("q")
        await pilot.pause()
    assert app.return_code == 0
    t0 = time.monotonic()
    child.close()
    assert time.monotonic() - t0 < 2.0
    assert all(proc.poll() is not None for proc in procs)
    leftover = [t for t in threading.enumerate() if t.ident not in before and t.is_alive()]
    assert not leftover, leftover


async def test_a_killed_engine_says_so_on_its_panel_and_comes_back() -> None:
    child = ChildHost(clients=5, pool=4, io_ms=20).start()
    try:
        app = SyncvizApp(child, start_info=child.info())
        async with app.run_test(size=(200, 50)) as pilot:
            await _until(pilot, lambda: app.board.stats["gevent"].completed > 0)
            panel = app.query_one("#panel-gevent", EnginePanel)
            line = panel.query_one(".proc-line")
            await _until(pilot, lambda: f"pid {child.procs['gevent'].pid}" in str(line.render()))
            os.kill(child.procs["gevent"].pid, signal.SIGKILL)
            # at once: within seconds, not the 8 s of a slow start (4 s: a loaded 2-core box under xdist)
            await _until(pilot, lambda: panel.has_class("-exited"), timeout=4)
            assert "EXITED" in str(panel.border_title)
            assert "exited" in str(app.query_one("#status").render()) and "live" not in str(
                app.query_one("#status").render()
            )
            done = app.board.stats["asyncio"].completed
            await _until(pilot, lambda: app.board.stats["asyncio"].completed > done + 10)  # the others go on
            await pilot.press("1")  # the current scenario's key restarts what is missing
            await _until(pilot, lambda: not panel.has_class("-exited") and app.board.stats["gevent"].completed > 0)
    finally:
        child.close()


async def _until(pilot, predicate, timeout: float = 8.0) -> None:
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if predicate():
            return
        await pilot.pause(0.05)
    pytest.fail("condition not reached in time")


async def test_no_color_draws_with_glyphs(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("NO_COLOR", "1")
    app = SyncvizApp(replay("blocking-call"), live=False)
    async with app.run_test(size=(200, 50)) as pilot:
        assert app.no_color
        await play_all(app, pilot)
        picture = app.export_screenshot()
    assert "▓" in picture and "▒" in picture and "░" in picture


async def test_perf_line_shows_frames_cpu_and_stream_events() -> None:
    app = SyncvizApp(replay(), live=False)
    async with app.run_test(size=(200, 50)) as pilot:
        await play_all(app, pilot)
        for _ in range(5):
            app.pump()
            app.draw(force=True)
        await pilot.press("f")
        await pilot.pause()
        perf = app.query_one("#perf")
        assert perf.has_class("-on") and perf.display
        text = str(perf.render())
        assert "fps" in text and "ms/frame" in text and "events/s" in text
        assert "0.0 fps" not in text  # it counted the frames drawn in the last second
        await pilot.press("f")
        await pilot.pause()
        assert not perf.has_class("-on")


def test_the_perf_meter_keeps_one_second_whether_shown_or_not(monkeypatch: pytest.MonkeyPatch) -> None:
    """Frames and events older than the meter's second go as new ones come, the line off (never sampled)."""
    from syncviz.tui.widgets import perf as perf_module

    clock = [100.0]
    monkeypatch.setattr(perf_module.time, "monotonic", lambda: clock[0])
    meter = perf_module.PerfMeter()
    for _ in range(3_000):  # 100 s at 30 frames a second, one batch of events a frame
        clock[0] += 1 / 30
        meter.frame()
        meter.events(40)
    assert len(meter._frames) <= 31 and len(meter._events) <= 31
    fps, _ms, _cpu, events = meter.sample()
    assert 29 <= fps <= 31 and 1_160 <= events <= 1_240


async def test_the_palette_swaps_a_panels_engine_for_another_model() -> None:
    source = ChildHost(stream="digest", clients=10, io_ms=20).start()
    app = SyncvizApp(source, live=False, start_info=source.info())
    try:
        async with app.run_test(size=(200, 50)) as pilot:
            for _ in range(10):
                app.pump()
                await pilot.pause(0.05)
            app.swap_engine("gevent", "trio")
            deadline = time.monotonic() + 20
            while time.monotonic() < deadline and [p.engine for p in app.query(EnginePanel)] != [
                "threaded",
                "asyncio",
                "trio",
            ]:
                app.pump()
                app.draw()
                await pilot.pause(0.05)
            assert [p.engine for p in app.query(EnginePanel)] == ["threaded", "asyncio", "trio"]
            while time.monotonic() < deadline and app.board.refresh_counters()["trio"].completed < 20:
                app.pump()
                await pilot.pause(0.05)
            assert app.board.refresh_counters()["trio"].completed >= 20
    finally:
        source.close()


@pytest.mark.parametrize("presenter", [False, True])
async def test_ctrl_z_suspends_to_the_shell_in_both_apps(presenter: bool) -> None:
    """ctrl+z is a key in raw mode: bound to Textual's suspend (terminal restored, SIGTSTP, redrawn on fg)."""
    from syncviz.tui.present import KEYS as PRESENT_KEYS
    from syncviz.tui.present import PresenterApp

    app = (PresenterApp if presenter else SyncvizApp)(replay(), live=False)
    calls: list[int] = []
    async with app.run_test(size=(200, 50)) as pilot:
        app.action_suspend_process = lambda: calls.append(1)  # type: ignore[method-assign]
        await pilot.press("ctrl+z")
        await pilot.pause()
        assert calls == [1] and app.is_running
    assert SUSPEND_KEY in (PRESENT_KEYS if presenter else KEYS)  # and `?` says so


def _strips() -> int:
    import gc

    from textual.strip import Strip

    gc.collect()
    return sum(isinstance(o, Strip) for o in gc.get_objects())


async def test_an_app_that_ends_leaves_none_of_its_strips_behind() -> None:
    """Textual's ``StylesCache.get_inner_outer`` (an ``lru_cache`` on a method) kept the style caches of
    an ended app's widgets and every strip they last drew (tui/memory.py forget_removed_widgets): each
    app run in a process (the tests' hundreds) added its thousands."""
    counts = [_strips()]
    for _ in range(2):
        app = SyncvizApp(replay("blocking-call"), live=False)
        async with app.run_test(size=(200, 50)) as pilot:
            await play_all(app, pilot)
        del app, pilot
        counts.append(_strips())
    one = counts[1] - counts[0]  # the last app's: it stays the test's context's active app
    assert one > 1000 and counts[2] - counts[0] < one * 1.1, counts  # not 2x: the one before it is gone
