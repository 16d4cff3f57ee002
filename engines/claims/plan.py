"""How an experiment measures: a :class:`Plan` runs real servers through
:func:`syncviz.engines.bench.run_scenario` (one engine at a time, or all at once) and caches the
runs, so claims that need the same run (asyncio at 100 clients, say) share it.

Pinning the process is the caller's business (the CLI does it). The engines are imported
only when a run starts, so reading the catalogue costs nothing.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from ..events import DEFAULT_ENGINES
from ..placement import current_cpus


@dataclass
class Plan:
    """How long to measure, and the runs made so far (shared between claims)."""

    quick: bool = False
    engines: tuple[str, ...] = DEFAULT_ENGINES  # the per-engine experiments' (``claims --engines``)
    cpus: tuple[int, ...] = field(default_factory=lambda: tuple(current_cpus()))  # the machine's, for prefork
    runs: dict[tuple, dict[str, Any]] = field(default_factory=dict)
    memory: dict[str, dict[str, Any]] = field(default_factory=dict)

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
    def connections(self) -> int:
        return 1000 if self.quick else 2000

    def run(
        self,
        scenario: str,
        engine: str,
        warmup: float | None = None,
        cpus: tuple[int, ...] | None = None,
        **knobs: Any,
    ) -> dict[str, Any]:
        """One engine alone on ``scenario`` with ``knobs``; cached. ``cpus``: where the engine may run
        (default: as the CLI left this process, one CPU)."""
        warm = self.warmup if warmup is None else max(warmup, self.warmup)
        key = (scenario, engine, warm, cpus, tuple(sorted(knobs.items())))
        if key not in self.runs:
            from ..bench import run_scenario

            where = {} if cpus is None else {"cpus": list(cpus)}
            self.runs[key] = run_scenario(
                scenario, engines=[engine], seconds=self.seconds, warmup_s=warm, **where, **knobs
            )[0]
        return self.runs[key]

    def together(self, scenario: str, warmup: float | None = None, **knobs: Any) -> dict[str, dict[str, Any]]:
        """The three engines at once on ``scenario`` with ``knobs`` (each in its own process); cached."""
        warm = self.warmup if warmup is None else max(warmup, self.warmup)
        key = ("together", scenario, warm, tuple(sorted(knobs.items())))
        if key not in self.runs:
            from ..bench import run_scenario

            results = run_scenario(scenario, seconds=self.seconds, together=True, warmup_s=warm, **knobs)
            self.runs[key] = {r["engine"]: r for r in results}
        return self.runs[key]

    def rps(self, scenario: str, engine: str, **knobs: Any) -> float:
        return self.run(scenario, engine, **knobs)["throughput_rps"]

    def rss(self, engine: str, n: int = 1000) -> dict[str, Any]:
        if engine not in self.memory:
            from .rss import rss_per_connection

            self.memory[engine] = rss_per_connection(engine, n)
        return self.memory[engine]

    def settings(self, scenario: str, **knobs: Any) -> dict[str, Any]:
        return {"scenario": scenario, **knobs, "seconds": self.seconds, "warmup_s": self.warmup}


def lag_p99(result: dict[str, Any]) -> float | None:
    lag = result["loop_lag_ms"]
    return None if lag is None else lag["p99"]
