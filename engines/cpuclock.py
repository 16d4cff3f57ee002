"""A held thread's CPU clock, read beside its stack: was it computing, or waiting in a call?

A sampler sees a computing Python thread where it gave up the GIL, often at the C call it has just
made (``time.thread_time_ns`` in a CPU loop, whose syscall is where the OS preempts it on a shared
CPU): the call on its instruction is not what holds it. The thread's own CPU clock tells: a thread
parked in ``time.sleep`` or ``recv`` spends microseconds of CPU in 10 ms. The loop watchdog
(:mod:`~syncviz.engines.watchdog`) reads it at each look of a stall.

A thread that computed nothing may still not have been waiting in its call: returned from it, it
waits to take the GIL back while other threads of its process compute (``--in-process`` cpu-bound:
the loop "blocked 140 ms in Transport.write", whose ``send`` took microseconds: it was stopped
between two instructions to hand the GIL over). Linux tells where a thread sleeps
(``/proc/self/task/TID/syscall``): the GIL is a futex, as a lock is; a thread that did not compute,
on a futex outside any lock's or queue's wait while the rest of its process computed, waits for
the GIL (:func:`waiting_for_gil`). A thread runnable and not run (its CPU given to other
processes: three engines on one core) waited for a CPU: Linux counts that time too
(``schedstat``'s run delay, :func:`run_delay_ns`).
"""

from __future__ import annotations

import platform
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


FUTEX_SYSCALL = {"x86_64": 202, "aarch64": 98}.get(platform.machine())
LOCK_WAITS = frozenset({"acquire", "wait", "wait_for", "join", "get", "put", "result"})
"""The calls that sleep on a futex of their own (a lock, a condition, a queue, a thread, a future)."""
CPU_WAIT_SHARE = 0.5
"""The share of the time a held thread was seen that it must have waited on a run queue (runnable,
the OS running others on its CPU) for that to be what held it."""
GIL_BUSY_SHARE = 0.5
"""The share of the time a held thread was seen that its process's other threads must have computed
for its futex wait to be the GIL's."""


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


def sleeping_on(native_id: int | None) -> Callable[[], str | None]:
    """A reader of where the thread is now: ``"futex"`` (a lock's wait, or the GIL's), ``"running"``
    (on a CPU: a GIL waiter wakes every 5 ms to ask again), ``"other"`` (a syscall of its own: a
    sleep, a read, a poll); ``None``: not known (not Linux, an architecture not in
    :data:`FUTEX_SYSCALL`, the thread gone)."""
    if FUTEX_SYSCALL is None or native_id is None:
        return lambda: None
    path = f"/proc/self/task/{native_id}/syscall"
    futex = str(FUTEX_SYSCALL).encode()

    def read() -> str | None:
        try:
            with open(path, "rb") as f:
                first = f.read(24).split(maxsplit=1)[0]  # the syscall's number, or "running"
        except (OSError, IndexError):
            return None
        return "futex" if first == futex else "running" if first == b"running" else "other"

    return read


def run_delay_ns(native_id: int | None) -> Callable[[], int | None]:
    """A reader of the thread's time so far runnable and not run, waiting for a CPU (Linux's
    ``/proc/self/task/TID/schedstat``, its second field: scheduler latency, as ``go tool trace``
    shows it); ``None``: not known."""
    if native_id is None:
        return lambda: None
    path = f"/proc/self/task/{native_id}/schedstat"

    def read() -> int | None:
        try:
            with open(path, "rb") as f:
                return int(f.read(64).split()[1])
        except (OSError, IndexError, ValueError):
            return None

    return read


def what_held(
    ran_ns: int,
    process_ns: int,
    delay_ns: int | None,
    seen_ns: int,
    where: Callable[[], str | None],
    call: Callable[[], str | None],
) -> str:
    """What kept a held thread from going on, over the ``seen_ns`` it was seen in one call:
    ``"computing"`` (:func:`computing`), ``"cpu"`` (runnable, not run: the OS ran others on its CPU,
    ``delay_ns`` at least :data:`CPU_WAIT_SHARE` of the time), ``"gil"`` (:func:`waiting_for_gil`;
    ``where`` and ``call`` are read only then: a computing loop's every block is named),
    or ``"call"``: it waited in its call (a sleep, a read, a lock)."""
    if computing(ran_ns, process_ns, seen_ns):
        return "computing"
    if delay_ns is not None and delay_ns >= CPU_WAIT_SHARE * seen_ns:
        return "cpu"
    return "gil" if waiting_for_gil(ran_ns, process_ns, seen_ns, where(), call()) else "call"


def waiting_for_gil(ran_ns: int, process_ns: int, seen_ns: int, where: str | None, call: str | None) -> bool:
    """The held thread waited for the GIL (see the module docstring): it did not compute, it is on a
    futex or just woke from one (``where``: :func:`sleeping_on`), not in a lock's or a queue's wait
    (``call``: the function its innermost frame calls, named, if it is in a call), and the other
    threads of its process computed :data:`GIL_BUSY_SHARE` of the ``seen_ns`` at least."""
    if where not in ("futex", "running") or (call is not None and call.rsplit(".", 1)[-1] in LOCK_WAITS):
        return False
    return not computing(ran_ns, process_ns, seen_ns) and process_ns - ran_ns >= GIL_BUSY_SHARE * seen_ns
