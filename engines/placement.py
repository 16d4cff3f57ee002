"""Where each process runs: which CPUs the engine servers, the load and the UI may use.

One engine server per OS process, so no engine's GIL is another's. With enough cores each
engine gets one of its own and the UI and the load keep to the rest; with fewer (two cores,
three engines) the engines share the last core(s) and the OS scheduler splits them fairly,
while the UI and the load keep to the others. :class:`Placement` says it in words for the
screen (``1 core (cpu 1)``, ``⅓ of cpu 1``) and gives the CPU share the bound needs.

An engine of several processes (prefork, :attr:`~syncviz.engines.registry.EngineSpec.processes`)
takes the cores the others leave (the first one too, when that leaves it fewer than two: alone
on two cores it has both), or shares the others' core(s) when they share.
"""

from __future__ import annotations

import contextlib
import ctypes
import functools
import os
import platform
import signal
import struct
import sys
from dataclasses import dataclass
from fractions import Fraction
from typing import Any

from .registry import engine_spec

_VULGAR = {
    Fraction(1, 2): "½",
    Fraction(1, 3): "⅓",
    Fraction(2, 3): "⅔",
    Fraction(1, 4): "¼",
    Fraction(3, 4): "¾",
    Fraction(1, 5): "⅕",
    Fraction(1, 6): "⅙",
}


@functools.cache
def allowed_cpus() -> list[int]:
    """The CPUs this process could run on when it started (all where affinity is unknown).

    Read once: the UI and ``bench`` then keep themselves off the engines' cores, and the next
    plan must still see every CPU.
    """
    return current_cpus()


def current_cpus() -> list[int]:
    """The CPUs this process may run on now (its placement, once :func:`set_cpus` has run)."""
    try:
        return sorted(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        return list(range(os.cpu_count() or 1))


def set_cpus(cpus: list[int] | tuple[int, ...]) -> bool:
    """Keep this process (all its threads) on ``cpus``; False where that is not possible."""
    if not cpus:
        return False
    try:
        os.sched_setaffinity(0, set(cpus))
        return True
    except (AttributeError, OSError, ValueError):
        return False


SHORT_SLICE_NS = 100_000  # an engine thread's scheduler slice on a shared core (Linux default ~0.75-3 ms)
_SCHED_SETATTR = {"x86_64": 314, "aarch64": 274}  # the syscall's number where it has one


SEPARATE: dict[str, Any] = {"process_group": 0} if sys.version_info >= (3, 11) else {"start_new_session": True}
"""How an engine process stands apart from the terminal: a process group of its own (not the terminal's
foreground group, so its ctrl+c does not reach it), in the app's session. Not a session of its own:
Linux then schedules each process in a group of its own (autogroup), and on a shared core that
starved the loop engines for whole runs (cpu-bound together: 187 / 0 / 0 req/s; in one session
64 / 53 / 53, Linux 6.18). Python 3.10 has no ``process_group``: a session there."""

PR_SET_PDEATHSIG = 1


def die_with_parent() -> None:
    """Linux: this process is killed (SIGKILL) when the thread that started it ends, stopped or not
    (a helper process frozen by SIGSTOP never reads the end of its input). Nothing elsewhere."""
    with contextlib.suppress(OSError, AttributeError):
        ctypes.CDLL(None).prctl(PR_SET_PDEATHSIG, signal.SIGKILL)


def short_slices(slice_ns: int = SHORT_SLICE_NS) -> bool:
    """Ask Linux's EEVDF scheduler (6.6+) for short slices for this thread and the threads it starts.

    Three engine processes sharing one core wait for each other's slices when they wake; with a
    short slice a waking loop runs sooner (together vs alone, loop lag p99 ratio: gevent 1.4-2.9
    without, 1.1-1.4 with, 2-core machine, io-bound). Nothing else changes: the
    policy stays SCHED_OTHER and the CPU shares stay fair. False where it is not available.
    """
    number = _SCHED_SETATTR.get(platform.machine())
    if number is None or not hasattr(os, "sched_setaffinity"):
        return False
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        # struct sched_attr: size, policy, flags, nice, priority, runtime (the slice), deadline,
        # period, util_min, util_max
        attr = ctypes.create_string_buffer(struct.pack("IIQiIQQQII", 56, 0, 0, 0, 0, slice_ns, 0, 0, 0, 0))
        return libc.syscall(number, 0, attr, 0) == 0
    except (OSError, AttributeError):
        return False


@dataclass(frozen=True)
class Placement:
    """CPUs for every engine process, for the load process and for the UI."""

    engines: dict[str, tuple[int, ...]]
    load: tuple[int, ...]
    ui: tuple[int, ...]

    def share(self, engine: str) -> float:
        """The cores this engine's process can count on (1.0: a core of its own)."""
        on = [sum(1 for other in self.engines.values() if c in other) for c in self.engines[engine]]
        return sum(1 / max(1, k) for k in on)

    def label(self, engine: str) -> str:
        """What this engine has, in words: ``1 core (cpu 1)``, ``⅓ of cpu 1``."""
        cpus = self.engines[engine]
        where = "cpu " + ",".join(str(c) for c in cpus)
        share = Fraction(self.share(engine)).limit_denominator(12)
        if share >= 1:
            n = int(share) if share.denominator == 1 else float(share)
            return f"{n} core{'s' if share > 1 else ''} ({where})"
        return f"{_VULGAR.get(share, f'{share.numerator}/{share.denominator}')} of {where}"

    def as_dict(self) -> dict[str, object]:
        return {
            "engines": {k: list(v) for k, v in self.engines.items()},
            "load": list(self.load),
            "ui": list(self.ui),
        }


def plan(engines: list[str] | tuple[str, ...], cpus: list[int] | None = None) -> Placement:
    """One core per engine when there are enough (the first core left to the UI and load).

    With fewer cores than engines + 1, the engines share the last core (the last two when
    there are four or more CPUs but not enough for one each) and the UI and load take the rest.
    """
    cpus = sorted(cpus if cpus is not None else allowed_cpus())  # a copy: the cached list stays as read
    n = len(engines)
    if len(cpus) == 1:
        one = (cpus[0],)
        return Placement(dict.fromkeys(engines, one), one, one)
    several = [e for e in engines if engine_spec(e).processes]
    if several:
        return _plan_processes(engines, several, cpus)
    if len(cpus) >= n + 1:
        rest = tuple(cpus[:1])
        own = cpus[len(cpus) - n :]
        others = tuple(cpus[: len(cpus) - n])
        return Placement({e: (c,) for e, c in zip(engines, own, strict=True)}, others, rest)
    return _plan_shared(engines, cpus)


def _plan_shared(engines: list[str] | tuple[str, ...], cpus: list[int]) -> Placement:
    """Every engine on the last core (the last two with four CPUs or more), the UI and load on the rest."""
    shared = tuple(cpus[-1:]) if len(cpus) < 4 else tuple(cpus[-2:])
    others = tuple(c for c in cpus if c not in shared)
    return Placement(dict.fromkeys(engines, shared), others, others)


def _plan_processes(engines: list[str] | tuple[str, ...], several: list[str], cpus: list[int]) -> Placement:
    """With an engine of several processes: the others a core each and it the cores left (with the
    first when fewer than two are left), the UI and load on the first; or all sharing, as :func:`plan`."""
    single = [e for e in engines if e not in several]
    if len(cpus) < len(single) + 2:
        return _plan_shared(engines, cpus)
    own = cpus[len(cpus) - len(single) :] if single else []
    left = tuple(c for c in cpus[1:] if c not in own)
    rest = left if len(left) >= 2 else (cpus[0], *left)
    mine = {e: (c,) for e, c in zip(single, own, strict=True)} | dict.fromkeys(several, rest)
    first = (cpus[0],)
    return Placement({e: mine[e] for e in engines}, first, first)
