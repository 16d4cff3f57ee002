"""The frame pacer: a fixed grid of frame times that late frames do not break, never a burst."""

from __future__ import annotations

import asyncio
import itertools

from syncviz.tui.pacing import FramePacer, run_frames

FPS = 30
PERIOD = 1 / FPS


def _frames(costs: list[float], fps: float = FPS) -> list[float]:
    """Start times of frames whose drawing (and lateness) took ``costs`` seconds, on a simulated clock."""
    pacer = FramePacer(fps, 0.0)
    t, out = 0.0, []
    for cost in costs:
        t += pacer.delay(t)
        out.append(t)
        t += cost
    return out


def test_cheap_frames_keep_the_rate_exactly() -> None:
    times = _frames([0.005] * 300)
    gaps = [b - a for a, b in itertools.pairwise(times)]
    assert all(abs(g - PERIOD) < 1e-9 for g in gaps)


def test_a_frame_late_by_less_than_a_period_costs_no_frame() -> None:
    # every third frame runs 30 ms (lateness and work): Textual's interval timer skipped the next tick
    costs = [0.030 if i % 3 == 0 else 0.008 for i in range(301)]
    times = _frames(costs)
    assert times[-1] < 300 * PERIOD + PERIOD  # 301 frames in 10 s and a bit: none dropped
    gaps = [b - a for a, b in itertools.pairwise(times)]
    assert min(gaps) >= PERIOD / 2 - 1e-9  # never back to back: the screen renders each one


def test_never_more_frames_than_the_rate() -> None:
    costs = [0.050 if i % 7 == 0 else 0.002 for i in range(600)]
    times = _frames(costs)
    assert len(times) <= (times[-1] - times[0]) * FPS + 1  # over the run: the rate at most
    for i, t in enumerate(times):  # in any second: a frame caught up (at most a period behind) and the edge
        within = sum(1 for u in times[i:] if u < t + 1.0)
        assert within <= FPS + 2


def test_a_long_stall_drops_the_missed_frames_instead_of_catching_up() -> None:
    costs = [0.005] * 10 + [0.5] + [0.005] * 10
    times = _frames(costs)
    after = [b - a for a, b in itertools.pairwise(times[10:])]
    assert abs(after[0] - (0.5 + PERIOD / 2)) < 1e-9  # half a period after the stall, not at once
    assert all(g >= PERIOD / 2 - 1e-9 for g in after)  # and no burst of the missed ones


def test_overloaded_frames_come_half_a_period_apart() -> None:
    times = _frames([0.040] * 50)  # each frame takes longer than a period
    gaps = [b - a for a, b in itertools.pairwise(times)]
    assert all(abs(g - (0.040 + PERIOD / 2)) < 1e-9 for g in gaps[2:])


def test_run_frames_calls_draw_until_cancelled() -> None:
    calls: list[int] = []

    async def main() -> None:
        task = asyncio.create_task(run_frames(200, lambda: calls.append(1)))
        await asyncio.sleep(0.2)
        task.cancel()

    asyncio.run(main())
    assert 5 <= len(calls) <= 41  # 200 a second for 0.2 s: a loaded machine may draw fewer, never more
