"""The engine layer stays headless (no module of it imports textual, harlequin's rule), the app
describes the engines without importing gevent, and no engine thread outlives its stop."""

from __future__ import annotations

import ast
import pkgutil
import subprocess
import sys
from pathlib import Path

import pytest
import syncviz.engines

ENGINES_DIR = Path(syncviz.engines.__file__).parent


def test_no_engine_module_imports_textual_statically() -> None:
    offenders = []
    for path in ENGINES_DIR.rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            names = []
            if isinstance(node, ast.Import):
                names = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom) and node.module:
                names = [node.module]
            offenders += [
                f"{path.name}: {n}"
                for n in names
                if n.split(".")[0] in ("textual", "syncviz") and not n.startswith("syncviz.engines")
            ]
    assert offenders == []


def test_importing_every_engine_module_loads_no_textual() -> None:
    modules = [m.name for m in pkgutil.walk_packages([str(ENGINES_DIR)], "syncviz.engines.")]
    code = (
        "import sys\n"
        + "".join(f"import {m}\n" for m in modules)
        + (
            "bad = sorted(m for m in sys.modules if m.split('.')[0] == 'textual' or m.startswith('syncviz.tui'))\n"
            "print(len(sys.modules)); sys.exit(1 if bad else 0)\n"
        )
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    assert len(modules) >= 10


def test_the_registry_and_the_board_import_no_engine_backend() -> None:
    """The UI reads what it shows about gevent from the registry, without importing gevent."""
    code = (
        "import sys\n"
        "import syncviz.engines.registry, syncviz.tui.board\n"
        "from syncviz.tui.board import Board\n"
        "for name in ('threaded', 'asyncio', 'gevent'):\n"
        "    Board().engine_info(name)\n"
        "bad = sorted(m for m in sys.modules if m.split('.')[0] in ('gevent', 'anyio') or '.backends.' in m)\n"
        "print(' '.join(bad)); sys.exit(1 if bad else 0)\n"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stdout + proc.stderr


STOP_UNDER_CPU = """
import select, socket, sys, threading
from syncviz.engines.events import Recorder
from syncviz.engines.registry import load
from syncviz.engines.settings import Settings

engine = load(sys.argv[1])(Recorder(), Settings(io_ms=0, cpu_ms=100, pool=4))
port = engine.start()
clients = [socket.create_connection(("127.0.0.1", port)) for _ in range(20)]
for sock in clients:
    sock.sendall(b"GET / HTTP/1.1\\r\\n\\r\\n")
# a first response, whichever it is (a hub may serve client 0 last, after 2 s of CPU): the handlers
# are computing, the rest of the 2 s queued behind it
select.select(clients, [], [])[0][0].recv(1)
engine.stop()
alive = [t.name for t in threading.enumerate() if t is not threading.main_thread()]
print(" ".join(alive))
sys.exit(3 if alive else 0)
"""


def test_stop_ends_every_thread_even_mid_cpu_step(engine_name: str) -> None:
    """A loop or hub still computing when the interpreter exits crashed it (exit 139)."""
    proc = subprocess.run(
        [sys.executable, "-c", STOP_UNDER_CPU, engine_name], capture_output=True, text=True, timeout=60
    )
    assert proc.returncode == 0, f"exit {proc.returncode}; still running: {proc.stdout} {proc.stderr}"


def test_nothing_patches_the_world_or_binds_everywhere() -> None:
    root = ENGINES_DIR.parent
    for path in [*ENGINES_DIR.rglob("*.py"), *(root / "tui").rglob("*.py")]:
        text = path.read_text()
        assert "patch_all(" not in text, path
        assert "0.0.0.0" not in text, path


def test_every_source_package_is_installed() -> None:
    """pyproject's package list misses no folder of code (a wheel would lack it)."""
    tomllib = pytest.importorskip("tomllib")  # Python 3.11+
    root = ENGINES_DIR.parent
    listed = set(
        tomllib.loads((Path(__file__).parent.parent / "pyproject.toml").read_text())["tool"]["setuptools"]["packages"]
    )
    for top, name in (("engines", "syncviz.engines"), ("tui", "syncviz.tui")):
        for init in (Path(__file__).parent.parent / top).rglob("__init__.py"):
            rel = init.parent.relative_to(Path(__file__).parent.parent / top)
            assert ".".join([name, *rel.parts]) in listed, init
    assert root.exists()
