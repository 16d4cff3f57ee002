"""RSS per open connection: one engine alone in a child process, N connections mid-request.

The parent (:func:`rss_per_connection`) starts ``python -m syncviz.engines.claims.rss``,
reads the child's VmRSS from ``/proc/<pid>/status``, opens N connections that each send one
request whose handler waits a long time, waits until the child reports all N in their wait
(the servers' own transitions say so), reads VmRSS again and divides the growth by N.

The threaded engine starts with one worker and grows its pool to N just before the
connections open: holding N waits at once takes N threads, and they are part of the cost.
The child talks one JSON line per command on stdin/stdout.
"""

from __future__ import annotations

import contextlib
import gc
import json
import os
import socket
import subprocess
import sys
import time
from dataclasses import replace
from typing import Any

from ..events import Phase, Recorder
from ..host import raise_fd_limit
from ..settings import Settings

HOLD_IO_MS = 60_000.0  # long enough that every request is still waiting when RSS is read
READY_TIMEOUT_S = 30.0
REQUEST = b"GET / HTTP/1.1\r\nHost: syncviz\r\n\r\n"
WAITS = (Phase.BLOCKED, Phase.AWAITING, Phase.YIELDED)


def vm_rss_kb(pid: int) -> int:
    with open(f"/proc/{pid}/status") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    raise OSError(f"no VmRSS for pid {pid}")


# -- the child ---------------------------------------------------------------------------
def child_main(engine_name: str, n: int) -> int:
    from ..base import engine_class

    raise_fd_limit()
    recorder = Recorder()
    settings = replace(Settings(), io_ms=HOLD_IO_MS, pool=1, clients=n)  # pool=n is over the UI's range
    engine = engine_class(engine_name)(recorder, settings, "native")
    engine.start()
    _reply({"port": engine.port})
    for line in sys.stdin:
        cmd = line.strip()
        if cmd == "settle":
            recorder.clear()
            gc.collect()
            time.sleep(0.3)
            _reply({"ok": True})
        elif cmd == "grow":
            engine.apply(replace(settings, pool=n))  # threaded: n workers; the others ignore it
            _reply({"ok": True})
        elif cmd == "wait":
            _reply({"waiting": _wait_all(recorder, n)})
    os._exit(0)  # n requests are mid-sleep: nothing to keep, the OS releases everything


def _wait_all(recorder: Recorder, n: int) -> int:
    phase: dict[int, int] = {}
    deadline = time.monotonic() + READY_TIMEOUT_S
    waiting = 0
    while time.monotonic() < deadline:
        for _t, _e, rid, _lane, ph in recorder.drain().transitions:
            phase[rid] = ph
        waiting = sum(1 for ph in phase.values() if ph in WAITS)
        if waiting >= n:
            break
        time.sleep(0.05)
    phase.clear()
    gc.collect()
    time.sleep(0.3)  # let the last threads and buffers settle before RSS is read
    return waiting


def _reply(obj: dict[str, Any]) -> None:
    sys.stdout.write(json.dumps(obj) + "\n")
    sys.stdout.flush()


# -- the parent --------------------------------------------------------------------------
def rss_per_connection(engine: str, n: int) -> dict[str, Any]:
    """RSS of ``engine``'s process before and with ``n`` connections mid-request, in KB."""
    raise_fd_limit()
    proc = subprocess.Popen(
        [sys.executable, "-m", "syncviz.engines.claims.rss", engine, str(n)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
    )
    socks: list[socket.socket] = []
    try:
        port = _ask(proc, None)["port"]
        _ask(proc, "settle")
        base = vm_rss_kb(proc.pid)
        _ask(proc, "grow")
        for _ in range(n):
            sock = socket.create_connection(("127.0.0.1", port), timeout=10)
            socks.append(sock)
            sock.sendall(REQUEST)
        waiting = _ask(proc, "wait")["waiting"]
        held = vm_rss_kb(proc.pid)
    finally:
        for sock in socks:
            sock.close()
        with contextlib.suppress(OSError, ValueError):
            proc.stdin.close()  # type: ignore[union-attr]
        try:
            proc.wait(5)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(2)
        with contextlib.suppress(OSError, ValueError):
            proc.stdout.close()  # type: ignore[union-attr]
    return {
        "engine": engine,
        "connections": n,
        "waiting": waiting,
        "base_kb": base,
        "held_kb": held,
        "kb_per_conn": round((held - base) / n, 2),
    }


def _ask(proc: subprocess.Popen, cmd: str | None) -> dict[str, Any]:
    if cmd is not None:
        proc.stdin.write(cmd + "\n")  # type: ignore[union-attr]
        proc.stdin.flush()  # type: ignore[union-attr]
    line = proc.stdout.readline()  # type: ignore[union-attr]
    if not line:
        raise RuntimeError("the memory probe's engine process exited")
    return json.loads(line)


if __name__ == "__main__":
    sys.exit(child_main(sys.argv[1], int(sys.argv[2])))
