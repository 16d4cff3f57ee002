"""The live knobs: their ladders of values, one key step up or down, and how they read."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from syncviz.engines.settings import Settings


@dataclass(frozen=True)
class Knob:
    name: str  # Settings field, and the keyword for source.apply
    label: str
    ladder: tuple[Any, ...]
    unit: str = ""

    def step(self, current: Any, direction: int) -> Any:
        """The next rung above (+1) or below (-1) ``current`` (None sorts lowest)."""
        order = [_key(v) for v in self.ladder]
        cur = _key(current)
        if direction > 0:
            above = [v for v, k in zip(self.ladder, order, strict=True) if k > cur]
            return above[0] if above else current
        below = [v for v, k in zip(self.ladder, order, strict=True) if k < cur]
        return below[-1] if below else current

    def show(self, value: Any) -> str:
        if value is None:
            return "closed loop" if self.name == "rate" else "—"
        if value == 0 and self.name == "workers":
            return "one per CPU"
        return f"{value:g}{self.unit}" if isinstance(value, float) else f"{value}{self.unit}"


def _key(value: Any) -> float:
    return -1.0 if value is None else float(value)


KNOBS: dict[str, Knob] = {
    k.name: k
    for k in (
        Knob("clients", "clients", (1, 2, 5, 10, 20, 50, 100, 200, 500, 1000, 2000)),
        Knob("pool", "pool", (1, 2, 4, 8, 16, 32, 64, 100, 200, 400)),
        Knob("io_ms", "io", (0, 1, 2, 5, 10, 20, 50, 100, 200, 500, 1000), " ms"),
        Knob("cpu_ms", "cpu", (0, 0.5, 1, 2, 5, 10, 20, 50), " ms"),
        Knob("rate", "rate", (None, 10, 20, 50, 100, 200, 500, 1000, 2000, 5000), "/s"),
        Knob("slow_clients", "slow clients", (0, 1, 2, 4, 8, 16, 32, 64, 128)),
        Knob("workers", "workers", (0, 1, 2, 3, 4, 6, 8, 16)),  # prefork's processes (0: one per CPU)
    )
}

SHOWN_WHEN_SET = frozenset({"slow_clients", "workers"})
"""Knobs the status bar names only when they are not zero (most scenarios have none)."""

SLOW_LADDER = (1, 10, 40)
"""Slow motion: workloads multiplied so that a 50 ms request lasts 0.5 s, then 2 s."""


def next_slow(current: float) -> float:
    later = [s for s in SLOW_LADDER if s > current]
    return float(later[0] if later else SLOW_LADDER[0])


def knob_line(settings: Settings) -> list[tuple[str, str]]:
    """(label, value) pairs for the status bar."""
    out = [
        (k.label, k.show(getattr(settings, k.name)))
        for k in KNOBS.values()
        if k.name not in SHOWN_WHEN_SET or getattr(settings, k.name)
    ]
    if settings.rate is not None and settings.burst > 1:
        out.append(("burst", f"{settings.burst:g}x"))
    if settings.io == "upstream":
        out.append(("io via", "upstream"))
    if settings.chunks > 1:
        out.append(("chunks", str(settings.chunks)))
    return out


def changed_knobs(started: Settings, now: Settings) -> list[str]:
    """The knobs that differ between a scenario's own settings and ``now``, as ``io 50 ms → 0 ms``."""
    return [
        f"{k.label} {k.show(getattr(started, k.name))} → {k.show(getattr(now, k.name))}"
        for k in KNOBS.values()
        if getattr(started, k.name) != getattr(now, k.name)
    ]
