"""The app's memory: glibc set for the app, and the C heap's free pages given back to the system.

The app reads a stream of batches, keeps its newest seconds as objects and packs the older
ones (:mod:`~syncviz.tui.tape`): large buffers come and go all the time, between objects that
live on. :func:`tune_allocator` sets glibc for that before the app's threads start. glibc keeps
what they free inside its heap, so at 1,000 clients the process's resident size grew by the
heap's free space (measured: glibc's free bytes 12 MB at minute 1, 39 MB at
minute 4.5, the objects in use flat) although nothing was held. :func:`release_free_memory`
asks glibc to return those free pages (``malloc_trim``), which the app does every
:data:`TRIM_EVERY_S`; elsewhere (another C library, no ``malloc_trim``) it does nothing.

:func:`freeze_startup` moves what exists once the app has started (Textual's widgets, styles and
modules, ~170,000 objects) out of the cyclic collector's way (``gc.freeze``): every full
collection walked them again. At 1,000 clients full collections come every ~3 s; frozen, each
took ~80-110 ms instead of ~220 ms (wall, measured in the app on a loaded machine), frames held
meanwhile. What was frozen and later becomes cyclic garbage stays (the first panels, when an
engine is swapped: once, a few hundred KB).
"""

from __future__ import annotations

import ctypes
import gc
from functools import cache

YOUNG_AT = 5000  # tracked objects allocated (net) before a young collection; CPython's default is 700
FREEZE_AFTER_S = 3.0  # the app has drawn its first frames and started its engines by then
M_MMAP_THRESHOLD, M_ARENA_MAX = -3, -8  # glibc's mallopt parameters
MMAP_AT = 128 * 1024  # glibc's initial threshold, kept fixed
TRIM_EVERY_S = 10.0  # how often the app returns the heap's free pages (a trim: ~13 ms with 50 MB free)


@cache
def _libc() -> ctypes.CDLL | None:
    """The C library's functions, as this process has them linked (no ``find_library``: it runs
    ``ldconfig`` as a child process, which a signal sent at startup could land beside)."""
    try:
        return ctypes.CDLL(None)
    except OSError:
        return None


@cache
def _malloc_trim() -> ctypes._CFuncPtr | None:  # type: ignore[name-defined]
    """glibc's ``malloc_trim`` (None: not glibc)."""
    libc = _libc()
    trim = getattr(libc, "malloc_trim", None)
    if trim is None:
        return None
    trim.argtypes = [ctypes.c_size_t]
    trim.restype = ctypes.c_int
    return trim


def tune_allocator() -> bool:
    """Set glibc for the app's process (before its threads start); whether it could.

    * One arena for every thread (``M_ARENA_MAX``): the pipe readers decode the stream's batches
      and the main thread frees them, so with an arena per reader each kept its own free space.
    * Every block of :data:`MMAP_AT` bytes or more mapped on its own, given back when freed
      (``M_MMAP_THRESHOLD``, fixed): by default the threshold rises to the largest block freed
      (up to 32 MB), after which the stream's large buffers land in the heap between longer-lived
      blocks and its free space grew (measured: 22 -> 29 MB in 9 minutes at 1,000 clients, flat
      at 22-24 with the threshold fixed).
    """
    libc = _libc()
    mallopt = getattr(libc, "mallopt", None)
    if mallopt is None:
        return False
    return bool(mallopt(M_ARENA_MAX, 1)) & bool(mallopt(M_MMAP_THRESHOLD, MMAP_AT))


def release_free_memory() -> bool:
    """Return the C heap's free pages to the operating system; whether anything was released."""
    trim = _malloc_trim()
    return bool(trim(0)) if trim is not None else False


def tune_collector() -> None:
    """Collect the young generation after :data:`YOUNG_AT` net allocations instead of 700.

    A frame builds every changed timeline line's strip (~1,800 tracked objects: segments, strips
    and their caches) before the last frame's are dropped, so at 700 each frame ran 2-3 young
    collections that walked the new strips and moved them to the middle generation, which the
    middle and full collections then walked again; at 5,000 the frame's frees come first. Measured
    headless at 1,000 clients, alternating: the collector 1.6-2.0 -> 0.6-0.8 ms a frame, a frame
    (all of it) 16.9-19.3 -> 13.9-15.6 ms; the longest pause ~31 -> ~26 ms (at 20,000: ~54 ms).
    """
    _, middle, full = gc.get_threshold()
    gc.set_threshold(YOUNG_AT, middle, full)


def forget_removed_widgets() -> None:
    """Drop what Textual's ``StylesCache.get_inner_outer`` cache keeps of removed widgets (see the
    module; a Textual without that cache: nothing to do)."""
    from textual._styles_cache import StylesCache

    cached = getattr(StylesCache, "get_inner_outer", None)
    clear = getattr(cached, "cache_clear", None)
    if clear is not None:
        clear()


def freeze_startup() -> int:
    """Collect once, then keep every object that exists now out of later collections; how many."""
    gc.collect()
    gc.freeze()
    return gc.get_freeze_count()
