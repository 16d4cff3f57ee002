"""Shared fixtures: every engine test runs once per engine, the way anyio runs per backend."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from pathlib import Path

if sys.dont_write_bytecode:
    # PYTHONDONTWRITEBYTECODE (set on some machines) would have every xdist worker rewrite and compile
    # every test module again (about 1.5 s of CPU a worker): the suite keeps its own bytecode, out of
    # the source tree, under .pytest_cache (git ignores it). The environment of the processes the
    # tests start is left as it is.
    sys.pycache_prefix = str(Path(__file__).resolve().parent.parent / ".pytest_cache" / "pycache")
    sys.dont_write_bytecode = False

import pytest
from syncviz.engines.base import Engine, engine_class
from syncviz.engines.events import ENGINES, Recorder
from syncviz.engines.settings import Settings
from syncviz.engines.upstream import Upstream


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
