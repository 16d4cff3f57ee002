"""Make the README's screenshots: record each scenario live, replay it through the app, save SVG + PNG.

python docs/make_screenshots.py            # io-bound and blocking-call, 200x50
python docs/make_screenshots.py inspect    # blocking-call with an asyncio request's detail panel open
"""

from __future__ import annotations

import asyncio
import shutil
import subprocess
import sys
from pathlib import Path

from syncviz.engines.child import ChildHost
from syncviz.engines.events import Phase
from syncviz.engines.recording import Replay, record
from syncviz.engines.scenarios import SCENARIOS
from syncviz.tui.app import SyncvizApp
from syncviz.tui.widgets.timeline import GUTTER

HERE = Path(__file__).parent
SIZE = (200, 50)


async def click_blocked_request(pilot, engines: tuple[str, ...] = ("asyncio", "gevent")) -> None:
    """Click a finished request that was blocked, on the first of ``engines`` that shows one (its detail opens)."""
    for engine in engines:
        drawn = pilot.app.query_one(f"#panel-{engine}").drawn
        for i, row in reversed(list(enumerate(drawn.rows))):
            for track in row:
                if track.phase == Phase.DONE and any(ph == Phase.BLOCKED for _, ph, _ in track.steps):
                    col = (track.steps[0][0] + track.steps[-1][0]) // 2 // drawn.ns - drawn.first_col
                    if 0 <= col < drawn.cols:
                        y = drawn.targets.index(("row", i))
                        await pilot.click(f"#panel-{engine} TimelineView", offset=(GUTTER + col, y))
                        await pilot.pause()
                        return


async def shoot(scenario: str, seconds: float = 4.0, name: str | None = None) -> Path:
    with ChildHost(scenario=scenario) as child:
        info = dict(child.info())
        batches = record(child, seconds)
    source = Replay(info, batches)
    app = SyncvizApp(source, live=False)
    async with app.run_test(size=SIZE) as pilot:
        await pilot.pause()
        app.play_to_end()
        await pilot.pause()
        if name == "inspect":
            await click_blocked_request(pilot)
        svg = Path(app.save_screenshot(filename=f"{name or scenario}.svg", path=str(HERE)))
    if shutil.which("rsvg-convert"):
        subprocess.run(["rsvg-convert", str(svg), "-o", str(svg.with_suffix(".png"))], check=True)
        svg.unlink()  # the README shows the PNG
        return svg.with_suffix(".png")
    return svg


def main() -> int:
    scenarios = sys.argv[1:] or ["io-bound", "blocking-call"]
    for scenario in scenarios:
        if scenario not in SCENARIOS and scenario != "inspect":
            print(f"make_screenshots: unknown scenario {scenario!r} (known: {', '.join(SCENARIOS)})", file=sys.stderr)
            return 2
    for scenario in scenarios:
        if scenario == "inspect":
            print(asyncio.run(shoot("blocking-call", 8.0, name="inspect")))  # long enough for requests to finish
        else:
            print(asyncio.run(shoot(scenario)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
