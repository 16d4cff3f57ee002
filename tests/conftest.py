"""Shared fixtures: every engine test runs once per engine, the way anyio runs per backend."""

from __future__ import annotations

import gc
import os
import sys
from collections.abc import Iterator

if sys.dont_write_bytecode:
    # PYTHONDONTWRITEBYTECODE (set on some machines) would have every xdist worker rewrite and compile
    # every test module again, and every engine, prefork worker and CLI process the tests start
    # compile the project's modules again (an editable install has no bytecode of its own): about a
    # sixth of the suite's CPU. The suite writes bytecode as Python does by default, into the
    # __pycache__ folders git ignores.
    sys.dont_write_bytecode = False
    os.environ.pop("PYTHONDONTWRITEBYTECODE", None)

import pytest
from syncviz.engines.base import Engine, engine_class
from syncviz.engines.events import ENGINES, Recorder
from syncviz.engines.settings import Settings
from syncviz.engines.upstream import Upstream

# Full collections ten times rarer than Python's default (a full one after 100 middle-generation
# collections, not 10; the young generations are collected as before, so the pauses a loop's
# watchdog may see stay as short as they were). A test process holds 150,000-430,000 objects
# (Textual, pytest's items, the recordings) and the app's frames keep making objects that outlive
# a young collection, so each of the 4 workers walked its whole heap 20-50 times a run: 15 of the
# default run's CPU-seconds, ~0.15 s a walk. Nothing waits for the collector: the tests that need
# garbage gone collect it themselves (support.fds_left_since, test_tape_spill, test_wire), and the
# app and bench freeze what they keep (tui/memory.py, engines/window.py) as before.
gc.set_threshold(*gc.get_threshold()[:2], 100)


def pytest_collection_finish(session: pytest.Session) -> None:
    """Keep what collection made (the modules, the test items: ~75,000-110,000 objects a worker that
    live as long as the session) out of every later full collection (``gc.freeze``), as the app
    does with what its startup made (tui/memory.py). Full collections run 10-15 times a worker (the
    tests' own, the threshold's, pytest's five at the end, which walked every one of them again;
    0.1-1 s each on a loaded 2-core box). What a test makes is collected as before."""
    gc.collect()
    gc.freeze()


IDLE_WAIT_S = 0.25  # the longest a pilot waits for the process to be idle (Textual's own: 1 s)


@pytest.fixture(autouse=True)
def _bounded_idle_wait(monkeypatch: pytest.MonkeyPatch) -> None:
    """Textual's pilot, after each key of ``press`` and in ``pause()``, waits until the process used
    under 1 ms of CPU in 20 ms, for at most 1 s (``textual._wait.wait_for_idle``). A live app draws
    30 frames a second, and with ``--in-process`` its engines run in the same process: it is never
    idle, so each key press waited 2 s and each pause 1 s (test_scenario_switch_restarts_real_engines:
    5.5 s, 5 s of them in two key presses). The pilot still waits for every widget to process what
    is queued (``_wait_for_screen``); what takes longer the tests wait for themselves, by condition.
    A replay's app goes idle at once and waits no less than before."""
    from textual import _wait

    wait = _wait.wait_for_idle

    async def bounded(min_sleep: float = _wait.SLEEP_GRANULARITY, max_sleep: float = 1) -> None:
        await wait(min_sleep, min(max_sleep, IDLE_WAIT_S))

    monkeypatch.setattr("textual.app.wait_for_idle", bounded)
    monkeypatch.setattr("textual.pilot.wait_for_idle", bounded)


@pytest.fixture(params=ENGINES)
def engine_name(request: pytest.FixtureRequest) -> str:
    return request.param


@pytest.fixture
def upstream() -> Iterator[Upstream]:
    up = Upstream()
    up.start()
    yield up
    up.stop()


@pytest.fixture
def recorder() -> Recorder:
    return Recorder()


@pytest.fixture
def engine(engine_name: str, recorder: Recorder, upstream: Upstream) -> Iterator[Engine]:
    """A running engine with a short handler (5 ms of I/O)."""
    eng = engine_class(engine_name)(recorder, Settings(io_ms=5, pool=4), "native", upstream.port)
    eng.start()
    yield eng
    eng.stop()


@pytest.fixture
def make_engine(upstream: Upstream) -> Iterator:
    """Start engines by name, mode and I/O time (``make(name, mode, io_ms)``); all stopped after."""
    started: list[Engine] = []

    def make(name: str, mode: str, io_ms: int, recorder: Recorder | None = None) -> Engine:
        eng = engine_class(name)(recorder or Recorder(), Settings(io_ms=io_ms, pool=4), mode, upstream.port)
        eng.start()
        started.append(eng)
        return eng

    yield make
    for eng in started:
        eng.stop()
