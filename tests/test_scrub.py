"""Scrubbing: the tape keeps what was fed (bounded), a past moment is drawn as it was, replays pace
and restart, and ctrl+s saves the buffered minutes as a recording that replays."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from syncviz.engines.events import Batch
from syncviz.engines.recording import Replay, read_recording
from syncviz.engines.stats import stream_items
from syncviz.tui import scrub as scrub_module
from syncviz.tui.app import SyncvizApp
from syncviz.tui.board import Board
from syncviz.tui.scrub import Scrub
from syncviz.tui.tape import Tape
from syncviz.tui.widgets.bars import Bar, behind_text

DATA = Path(__file__).parent / "data"
pytestmark = pytest.mark.anyio
SIZE = (200, 50)


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


def taped(name: str = "io-bound", **tape_kw: float) -> tuple[Board, Tape, list[Batch]]:
    info, batches = read_recording(DATA / f"{name}.rec.gz")
    board, tape = Board(info), Tape(**tape_kw)
    for batch in batches:
        tape.add(batch, stream_items(batch), board.info, board.ns_per_col)
        board.feed(batch)
    return board, tape, batches


def test_tape_keeps_minutes_by_stream_time_and_says_when_the_cap_cut_them() -> None:
    _, tape, batches = taped(keep_s=1.0)
    assert tape.span_s <= 1.0 and tape.end_ns == batches[-1].t_ns and not tape.capped
    _, tape, _ = taped(max_bytes=200_000)
    assert tape.capped and tape.bytes <= 200_000 + max(e.size for e in tape.entries)
    assert 0 < tape.span_s < 2.9  # the span it really holds, not the 5 minutes it was asked for


def test_packed_batches_come_back_as_they_went_in() -> None:
    _, tape, batches = taped(hot_s=0.5)
    assert len(tape.entries) == len(batches)  # all kept: entry i is batch i (two can share a drain time)
    packed = [(e, b) for e, b in zip(tape.entries, batches, strict=True) if e.hot is None]
    assert len(packed) > len(batches) // 2
    for entry, original in packed[:20]:
        again = entry.batch  # unpacked: lists; the kept original: tuples (tui/tape.py settle)
        assert as_json(again) == as_json(original)


def as_json(batch: Batch) -> object:
    return json.loads(json.dumps((batch.transitions, batch.latencies, batch.lags, batch.digests, batch.blocks)))


def look(board: Board, labels: bool = True) -> tuple:
    frame = board.lanes["threaded"].frame(board.now_ns, 100, list(range(8)))
    return frame.hold, frame.queued, frame.ready, frame.labels if labels else None


@pytest.mark.parametrize("margin_s", [6.0, 0.5])
def test_a_past_moment_is_drawn_as_it_was(monkeypatch: pytest.MonkeyPatch, margin_s: float) -> None:
    """The scrub board at T draws the lanes the live board drew at T, with the counters it showed
    (fed from the start of the tape, or with a margin shorter than the tape)."""
    monkeypatch.setattr(scrub_module, "MARGIN_NS", int(margin_s * 1e9))
    info, batches = read_recording(DATA / "io-bound.rec.gz")
    live, tape = Board(info), Tape()
    shown: dict[int, tuple[tuple, dict]] = {}
    full = margin_s > 3
    for i, batch in enumerate(batches):
        tape.add(batch, stream_items(batch), live.info, live.ns_per_col)
        live.feed(batch)
        if i in (40, 60):
            tape.note_counters(live.now_ns, live.refresh_counters())
            shown[i] = (look(live, full), {k: c.completed for k, c in live.counters.items()})
    scrub = Scrub(tape)
    for i in (60, 40):  # back from 60 to 40: built afresh
        scrub.move(batches[i].t_ns, live.now_ns)
        board = scrub.view(live, 100 * live.ns_per_col)
        assert board.now_ns == batches[i].t_ns
        picture, completed = shown[i]
        assert look(board, full) == picture
        assert {k: c.completed for k, c in board.counters.items()} == completed
    assert scrub.behind_s(live.now_ns) == pytest.approx((live.now_ns - batches[40].t_ns) / 1e9)


def test_a_step_back_unpacks_only_the_seconds_it_adds(monkeypatch: pytest.MonkeyPatch) -> None:
    """Batches unpacked for one scrub board are kept for the next while within its span: a step
    back unpacks only what it adds, draws what a scrub from scratch draws, and going live lets them go."""
    from syncviz.tui import entries as entries_module

    monkeypatch.setattr(scrub_module, "MARGIN_NS", 500_000_000)
    unpacked: list[int] = []
    decode = entries_module.decode_batch
    monkeypatch.setattr(entries_module, "decode_batch", lambda record: unpacked.append(1) or decode(record))
    live, tape, batches = taped(hot_s=0.0)  # all but the newest batch packed
    window = 500_000_000
    scrub = Scrub(tape)
    scrub.move(batches[-1].t_ns, live.now_ns)
    scrub.view(live, window)
    first = len(unpacked)
    unpacked.clear()
    scrub.move(batches[-1].t_ns - window, live.now_ns)
    again = scrub.view(live, window)
    assert first > 10 and 0 < len(unpacked) < first * 0.75
    fresh = Scrub(tape)
    fresh.move(batches[-1].t_ns - window, live.now_ns)
    assert look(fresh.view(live, window)) == look(again)
    scrub.reset()
    assert not scrub._unpacked


def test_moves_stay_within_the_tape() -> None:
    live, tape, _ = taped()
    scrub = Scrub(tape)
    assert scrub.move(0, live.now_ns) == tape.start_ns and scrub.clamped == "oldest"
    assert scrub.move(live.now_ns + 10**9, live.now_ns) == live.now_ns and scrub.clamped == "newest"


def test_behind_text() -> None:
    assert behind_text(12.44) == "\u221212.4 s"
    assert behind_text(185.2) == "\u22123:05.2"


def test_paced_replay_follows_its_stream_time_at_its_speed() -> None:
    info, batches = read_recording(DATA / "io-bound.rec.gz")
    wall = [100.0]
    replay = Replay(info, batches, clock=lambda: wall[0])
    first = replay.drain()
    assert first is batches[0]
    assert replay.speed_step(1) == 2.0
    wall[0] += 0.1
    got = replay.drain()  # 0.2 s of stream time: several batches merged in one
    played = [b for b in batches[1:] if b.t_ns <= batches[0].t_ns + 200_000_000]
    assert replay.position == 1 + len(played) and len(got.transitions) == sum(len(b.transitions) for b in played)
    wall[0] += 30.0  # not drained for half a minute (paused): no fast-forward
    replay.drain()
    assert replay.position <= 1 + len(played) + 20
    assert replay.set_speed(100) == 10.0 and replay.set_speed(0.01) == 0.1
    replay.restart()
    assert replay.drain() is batches[0]


def status(app: SyncvizApp) -> str:
    return str(app.query_one("#status", Bar).render())


async def test_space_left_end_in_the_app() -> None:
    app = SyncvizApp(Replay.from_file(DATA / "blocking-call.rec.gz"), live=False)
    async with app.run_test(size=SIZE) as pilot:
        await pilot.pause()
        app.play_to_end()
        await pilot.press("space", *["left"] * 5)
        await pilot.pause()
        assert "❚❚ \u2212" in status(app) and "❚❚ \u22120.0 s" not in status(app)
        board = app.shown_board
        assert board is not app.board and board.now_ns < app.board.now_ns
        assert board.counters["threaded"].completed < app.board.counters["threaded"].completed
        await pilot.press("shift+right", "shift+right")  # past the newest: stays paused at it
        assert app.paused and app.scrub.clamped == "newest"
        await pilot.press("end")
        await pilot.pause()
        assert not app.paused and "❚❚" not in status(app) and "replay" in status(app)
        await pilot.press("greater_than_sign")
        assert app.source.speed == 2.0 and "replay 2x" in status(app)
        await pilot.press("home")
        assert app.source.position == 0 and not app.tape.entries


async def played_and_saved(app: SyncvizApp, pilot) -> None:
    await pilot.pause()
    app.play_to_end()
    await pilot.press("ctrl+s")
    await app.workers.wait_for_complete()
    await pilot.pause()


async def test_ctrl_s_saves_the_buffered_minutes(tmp_path: Path) -> None:
    app = SyncvizApp(Replay.from_file(DATA / "io-bound.rec.gz"), live=False, screenshot_dir=tmp_path)
    async with app.run_test(size=SIZE) as pilot:
        await played_and_saved(app, pilot)
        saved = list(tmp_path.glob("syncviz-io-bound-*.rec.gz"))
        assert len(saved) == 1
        info, batches = read_recording(saved[0])
        assert len(batches) == len(app.tape.entries) and info["scenario"] == "io-bound"
        assert [b.t_ns for b in batches] == [e.t_ns for e in app.tape.entries]
        notes = [n.message for n in app._notifications]
        assert any(str(saved[0].resolve()) in m and "syncviz replay" in m for m in notes)


async def test_ctrl_s_to_an_unwritable_place_says_so_in_one_line(tmp_path: Path) -> None:
    not_a_dir = tmp_path / "file"
    not_a_dir.write_text("")
    app = SyncvizApp(Replay.from_file(DATA / "io-bound.rec.gz"), live=False, screenshot_dir=not_a_dir)
    async with app.run_test(size=SIZE) as pilot:
        await played_and_saved(app, pilot)
        errors = [n.message for n in app._notifications if n.severity == "error"]
        assert len(errors) == 1 and "\n" not in errors[0] and "cannot write recording" in errors[0]
        assert sorted(p.name for p in tmp_path.iterdir()) == ["file"]
