"""What the bare servers share: the response bytes, request framing, the command line.

The bare servers (``threaded.py``, ``asyncio_server.py``, ``gevent_server.py``) are the smallest
server of each of syncviz's models, written with the standard library and gevent alone (nothing
from syncviz), so ``benchmarks/run.py`` can put wrk in front of each and of ``syncviz serve`` and
read syncviz's own overhead as a ratio. Each answers every ``GET`` on a keep-alive HTTP/1.1
connection with :data:`RESPONSE`, the bytes syncviz's engines answer at zero latency (run.py
checks that byte for byte before it measures). Requests are framed by their blank line only: wrk
and curl send no bodies.

    python benchmarks/bare/<server>.py [--port P] [--cpus 1]

prints ``ready P`` on stdout once it listens (``--port 0``, the default: any free port, the one
it got), and serves until SIGTERM or SIGINT.
"""

from __future__ import annotations

import argparse
import os
import signal
import sys

BODY = b"hello from syncviz\n"
RESPONSE = b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: %d\r\n\r\n%s" % (len(BODY), BODY)
HEAD_END = b"\r\n\r\n"
POOL = 8  # the threaded server's workers: syncviz's threaded engine's default pool
BACKLOG = 1024


def split_requests(buf: bytes) -> tuple[int, bytes]:
    """How many complete requests ``buf`` holds, and the bytes left over (an unfinished one)."""
    n = buf.count(HEAD_END)
    if n == 0:
        return 0, buf
    return n, buf[buf.rindex(HEAD_END) + len(HEAD_END) :]


def parse_args(description: str) -> argparse.Namespace:
    """``--port`` and ``--cpus``; the process is pinned to ``--cpus`` before it returns."""
    p = argparse.ArgumentParser(description=description)
    p.add_argument("--port", type=int, default=0, help="port to listen on (0: any free)")
    p.add_argument("--cpus", default="", help="comma-separated CPUs to pin this process to")
    args = p.parse_args()
    if args.cpus:
        os.sched_setaffinity(0, {int(c) for c in args.cpus.split(",")})
    return args


def ready(port: int) -> None:
    """Tell the parent the server listens."""
    sys.stdout.write(f"ready {port}\n")
    sys.stdout.flush()


def exit_on_signals() -> int:
    """SIGTERM and SIGINT end the process at once (nothing to clean up but sockets).

    Returns a pipe's read end that gets a byte when one of them comes (``signal.set_wakeup_fd``):
    a server whose main thread waits in ``select()`` with no timeout watches it. Without it a
    signal that came just before the wait (its handler pending, the main thread not yet in the
    call) left the threaded server asleep until the next event: 1 SIGTERM in ~20 was lost
    (measured), and a test or benchmark waited out its timeout.
    """
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: os._exit(0))
    wake_r, wake_w = os.pipe()
    os.set_blocking(wake_w, False)
    signal.set_wakeup_fd(wake_w)
    return wake_r
