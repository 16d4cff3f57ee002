"""Every engine in one table: what the rest of the code needs to know about each, and its loader.

Like anyio's backends, each engine is a module of :mod:`syncviz.engines.backends` imported
only when asked for (:func:`load`); everything else (its model in a few words, how its
handler waits, its worker lanes, how many requests it can hold) is plain data here, so the
app can describe gevent without importing it. Ordered like :data:`~syncviz.engines.events.ENGINES`.

uvloop (installed with syncviz but on Windows) and trio (``pip install 'syncviz[all]'``) are
optional: :func:`require` says so in one line before anything starts. ``prefork`` is the one engine of several processes
(:attr:`EngineSpec.processes`): its worker count is the ``workers`` knob, by default the CPUs
its process may use (:func:`prefork_workers`), and each worker has a GIL of its own.
"""

from __future__ import annotations

import contextlib
import importlib
import importlib.util
import signal
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, NamedTuple

from .events import Phase

if TYPE_CHECKING:
    from .base import Engine
    from .settings import Mode, Settings

OFFLOAD_LIMIT = 40  # anyio's default thread limiter, the FastAPI ``def`` endpoint model
GEVENT_POOL = 1000  # gunicorn's default worker_connections
MAX_WORKERS = 64  # prefork's most worker processes (the ``workers`` knob)
UNBOUNDED = 10**9  # no limit but memory: a task per connection
BACKENDS = f"{__package__}.backends"
EXTRA = "all"  # pip install 'syncviz[all]': the optional engines' packages

Lanes = list[tuple[int, str]]


class EngineError(RuntimeError):
    """Starting an engine failed (e.g. the port is in use, an unknown name); the message is one line."""


def exit_words(code: int) -> str:
    """How a process ended, from its exit status (``Popen.returncode``): ``killed by SIGKILL``,
    ``exited with status 1``."""
    if code < 0:
        with contextlib.suppress(ValueError):
            return f"killed by {signal.Signals(-code).name}"
    return f"exited with status {code}"


class IoLines(NamedTuple):
    """The handler's I/O call as code: a sleep (``{secs}`` filled in), and the upstream round trip."""

    sleep: str
    upstream: str


BLOCKING_IO = IoLines("time.sleep({secs})", "sock.recv(...)  # upstream, blocking")


@dataclass(frozen=True)
class EngineSpec:
    """One engine, as the rest of the code sees it without importing its backend."""

    name: str
    model: str  # its concurrency model in a few words
    wait_phase: Phase  # the phase of its handler's own waits (blocked, awaiting, yielded)
    has_loop: bool  # one loop or hub thread runs every request (it has a loop lag)
    module: str  # the backend module, imported by :func:`load`
    class_name: str
    capacity_of: Callable[[Mode, Settings], int]
    lanes_of: Callable[[Mode, Settings], Lanes]
    worker_word_of: Callable[[Mode], str]
    io_lines: dict[str, IoLines] = field(default_factory=dict)  # mode -> its I/O call; else BLOCKING_IO
    needs: tuple[str, ...] = ()  # optional packages its backend imports (the ``all`` extra)
    processes: bool = False  # several worker processes: a GIL each, the CPUs of its placement

    def gils(self, settings: Settings, cpus: Sequence[int] | None = None) -> int:
        """How many requests can compute at once: one GIL per process (prefork: its workers)."""
        return prefork_workers(settings, cpus) if self.processes else 1

    def capacity(self, mode: Mode, settings: Settings) -> int:
        """How many requests it can have in their I/O wait at once."""
        return self.capacity_of(mode, settings)

    def lanes(self, mode: Mode, settings: Settings, cpus: Sequence[int] | None = None) -> Lanes:
        """``(lane, label)`` of every worker lane, in order (pool threads, the loop, offload threads;
        prefork's worker processes, by default one per CPU of ``cpus``, its placement, as it starts them)."""
        if self.processes and not settings.workers:
            settings = settings.with_changes(workers=self.gils(settings, cpus))
        return self.lanes_of(mode, settings)

    def worker_word(self, mode: Mode) -> str:
        """What its workers are called in the counters (``threads``, ``loop``, ``hub``)."""
        return self.worker_word_of(mode)

    def io_line(self, mode: Mode, upstream: bool, secs: str) -> str:
        """The handler's I/O line as code in ``mode`` (e.g. ``await asyncio.sleep(0.05)``)."""
        lines = self.io_lines.get(mode, BLOCKING_IO)
        return lines.upstream if upstream else lines.sleep.format(secs=secs)


def _pool_capacity(_mode: Mode, settings: Settings) -> int:
    return settings.pool


def prefork_workers(settings: Settings, cpus: Sequence[int] | None = None) -> int:
    """prefork's worker processes: the ``workers`` knob, or (0) one per CPU it may use: ``cpus``
    (its placement) when known, else the CPUs this process could use when it started."""
    if settings.workers:
        return settings.workers
    if cpus:
        return len(cpus)
    from .placement import allowed_cpus  # placement imports nothing of the registry's

    return len(allowed_cpus())


def _prefork_capacity(_mode: Mode, settings: Settings) -> int:
    return prefork_workers(settings)


def _prefork_lanes(_mode: Mode, settings: Settings) -> Lanes:
    return [(i, f"p{i}") for i in range(prefork_workers(settings))]


def _loop_capacity(native: int) -> Callable[[Mode, Settings], int]:
    def capacity(mode: Mode, _settings: Settings) -> int:
        if mode == "blocking":
            return 1  # the one loop or hub thread is parked in the call
        if mode == "offload":
            return OFFLOAD_LIMIT
        return native

    return capacity


def _pool_lanes(_mode: Mode, settings: Settings) -> Lanes:
    return [(i, f"w{i}") for i in range(settings.pool)]


def _asyncio_lanes(mode: Mode, _settings: Settings) -> Lanes:
    lanes = [(0, "loop")]
    if mode == "offload":
        lanes += [(i, f"t{i}") for i in range(1, OFFLOAD_LIMIT + 1)]
    return lanes


def _hub_lanes(_mode: Mode, _settings: Settings) -> Lanes:
    return [(0, "hub")]


def _asyncio_word(mode: Mode) -> str:
    return f"loop+{OFFLOAD_LIMIT} thr" if mode == "offload" else "loop"


ASYNCIO_IO = {
    "native": IoLines("await asyncio.sleep({secs})", "await reader.read(...)  # upstream"),
    "offload": IoLines("await anyio.to_thread.run_sync(time.sleep, {secs})", BLOCKING_IO.upstream),
}


ASYNCIO = EngineSpec(
    name="asyncio",
    model="one event loop, one task per connection",
    wait_phase=Phase.AWAITING,
    has_loop=True,
    module=f"{BACKENDS}._asyncio",
    class_name="AsyncioEngine",
    capacity_of=_loop_capacity(UNBOUNDED),
    lanes_of=_asyncio_lanes,
    worker_word_of=_asyncio_word,
    io_lines=ASYNCIO_IO,
)

ENGINE_SPECS: dict[str, EngineSpec] = {
    spec.name: spec
    for spec in (
        EngineSpec(
            name="threaded",
            model="selector + fixed pool of worker threads",
            wait_phase=Phase.BLOCKED,
            has_loop=False,
            module=f"{BACKENDS}._threaded",
            class_name="ThreadedEngine",
            capacity_of=_pool_capacity,
            lanes_of=_pool_lanes,
            worker_word_of=lambda _mode: "threads",
        ),
        ASYNCIO,
        EngineSpec(
            name="gevent",
            model="one hub, one greenlet per connection",
            wait_phase=Phase.YIELDED,
            has_loop=True,
            module=f"{BACKENDS}._gevent",
            class_name="GeventEngine",
            capacity_of=_loop_capacity(GEVENT_POOL),
            lanes_of=_hub_lanes,
            worker_word_of=lambda _mode: "hub",
            io_lines={"native": IoLines("gevent.sleep({secs})", "gevent.socket recv  # upstream")},
        ),
        replace(  # the asyncio engine's code on another loop: everything but the loop is the same
            ASYNCIO,
            name="uvloop",
            model="asyncio on uvloop's event loop (libuv)",
            module=f"{BACKENDS}._uvloop",
            class_name="UvloopEngine",
            needs=("uvloop",),
        ),
        replace(  # the same server on Trio: its own module, no offload threads
            ASYNCIO,
            name="trio",
            model="Trio through anyio, one task per connection",
            module=f"{BACKENDS}._trio",
            class_name="TrioEngine",
            lanes_of=lambda _mode, _settings: [(0, "loop")],
            worker_word_of=lambda _mode: "loop",
            io_lines={"native": IoLines("await anyio.sleep({secs})", "await stream.receive()  # upstream")},
            needs=("trio",),
        ),
        EngineSpec(
            name="prefork",
            model="N sync worker processes on one listening socket",
            wait_phase=Phase.BLOCKED,
            has_loop=False,
            module=f"{BACKENDS}._prefork",
            class_name="PreforkEngine",
            capacity_of=_prefork_capacity,
            lanes_of=_prefork_lanes,
            worker_word_of=lambda _mode: "procs",
            processes=True,
        ),
    )
}


def engine_spec(name: str) -> EngineSpec:
    """The engine called ``name``, or a one-line :class:`EngineError` listing the known ones."""
    try:
        return ENGINE_SPECS[name]
    except KeyError:
        raise EngineError(f"unknown engine {name!r} (known: {', '.join(ENGINE_SPECS)})") from None


def missing(name: str) -> list[str]:
    """The optional packages the engine called ``name`` needs that are not installed."""
    return [pkg for pkg in engine_spec(name).needs if importlib.util.find_spec(pkg) is None]


def require(names: Sequence[str]) -> None:
    """A one-line :class:`EngineError` naming the extra to install when an engine's package is missing."""
    for name in names:
        absent = missing(name)
        if absent:
            raise EngineError(f"the {name} engine needs {', '.join(absent)}: pip install 'syncviz[{EXTRA}]'")


def load(name: str) -> type[Engine]:
    """The engine class called ``name``, importing only its backend module (anyio's way)."""
    spec = engine_spec(name)
    require([name])
    return getattr(importlib.import_module(spec.module), spec.class_name)
