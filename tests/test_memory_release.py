"""The app gives the C heap's free pages back (tui/memory.py): freed memory between live objects
leaves the process's resident size once released."""

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
