"""The C allocator of a process that reads sockets: a read's buffer from the heap, not from ``mmap``.

An asyncio transport reads with ``sock.recv(256 KiB)``: CPython allocates the whole buffer, receives
a request's ~40 bytes into it and shrinks it. glibc serves an allocation over its ``mmap`` threshold
(128 KiB at first) with ``mmap``, shrinks it with ``mremap`` and frees it with ``munmap``: three
system calls and fresh pages a read. Its threshold rises by itself only when a larger block mapped
that way is freed whole, which a process serving a few thousand requests a second may never do;
one at full speed (larger batches freed) soon does, so the cost showed only together, not alone.
Measured (``syncviz bench --io-ms 0 --together``, 2-core machine, the three on one core): the
asyncio engine spent 38-44 µs of CPU a request (system 21-25 µs), ~2.5x its 17 µs alone, and
served 5,200-5,700 req/s beside threaded's 31,500-33,700; with the threshold at 1 MiB, 19-20 µs
(system 7.4-7.8) and 10,900-11,100 req/s (threaded 29,000, gevent 8,400-9,000 -> 9,900-10,200).

uvloop reads into a buffer it keeps: its lead over asyncio at 1,000 clients (the ``uvloop`` claim, req/s
per CPU second) fell from 1.56x with the threshold left alone to 1.05-1.07x (4 runs).

:func:`keep_reads_off_mmap` sets the threshold (glibc's ``mallopt(M_MMAP_THRESHOLD)``) in every
process that serves or sends requests: the engine and load processes as they start, and the
app's own in ``--in-process``. Elsewhere (another C library, another OS) it does nothing.
"""

from __future__ import annotations

import ctypes
import platform

M_TRIM_THRESHOLD, M_MMAP_THRESHOLD = -1, -3  # glibc's mallopt parameters
MMAP_THRESHOLD = 1 << 20
"""Allocations below this come from the heap: 4x the largest read buffer (asyncio's 256 KiB). Once set,
glibc no longer moves it (nor its trim threshold) by itself; the heap's top is given back to the OS
past twice as much free (what glibc's own moving threshold would have set), not after every read."""


def keep_reads_off_mmap(threshold: int = MMAP_THRESHOLD) -> bool:
    """Raise this process's ``mmap`` threshold to ``threshold`` bytes (and its trim threshold to twice
    that); False where it cannot (not glibc)."""
    if platform.system() != "Linux" or platform.libc_ver()[0] != "glibc":
        return False
    try:
        mallopt = ctypes.CDLL(None).mallopt
        return bool(mallopt(M_MMAP_THRESHOLD, threshold)) and bool(mallopt(M_TRIM_THRESHOLD, 2 * threshold))
    except (OSError, AttributeError):
        return False
