"""How an experiment measures: a :class:`Plan` runs real servers and caches the runs, so claims
that need the same run (asyncio at 100 clients, say) share it.

Measuring ahead (:meth:`Plan.measure_ahead`): every claim's experiment first runs against the
plan without measuring anything (each run it asks for is noted and answered with a placeholder),
then the runs are measured grouped by the processes they need (:mod:`.session`: one start per
engines, their modes and placement, each point's knobs applied live) and the RSS probes side by
side; the experiments then run again and find every run measured. A run not asked for ahead is
measured when asked, on processes of its own.

Pinning the process is the caller's business (the CLI does it). The engines are imported
only when a run starts, so reading the catalogue costs nothing.
"""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from ..events import DEFAULT_ENGINES
from ..placement import current_cpus
from .session import Step, describe, grouped, measure_steps

if TYPE_CHECKING:
    from .base import Claim

PLACEHOLDER_RUN: dict[str, Any] = {  # what a run asked for ahead answers before it is measured
    "throughput_rps": 1.0,
    "completed": 1,
    "failed": 0,
    "latency_ms": {"p50": 1.0, "p95": 1.0, "p99": 1.0, "max": 1.0},
    "loop_lag_ms": None,
    "phase_ms": {},
    "in_service": 1.0,
    "placement": None,
    "client_bound": False,
}
PLACEHOLDER_RSS: dict[str, Any] = {"kb_per_conn": 1.0, "waiting": 0}


@dataclass
class Plan:
    """How long to measure, and the runs made so far (shared between claims)."""

    quick: bool = False
    engines: tuple[str, ...] = DEFAULT_ENGINES  # the per-engine experiments' (``claims --engines``)
    cpus: tuple[int, ...] = field(default_factory=lambda: tuple(current_cpus()))  # the machine's, for prefork
    runs: dict[tuple, Any] = field(default_factory=dict)
    memory: dict[str, dict[str, Any]] = field(default_factory=dict)
    elapsed: dict[tuple, float] = field(default_factory=dict)  # run key -> seconds its measurement took
    _ahead: dict[tuple, Step | tuple[str, int]] | None = None  # while measuring ahead: the runs asked for
    _charged: set[tuple] = field(default_factory=set)
    _bill: float = 0.0
    _stopping: list[threading.Thread] = field(default_factory=list)  # a group's processes, stopping

    def compared(self) -> list[str]:
        """The engines a per-engine experiment runs: the three its verdict reads, then the others named."""
        return [*DEFAULT_ENGINES, *(e for e in self.engines if e not in DEFAULT_ENGINES)]

    @property
    def seconds(self) -> float:
        return 1.0 if self.quick else 3.0

    @property
    def warmup(self) -> float:
        return 0.5 if self.quick else 1.0

    @property
    def settle(self) -> float:
        """The warm-up of a point applied to running processes (their imports, workers and connections
        are warm already; :meth:`~.session.Step.settle_after` adds what the change needs)."""
        return self.warmup / 2

    @property
    def connections(self) -> int:
        return 1000 if self.quick else 2000

    def run(
        self,
        scenario: str,
        engine: str,
        warmup: float | None = None,
        cpus: tuple[int, ...] | None = None,
        apart: str = "",
        **knobs: Any,
    ) -> dict[str, Any]:
        """One engine alone on ``scenario`` with ``knobs``; cached. ``cpus``: where the engine may run
        (default: as the CLI left this process, one CPU); ``warmup``: its own (applied live too);
        ``apart``: a name for runs that share processes with no others."""
        warm, settle = self._warmups(warmup)
        key = (scenario, engine, warm, cpus, tuple(sorted(knobs.items())))
        return self._get(Step(key, scenario, (engine,), False, cpus, warm, knobs, settle, apart))[0]

    def together(
        self,
        scenario: str,
        warmup: float | None = None,
        apart: str = "",
        engines: tuple[str, ...] = DEFAULT_ENGINES,
        cpus: tuple[int, ...] | None = None,
        **knobs: Any,
    ) -> dict[str, dict[str, Any]]:
        """``engines`` at once on ``scenario`` with ``knobs`` (each in its own process, placed as the app
        places them on ``cpus``); cached."""
        warm, settle = self._warmups(warmup)
        key = ("together", scenario, engines, warm, cpus, tuple(sorted(knobs.items())))
        results = self._get(Step(key, scenario, engines, True, cpus, warm, knobs, settle, apart))
        return {r["engine"]: r for r in results}

    def _warmups(self, warmup: float | None) -> tuple[float, float]:
        """(after a start, after a live change): a run's own warm-up is kept for both."""
        if warmup is None:
            return self.warmup, self.settle
        warm = max(warmup, self.warmup)
        return warm, warm

    def rps(self, scenario: str, engine: str, **knobs: Any) -> float:
        return self.run(scenario, engine, **knobs)["throughput_rps"]

    def rss(self, engine: str, n: int = 1000) -> dict[str, Any]:
        key = ("rss", engine)
        if engine not in self.memory:
            if self._ahead is not None:
                self._ahead.setdefault(key, (engine, n))
                return PLACEHOLDER_RSS
            self._probe([(engine, n)])
        self._charge(key)
        return self.memory[engine]

    def settings(self, scenario: str, **knobs: Any) -> dict[str, Any]:
        return {"scenario": scenario, **knobs, "seconds": self.seconds, "warmup_s": self.warmup}

    # -- measuring -----------------------------------------------------------------------
    def measure_ahead(self, claims: Iterable[Claim], progress: Callable[[str], None] | None = None) -> None:
        """Measure every run the claims' experiments ask for, grouped by the processes they need
        (``progress`` hears of each group as it starts)."""
        self._ahead = {}
        try:
            for claim in claims:
                # a placeholder it could not take: its runs are measured when it runs
                with contextlib.suppress(ArithmeticError, LookupError, TypeError, ValueError):
                    claim.run(self)
            asked = self._ahead
        finally:
            self._ahead = None
        for group in grouped(s for s in asked.values() if isinstance(s, Step)):
            if progress is not None:
                progress(describe(group))
            self._measure(group)
        self._stopped()
        probes = [p for p in asked.values() if not isinstance(p, Step)]
        if probes and progress is not None:
            progress("memory probes: " + ", ".join(e for e, _n in probes))
        self._probe(probes)

    def bill(self) -> float:
        """Seconds of measuring of the runs used since the last bill, each billed to its first user once."""
        out, self._bill = self._bill, 0.0
        return out

    def _get(self, step: Step) -> list[dict[str, Any]]:
        if step.key not in self.runs:
            if self._ahead is not None:
                self._ahead.setdefault(step.key, step)
                return [dict(PLACEHOLDER_RUN, engine=e) for e in step.engines]
            self._measure([step])
            self._stopped()
        self._charge(step.key)
        return self.runs[step.key]

    def _measure(self, steps: list[Step]) -> None:
        """One group; its processes stop while the next group's start (all stopped before a probe and
        before the plan's measuring is over)."""
        for key, (results, seconds) in measure_steps(steps, self.seconds, self._stopping).items():
            self.runs[key], self.elapsed[key] = results, seconds

    def _stopped(self) -> None:
        while self._stopping:
            self._stopping.pop().join()

    def _probe(self, probes: list[tuple[str, int]]) -> None:
        """The RSS probes side by side (RSS per connection does not depend on the CPU they share)."""
        self._stopped()
        if not probes:
            return
        from time import monotonic

        from .rss import rss_per_connection

        t0 = monotonic()
        with ThreadPoolExecutor(len(probes)) as pool:
            done = list(pool.map(lambda p: rss_per_connection(*p), probes))
        each = (monotonic() - t0) / len(probes)
        for (engine, _n), probe in zip(probes, done, strict=True):
            self.memory[engine] = probe
            self.elapsed[("rss", engine)] = each

    def _charge(self, key: tuple) -> None:
        if key not in self._charged:
            self._charged.add(key)
            self._bill += self.elapsed.get(key, 0.0)


def lag_p99(result: dict[str, Any]) -> float | None:
    lag = result["loop_lag_ms"]
    return None if lag is None else lag["p99"]
