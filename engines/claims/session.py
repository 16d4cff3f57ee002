"""Measuring the claims' runs on engine processes started once: a sweep's points applied live.

A :class:`Step` is one measured window: engines (one alone, or the three at once) on a scenario,
where they run, the knobs and the warm-ups. :func:`measure_steps` starts one
:class:`~syncviz.engines.child.ChildHost` for a group of steps whose engines run in the same
modes (scenarios that differ only in settings, io-bound and cpu-bound, share processes) and
differ only in knobs the engines take while running (what the app's knob keys change: pool,
clients, I/O, CPU, slow clients). For each step it applies the knobs to the running processes,
warms up, measures a window and makes the result dicts :func:`syncviz.engines.bench.run_scenario`
makes (both with :mod:`syncviz.engines.window`). A fresh start per point cost ~0.4 s (two
processes' imports, the first connections, the stop) and a full warm-up.

What changes against a fresh start: the load's connections, the engine's workers and imports come
from the step before, so a step applied live warms up for :attr:`Step.settle` (the plan's: half
a fresh warm-up) or longer: one of its own requests' time, and past the longest request of the step
before when the new knobs change what a request does or retire clients (an answer to an old
request must not count in the new window). The step before's figures are interpreted while
this one warms up, and a group's processes stop while the next group's start, never during a
window. A knob that reshapes processes (prefork's ``workers``)
gets processes of its own (:data:`RESTART_KNOBS`), and so do steps a claim sets ``apart``.

Each result also carries ``in_service``: per engine, the mean number of requests being served
(taken by a worker, not finished) over the window, from every request's transitions.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from ..events import ENGINE_IDS, Batch, Phase
from ..scenarios import get_scenario
from ..settings import Settings

if TYPE_CHECKING:
    from ..window import Window

RESTART_KNOBS = frozenset({"workers"})  # knobs a step gets fresh processes for (prefork's workers)
SAME_REQUEST = frozenset({"pool", "clients", "slow_clients", "workers"})  # knobs that leave a request as it was
SETTLE_S = 0.1  # at least this between interpreting the step before and a window
NOT_SERVING = frozenset({Phase.QUEUED, Phase.READING, Phase.DONE, Phase.FAILED})


@dataclass(frozen=True)
class Step:
    """One measured window: ``engines`` on ``scenario`` with ``knobs`` (``together``: at once).

    ``warmup`` after the processes start; ``settle`` after the knobs are applied to running ones
    (at least one new request's time, and past every request of the step before that the new
    knobs change or whose client they retire: the window's answers are all to new requests).
    Steps whose ``apart`` is named share processes with no other steps."""

    key: tuple  # the plan's cache key
    scenario: str
    engines: tuple[str, ...]
    together: bool
    cpus: tuple[int, ...] | None
    warmup: float
    knobs: dict[str, Any] = field(default_factory=dict)
    settle: float = 0.0
    apart: str = ""

    @property
    def settings(self) -> Settings:
        return get_scenario(self.scenario).settings.with_changes(**self.knobs)

    @property
    def modes(self) -> tuple[str, ...]:
        scenario = get_scenario(self.scenario)
        return tuple(scenario.mode(e) for e in self.engines)

    @property
    def group(self) -> tuple:
        """Steps with the same group run on the same processes, one after the other: the same
        engines, each in the same mode (scenarios differ only in settings), placement and workers."""
        fixed = tuple(sorted((k, v) for k, v in self.knobs.items() if k in RESTART_KNOBS))
        return (self.engines, self.modes, self.together, self.cpus, fixed, self.apart)

    def settle_after(self, before: Step, longest_s: float) -> float:
        """Seconds from applying this step's knobs to its window, ``before`` having run (its longest
        request ``longest_s``)."""
        old, new = before.settings, self.settings
        shown = {k: v for k, v in old.as_dict().items() if k not in SAME_REQUEST}
        changed = shown != {k: v for k, v in new.as_dict().items() if k not in SAME_REQUEST}
        drain = longest_s + SETTLE_S if changed or new.clients < old.clients else 0.0
        request_s = (new.io_ms + new.cpu_ms) * new.slow / 1000
        return max(self.settle, request_s, drain, SETTLE_S)


def grouped(steps: Iterable[Step]) -> list[list[Step]]:
    """The steps by group, groups and steps in the order first asked for."""
    groups: dict[tuple, list[Step]] = {}
    for step in steps:
        groups.setdefault(step.group, []).append(step)
    return list(groups.values())


def describe(steps: list[Step]) -> str:
    """A group in words, for progress: ``io-bound, threaded (12 points)``."""
    first = steps[0]
    where = "" if first.cpus is None else f" on cpus {','.join(map(str, first.cpus))}"
    points = f" ({len(steps)} points)" if len(steps) > 1 else ""
    return f"{first.scenario}, {' + '.join(first.engines)}{where}{points}"


def measure_steps(
    steps: list[Step], seconds: float, stopping: list[threading.Thread] | None = None
) -> dict[tuple, tuple[list[dict[str, Any]], float]]:
    """Measure one group's steps on one set of processes: step key -> (one result per engine, seconds
    the step took, the processes' start counted in the first step and their stop in the last).

    ``stopping``: when given, the processes of the group before may still be stopping (they are
    waited for before the first window, while these warm up) and these stop in the background, added
    to it; else they are stopped before this returns."""
    from ..child import ChildHost
    from ..limits import require_fds
    from ..placement import set_cpus
    from ..source import RunBroken, what_died
    from ..window import collect, measure_window, wait_for_traffic

    first = steps[0]
    for step in steps:  # a descriptor limit fails before anything starts
        require_fds([step.scenario], step.engines, step.together, False, **step.knobs)
    results: dict[tuple, list[dict[str, Any]]] = {}
    elapsed: dict[tuple, float] = {}
    pending: tuple[Step, Window] | None = None  # the step before and its window
    t_mark = time.monotonic()
    cpus = None if first.cpus is None else list(first.cpus)
    host = ChildHost(first.scenario, engines=first.engines, record=True, cpus=cpus, **first.knobs).start()
    set_cpus(host.placement.ui)  # this process keeps off the engines' cores
    try:
        for i, step in enumerate(steps):
            warm = Batch()
            if pending is None:
                wait_for_traffic(host, step.engines, warm)
                warmup = step.warmup
            else:
                host.apply(**step.settings.as_dict())
                warmup = step.settle_after(pending[0], pending[1].longest_s)
            t_apply = time.monotonic()
            if pending is not None:  # the step before, interpreted while this one warms up
                results[pending[0].key] = _results(*pending, seconds)
            left = warmup - (time.monotonic() - t_apply)
            collect(host, warm, max(left, SETTLE_S if i else 0.0))
            while stopping:  # the group before's processes are gone before a window opens
                stopping.pop().join()
            pending = step, measure_window(host, warm, seconds)
            died = what_died(pending[1].status)
            if died:  # its figures would be a half-run's, judged as a whole one's (a false verdict)
                raise RunBroken(f"{died} while measuring {describe(steps)}: no figures, no verdicts from it")
            now = time.monotonic()
            elapsed[step.key], t_mark = now - t_mark, now
    except BaseException:
        host.close()
        raise
    if stopping is None:
        host.close()
    else:
        closing = threading.Thread(target=host.close, name="claims-stop")
        closing.start()
        stopping.append(closing)
    assert pending is not None
    results[pending[0].key] = _results(*pending, seconds)
    elapsed[pending[0].key] += time.monotonic() - t_mark
    return {key: (results[key], elapsed[key]) for key in elapsed}


def _results(step: Step, w: Window, seconds: float) -> list[dict[str, Any]]:
    """One result dict per engine, as :func:`syncviz.engines.bench.run_scenario` makes them, each with
    its ``in_service``."""
    from ..window import window_results

    out = window_results(w, step.scenario, step.engines, seconds, step.together)
    transitions = [*w.warm.transitions, *w.window.transitions]
    for name, r in zip(step.engines, out, strict=True):
        r["in_service"] = round(in_service(transitions, ENGINE_IDS[name], w.t_start, w.t_end), 2)
    return out


def in_service(transitions: list[tuple[int, int, int, int, int]], engine: int, t0: int, t1: int) -> float:
    """The mean number of ``engine``'s requests being served over ``[t0, t1]``: taken by a worker and
    not finished (any phase but queued, reading, done and failed), from their transitions in time order.
    Not Little's law on the completions, which a window of a few synchronised long requests quantises."""
    serving: set[int] = set()
    area = 0
    last = t0
    for t, _e, rid, _lane, phase in sorted((tr for tr in transitions if tr[1] == engine), key=lambda tr: tr[0]):
        now = min(max(t, t0), t1)
        area += len(serving) * (now - last)
        last = now
        if phase in NOT_SERVING:
            serving.discard(rid)
        else:
            serving.add(rid)
    area += len(serving) * (t1 - last)
    return area / max(1, t1 - t0)
