"""Turn the event stream into per-engine counters, the picture's layers and request histories.

This is the one place that interprets the stream: ``syncviz bench``, ``serve``, the claims
and the app feed :class:`StreamStats` with :class:`~syncviz.engines.events.Batch` es and
read :class:`Counters` back. The counting itself is done by the digests of
:mod:`syncviz.engines.digest`, O(1) per event: in the engine and load processes when they
send digests (``batch.digests``), or here, on raw records (in-process mode, recordings,
hand-made batches), through the very same classes. Either way this module merges what the
servers saw with what the clients saw, keeps the picture's accumulators at the current zoom
(:class:`~syncviz.engines.picture.Picture`), and keeps the transitions of the requests passed on
for rows (:class:`~syncviz.engines.picture.RequestTrack`), and their bytes in and out
(:attr:`EngineStats.sizes`, from the servers' size records).
"""

from __future__ import annotations

import math
from collections import deque
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from .blocked import BlockedCall, BlockedCalls
from .digest import ServerDigest
from .digest_client import ClientDigest
from .events import ENGINES, HANDED_OVER, TERMINAL, WAITING_PHASES, Batch, Phase, Transition
from .picture import Picture, RequestTrack
from .registry import engine_spec
from .request import EXTERNAL_IDS_START

RUNNING, BLOCKED, READY, QUEUED, FAILED = Phase.RUNNING, Phase.BLOCKED, Phase.READY, Phase.QUEUED, Phase.FAILED
_HOLDING = (RUNNING, BLOCKED, Phase.READING)  # READING holds a worker only on a lane (a pool thread in recv)
DEFAULT_NS_PER_COL = 10_000_000
COUNTERS_EVERY_NS = 200_000_000  # digests send their counters this often (the picture every batch)
TICKS_KEPT = 4  # each side's counters kept by tick, to pair a server's with its clients' of one moment
SIZES_KEPT = 4096  # row requests' bytes in and out kept per engine (the newest; the rows keep 400)


@dataclass
class Counters:
    """What one engine is doing, over the last ``window_s`` seconds (rates) or now (gauges)."""

    engine: str
    completed: int = 0  # since start (ok responses the load generator received)
    failed: int = 0  # since start (errors, 5xx, dropped connections)
    rps: float = 0.0  # ok responses per second over the rate window
    sent_rps: float = 0.0  # requests the load generator's clients sent per second, same window (0: not known)
    in_flight: int = 0  # requests sent and not finished (load generator's and outside clients')
    queued: int = 0
    reading: int = 0  # connections whose request has not fully arrived (slow, stalled or outside clients)
    outside: int = 0  # in flight from outside clients (curl, wrk, a browser: no load generator id)
    connecting: int = 0  # the load generator's clients whose connection is not open yet (not accepted)
    busy: int = 0  # workers held by a request (pool threads; the loop or hub thread; offload threads)
    by_phase: dict[str, int] = field(default_factory=dict)  # in-flight count per current phase
    p50_ms: float | None = None
    p95_ms: float | None = None
    p99_ms: float | None = None
    max_ms: float | None = None
    lag_p50_ms: float | None = None
    lag_p99_ms: float | None = None
    lag_max_ms: float | None = None
    phase_ms: dict[str, float] = field(default_factory=dict)  # mean per finished request, window
    samples: int = 0  # latency samples in the window
    blocked: BlockedCall | None = None  # what held the loop (a call, or its own work) or a worker lately (shown_block)

    @property
    def has_loop(self) -> bool:
        """Whether the engine runs on one loop or hub (its loop-lag figures mean something)."""
        return engine_spec(self.engine).has_loop


def counters_tick(now_ns: int) -> int:
    """The moment counters are taken at: every process takes them on the same boundaries of the
    shared monotonic clock (each :data:`COUNTERS_EVERY_NS`), so a server's figures and its clients'
    are of one moment (within a batch), not up to 200 ms apart: ``queued`` is the clients'
    outstanding requests less those the server has, and asyncio's streaming clients, answered 10 at a
    time, read ``queued 10`` beside an idle loop when the two were taken on either side of a burst."""
    return now_ns // COUNTERS_EVERY_NS


def percentile(sorted_values: list[int] | list[float], q: float) -> float:
    """Nearest-rank percentile of an already sorted, non-empty list (``q`` in 0..100)."""
    if not sorted_values:
        raise ValueError("percentile of an empty list")
    rank = max(0, min(len(sorted_values) - 1, math.ceil(q / 100.0 * len(sorted_values)) - 1))
    return float(sorted_values[rank])


def fill_latency(c: Counters, latencies_ns: list[int]) -> None:
    """Exact percentiles from every raw sample (``bench`` over its measured window)."""
    c.samples = len(latencies_ns)
    if latencies_ns:
        lat = sorted(latencies_ns)
        c.p50_ms, c.p95_ms, c.p99_ms = (percentile(lat, q) / 1e6 for q in (50, 95, 99))
        c.max_ms = lat[-1] / 1e6


class EngineStats(BlockedCalls):
    """One engine: its digests (local or remote), merged counters, picture and request tracks, and
    what held its loop or workers (:class:`~syncviz.engines.blocked.BlockedCalls`: ``take_block``, ``shown_block``)."""

    def __init__(self, engine: str, window_s: float = 5.0, rate_window_s: float = 2.0, keep: int = 400):
        super().__init__(engine_spec(engine).has_loop)  # self.has_loop, and the blocked calls kept (BlockedCalls)
        self.engine = engine
        self.window_s, self.rate_window_s = window_s, rate_window_s
        self.inflight: dict[int, RequestTrack] = {}
        self.recent: deque[RequestTrack] = deque(maxlen=keep)  # finished, newest last
        self.picture = Picture(DEFAULT_NS_PER_COL)
        self.server: dict[str, Any] = {}  # the latest counters from the servers' side
        self.client: dict[str, Any] = {}  # the latest counters from the clients' side
        self._ticked: tuple[dict[int, dict[str, Any]], dict[int, dict[str, Any]]] = ({}, {})  # server's, clients'
        self._local_server: ServerDigest | None = None
        self._local_client: ClientDigest | None = None
        self.server_remote = False  # the engine's process digests its own events: its raw records are not ours
        self._last_t = 0
        self._counters_tick = -1
        self.sizes: dict[int, tuple[int, int]] = {}  # rid -> (bytes_in, bytes_out), -1 unknown; oldest first

    @property
    def completed(self) -> int:
        return int(self.client.get("completed", 0))

    @property
    def failed(self) -> int:
        return int(self.client.get("failed", 0))

    # -- feeding: local digests on raw records -------------------------------------------
    def local_server(self) -> ServerDigest:
        """The digest of this engine's raw server records, made on the first one."""
        if self._local_server is None:
            self._local_server = ServerDigest(self.has_loop, self.picture.ns, self.window_s)
        return self._local_server

    def local_client(self) -> ClientDigest:
        """The digest of this engine's raw client records, made on the first one."""
        if self._local_client is None:
            self._local_client = ClientDigest(self.picture.ns, self.window_s, self.rate_window_s)
        return self._local_client

    def flush_local(self, now: int, force_counters: bool = False) -> None:
        """Take the local digests' records as if they had come from the engine's processes.

        Only the sides that had raw records: where the engine process digests its own events and
        the load process sends raw ones (``bench``), the server's side comes from its digest."""
        server, client = self._local_server, self._local_client
        if self.server_remote:
            server = None
        if server is None and client is None:
            return
        counters = force_counters or counters_tick(now) != self._counters_tick
        if counters:
            self._counters_tick = counters_tick(now)
        if server is not None:
            self.take_record({"server": server.take(now, counters)})
        if client is not None:
            self.take_record({"client": client.take(now, counters)})

    # -- feeding: digest records ---------------------------------------------------------
    def take_record(self, rec: dict[str, Any]) -> None:
        server, client = rec.get("server"), rec.get("client")
        pic = self.picture
        if server is not None:
            if server["ns"] == pic.ns:
                pic.take_server(server)
            rows = server["rows"]
            for i in range(0, len(rows), 4):
                self.transition(rows[i], rows[i + 1], rows[i + 2], rows[i + 3])
            sizes = server.get("sizes", ())  # absent in records made before them
            for i in range(0, len(sizes), 3):
                self.take_size(sizes[i], sizes[i + 1], sizes[i + 2])
            if "counters" in server:
                self.server = server["counters"]
                self._keep_tick(0, server["now"], self.server)
            self._last_t = max(self._last_t, server["now"])
        if client is not None:
            if client["ns"] == pic.ns:
                pic.take_client(client)
            if "counters" in client:
                self.client = client["counters"]
                self._keep_tick(1, client["now"], self.client)
            self._last_t = max(self._last_t, client["now"])

    def _keep_tick(self, side: int, now: int, counters: dict[str, Any]) -> None:
        kept = self._ticked[side]
        kept[counters_tick(now)] = counters
        while len(kept) > TICKS_KEPT:
            del kept[min(kept)]

    def _same_moment(self) -> tuple[dict[str, Any], dict[str, Any]]:
        """The servers' and the clients' counters of the newest moment both sides reported
        (:func:`counters_tick`), or each side's latest when they share none."""
        server, client = self._ticked
        both = server.keys() & client.keys()
        if not both:
            return self.server, self.client
        tick = max(both)
        return server[tick], client[tick]

    def transition(self, t: int, rid: int, lane: int, phase: int) -> None:
        """A transition of a request passed on for rows."""
        if lane == HANDED_OVER:  # a reading row that turned into a request with its own id
            self.inflight.pop(rid, None)
            return
        track = self.inflight.get(rid)
        if track is None:
            if phase in TERMINAL:
                return  # its start was before we began listening
            self.inflight[rid] = RequestTrack(rid, t, phase, lane)
        else:
            track.step(t, phase, lane)
            if phase in TERMINAL:
                del self.inflight[rid]
                track.seal()
                self.recent.append(track)

    def take_size(self, rid: int, bytes_in: int, bytes_out: int) -> None:
        """A row request's bytes in and out (-1: not known), kept for the detail panel."""
        sizes = self.sizes
        sizes[rid] = (bytes_in, bytes_out)
        if len(sizes) > SIZES_KEPT:
            del sizes[next(iter(sizes))]

    def server_gone(self) -> None:
        """The engine's process died: it holds no worker and no request waits in it, so the picture
        draws none from now (its counters stay its last, which its panel says they are); the rows'
        requests it held end FAILED at the last moment it reported (they died with it)."""
        self._local_server = None  # a raw stream's digest (bench, in-process) would draw its last again
        self._ticked[0].clear()  # its last counters are paired with the clients' latest, who go on
        for rid, track in list(self.inflight.items()):
            self.transition(max(self._last_t, track.end_ns), rid, -1, FAILED)
        self.picture.server_gone()

    def client_gone(self) -> None:
        """The load process died: nothing its clients sent waits any more (the servers saw their
        connections close), and they complete nothing; what they measured before stays."""
        if self.client.get("outstanding") or self.client.get("rps") or self.client.get("connecting"):
            self.client = self.client | {"outstanding": 0, "rps": 0.0, "sent_rps": 0.0, "connecting": 0}
        self._ticked[1].clear()
        if self._local_client is not None:
            self._local_client.gone()
        self.picture.clients_gone()

    def set_zoom(self, ns_per_col: int) -> None:
        """The picture afresh at another zoom; local digests follow, remote ones are told by the source."""
        self.picture = Picture(max(1, ns_per_col))
        if self._local_server is not None:
            self._local_server.set_zoom(self.picture.ns)
        if self._local_client is not None:
            self._local_client.set_zoom(self.picture.ns)

    def forget_inflight(self) -> None:
        """Drop tracks of requests that will never finish (the engine was restarted)."""
        self.inflight.clear()

    # -- reading -------------------------------------------------------------------------
    def holds_worker(self, phase: int, lane: int) -> bool:
        """Whether a request in ``phase`` on ``lane`` keeps that worker from anyone else.

        A pool or offload thread stays its request's while it waits for the GIL (READY); the
        loop or hub (lane 0 of asyncio and gevent) is free for others while a request is READY.
        The digests apply the same rule (:meth:`ServerDigest.holds`).
        """
        if lane < 0:
            return False
        return phase in _HOLDING or (phase == READY and (not self.has_loop or lane > 0))

    def counters(self, now_ns: int | None = None) -> Counters:
        s, cl = self._same_moment()
        c = Counters(self.engine, completed=self.completed, failed=self.failed, rps=float(cl.get("rps", 0.0)))
        by_phase = dict.fromkeys((p.name.lower() for p in WAITING_PHASES), 0)
        by_phase.update(s.get("by_phase", {}))
        unread = max(0, int(cl.get("outstanding", 0)) - int(s.get("sent", 0)))
        by_phase["queued"] += unread  # sent by the clients, not yet read by the server
        c.by_phase = by_phase
        c.in_flight = int(s.get("in_flight", 0)) + unread
        c.queued = by_phase["queued"]
        c.reading = by_phase["reading"]
        c.outside = int(s.get("outside", 0))
        c.connecting = int(cl.get("connecting", 0))
        c.sent_rps = float(cl.get("sent_rps", 0.0))  # absent in recordings made before it
        c.busy = int(s.get("busy", 0))
        c.p50_ms, c.p95_ms, c.p99_ms, c.max_ms = cl.get("latency_ms") or (None, None, None, None)
        c.samples = int(cl.get("samples", 0))
        c.lag_p50_ms, c.lag_p99_ms, c.lag_max_ms = s.get("lag_ms") or (None, None, None)
        c.phase_ms = {p.name.lower(): 0.0 for p in WAITING_PHASES} | dict(s.get("phase_ms", {}))
        c.blocked = self.shown_block(self._last_t if now_ns is None else now_ns)
        return c


def stream_items(batch: Batch) -> int:
    """How many records a batch carried: raw ones, and a digest's columns and row transitions."""
    n = len(batch)
    for _e, rec in getattr(batch, "digests", ()):
        for part in rec.values():
            n += len(part.get("hold", ())) + len(part.get("wait", ())) + len(part.get("rows", ())) // 4 + 1
    return n


class StreamStats:
    """Feeds batches to one :class:`EngineStats` per engine; ``counters`` answers for ``names``
    (the engines the stream runs; all of them when not said)."""

    def __init__(
        self, window_s: float = 5.0, rate_window_s: float = 2.0, keep: int = 400, names: Iterable[str] | None = None
    ) -> None:
        self.engines = [EngineStats(name, window_s, rate_window_s, keep) for name in ENGINES]  # indexed by id
        self.names = tuple(ENGINES if names is None else (n for n in ENGINES if n in set(names)))
        self.last_t_ns = 0

    def feed(self, batch: Batch) -> None:
        engines = self.engines
        local: set[int] = set()
        digests = getattr(batch, "digests", ())  # recordings made before digests have none
        for e, rec in digests:
            if "server" in rec:
                engines[e].server_remote = True
        raw: dict[int, list[Transition]] = {}  # each engine's, digested in one call (a call each: ~4x the CPU)
        for tr in batch.transitions:
            t, e, rid, _lane, phase = tr
            eng = engines[e]
            if not eng.server_remote:  # else a load process's raw ``queued`` (bench): the client's side only
                mine = raw.get(e)
                if mine is None:
                    mine = raw[e] = []
                mine.append(tr)
            if phase == QUEUED and rid < EXTERNAL_IDS_START:
                eng.local_client().sent(t, rid)
            local.add(e)
        for e, mine in raw.items():
            engines[e].local_server().feed(mine)
        for t, e, rid, lat, ok in batch.latencies:
            engines[e].local_client().answered(t, rid, lat, ok)
            local.add(e)
        for t, e, lag in batch.lags:
            engines[e].local_server().lag_sample(t, lag)
            local.add(e)
        for _t, e, rid, bytes_in, bytes_out in getattr(batch, "sizes", ()):  # after the transitions; none before them
            engines[e].local_server().size(rid, bytes_in, bytes_out)
            local.add(e)
        for e, rec in digests:
            engines[e].take_record(rec)
        for t, d, e, lane, ongoing, where in getattr(batch, "blocks", ()):  # nor before the watchdogs
            engines[e].take_block(t, d, lane, ongoing, where)
        if batch.t_ns > self.last_t_ns:
            self.last_t_ns = batch.t_ns
        for e in local:
            engines[e].flush_local(self.last_t_ns)

    def flush(self, now_ns: int | None = None) -> None:
        """Bring every local digest's counters up to ``now_ns`` (before reading them at once)."""
        now = self.last_t_ns if now_ns is None else now_ns
        for e in self.engines:
            e.flush_local(now, force_counters=True)

    def set_zoom(self, ns_per_col: int) -> None:
        for e in self.engines:
            e.set_zoom(ns_per_col)

    def client_gone(self) -> None:
        """:meth:`EngineStats.client_gone` for every engine."""
        for e in self.engines:
            e.client_gone()

    def __getitem__(self, name: str) -> EngineStats:
        return self.engines[ENGINES.index(name)]

    def counters(self, now_ns: int | None = None) -> dict[str, Counters]:
        self.flush(now_ns)
        return {e.engine: e.counters(now_ns) for e in self.engines if e.engine in self.names}
