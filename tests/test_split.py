"""A shared core, full or waited for by every engine on it, that the OS splits unevenly is said on
screen, from measured CPU and waits.

:func:`~syncviz.engines.bottleneck.uneven_split` judges each group of engines on the same CPUs
from their CPU and their threads' wait for a CPU (:class:`~syncviz.engines.bottleneck.WaitMeter`,
Linux's schedstat); the app's :class:`~syncviz.tui.widgets.bars.SplitNote` shows it while it holds.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time

import pytest
from syncviz.engines.bottleneck import CORE_FULL, WaitMeter, uneven_split
from syncviz.engines.source import EngineStatus, ProcessInfo
from syncviz.tui.widgets.bars import SPLIT_LOOKS, SplitNote, split_text
from textual.app import App, ComposeResult

# io 1 ms, the three on cpu 1 (2-core machine), each engine process in a session of its own as they
# were: the panels read CPU 50% / 26% / 24%, req/s far under the loops' bounds; the threads' waits
# for a CPU (% of a core) as measured at io 1 ms: ~200 threaded, ~75 the loop and the hub
MEASURED = {
    "threaded": ((1,), 50.0, 200.0, 0.70),
    "asyncio": ((1,), 26.0, 75.0, 0.05),
    "gevent": ((1,), 24.0, 73.0, 0.05),
}
# mixed, measured: threaded's threads wait for the CPU too, but it serves 93% of the bound its pool
# and I/O set; the loops' larger share does not change the ranking
MIXED = {"threaded": ((1,), 12.0, 29.0, 0.93), "asyncio": ((1,), 45.0, 65.0, 1.0), "gevent": ((1,), 44.0, 65.0, 0.98)}


def test_the_measured_split_is_found_with_who_waits_and_who_is_favoured() -> None:
    split = uneven_split(MEASURED)
    assert split is not None
    assert split.cpus == (1,) and split.even == pytest.approx(100 / 3)
    assert split.starved == ("asyncio", "gevent") and split.favoured == ("threaded",)
    assert split.cpu == {"threaded": 50.0, "asyncio": 26.0, "gevent": 24.0}


def test_an_engine_near_its_bound_or_not_waiting_for_the_cpu_is_not_starved() -> None:
    assert uneven_split(MIXED) is None
    idle_pool = {
        "threaded": ((1,), 5.0, 0.5, 0.2),
        "asyncio": ((1,), 48.0, 12.0, 0.5),
        "gevent": ((1,), 46.0, 11.0, 0.5),
    }
    assert uneven_split(idle_pool) is None  # threaded waits on its own I/O, not for the CPU


def test_an_even_split_a_core_not_full_and_engines_apart_are_not_uneven() -> None:
    even = {name: ((1,), 33.0, 60.0, 0.5) for name in ("threaded", "asyncio", "gevent")}
    assert uneven_split(even) is None  # all wait, each gets its third: fair
    not_full = {n: (cpus, cpu * (CORE_FULL - 0.1), wait, b) for n, (cpus, cpu, wait, b) in MEASURED.items()}
    one_waits_not = {**not_full, "threaded": ((1,), 40.0, 2.0, 0.7)}
    assert uneven_split(one_waits_not) is None  # room on the core: threaded's threads do not wait for it
    apart = {"threaded": ((1,), 95.0, 1.0, 0.9), "asyncio": ((2,), 30.0, 40.0, 0.1), "gevent": ((3,), 30.0, 40.0, 0.1)}
    assert uneven_split(apart) is None  # a core each: nothing shared to split


def test_a_core_not_full_on_average_that_every_engine_waits_for_is_contended() -> None:
    """The app at 0 ms of I/O: the load generator shares the other core with the UI, cpu 1 is ~20%
    idle on average, and yet each engine's threads wait for it (measured, 4 looks a second apart)."""
    app_io_0 = {
        "threaded": ((1,), 37.0, 180.0, 0.0),  # no bound at 0 ms: nothing caps it but the CPU
        "asyncio": ((1,), 20.0, 55.0, 0.0),
        "gevent": ((1,), 21.0, 56.0, 0.0),
    }
    split = uneven_split(app_io_0)
    assert split is not None and not split.full
    assert split.starved == ("asyncio", "gevent") and split.favoured == ("threaded",)
    assert split.even == pytest.approx(78 / 3)  # an even split of what they got
    assert "each engine waits for cpu 1 and the OS gives threaded 37%" in split_text(split)
    assert "not 26% each: asyncio and gevent wait for it" in split_text(split)


def test_what_is_not_measured_is_not_judged() -> None:
    no_wait = {**MEASURED, "asyncio": ((1,), 26.0, None, 0.05)}
    assert uneven_split(no_wait) is None  # what asyncio gets of cpu 1 is unknown: the split is not judged
    no_bound = {**MEASURED, "gevent": ((1,), 24.0, 73.0, None)}
    split = uneven_split(no_bound)
    assert split is not None and split.starved == ("asyncio",)


@pytest.mark.skipif(not os.path.exists(f"/proc/{os.getpid()}/task"), reason="Linux /proc")
def test_the_wait_meter_sees_two_busy_processes_on_one_cpu_wait() -> None:
    cpu = sorted(os.sched_getaffinity(0))[0]
    spin = f"import os, time\nos.sched_setaffinity(0, [{cpu}])\nend = time.time() + 2\nwhile time.time() < end: pass"
    procs = [subprocess.Popen([sys.executable, "-c", spin]) for _ in range(2)]
    try:
        meter = WaitMeter(procs[0].pid)
        time.sleep(0.2)  # both started and pinned
        assert meter.percent() is None  # the first look has nothing to compare with
        time.sleep(0.4)
        waited = meter.percent()
        assert waited is not None and waited >= 10.0  # ~50%: each runs half the time
    finally:
        for p in procs:
            p.kill()
            p.wait()
    assert WaitMeter(procs[0].pid).percent() is None  # gone: not read


def _status(name: str, cpus: tuple[int, ...], cpu: float, wait: float, _of_bound: object = None) -> EngineStatus:
    return EngineStatus(name, "live", process=ProcessInfo(1, cpus, cpu, 20.0, wait), cpu_share=1 / 3)


class _Notes(App):
    def compose(self) -> ComposeResult:
        yield SplitNote(id="split-note")


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@pytest.mark.anyio
async def test_the_note_comes_after_looks_that_agree_and_goes_after_as_many_that_do_not() -> None:
    uneven = {name: _status(name, *values) for name, values in MEASURED.items()}
    fair = {name: _status(name, (1,), 33.0, 40.0) for name in MEASURED}
    bounds = {name: values[3] for name, values in MEASURED.items()}
    app = _Notes()
    async with app.run_test(size=(200, 10)) as pilot:
        note = app.query_one(SplitNote)
        for _ in range(SPLIT_LOOKS - 1):
            note.look(uneven, bounds)
        assert not note.display  # one quarter-second figure is not enough
        note.look(uneven, bounds)
        await pilot.pause()
        text = str(note.render())
        assert note.display and "cpu 1 is full" in text and "threaded 50%" in text and "asyncio and gevent wait" in text
        for _ in range(SPLIT_LOOKS - 1):
            note.look(fair, bounds)
        assert note.display
        note.look(fair, bounds)
        assert not note.display
        two = {
            "threaded": _status("threaded", (1,), 60.0, 2.0),
            "asyncio": EngineStatus("asyncio", "exited"),  # judged no more: the two live ones share the core
            "gevent": _status("gevent", (1,), 35.0, 40.0),
        }
        for _ in range(SPLIT_LOOKS):
            note.look(two, bounds)
        await pilot.pause()
        assert note.display and "not 48% each: gevent waits" in str(note.render())


def test_a_loop_busy_with_no_call_holding_it_says_how_long_it_waited_for_a_cpu() -> None:
    from syncviz.engines.blocked import BlockedCall
    from syncviz.engines.stall import BUSY
    from syncviz.tui.widgets.counters import blocked_text

    busy = BlockedCall(0, 22_000_000, 0, BUSY, False)
    assert busy.busy
    assert blocked_text(busy, "loop", True, 120).plain == f"loop busy 22 ms, {BUSY}"  # not measured: nothing said
    assert blocked_text(busy, "loop", True, 120, cpu_wait=4.0).plain == f"loop busy 22 ms, {BUSY}"  # too little
    waited = blocked_text(busy, "loop", True, 120, cpu_wait=74.4).plain
    assert waited == f"loop busy 22 ms, {BUSY} · 74% waiting for CPU"
    assert blocked_text(busy, "loop", True, 120, cpu_wait=180.0).plain.endswith(
        "· 100% waiting for CPU"
    )  # threads summed
    call = BlockedCall(0, 50_000_000, 0, "time.sleep ← _sleep (engines/work.py:136)", False)
    assert "waiting for CPU" not in blocked_text(call, "loop", True, 120, cpu_wait=74.4).plain  # a call held it
