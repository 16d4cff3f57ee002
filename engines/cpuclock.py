"""A held thread's CPU clock, read beside its stack: was it computing, or waiting in a call?

A sampler sees a computing Python thread where it gave up the GIL, often at the C call it has just
made (``time.thread_time_ns`` in a CPU loop, whose syscall is where the OS preempts it on a shared
CPU): the call on its instruction is not what holds it. The thread's own CPU clock tells: a thread
parked in ``time.sleep`` or ``recv`` spends microseconds of CPU in 10 ms. The loop watchdog
(:mod:`~syncviz.engines.watchdog`) reads it at each look of a stall.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable

COMPUTING_SHARE = 0.1
COMPUTING_OF_PROCESS = 0.5
COMPUTING_MIN_NS = 200_000
"""A held call is computing (a pure-Python loop, a large ``json.dumps``), not waiting in a call, when
its thread's CPU clock ran at least :data:`COMPUTING_MIN_NS` while it was seen holding the loop, and
that was :data:`COMPUTING_SHARE` of the time, or :data:`COMPUTING_OF_PROCESS` of the CPU its whole
process used meanwhile (on a crowded machine a computing thread gets a few per cent of a core, and
most of its process's). A thread parked in ``time.sleep`` or ``recv`` spends microseconds in 10 ms.
Its name is then its frames, not the call its instruction was at
(:func:`~syncviz.engines.callsite.describe`): see :func:`computing`."""


def computing(ran_ns: int, process_ns: int, seen_ns: int) -> bool:
    """The held thread computed (see :data:`COMPUTING_MIN_NS`): ``ran_ns`` of its CPU, ``process_ns``
    of its process's, over the ``seen_ns`` it was seen holding the loop."""
    return ran_ns >= COMPUTING_MIN_NS and (
        ran_ns >= COMPUTING_SHARE * seen_ns or ran_ns >= COMPUTING_OF_PROCESS * process_ns
    )


def thread_cpu_ns(thread: threading.Thread) -> Callable[[], int | None]:
    """A reader of ``thread``'s CPU clock in ns (``None`` where there is none: not Linux, or the
    thread has ended). Made while the thread runs: its clock id names its kernel thread."""
    try:
        clock = time.pthread_getcpuclockid(thread.ident)  # type: ignore[arg-type]
        time.clock_gettime_ns(clock)
    except (AttributeError, OSError, TypeError, OverflowError):
        return lambda: None

    def read() -> int | None:
        try:
            return time.clock_gettime_ns(clock)
        except OSError:
            return None

    return read
