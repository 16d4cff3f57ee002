"""What a user waits for: ``syncviz --help``, the app's first frame, the test suite.

``--help`` is timed from spawn to exit. The first frame is ``syncviz`` on a pseudo-terminal
(200x50, as a terminal runs it: engine processes and all) from spawn until its output holds the
panels (an engine's name after the switch to the alternate screen); then SIGTERM, and it must
leave within :data:`EXIT_TIMEOUT_S`. The suite is the README's ``pytest`` (its default run, the
timing tests left out), its time the one pytest reports, run once the lock run.py holds is released
(its tests that run engines take the lock themselves, one at a time); the rest under that lock.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import re
import select
import signal
import struct
import subprocess
import sys
import termios
import time
from pathlib import Path
from typing import Any

from figures import Spread

ROOT = Path(__file__).resolve().parent.parent
SIZE = (200, 50)
FRAME_TIMEOUT_S = 60.0
EXIT_TIMEOUT_S = 20.0
ALT_SCREEN = b"\x1b[?1049h"
SUITE_TIMEOUT_S = 900
_COUNTS = re.compile(r"(\d+) (passed|failed|errors?|skipped|deselected)")
_SECONDS = re.compile(r" in ([\d.]+)s")


def syncviz_cmd() -> list[str]:
    """The console script beside this Python (what a user types), else the module."""
    script = Path(sys.executable).parent / "syncviz"
    return [str(script)] if script.exists() else [sys.executable, "-m", "syncviz.tui.cli"]


def help_times(reps: int) -> Spread:
    """Seconds ``syncviz --help`` takes, ``reps`` times."""
    out = Spread()
    for _ in range(reps):
        t0 = time.perf_counter()
        done = subprocess.run([*syncviz_cmd(), "--help"], capture_output=True, timeout=60)
        took = time.perf_counter() - t0
        out.add(took if done.returncode == 0 else None)
    return out


def first_frame(engine: str) -> float | None:
    """Seconds from spawning ``syncviz`` on a pty until its first frame shows ``engine``'s panel."""
    master, slave = os.openpty()
    fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", SIZE[1], SIZE[0], 0, 0))
    env = {k: v for k, v in os.environ.items() if not k.startswith("TEXTUAL")}
    env["TERM"] = "xterm-256color"
    t0 = time.perf_counter()
    proc = subprocess.Popen(
        syncviz_cmd(), stdin=slave, stdout=slave, stderr=slave, env=env, start_new_session=True, cwd="/tmp"
    )
    seen = bytearray()
    took = None
    try:
        while time.perf_counter() - t0 < FRAME_TIMEOUT_S and proc.poll() is None:
            ready, _, _ = select.select([master], [], [], 0.02)
            if ready:
                seen += os.read(master, 65536)
                at = seen.find(ALT_SCREEN)
                if at >= 0 and engine.encode() in seen[at:]:
                    took = time.perf_counter() - t0
                    break
    finally:
        _leave(proc, master)
        for fd in (master, slave):
            os.close(fd)
    return took


def _leave(proc: subprocess.Popen, master: int) -> None:
    """SIGTERM, keep reading the pty so its writes never block, kill if it stays."""
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
    end = time.monotonic() + EXIT_TIMEOUT_S
    while proc.poll() is None and time.monotonic() < end:
        ready, _, _ = select.select([master], [], [], 0.05)
        if ready:
            with contextlib.suppress(OSError):
                os.read(master, 65536)
    if proc.poll() is None:
        proc.kill()
        proc.wait(5)


def first_frames(reps: int, engine: str) -> Spread:
    out = Spread()
    for _ in range(reps):
        out.add(first_frame(engine))
    return out


def suite_time() -> dict[str, Any]:
    """The README's ``pytest`` once, with no lock held (pytest's workers take the bench lock themselves
    around their engine runs; one wrapped around the whole run would be held by a process they are
    not, and they would wait for it): its own time and counts."""
    cmd = ["timeout", str(SUITE_TIMEOUT_S), sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider"]
    t0 = time.perf_counter()
    try:
        done = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=SUITE_TIMEOUT_S + 600)
    except subprocess.TimeoutExpired:
        return {"seconds": None, "wall_s": time.perf_counter() - t0, "counts": {}, "status": "timed out"}
    wall = time.perf_counter() - t0
    lines = done.stdout.strip().splitlines()
    last = lines[-1] if lines else ""
    took = _SECONDS.search(last)
    counts = {kind: int(n) for n, kind in _COUNTS.findall(last)}
    return {
        "seconds": float(took.group(1)) if took else None,
        "wall_s": wall,
        "counts": counts,
        "status": f"exit {done.returncode}",
        "command": "pytest",
        "failed_tests": [line.split(" ", 1)[1].split(" - ")[0] for line in lines if line.startswith("FAILED ")],
    }
