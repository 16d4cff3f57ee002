"""Run settings (the knobs), their validation, and the Little's-law bound they allow.

One :class:`Settings` describes the load and the handler for every engine; a scenario
(:mod:`syncviz.engines.scenarios`) is a named preset of it. Every knob but ``io`` and the
scenario's handler modes can change while the engines run.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, fields, replace
from typing import Any, Literal

from .registry import GEVENT_POOL as GEVENT_POOL  # re-exported: per-engine facts live in the registry
from .registry import MAX_WORKERS, engine_spec
from .registry import OFFLOAD_LIMIT as OFFLOAD_LIMIT

IoKind = Literal["sleep", "upstream"]
Mode = Literal["native", "blocking", "offload"]
"""How an engine runs the handler: its own way (blocking on threads, awaiting on asyncio,
yielding on gevent), the blocking version on purpose, or blocking code offloaded to a
thread pool (anyio.to_thread, asyncio only)."""


class SettingsError(ValueError):
    """A knob out of range; the message is one line meant for the user."""


@dataclass(frozen=True)
class Settings:
    clients: int = 100  # closed loop: connections per engine; open loop: most connections
    pool: int = 8  # threaded engine's worker threads
    io_ms: float = 50.0  # I/O wait per request (total over all chunks)
    cpu_ms: float = 0.0  # pure-Python CPU per request, measured in thread CPU time
    rate: float | None = None  # open loop: Poisson arrivals per second per engine
    think_ms: float = 0.0  # closed loop: pause between a response and the next request
    io: IoKind = "sleep"  # sleep, or a real round trip to the in-process upstream
    chunks: int = 1  # >1: the response streams in chunks, I/O before each
    burst: float = 1.0  # open loop: rate multiplier during spikes (1 = no spikes)
    slow: float = 1.0  # slow motion: io_ms and cpu_ms are multiplied by this
    timeout_s: float = 10.0  # servers: a request's head and body must arrive within this (else 408)
    slow_clients: int = 0  # load: extra clients per engine that trickle their request bytes over seconds
    workers: int = 0  # prefork engine's worker processes (0: one per CPU it may use)

    def validate(self) -> Settings:
        """Return self, or raise :class:`SettingsError` naming the first bad knob."""
        _check_int("clients", self.clients, 1, 10_000)
        _check_int("pool", self.pool, 1, 1_000)
        _check_int("chunks", self.chunks, 1, 1_000)
        _check_num("io-ms", self.io_ms, 0, 60_000)
        _check_num("cpu-ms", self.cpu_ms, 0, 10_000)
        _check_num("think-ms", self.think_ms, 0, 60_000)
        _check_num("burst", self.burst, 1, 100)
        _check_num("slow", self.slow, 1, 1_000)
        _check_num("timeout", self.timeout_s, 0.1, 3_600)
        _check_int("slow-clients", self.slow_clients, 0, 10_000)
        _check_int("workers", self.workers, 0, MAX_WORKERS)
        if self.rate is not None:
            _check_num("rate", self.rate, 0.1, 1_000_000)
        if self.io not in ("sleep", "upstream"):
            raise SettingsError(f"io must be 'sleep' or 'upstream', not {self.io!r}")
        return self

    @property
    def io_s(self) -> float:
        return self.io_ms * self.slow / 1000.0

    @property
    def cpu_s(self) -> float:
        return self.cpu_ms * self.slow / 1000.0

    def with_changes(self, **changes: Any) -> Settings:
        """A validated copy with ``changes`` applied; unknown names raise SettingsError."""
        known = {f.name for f in fields(self)}
        for name in changes:
            if name not in known:
                raise SettingsError(f"unknown setting {name!r}")
        return replace(self, **changes).validate()

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def _check_int(name: str, value: object, low: int, high: int) -> None:
    if isinstance(value, bool) or not isinstance(value, int):
        raise SettingsError(f"{name} must be a whole number, not {value!r}")
    if not low <= value <= high:
        raise SettingsError(f"{name} must be between {low} and {high}, not {value}")


def _check_num(name: str, value: object, low: float, high: float) -> None:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise SettingsError(f"{name} must be a number, not {value!r}")
    if not low <= value <= high:
        raise SettingsError(f"{name} must be between {low:g} and {high:g}, not {value:g}")


def capacity(engine: str, mode: Mode, settings: Settings) -> int:
    """How many requests the engine can have in their I/O wait at once."""
    return engine_spec(engine).capacity(mode, settings)


def fmt_rate(x: float) -> str:
    """A rate for the screen: ``1,930``, ``12``, ``0.5`` (below 10 a decimal, so 0.5 req/s never reads ``0``)."""
    if 0 < abs(x) < 10 and round(x) != x:
        return f"{x:,.1f}" if abs(x) >= 0.1 else f"{x:.2g}"
    return f"{x:,.0f}"


BURST_PERIOD_S, BURST_LEN_S = 5.0, 1.0  # open loop: a spike of ``burst`` x rate, 1 s in every 5


def offered_rps(settings: Settings, window_s: float | None = None) -> float | None:
    """An open loop's arrivals per second: the most any ``window_s`` can hold (as many spike
    seconds as fit in it), or the long-run mean (``None``); ``None`` for a closed loop.

    The ``burst`` scenario: 60 a second, 480 for 1 s in every 5: a 2 s window (the panel's req/s)
    holds up to 270 a second, 10 s (a bench run) 144 on average. The bound used to be the 60 alone:
    "req/s 141 of bound 60, 235%" in bench."""
    if settings.rate is None:
        return None
    if settings.burst <= 1:
        return settings.rate
    if window_s is None or window_s <= 0:
        return settings.rate * (1 + (settings.burst - 1) * BURST_LEN_S / BURST_PERIOD_S)
    whole, part = divmod(window_s, BURST_PERIOD_S)
    spike_s = whole * BURST_LEN_S + min(BURST_LEN_S, part)
    return settings.rate * (window_s + (settings.burst - 1) * spike_s) / window_s


def bound_rps(
    engine: str,
    mode: Mode,
    settings: Settings,
    cpu_share: float = 1.0,
    cpus: tuple[int, ...] | None = None,
    window_s: float | None = None,
) -> float | None:
    """Little's law: throughput <= concurrency / time per request, and the CPU the engine has.

    ``cpu_share`` is the cores the engine's process can count on (⅓ when three engines share
    one core); one GIL caps CPU work at one core, so the CPU part is at most
    ``min(cpu_share, 1) / CPU per request`` (prefork: one GIL per worker process, ``N`` cores;
    ``cpus``, its placement, sets its default ``N``). An open loop's arrivals cap it too, as
    many as ``window_s``, the window req/s is measured over, can hold (:func:`offered_rps`).

    ``None`` when the handler does no work at all (no finite bound).
    """
    service_s = settings.io_s + settings.cpu_s
    offered = offered_rps(settings, window_s)
    if service_s <= 0:
        return offered
    spec = engine_spec(engine)
    gils = spec.gils(settings, cpus)
    concurrency = min(settings.clients, gils if spec.processes else capacity(engine, mode, settings))
    per_request = service_s + (settings.think_ms / 1000.0 if settings.rate is None else 0.0)
    bound = concurrency / per_request
    if settings.cpu_s > 0:
        bound = min(bound, min(cpu_share, gils) / settings.cpu_s)  # one GIL: one request computes at a time
    if offered is not None:
        bound = min(bound, offered)
    return bound


def arrivals_bind(bound: float | None, settings: Settings, window_s: float | None) -> bool:
    """Whether :func:`bound_rps`'s ``bound`` is an open loop's arrivals (:func:`offered_rps`), not
    the server: then what the clients sent, measured, is the figure to hold req/s against (the
    panel's ``of offered``, bench's ``offered``); the model's rate is only what a window holds on
    average (burst between spikes read ``req/s 55 of bound 270``)."""
    return bound is not None and bound == offered_rps(settings, window_s)
