"""Who limits a run: the servers, the load generator that drives them (``client-bound``), or the
OS's split of a core the engines share.

A Python load generator runs out of CPU long before some servers do (~40k req/s on a full core):
past that point req/s measures the client, not the server. :func:`client_bound` says so from the
two processes' CPU, as ``syncviz bench`` (``"client_bound"`` in its JSON) and the app's panel
(``client-bound`` beside the req/s) read it.

Engines that share a core (the app's three on a 2-core machine) are placed for an equal share of
it, but the OS does not always split a full core evenly: at 0 ms of I/O together the threaded
engine's many waking threads took 53-55% of it against 21-23% each for the loop and the hub, whose
requests waited (``syncviz bench --io-ms 0 --together``; 50 / 26 / 24% at 1 ms while each engine
process had a session of its own, 37 / 30 / 31% since). Their req/s then rank the split, not the
models: :func:`uneven_split` finds it from each process's CPU and the time its threads waited
runnable for a CPU (:class:`WaitMeter`, Linux's ``schedstat``), and the app says so. The thresholds
live here and nowhere else.
"""

from __future__ import annotations

import os
import time
from collections.abc import Mapping
from dataclasses import dataclass

LOAD_SATURATED = 0.90  # the load process uses at least this much of what it can use: it is the limit
SERVER_HEADROOM = 0.85  # ... while the server's process uses less than this much of its share


def usable_cores(cores: float) -> float:
    """The CPU a Python process can use on ``cores``: one GIL caps its Python code at one core."""
    return max(0.0, min(float(cores), 1.0))


def client_bound(
    load_cpu_percent: float | None,
    load_cores: float,
    engine_cpu_percent: float | None,
    engine_share: float,
) -> bool:
    """True when the load generator, not the server, is what caps the throughput.

    ``load_cpu_percent`` / ``engine_cpu_percent``: each process's CPU, in % of one core (as ``top``
    and psutil say it; ``None``: not measured, never client-bound); ``load_cores``: the CPUs the
    load process may run on; ``engine_share``: the cores the engine's process can count on (½
    when two engines share a core). The load is saturated at :data:`LOAD_SATURATED` of its usable
    CPU (at most one core: one GIL), and the server has headroom below :data:`SERVER_HEADROOM`
    of its share.
    """
    if load_cpu_percent is None or engine_cpu_percent is None:
        return False
    load_cap = 100.0 * usable_cores(load_cores)
    engine_cap = 100.0 * usable_cores(engine_share)
    if load_cap <= 0 or engine_cap <= 0:
        return False
    return load_cpu_percent >= LOAD_SATURATED * load_cap and engine_cpu_percent < SERVER_HEADROOM * engine_cap


CORE_FULL = 0.90  # engines sharing CPUs use at least this much of them together: they are full
STARVED_WAIT = 10.0  # an engine's threads waited runnable for a CPU this % of a core or more ...
UNDER_SHARE = 0.85  # ... while it got less than this much of its even share: it wants more than it gets
UNDER_BOUND = 0.80  # ... and served less than this much of its bound: more CPU would serve more
OVER_SHARE = 1.15  # and another got more than this much of its own: the OS favours that one


class WaitMeter:
    """How long a process's threads wait, runnable, for a CPU: % of one core since the last look
    (the second field of Linux's ``/proc/PID/task/*/schedstat``). None where it cannot be read, and
    at the first look. Threads waiting for the GIL sleep: only the OS's queue counts here."""

    def __init__(self, pid: int) -> None:
        self.pid = pid
        self._last: tuple[int, float] | None = None

    def percent(self) -> float | None:
        waited, at = _waited_ns(self.pid), time.monotonic()
        last, self._last = self._last, None if waited is None else (waited, at)
        if waited is None or last is None or at <= last[1]:
            return None
        return max(0.0, 100.0 * (waited - last[0]) / 1e9 / (at - last[1]))


def _waited_ns(pid: int) -> int | None:
    try:
        tids = os.listdir(f"/proc/{pid}/task")
    except OSError:
        return None
    total = 0
    for tid in tids:
        try:
            with open(f"/proc/{pid}/task/{tid}/schedstat", "rb") as f:
                total += int(f.read().split()[1])
        except (OSError, ValueError, IndexError):
            continue  # a thread that ended meanwhile
    return total


@dataclass(frozen=True)
class Split:
    """Engines sharing CPUs that are contended, split unevenly: each one's CPU (% of a core), what an
    even split of what they got gives each, the ones that waited for more and the ones given more;
    ``full``: together they used :data:`CORE_FULL` of the CPUs (else every one of them waited for them)."""

    cpus: tuple[int, ...]
    cpu: dict[str, float]
    even: float
    starved: tuple[str, ...]
    favoured: tuple[str, ...]
    full: bool = True


def uneven_split(
    engines: Mapping[str, tuple[tuple[int, ...], float | None, float | None, float | None]],
) -> Split | None:
    """``engines``: name -> (its CPUs, its CPU % of one core, its threads' wait for a CPU in % of a
    core, its req/s over its bound). The first group of engines on the same CPUs that contend for
    them, where one waited :data:`STARVED_WAIT` for a CPU while getting under :data:`UNDER_SHARE` of
    an even share of what the group got and serving under :data:`UNDER_BOUND` of its bound, and
    another got over :data:`OVER_SHARE` of it; None when there is none (or nothing measured).

    Contended: together they use :data:`CORE_FULL` of the CPUs, or every one of them waited
    :data:`STARVED_WAIT` for them. The second is the app at 0 ms of I/O, its load generator
    sharing the other core with the UI: cpu 1 ~20% idle on average, yet the engines on it wait
    (threaded 34-38% of it, its threads 170-190% waiting; the loop and the hub 19-22%, 50-60%).
    An engine near its bound (a pool that its I/O limits) is not starved by the split,
    whatever its threads wait: more CPU would not change its req/s, nor the ranking."""
    groups: dict[tuple[int, ...], dict[str, tuple[float, float, float | None]]] = {}
    unmeasured: set[tuple[int, ...]] = set()  # CPUs an engine shares unmeasured: what it gets is unknown
    for name, (cpus, cpu, wait, of_bound) in engines.items():
        if cpus and cpu is not None and wait is not None:
            groups.setdefault(tuple(sorted(cpus)), {})[name] = (cpu, wait, of_bound)
        elif cpus:
            unmeasured.add(tuple(sorted(cpus)))
    for cpus, members in groups.items():
        if cpus in unmeasured:
            continue
        total = sum(cpu for cpu, _, _ in members.values())
        full = total >= CORE_FULL * 100 * len(cpus)
        if len(members) < 2 or not (full or all(wait >= STARVED_WAIT for _, wait, _ in members.values())):
            continue
        even = total / len(members)
        starved = tuple(
            n
            for n, (cpu, wait, of_bound) in members.items()
            if wait >= STARVED_WAIT and cpu < UNDER_SHARE * even and of_bound is not None and of_bound < UNDER_BOUND
        )
        favoured = tuple(n for n, (cpu, _, _) in members.items() if cpu > OVER_SHARE * even)
        if starved and favoured:
            return Split(cpus, {n: cpu for n, (cpu, _, _) in members.items()}, even, starved, favoured, full)
    return None
