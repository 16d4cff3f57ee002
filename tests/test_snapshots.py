"""Pictures of the app fed by committed recordings (pytest-textual-snapshot).

Regenerate after an intended change: ``pytest tests/test_snapshots.py --snapshot-update``.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from support import laid_out
from syncviz.engines.recording import Replay
from syncviz.tui.app import SyncvizApp

DATA = Path(__file__).parent / "data"


def make_app(name: str) -> SyncvizApp:
    return SyncvizApp(Replay.from_file(DATA / f"{name}.rec.gz"), live=False)


async def play_all(pilot) -> None:
    app: SyncvizApp = pilot.app
    await laid_out(pilot)
    app.play_to_end()
    await pilot.pause()


@pytest.mark.parametrize("scenario", ["io-bound", "blocking-call"])
def test_wide(snap_compare, scenario: str) -> None:
    assert snap_compare(make_app(scenario), terminal_size=(200, 50), run_before=play_all)


def test_stacked(snap_compare) -> None:
    assert snap_compare(make_app("io-bound"), terminal_size=(100, 30), run_before=play_all)


def test_too_small(snap_compare) -> None:
    assert snap_compare(make_app("io-bound"), terminal_size=(60, 15), run_before=play_all)


def test_help(snap_compare) -> None:
    assert snap_compare(make_app("blocking-call"), terminal_size=(140, 45), press=["question_mark"])


async def inspect_request(pilot) -> None:
    """A click on an asyncio request row of blocking-call: the request the loop was blocked by."""
    await play_all(pilot)
    await pilot.click("#panel-asyncio TimelineView", offset=(20, 8))
    await pilot.pause()


def test_detail_request(snap_compare) -> None:
    assert snap_compare(make_app("blocking-call"), terminal_size=(200, 50), run_before=inspect_request)


def test_detail_lane(snap_compare) -> None:
    """``]`` twice: the cursor on the asyncio loop's lane (io-bound), its busy share and the requests it served."""
    press = ["right_square_bracket", "right_square_bracket"]
    assert snap_compare(make_app("io-bound"), terminal_size=(200, 50), run_before=play_all, press=press)


def test_scrubbed(snap_compare) -> None:
    """Paused and moved back five tenths of the window: the header says how far, the counters are then's."""

    async def scrub_back(pilot) -> None:
        await play_all(pilot)
        await pilot.press("space", *["left"] * 5)
        await pilot.pause()

    assert snap_compare(make_app("blocking-call"), terminal_size=(200, 50), run_before=scrub_back)
