"""The app's memory (tui/memory.py): freed memory between live objects leaves the process's
resident size once released, and what startup made is kept out of later collections."""

from __future__ import annotations

import pytest
from syncviz.tui.memory import _malloc_trim, release_free_memory


def rss_mb() -> float:
    with open("/proc/self/status") as f:
        return next(int(line.split()[1]) for line in f if line.startswith("VmRSS")) / 1024


@pytest.mark.skipif(_malloc_trim() is None, reason="not glibc: nothing to release with")
def test_freed_heap_between_live_objects_leaves_the_resident_size() -> None:
    blocks = [bytes(2000) for _ in range(40_000)]  # ~80 MB from malloc (over pymalloc's 512 bytes)
    kept = blocks[::8]  # live objects all over the heap: it cannot shrink from the top
    del blocks
    before = rss_mb()
    assert release_free_memory()
    after = rss_mb()
    assert before - after > 30, (before, after)  # ~70 MB were free between them
    assert len(kept) == 5_000


def test_what_startup_made_is_kept_out_of_later_collections() -> None:
    import gc

    from syncviz.tui.memory import freeze_startup

    made = [[i] for i in range(1000)]  # containers the collector would walk on every full collection
    try:
        frozen = freeze_startup()
        assert frozen >= 1000 and not any(id(x) == id(made[0]) for x in gc.get_objects(generation=2))
    finally:
        gc.unfreeze()
    assert any(x is made[0] for x in gc.get_objects())  # back where the collector sees it


TUNE_PROBE = """
import ctypes, sys
from syncviz.tui.memory import tune_allocator
libc = ctypes.CDLL("libc.so.6")
class Info(ctypes.Structure):
    _fields_ = [(n, ctypes.c_size_t) for n in ("arena", "ordblks", "smblks", "hblks", "hblkhd", "usmblks",
                                                "fsmblks", "uordblks", "fordblks", "keepcost")]
libc.mallinfo2.restype = Info
if sys.argv[1] == "tuned":
    assert tune_allocator()
big = bytearray(4_000_000); del big  # freed from its own mapping: glibc's default raises its threshold
before = libc.mallinfo2().hblkhd
kept = [bytearray(300_000) for _ in range(8)]
print((libc.mallinfo2().hblkhd - before) // 300_000)
"""


@pytest.mark.skipif(_malloc_trim() is None, reason="not glibc")
def test_the_apps_large_blocks_keep_their_own_mappings() -> None:
    """After a large block is freed, glibc by default puts the next ones (300 KB) in its heap; tuned,
    each still gets its own mapping, given back when freed."""
    import subprocess
    import sys

    def blocks_mapped(how: str) -> int:
        run = subprocess.run([sys.executable, "-c", TUNE_PROBE, how], capture_output=True, text=True, check=True)
        return int(run.stdout)

    counts = {how: blocks_mapped(how) for how in ("default", "tuned")}
    assert counts == {"default": 0, "tuned": 8}
