"""One engine's picture as the app draws it, kept by :class:`~syncviz.engines.stats.EngineStats`.

:class:`Picture` is the picture's layers at one zoom, merged from the digests' records: how long
each lane was held per column, the waiting per column, and what is held, queued and ready now.
:class:`RequestTrack` is one request's transitions, for the rows and the detail panel (the
requests the digests pass on for rows).
"""

from __future__ import annotations

import itertools
from array import array
from dataclasses import dataclass, field
from typing import Any

from .digest_record import KEEP_COLS
from .events import Phase


class RequestTrack:
    """One request's transitions so far: ``steps`` is a list of (t_ns, phase, lane).

    A finished track is sealed (:meth:`seal`): its steps move into one flat ``array('q')``. The
    app keeps thousands of finished tracks (``keep`` per engine, for rows and the detail panel);
    as a list of tuples of int objects each took ~1 KB of small objects living for seconds
    (measured at 1,000 clients: 18,000 tracks, ~15 MB), as an array ~0.3 KB.
    """

    __slots__ = ("_flat", "_steps", "phase", "rid", "since")

    def __init__(self, rid: int, t_ns: int, phase: int, lane: int) -> None:
        self.rid = rid
        self._steps: list[tuple[int, int, int]] | None = [(t_ns, phase, lane)]
        self._flat: array[int] | None = None
        self.phase = phase
        self.since = t_ns

    @property
    def steps(self) -> list[tuple[int, int, int]]:
        """The transitions, oldest first (a fresh list once sealed)."""
        if self._steps is not None:
            return self._steps
        flat = self._flat
        assert flat is not None
        return list(zip(flat[0::3], flat[1::3], flat[2::3], strict=True))

    def step(self, t_ns: int, phase: int, lane: int) -> None:
        """One more transition (not after :meth:`seal`)."""
        assert self._steps is not None, "a sealed track takes no steps"
        self._steps.append((t_ns, phase, lane))
        self.phase = phase
        self.since = t_ns

    def seal(self) -> None:
        """Keep the steps as one flat array from now on (the track has finished)."""
        if self._steps is not None:
            self._flat = array("q", itertools.chain.from_iterable(self._steps))
            self._steps = None

    @property
    def start_ns(self) -> int:
        """The time of the first transition."""
        return self._steps[0][0] if self._steps is not None else self._flat[0]  # type: ignore[index]

    @property
    def end_ns(self) -> int:
        """The time of the last transition."""
        return self._steps[-1][0] if self._steps is not None else self._flat[-3]  # type: ignore[index]

    @property
    def lane(self) -> int:
        return self._steps[-1][2] if self._steps is not None else self._flat[-1]  # type: ignore[index]

    def phase_totals(self) -> list[int]:
        """Nanoseconds spent in each phase (indexed by Phase value), terminal phases zero."""
        totals = [0] * len(Phase)
        steps = self.steps
        for (t0, ph, _), (t1, _, _) in itertools.pairwise(steps):
            if t1 > t0:
                totals[ph] += t1 - t0
        return totals


@dataclass
class Picture:
    """One engine's picture at one zoom, merged from its digests' records.

    ``hold``: lane -> col -> ns held [running, blocked, ready, reading]; ``wait``: col -> request-ns
    [queued, ready]; ``held``: lanes held now (lane, slot, since); ``open_q`` / ``open_r``: requests
    queued / ready now, by the column they started in (those the server has not read yet included).
    """

    ns: int
    hold: dict[int, dict[int, list[int]]] = field(default_factory=dict)
    wait: dict[int, list[int]] = field(default_factory=dict)
    held: list[tuple[int, int, int]] = field(default_factory=list)
    open_q: dict[int, int] = field(default_factory=dict)
    open_r: dict[int, int] = field(default_factory=dict)
    now: int = 0
    lanes_seen: set[int] = field(default_factory=set)
    _sent: dict[int, int] = field(default_factory=dict)  # server: requests it has read, by send column
    _out: dict[int, int] = field(default_factory=dict)  # clients: requests sent, not answered, by send column
    _trimmed: int = 0
    _server_q: dict[int, int] = field(default_factory=dict)  # what the server holds queued now, by column

    def take_server(self, rec: dict[str, Any]) -> None:
        for lane, c, *slots in rec["hold"]:
            self.hold.setdefault(lane, {})[c] = slots
            self.lanes_seen.add(lane)
        for c, q, r in rec["wait"]:
            self.wait[c] = [q, r]
        self.held = [tuple(x) for x in rec["held"]]  # type: ignore[misc]
        self.open_r = dict(rec["open_r"])
        self._server_q = dict(rec["open_q"])
        self._sent = dict(rec["sent"])
        self.now = max(self.now, rec["now"])
        self._merge_open_q()
        if self.now - self._trimmed >= 1_000_000_000:  # forget what fell off the left edge, once a second
            self._trimmed = self.now
            floor = self.now // self.ns - KEEP_COLS
            for c in [c for c in self.wait if c < floor]:
                del self.wait[c]
            for cols in self.hold.values():
                for c in [c for c in cols if c < floor]:
                    del cols[c]

    def take_client(self, rec: dict[str, Any]) -> None:
        self._out = dict(rec["out"])
        self._merge_open_q()

    def server_gone(self) -> None:
        """The engine's process died: it holds no lane and no request waits in it any more."""
        self.held, self.open_r, self._server_q = [], {}, {}
        self._merge_open_q()

    def clients_gone(self) -> None:
        """The load process died: no request of its clients waits unread any more."""
        self._out = {}
        self._merge_open_q()

    def _merge_open_q(self) -> None:
        """Queued now: what the server holds queued, plus what clients sent that it has not read yet."""
        q = dict(self._server_q)
        sent = self._sent
        known = self.now // self.ns  # the server's last report: what was sent after it may be read already
        for c, n in self._out.items():
            if c >= known:
                continue
            unread = n - sent.get(c, 0)
            if unread > 0:
                q[c] = q.get(c, 0) + unread
        self.open_q = q
