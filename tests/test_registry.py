"""The engine registry: one table of what each engine is, a lazy loader, no import cycle."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest
import syncviz.engines
from syncviz.engines import base
from syncviz.engines.backends._loop import LoopEngine
from syncviz.engines.events import ENGINES, Phase
from syncviz.engines.registry import (
    ENGINE_SPECS,
    GEVENT_POOL,
    OFFLOAD_LIMIT,
    EngineError,
    engine_spec,
    load,
)
from syncviz.engines.settings import Settings, capacity
from syncviz.tui.board import Board

ENGINES_DIR = Path(syncviz.engines.__file__).parent


def test_the_table_lists_the_engines_in_record_order() -> None:
    assert tuple(ENGINE_SPECS) == ENGINES
    assert [s.wait_phase for s in ENGINE_SPECS.values()] == [
        Phase.BLOCKED,
        Phase.AWAITING,
        Phase.YIELDED,
        Phase.AWAITING,
        Phase.AWAITING,
        Phase.BLOCKED,
    ]


def test_load_gives_the_named_class_and_the_loop_engines_share_one_base(engine_name: str) -> None:
    cls = load(engine_name)
    assert cls.name == engine_name
    assert issubclass(cls, base.Engine)
    assert issubclass(cls, LoopEngine) == engine_spec(engine_name).has_loop
    assert base.engine_class is load  # the old name still works


def test_each_native_work_waits_in_the_registry_phase(engine_name: str) -> None:
    cls = load(engine_name)
    native = getattr(cls, "native_work", None)
    wait = native.WAIT_PHASE if native is not None else Phase.BLOCKED  # threaded: BlockingWork
    assert wait == engine_spec(engine_name).wait_phase


def test_an_unknown_engine_is_one_line_naming_the_known_ones() -> None:
    for call in (engine_spec, load):
        with pytest.raises(EngineError) as err:
            call("tornado")
        assert str(err.value) == "unknown engine 'tornado' (known: threaded, asyncio, gevent, uvloop, trio, prefork)"


def test_lanes_and_worker_words() -> None:
    s = Settings(pool=3)
    threaded, asyncio, gevent, uvloop, trio, prefork = (ENGINE_SPECS[n] for n in ENGINES)
    assert threaded.lanes("native", s) == [(0, "w0"), (1, "w1"), (2, "w2")]
    assert threaded.worker_word("native") == "threads"
    assert asyncio.lanes("native", s) == [(0, "loop")]
    assert asyncio.worker_word("native") == "loop"
    offload = asyncio.lanes("offload", s)
    assert len(offload) == OFFLOAD_LIMIT + 1 and offload[1] == (1, "t1") and offload[-1] == (40, "t40")
    assert asyncio.worker_word("offload") == f"loop+{OFFLOAD_LIMIT} thr"
    assert gevent.lanes("blocking", s) == [(0, "hub")]
    assert gevent.worker_word("native") == "hub"
    assert uvloop.lanes("offload", s) == offload and trio.lanes("native", s) == [(0, "loop")]
    assert prefork.lanes("native", s.with_changes(workers=2)) == [(0, "p0"), (1, "p1")]
    assert prefork.worker_word("native") == "procs"


def test_prefork_draws_the_workers_its_placement_starts_and_its_bound_counts_them() -> None:
    # Six engines on two CPUs share cpu 1: prefork's process starts one worker there (one per CPU of
    # its placement), and the panel read "busy 1/2 procs, req/s 20 of bound 40" from the app's two CPUs.
    prefork, s = ENGINE_SPECS["prefork"], Settings(clients=100, io_ms=50)
    assert prefork.lanes("native", s, cpus=(1,)) == [(0, "p0")]
    assert prefork.lanes("native", s, cpus=(0, 1)) == [(0, "p0"), (1, "p1")]
    assert prefork.lanes("native", s.with_changes(workers=3), cpus=(1,)) == [(0, "p0"), (1, "p1"), (2, "p2")]
    info = {"engines": ["threaded", "prefork"], "cpu_share": {"prefork": 0.5}, "cpus": {"prefork": [1]}}
    shown = Board(info).engine_info("prefork")
    assert len(shown.lanes) == 1 and shown.bound == pytest.approx(20.0)
    assert len(Board({**info, "cpus": {"prefork": [0, 1]}}).engine_info("prefork").lanes) == 2


def test_capacity_per_engine_and_mode() -> None:
    s = Settings(pool=7)
    s = s.with_changes(workers=3)
    assert [capacity(e, "native", s) for e in ENGINES] == [7, 10**9, GEVENT_POOL, 10**9, 10**9, 3]
    assert [capacity(e, "blocking", s) for e in ENGINES] == [7, 1, 1, 1, 1, 3]
    assert capacity("asyncio", "offload", s) == OFFLOAD_LIMIT


def test_io_lines() -> None:
    spec = engine_spec("asyncio")
    assert spec.io_line("native", False, "0.05") == "await asyncio.sleep(0.05)"
    assert spec.io_line("blocking", False, "0.05") == "time.sleep(0.05)"
    assert spec.io_line("offload", True, "0.05") == "sock.recv(...)  # upstream, blocking"
    assert engine_spec("gevent").io_line("native", False, "1") == "gevent.sleep(1)"


def _imports(path: Path) -> list[str]:
    """Every module ``path`` imports, relative ones as written (``..base``, ``.backends._gevent``)."""
    out = []
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom):
            out.append("." * node.level + (node.module or ""))
        elif isinstance(node, ast.Import):
            out += [a.name for a in node.names]
    return out


def test_base_and_the_registry_never_import_a_backend() -> None:
    for name in ("base.py", "registry.py", "settings.py"):
        assert not [m for m in _imports(ENGINES_DIR / name) if "backends" in m], name


def test_loading_one_engine_imports_only_its_backend() -> None:
    code = (
        "import sys\n"
        "from syncviz.engines.registry import load\n"
        "load('threaded')\n"
        "backends = {m for m in sys.modules if m.startswith('syncviz.engines.backends.')}\n"
        "mine = {'syncviz.engines.backends._threaded', 'syncviz.engines.backends._poller'}\n"  # its epoll helper
        "bad = sorted(backends - mine | {m for m in sys.modules if m == 'gevent'})\n"
        "print(' '.join(bad)); sys.exit(1 if bad else 0)\n"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stdout + proc.stderr


def test_the_package_loads_what_it_exports_on_first_use() -> None:
    """``syncviz.engines`` names what it always named, and importing one of its modules (every engine
    process and prefork worker does) loads neither the host, the load generator nor asyncio."""
    for name in syncviz.engines.__all__:
        assert getattr(syncviz.engines, name) is not None and name in dir(syncviz.engines), name
    with pytest.raises(AttributeError):
        syncviz.engines.no_such_name  # noqa: B018 (the attribute access is the test)
    code = (
        "import sys\n"
        "import syncviz.engines.events\n"
        "bad = sorted({'syncviz.engines.host', 'syncviz.engines.loadgen', 'asyncio'} & set(sys.modules))\n"
        "print(' '.join(bad)); sys.exit(1 if bad else 0)\n"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stdout + proc.stderr
