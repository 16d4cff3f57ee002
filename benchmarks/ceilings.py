"""Zero-latency ceilings seen from outside: wrk against ``syncviz serve`` and against the bare servers.

``syncviz serve --headless --io-ms 0 --cpu-ms 0 --engines NAME`` runs one engine as the app does
(its own process and digest process, placed by :func:`syncviz.engines.placement.plan`, the
built-in load off), alone, as each bare server of the same model (``benchmarks/bare/``: the
standard library and gevent alone) runs alone, pinned to the CPUs syncviz's engine process was
found on; wrk is pinned to the load's CPUs. Before anything is measured each bare server's answer
is checked to be the same bytes as its engine's. Each run measures syncviz, the bare servers and
syncviz unrecorded, one server at a time (the order alternating between runs), so the ratio
syncviz / bare is taken within one run (under the bench lock run.py holds).
"""

from __future__ import annotations

import contextlib
import os
import re
import shutil
import socket
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import psutil
from figures import Spread, ratio, restore_cpus
from syncviz.engines.placement import plan, set_cpus

BARE_DIR = Path(__file__).resolve().parent / "bare"
BARE = {"threaded": "threaded.py", "asyncio": "asyncio_server.py", "gevent": "gevent_server.py"}
CONNECTIONS = 50
START_TIMEOUT_S = 60.0
REQUEST = b"GET / HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n"
_RPS = re.compile(r"Requests/sec:\s+([\d.]+)")
_NON2XX = re.compile(r"Non-2xx or 3xx responses:\s+(\d+)")
_SOCKERR = re.compile(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)")


def ensure_wrk() -> tuple[str | None, str]:
    """wrk's path (installed from Debian's packages when missing) and what was done, in words."""
    found = shutil.which("wrk")
    if found:
        return found, "found"
    cmd = ["apt-get", "install", "-y", "wrk"]
    if os.getuid() != 0 and shutil.which("sudo"):
        cmd = ["sudo", "-n", *cmd]
    try:
        done = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
    except (OSError, subprocess.SubprocessError) as exc:
        return None, f"not installed ({' '.join(cmd)}: {exc})"
    found = shutil.which("wrk")
    if found:
        return found, "installed with apt-get"
    tail = (done.stderr or done.stdout).strip().splitlines()
    return None, f"not installed ({' '.join(cmd)}: {tail[-1] if tail else f'exit {done.returncode}'})"


def run_wrk(wrk: str, port: int, seconds: float, cpus: tuple[int, ...]) -> dict[str, Any]:
    """One wrk run (one thread, :data:`CONNECTIONS` keep-alive connections): req/s and errors."""
    cmd = [wrk, "-t1", f"-c{CONNECTIONS}", f"-d{seconds:g}s", f"http://127.0.0.1:{port}/"]
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=seconds + 30, preexec_fn=lambda: _pin(cpus))
    rps = _RPS.search(done.stdout)
    non2xx = _NON2XX.search(done.stdout)
    sockerr = _SOCKERR.search(done.stdout)
    errors = (int(non2xx.group(1)) if non2xx else 0) + (sum(map(int, sockerr.groups())) if sockerr else 0)
    return {"rps": float(rps.group(1)) if rps else None, "errors": errors}


def _pin(cpus: tuple[int, ...]) -> None:
    set_cpus(cpus)


def answer(port: int) -> bytes:
    """The whole answer to one ``GET /`` (head and Content-Length body)."""
    with socket.create_connection(("127.0.0.1", port), timeout=5) as sock:
        sock.sendall(REQUEST)
        data = b""
        while b"\r\n\r\n" not in data or len(data) < _expected(data):
            chunk = sock.recv(65536)
            if not chunk:
                break
            data += chunk
    return data


def _expected(data: bytes) -> int:
    head, _, _ = data.partition(b"\r\n\r\n")
    m = re.search(rb"(?i)content-length:\s*(\d+)", head)
    return len(head) + 4 + (int(m.group(1)) if m else 0)


@contextlib.contextmanager
def serving(engines: tuple[str, ...], record: bool = True) -> Iterator[dict[str, Any]]:
    """``syncviz serve`` at zero latency (``record``: the servers record, as always, or not);
    yields each engine's port, pid and CPUs as found."""
    cmd = [sys.executable, "-m", "syncviz.tui.cli", "serve", "--headless", "--port", "0"]
    cmd += ["--io-ms", "0", "--cpu-ms", "0", "--engines", ",".join(engines)]
    cmd += [] if record else ["--no-record"]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    try:
        ports: dict[str, int] = {}
        for line in proc.stdout:  # type: ignore[union-attr]
            name, _, where = line.strip().partition(" ")
            if name in engines and where.strip().startswith("http://"):
                ports[name] = int(where.strip().rstrip("/").rsplit(":", 1)[1])
            if len(ports) == len(engines):
                break
        if len(ports) != len(engines):
            raise RuntimeError(f"syncviz serve exited ({proc.wait(5)}) before listening")
        threading.Thread(target=lambda: [None for _ in proc.stdout], daemon=True).start()  # type: ignore[union-attr]
        yield {name: {"port": port, **_listener(proc.pid, port)} for name, port in ports.items()}
    finally:
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(5)


def _listener(parent: int, port: int) -> dict[str, Any]:
    """The pid and CPU affinity of ``parent``'s descendant listening on ``port``."""
    for child in psutil.Process(parent).children(recursive=True):
        with contextlib.suppress(psutil.Error):
            for conn in child.net_connections(kind="tcp"):
                if conn.status == psutil.CONN_LISTEN and conn.laddr.port == port:
                    return {"pid": child.pid, "cpus": tuple(sorted(child.cpu_affinity()))}
    return {"pid": None, "cpus": ()}


@contextlib.contextmanager
def bare_server(model: str, cpus: tuple[int, ...]) -> Iterator[int]:
    """The bare server of ``model`` pinned to ``cpus``; yields its port."""
    cmd = [sys.executable, str(BARE_DIR / BARE[model]), "--cpus", ",".join(map(str, cpus))]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, text=True)
    try:
        line = proc.stdout.readline()  # type: ignore[union-attr]
        if not line.startswith("ready "):
            raise RuntimeError(f"bare {model} server exited ({proc.wait(5)}) before listening")
        yield int(line.split()[1])
    finally:
        proc.terminate()
        proc.wait(10)


def ceilings(engines: tuple[str, ...], reps: int, seconds: float, wrk: str) -> dict[str, Any]:
    """Per engine: syncviz's and the bare server's req/s and their ratio over ``reps`` runs, and the
    same serve unrecorded (``--no-record``: no recording, no digest) against the bare server, so the
    gap splits into the server's own path and the instrument's.

    Each server is measured with nothing else of the benchmark's running: each engine's serve alone,
    then each bare server alone, then each engine's serve unrecorded; the order alternates between
    runs, ratios are taken within a run. With all of them up at once (as this did first), the idle
    ones' timers and flushes took ~14% from the bare asyncio server and ~6% from syncviz's (wrk, 3
    runs each): the ratio read ~5 points high. With syncviz's three engines in one serve (as this
    did next), the two idle ones cost the measured one (asyncio, 3 runs of 5 s each way): 68% of the
    bare server beside both, 72% beside one. Their cost when several engines serve is the recording
    section's (:func:`recording_cost`, all of them in one serve)."""
    load_cpus = plan(engines[:1]).load
    restore_cpus()  # serve places its engines from the CPUs it may use
    rows: dict[str, dict[str, Any]] = {}
    for name in engines:
        with serving((name,)) as served:  # where syncviz places the engine; the bare server's bytes against its
            cpus = served[name]["cpus"] or plan((name,)).engines[name]
            same = None
            if name in BARE:
                with bare_server(name, cpus) as bare_port:
                    same = answer(bare_port) == answer(served[name]["port"])
        rows[name] = {"cpus": cpus, "same_bytes": same, "errors": 0}
        rows[name] |= {key: Spread() for key in ("syncviz", "bare", "unrecorded", "ratio", "unrecorded_ratio")}
    sides = ("syncviz", "bare", "unrecorded")
    for rep in range(reps):
        got: dict[tuple[str, str], float | None] = {}
        for side in sides if rep % 2 == 0 else sides[::-1]:
            for name, rps in _side(side, engines, rows, seconds, wrk, load_cpus).items():
                got[(side, name)] = rps
                rows[name][side].add(rps)
        for name in engines:
            rows[name]["ratio"].add(ratio(got[("syncviz", name)], got[("bare", name)]))
            rows[name]["unrecorded_ratio"].add(ratio(got[("unrecorded", name)], got[("bare", name)]))
    return {"load_cpus": load_cpus, "connections": CONNECTIONS, "seconds": seconds, "engines": rows}


def _side(
    side: str,
    engines: tuple[str, ...],
    rows: dict[str, dict[str, Any]],
    seconds: float,
    wrk: str,
    load_cpus: tuple[int, ...],
) -> dict[str, float | None]:
    """One side of a run: each engine's req/s, its server alone on the machine (a warm-up of 1 s not counted)."""

    def measure(name: str, port: int) -> float | None:
        run_wrk(wrk, port, 1, load_cpus)
        out = run_wrk(wrk, port, seconds, load_cpus)
        rows[name]["errors"] += out["errors"]
        return out["rps"]

    out: dict[str, float | None] = {}
    for name in engines:
        if side == "bare" and name not in BARE:
            out[name] = None
        elif side == "bare":
            with bare_server(name, rows[name]["cpus"]) as port:
                out[name] = measure(name, port)
        else:
            with serving((name,), record=side == "syncviz") as served:
                out[name] = measure(name, served[name]["port"])
    return out


def recording_cost(engines: tuple[str, ...], reps: int, seconds: float, wrk: str) -> dict[str, Any]:
    """Per engine: wrk's req/s against ``syncviz serve`` with the servers' recording on and off (a
    fresh serve each, the order alternating) and on / off within each run.

    Measured by wrk, not by ``bench``: syncviz's own load process was the limit with recording off
    (threaded: the load at 94% of its core, the engine at 89%), which made recording read faster.
    """
    load_cpus = plan(engines).load
    rows = {name: {"on": Spread(), "off": Spread(), "ratio": Spread(), "errors": 0} for name in engines}
    restore_cpus()
    for rep in range(reps):
        got: dict[tuple[str, bool], float | None] = {}
        for record in (True, False) if rep % 2 == 0 else (False, True):
            with serving(engines, record) as served:
                for name in engines:
                    run_wrk(wrk, served[name]["port"], 1, load_cpus)  # warm-up, not counted
                    out = run_wrk(wrk, served[name]["port"], seconds, load_cpus)
                    got[(name, record)] = out["rps"]
                    rows[name]["errors"] += out["errors"]
                    rows[name]["on" if record else "off"].add(out["rps"])
        for name in engines:
            rows[name]["ratio"].add(ratio(got[(name, True)], got[(name, False)]))
    return {"load_cpus": load_cpus, "connections": CONNECTIONS, "seconds": seconds, "rows": rows}
