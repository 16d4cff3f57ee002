"""Who limits a run: the servers, or the load generator that drives them (``client-bound``).

A Python load generator runs out of CPU long before some servers do (~40k req/s on a full core):
past that point req/s measures the client, not the server. :func:`client_bound` says so from the
two processes' CPU, as ``syncviz bench`` (``"client_bound"`` in its JSON) and the app's panel
(``client-bound`` beside the req/s) read it. The thresholds live here and nowhere else.
"""

from __future__ import annotations

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
