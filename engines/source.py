"""The seam between the engines and whatever shows them: the event source and its status.

An :class:`EventSource` is drained for :class:`~syncviz.engines.events.Batch` es and takes
commands. Its :meth:`~EventSource.status` is a typed :class:`SourceStatus`: per engine, the
process that serves it (pid, CPUs, CPU %, RSS), whether it is live, stalled or gone, and the
server's latest source counters (:class:`~syncviz.engines.counts.ServerSnapshot`). The
engine process host (:mod:`syncviz.engines.child`), the in-process host
(:mod:`syncviz.engines.host`) and the recording player implement it.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections import deque
from dataclasses import dataclass, field
from typing import Any, Literal

from .counts import ServerSnapshot
from .events import Batch
from .registry import EngineError

State = Literal["starting", "live", "stalled", "exited", "replay"]

STALL_S = 1.0
"""A process that sends nothing for this long, or whose loop's ticker is this late while it serves
nothing, is stalled (:class:`Progress`)."""


class Progress:
    """When an engine's server last answered a request (its ``served`` count moved): a loop whose
    ticker is late tells a stalled engine from a saturated one by it.

    A loop handed ``time.sleep(0.05)`` with 100 requests ready runs them all before its timers: its
    ticker is ~5 s late, yet it answers 20 a second. That is a blocked loop, shown by its lag and the
    watchdog's ``loop blocked 50 ms in time.sleep``, not a dead engine to restart ("stalled · press 4",
    its figures read as the last before it "went down", while it served on). A loop held in one call,
    or a process that sends nothing, answers nothing: that is stalled.
    """

    __slots__ = ("at", "served")

    def __init__(self, now: float) -> None:
        self.served = -1
        self.at = now  # monotonic seconds

    def see(self, served: int, now: float) -> None:
        if served != self.served:
            self.served, self.at = served, now

    def stalled(self, overdue_ns: int, now: float, stall_s: float = STALL_S) -> bool:
        """Its loop's ticker is ``stall_s`` late and it has answered nothing for as long."""
        return overdue_ns > stall_s * 1e9 and now - self.at > stall_s


@dataclass
class ProcessInfo:
    """One OS process as seen from outside (psutil), sampled a few times a second."""

    pid: int
    cpus: tuple[int, ...] = ()
    cpu_percent: float | None = None  # of one core, over the last sample interval
    rss_mb: float | None = None
    wait_percent: float | None = None  # its threads' wait, runnable, for a CPU: % of one core, same interval

    def as_dict(self) -> dict[str, Any]:
        return {"pid": self.pid, "cpus": list(self.cpus), "cpu_percent": self.cpu_percent, "rss_mb": self.rss_mb}


@dataclass
class EngineStatus:
    """What one engine's panel says about the process behind it."""

    name: str
    state: State = "starting"
    detail: str = ""  # why it is not live: "killed by SIGKILL", "no answer for 3.1 s", "loop held 2.4 s"
    process: ProcessInfo | None = None
    cpu_share: float = 1.0  # cores its process can count on
    placement: str = ""  # the same in words: "1 core (cpu 1)", "⅓ of cpu 1"
    port: int | None = None
    shared_gil: bool = False  # in-process mode: every engine in one process
    server: ServerSnapshot | None = None  # the server's own counts, latest (None: none yet, or a replay)


@dataclass
class SourceStatus:
    """Every engine's status, and the source's own kind."""

    kind: Literal["processes", "in-process", "replay"]
    engines: dict[str, EngineStatus] = field(default_factory=dict)
    restarting: bool = False
    load: ProcessInfo | None = None
    load_state: State = "live"  # the load process's, as an engine's (``exited`` after a kill -9)
    load_detail: str = ""

    @property
    def down(self) -> dict[str, str]:
        """Every process not live (exited or stalled), the load generator's as ``load``: name -> why
        ("killed by SIGKILL", "no answer for 3.1 s"; its state where no detail was given)."""
        out = {n: e.detail or e.state for n, e in self.engines.items() if e.state in ("exited", "stalled")}
        if self.load_state in ("exited", "stalled"):
            out["load"] = self.load_detail or self.load_state
        return out


class RunBroken(Exception):
    """A process of the run died while it was measured (``kill -9``, a crash); the message is one line."""


def what_died(status: SourceStatus) -> str:
    """The processes of a run that have exited, in words (empty: none)."""
    gone = [f"the {name} engine's process {e.detail}" for name, e in status.engines.items() if e.state == "exited"]
    if status.load_state == "exited":
        gone.append(f"the load generator's process {status.load_detail}")
    return "; ".join(gone)


class EventSource(ABC):
    """Where a consumer gets batches from, and where it sends its commands."""

    errors: deque[str]

    @abstractmethod
    def drain(self) -> Batch:
        """Everything recorded since the last drain (``batch.info`` set when status changed)."""

    @abstractmethod
    def apply(self, **changes: Any) -> None:
        """Change knobs while running (clients, pool, io_ms, cpu_ms, rate, ...)."""

    @abstractmethod
    def set_scenario(self, name: str, **overrides: Any) -> None:
        """Restart the engines and the load on another scenario (and bring back any that died)."""

    def set_zoom(self, ns_per_col: int) -> None:
        """The picture's column width: digests computed elsewhere start afresh at it (default: none)."""
        return None

    def resumed(self) -> None:
        """The consumer was suspended (ctrl+z) and listens again: the silence until now was its own,
        not the engines' (default: nothing to forget)."""
        return None

    def set_engines(self, names: list[str] | tuple[str, ...]) -> None:
        """Run these engines instead (a swap from the command palette); a source that cannot says so."""
        raise EngineError("this source runs a fixed set of engines (a recording, or --in-process)")

    @abstractmethod
    def close(self) -> None:
        """Stop everything and release every thread, socket, port and process."""

    @abstractmethod
    def status(self) -> SourceStatus:
        """Each engine's process and state, now."""

    @property
    def finished(self) -> bool:
        """A recording that has played to its end; a live source never finishes."""
        return False
