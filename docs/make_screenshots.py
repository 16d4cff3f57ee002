"""Make the README's screenshots: record each scenario live, replay it through the app, save SVG + PNG.

python docs/make_screenshots.py            # io-bound and blocking-call, 200x50
"""

from __future__ import annotations

import asyncio
import shutil
import subprocess
import sys
from pathlib import Path

from syncviz.engines.child import ChildHost
from syncviz.engines.recording import Replay, record
from syncviz.engines.scenarios import SCENARIOS
from syncviz.tui.app import SyncvizApp

HERE = Path(__file__).parent
SIZE = (200, 50)


async def shoot(scenario: str, seconds: float = 4.0) -> Path:
    with ChildHost(scenario=scenario) as child:
        info = dict(child.info())
        batches = record(child, seconds)
    source = Replay(info, batches)
    app = SyncvizApp(source, live=False)
    async with app.run_test(size=SIZE) as pilot:
        await pilot.pause()
        app.play_to_end()
        await pilot.pause()
        svg = Path(app.save_screenshot(filename=f"{scenario}.svg", path=str(HERE)))
    if shutil.which("rsvg-convert"):
        subprocess.run(["rsvg-convert", str(svg), "-o", str(svg.with_suffix(".png"))], check=True)
        svg.unlink()  # the README shows the PNG
        return svg.with_suffix(".png")
    return svg


def main() -> int:
    scenarios = sys.argv[1:] or ["io-bound", "blocking-call"]
    for scenario in scenarios:
        if scenario not in SCENARIOS:
            print(f"make_screenshots: unknown scenario {scenario!r} (known: {', '.join(SCENARIOS)})", file=sys.stderr)
            return 2
    for scenario in scenarios:
        print(asyncio.run(shoot(scenario)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
