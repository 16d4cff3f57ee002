"""A socket read's buffer comes from the heap in the processes that serve and send requests
(:func:`~syncviz.engines.allocator.keep_reads_off_mmap`), not from a fresh ``mmap`` each read."""

from __future__ import annotations

import asyncio.selector_events
import platform
import subprocess
import sys

import pytest
from syncviz.engines.allocator import MMAP_THRESHOLD

GLIBC = platform.system() == "Linux" and platform.libc_ver()[0] == "glibc"

# In a fresh interpreter (the test's own allocator is left alone): how many blocks glibc has mapped
# (mallinfo2's hblks) while an asyncio-sized read buffer and a block over the threshold are held.
PROBE = """
import ctypes, sys
from syncviz.engines.allocator import MMAP_THRESHOLD, keep_reads_off_mmap

class Info(ctypes.Structure):
    names = "arena ordblks smblks hblks hblkhd usmblks fsmblks uordblks fordblks keepcost"
    _fields_ = [(name, ctypes.c_size_t) for name in names.split()]

mallinfo2 = ctypes.CDLL(None).mallinfo2
mallinfo2.restype = Info

def mapped_while_held(size):
    before = mallinfo2().hblks
    block = bytearray(size)
    during = mallinfo2().hblks
    del block
    return during - before

print(int(keep_reads_off_mmap()), mapped_while_held(256 * 1024 + 64), mapped_while_held(2 * MMAP_THRESHOLD))
"""


@pytest.mark.skipif(not GLIBC, reason="glibc's mallopt")
def test_a_read_buffer_comes_from_the_heap_and_a_block_over_the_threshold_is_still_mapped() -> None:
    done = subprocess.run([sys.executable, "-c", PROBE], capture_output=True, text=True, timeout=30, check=True)
    took, read_buffer, large = map(int, done.stdout.split())
    assert took == 1
    assert read_buffer == 0  # asyncio's recv(256 KiB): no mapping of its own
    assert large == 1  # the threshold is a threshold: larger blocks are mapped as before


def test_the_threshold_is_above_asyncio_s_read_size() -> None:
    assert asyncio.selector_events._SelectorSocketTransport.max_size < MMAP_THRESHOLD
