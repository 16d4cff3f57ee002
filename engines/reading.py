"""The ``reading`` phase of one connection (split from :mod:`~syncviz.engines.http`).

:class:`ReadingTracker` is the bookkeeping of a request whose bytes started arriving but are not
all in: its provisional id, the ``READING`` and ``HANDED_OVER`` records and the ``reading``
counter (see :data:`~syncviz.engines.events.HANDED_OVER`).
"""

from __future__ import annotations

from collections.abc import Callable

from .counts import ServerCounts
from .events import HANDED_OVER, Phase, now_ns
from .request import Request

EmitAt = Callable[[int, int, int, int], None]  # (t_ns, rid, lane, phase)


class ReadingTracker:
    """One connection's ``reading`` phase: a request whose bytes started arriving, not all in.

    :meth:`begin` gives it a provisional id, records ``READING`` from its first bytes and
    counts it in ``reading``; :meth:`assign` (once requests complete) hands it over to the
    load generator's id when it carries one (``HANDED_OVER``, then ``READING`` under that id
    from the same instant) or keeps the provisional id for an outside client; :meth:`fail`
    ends it ``FAILED`` (an error answer, a timeout, the client gone). A request that arrives
    whole in one read never comes here: it costs nothing but :meth:`assign`'s id.
    """

    __slots__ = ("_counts", "_emit_at", "_known", "_new_id", "cid", "lane", "t_first")

    def __init__(self, new_id: Callable[[], int], emit_at: EmitAt, counts: ServerCounts) -> None:
        self._new_id = new_id
        self._emit_at = emit_at
        self._counts = counts
        self.cid = 0  # the provisional id of the request being read (0: none)
        self._known = False  # cid is the request's own X-Req-Id, not a provisional one
        self.lane = -1
        self.t_first = 0

    @property
    def reading(self) -> bool:
        return self.cid != 0

    def begin(self, t_first: int, lane: int, known_id: int | None = None) -> None:
        """A request is incomplete after a read. ``known_id``: its ``X-Req-Id`` if that header has
        arrived (a slow client of the load generator): the row takes it at once instead of at the end."""
        if self.cid:
            if known_id is not None and self.cid != known_id and not self._known:
                self._emit_at(now_ns(), self.cid, HANDED_OVER, Phase.READING)
                self.cid, self._known = known_id, True
                self._emit_at(self.t_first, known_id, self.lane, Phase.READING)
            return
        self._known = known_id is not None
        self.cid = known_id if known_id is not None else self._new_id()
        self.t_first, self.lane = t_first, lane
        self._emit_at(t_first, self.cid, lane, Phase.READING)
        self._counts.add(reading=1)

    def assign(self, reqs: list[Request], t: int) -> None:
        """Give each completed request its id (``req.rid``); the first ends the reading, if any."""
        if not self.cid:  # the commonest: nothing was being read, each request came whole
            for req in reqs:
                rid = req.req_id
                if rid is None:
                    req.rid = self._new_id()
                else:
                    req.rid = rid
                    if req.sent_ns and req.sent_ns <= t:  # the load generator's: queued since it was sent
                        self._emit_at(req.sent_ns, rid, -1, Phase.QUEUED)
            return
        for req in reqs:  # the load generator's requests: queued since the client sent them
            if req.sent_ns and req.req_id is not None and req.sent_ns <= t:
                self._emit_at(req.sent_ns, req.req_id, -1, Phase.QUEUED)
        start = 0
        if self.cid:
            req, cid = reqs[0], self.cid
            self.cid = 0
            self._counts.add(reading=-1)
            if req.req_id is None:
                req.rid = cid  # an outside client keeps its provisional id
            elif req.req_id == cid:
                req.rid = cid  # identified while it was still arriving
            else:
                req.rid = req.req_id
                self._emit_at(t, cid, HANDED_OVER, Phase.READING)
                self._emit_at(self.t_first, req.rid, self.lane, Phase.READING)
            start = 1
        for req in reqs[start:] if start else reqs:
            req.rid = req.req_id if req.req_id is not None else self._new_id()

    def fail(self, t: int, timeout: bool = False) -> None:
        """The request is refused, timed out or dropped: counted failed (``FAILED`` if it was being read)."""
        if self.cid:
            self._emit_at(t, self.cid, self.lane, Phase.FAILED)
            self.cid = 0
            self._counts.add(reading=-1, failed=1, timeouts=int(timeout))
        else:
            self._counts.add(failed=1, timeouts=int(timeout))

    def close(self, t: int) -> None:
        """The connection ended: a request still being read is dropped (an idle one is not a failure)."""
        if self.cid:
            self.fail(t)
