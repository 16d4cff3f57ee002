"""File descriptors: how many a run needs, raising the soft limit to that, and the one-line refusal.

Every client is a loopback socket at both ends: the load process holds one per client per engine
it drives, and each engine process one per client of its own (with ``io="upstream"`` each also
holds its pooled upstream connections, whose other ends the load process's upstream serves).
:func:`require_fds` works out the largest process's need before anything starts, raises this
process's soft ``RLIMIT_NOFILE`` to it when the hard limit allows (the engine and load processes
inherit it, and raise their own to the hard limit as they start), and otherwise raises
:class:`FdLimitError`: one line that says how many clients fit and how to raise the limit.

:func:`connection_limit` is the other limit on clients: gevent's pool holds at most
:data:`~syncviz.engines.registry.GEVENT_POOL` connections; the rest wait to be accepted.
"""

from __future__ import annotations

import contextlib
import resource
from collections.abc import Iterable, Mapping
from dataclasses import replace

from .base import EngineError
from .registry import GEVENT_POOL, engine_spec
from .settings import Mode, Settings

FD_MARGIN = 64  # pipes, listeners, epoll, the upstream, stdio: measured 8-19 per process, doubled and more
NO_LIMIT = 1 << 20  # what an unlimited hard limit is raised to (Linux's default fs.nr_open)
MAX_CLIENTS = 10_000  # the clients knob's own upper bound (Settings.validate)


class FdLimitError(EngineError):
    """The run needs more file descriptors than the hard limit allows; the message is one line."""


def sockets_per_engine(settings: Settings, engine: str, mode: Mode) -> int:
    """Sockets one engine's clients take at each end: its clients, slow clients and upstream connections."""
    n = settings.clients + settings.slow_clients
    if settings.io == "upstream":  # pooled: at most one per request waiting on it at once
        n += min(settings.clients, engine_spec(engine).capacity(mode, settings))
    return n


def fd_need(settings: Settings, modes: Mapping[str, Mode], in_process: bool = False) -> int:
    """Descriptors the busiest process of one run needs: the load process (every engine's clients),
    or with ``in_process`` the one process that holds both ends of every connection."""
    per = [sockets_per_engine(settings, name, mode) for name, mode in modes.items()]
    if not per:
        return FD_MARGIN
    load = sum(per)
    return (2 * load if in_process else max(load, *per)) + FD_MARGIN


def clients_that_fit(limit: int, settings: Settings, modes: Mapping[str, Mode], in_process: bool = False) -> int:
    """The most clients per engine (0 to :data:`MAX_CLIENTS`) whose run fits in ``limit`` descriptors."""
    low, high = 0, MAX_CLIENTS
    while low < high:  # the need grows with clients: the largest that fits
        mid = (low + high + 1) // 2
        # replace, not with_changes: 0 clients is a point of the search, not a setting
        if fd_need(replace(settings, clients=mid), modes, in_process) <= limit:
            low = mid
        else:
            high = mid - 1
    return low


def suggested_limit(need: int) -> int:
    """A round figure to raise the limit to: the next power of two at or above ``need``."""
    return 1 << max(0, need - 1).bit_length()


def limits() -> tuple[int, int]:
    """This process's ``(soft, hard)`` RLIMIT_NOFILE; unlimited reads as :data:`NO_LIMIT`."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    inf = resource.RLIM_INFINITY
    return (NO_LIMIT if soft == inf else soft), (NO_LIMIT if hard == inf else hard)


def raise_soft_limit(need: int | None = None) -> int:
    """Raise the soft limit to ``need`` (to the hard limit when ``None``), never above the hard one
    and never lower than it is; returns the soft limit in force afterwards."""
    with contextlib.suppress(ValueError, OSError):  # a platform that refuses (macOS caps it at OPEN_MAX)
        soft, hard = limits()
        want = hard if need is None else min(max(need, soft), hard)
        if want > soft:
            resource.setrlimit(resource.RLIMIT_NOFILE, (want, resource.getrlimit(resource.RLIMIT_NOFILE)[1]))
    try:
        return limits()[0]
    except (ValueError, OSError):
        return 0


def refusal(
    settings: Settings, modes: Mapping[str, Mode], need: int, limit: int, in_process: bool = False, kind: str = "hard"
) -> str:
    """The one line that says the run does not fit in ``limit``, how many clients would, how to raise it."""
    slow = f" (+{settings.slow_clients} slow)" if settings.slow_clients else ""
    fit = clients_that_fit(limit, settings, modes, in_process)
    fits = f"at most {fit} client{'s' if fit != 1 else ''} fit" if fit else "not one client fits"
    return (
        f"{settings.clients} clients{slow} per engine need ~{need} file descriptors; "
        f"the {kind} limit is {limit} (ulimit -n): {fits}; raise it with ulimit -n {suggested_limit(need)}"
    )


def ensure_fds(settings: Settings, modes: Mapping[str, Mode], in_process: bool = False) -> int:
    """Raise the soft limit to what this run needs, or :class:`FdLimitError` (one line) when the hard
    limit is too low (or the soft one cannot be raised); returns the need."""
    need = fd_need(settings, modes, in_process)
    got = raise_soft_limit(need)
    if got >= need:
        return need
    try:
        hard = limits()[1]
    except (ValueError, OSError):
        hard = got
    if hard < need:
        raise FdLimitError(refusal(settings, modes, need, hard, in_process))
    raise FdLimitError(refusal(settings, modes, need, got, in_process, kind="soft"))


def require_fds(
    scenarios: Iterable[str],
    engines: Iterable[str],
    together: bool = True,
    in_process: bool = False,
    **overrides: object,
) -> int:
    """:func:`ensure_fds` for every run of these scenarios (``together``: every engine at once, else one
    at a time, as ``syncviz bench`` runs them), before anything starts; returns the largest need."""
    from .scenarios import get_scenario

    names = list(engines)
    groups = [names] if together else [[name] for name in names]
    worst: tuple[int, Settings, dict[str, Mode]] | None = None
    for scenario_name in scenarios:
        scenario = get_scenario(scenario_name)
        settings = scenario.settings.with_changes(**overrides)
        for group in groups:
            modes = {name: scenario.mode(name) for name in group}
            need = fd_need(settings, modes, in_process)
            if worst is None or need > worst[0]:
                worst = (need, settings, modes)
    if worst is None:
        return 0
    return ensure_fds(worst[1], worst[2], in_process)


def max_clients(settings: Settings, modes: Mapping[str, Mode], in_process: bool = False) -> int:
    """The most clients per engine this process's hard limit holds (for a knob raised while running)."""
    try:
        hard = limits()[1]
    except (ValueError, OSError):
        return MAX_CLIENTS
    return clients_that_fit(hard, settings, modes, in_process)


def connection_limit(engine: str) -> int | None:
    """How many connections the engine serves at once (``None``: as many as memory allows).

    gevent's pool (gunicorn's ``worker_connections``) holds :data:`GEVENT_POOL` greenlets; while
    they are all taken the server stops accepting, and further clients wait in the listen queue
    or in their connect: a real limit of that server, said rather than counted as failures.
    """
    return GEVENT_POOL if engine == "gevent" else None


def connection_note(engine: str, clients: int) -> str | None:
    """One sentence when ``clients`` exceed the engine's :func:`connection_limit`, else ``None``."""
    limit = connection_limit(engine)
    if limit is None or clients <= limit:
        return None
    return (
        f"{engine}'s pool serves {limit} connections at once (gunicorn's worker_connections): "
        f"the other {clients - limit} of {clients} clients wait to be accepted"
    )
