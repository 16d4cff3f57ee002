"""The event model shared by every engine, the load generator and every consumer.

A request's life is a sequence of *transitions*, each a small tuple::

    (t_ns, engine, request_id, lane, phase)

``t_ns`` is ``time.monotonic_ns()`` (CLOCK_MONOTONIC, comparable across processes on
one machine), ``engine`` and ``phase`` are small ints (see :data:`ENGINES` and
:class:`Phase`), ``lane`` is the worker that holds the request at that moment (a pool
thread's index, ``0`` for an event loop or hub, ``-1`` for none).

Two more record kinds travel beside transitions:

* latency samples ``(t_done_ns, engine, request_id, latency_ns, ok)`` measured by the
  load generator from the *intended* send time to the last response byte;
* loop-lag samples ``(t_ns, engine, lag_ns)`` from a ticker living on the loop or hub
  (how late its 10 ms sleep woke up); while the ticker is stalled more than 50 ms the host
  adds, at each drain, how late it is so far, so a blocked loop shows before it unblocks.

* size records ``(t_ns, engine, request_id, bytes_in, bytes_out)``, one per request the
  server finished: the bytes it arrived in and the bytes of its response (-1: not known).

Producers append to bounded deques (``deque.append`` is atomic and ~0.2 us); consumers
:meth:`Recorder.drain` them on a timer into a :class:`Batch`. An engine process whose digest
runs in a process of its own records transitions and sizes packed instead (``Recorder(packed=True)``:
each :data:`RECORD`, five native int64s, added to a ``bytearray`` by one C call, as atomic as
``deque.append``): its batches then cross the pipe as those bytes, never unpacked in the engine.
"""

from __future__ import annotations

import struct
import time
from collections import deque
from dataclasses import dataclass, field
from enum import IntEnum
from itertools import repeat, starmap

ENGINES: tuple[str, ...] = ("threaded", "asyncio", "gevent", "uvloop", "trio", "prefork")
"""Engine names, indexed by the ``engine`` field of every record (every model syncviz knows)."""

DEFAULT_ENGINES: tuple[str, ...] = ENGINES[:3]
"""The engines shown and measured when none are named (``--engines``): threaded, asyncio, gevent."""

ENGINE_IDS: dict[str, int] = {name: i for i, name in enumerate(ENGINES)}


class Phase(IntEnum):
    """Where a request is. ``DONE`` and ``FAILED`` are terminal."""

    QUEUED = 0  # sent by the client, no worker has taken it yet
    RUNNING = 1  # a worker (thread, loop, hub) executes its code
    BLOCKED = 2  # its thread is parked in a blocking call (holding a pool thread, or the whole loop)
    AWAITING = 3  # coroutine suspended on an await; the loop is free for others
    YIELDED = 4  # greenlet switched to the hub; the hub is free for others
    READY = 5  # runnable again but waiting for its loop, hub or the GIL
    DONE = 6
    FAILED = 7
    READING = 8  # accepted, but the client has not finished sending the request (bytes still to come)


PHASE_NAMES: tuple[str, ...] = tuple(p.name.lower() for p in Phase)
TERMINAL = frozenset({Phase.DONE, Phase.FAILED})
WAITING_PHASES = (Phase.READING, Phase.QUEUED, Phase.RUNNING, Phase.BLOCKED, Phase.AWAITING, Phase.YIELDED, Phase.READY)
"""The non-terminal phases, in display order."""

# Transitions a well-formed request may take (checked by the tests, shown by the UI).
ALLOWED_NEXT: dict[Phase, frozenset[Phase]] = {
    Phase.READING: frozenset({Phase.QUEUED, Phase.RUNNING, Phase.READY, Phase.FAILED}),
    # QUEUED twice: the client records it when it sends, the server again when it reads the
    # request's X-Sent-Ns (the same instant): in one stream (in-process, bench) both arrive.
    Phase.QUEUED: frozenset({Phase.QUEUED, Phase.READING, Phase.RUNNING, Phase.READY, Phase.FAILED}),
    Phase.RUNNING: frozenset(
        {Phase.BLOCKED, Phase.AWAITING, Phase.YIELDED, Phase.QUEUED, Phase.READY, Phase.DONE, Phase.FAILED}
    ),
    Phase.BLOCKED: frozenset({Phase.READY, Phase.RUNNING, Phase.FAILED}),
    Phase.AWAITING: frozenset({Phase.READY, Phase.RUNNING, Phase.FAILED}),
    Phase.YIELDED: frozenset({Phase.READY, Phase.RUNNING, Phase.FAILED}),
    Phase.READY: frozenset({Phase.RUNNING, Phase.FAILED}),
    Phase.DONE: frozenset(),
    Phase.FAILED: frozenset(),
}

HANDED_OVER = -2
"""The lane of a transition that ends a ``reading`` row without a verdict.

A server gives a connection's bytes a provisional id (from :data:`~syncviz.engines.request.EXTERNAL_IDS_START`)
the moment a request starts arriving incomplete, and records ``READING`` under it (so a stalled
client is on the picture while it stalls). When the request turns out to carry the load
generator's own id (``X-Req-Id``), the server records ``(t, engine, provisional, HANDED_OVER,
READING)``, then ``READING`` under the real id at the time the bytes started: consumers drop the
provisional row, which is neither done nor failed. Outside clients keep the provisional id.
"""

Transition = tuple[int, int, int, int, int]
Latency = tuple[int, int, int, int, bool]
Lag = tuple[int, int, int]
Block = tuple[int, int, int, int, bool, str]
"""A call that held a loop, hub or worker past the watchdog's threshold (:mod:`~syncviz.engines.watchdog`):
``(t_start_ns, duration_ns, engine, lane, ongoing, where)``; an ongoing one's duration is so far."""

Size = tuple[int, int, int, int, int]
"""A finished request's bytes: ``(t_ns, engine, rid, bytes_in, bytes_out)``, -1 where not known."""

now_ns = time.monotonic_ns

# Bounds: at 3 engines x 4k req/s x ~6 transitions a drain every 33 ms holds ~2.4k events.
# 200k leaves two orders of magnitude of slack before the oldest records are dropped.
MAX_TRANSITIONS = 200_000
MAX_SAMPLES = 100_000
MAX_PACKED = 50_000
"""Packed transitions, and packed sizes, an engine process keeps between two drains (2 MB each): ~20x a
drain's at ~25k req/s. Only a digest process that is behind reaches it (the oldest are dropped, and
said); with the deques' bounds the threaded engine's process, its digest process behind at zero
latency in the app, grew to ~150 MB (12 MB buffers and frames, reallocated) against ~50 MB before."""
RECORD = struct.Struct("=5q")
"""A packed transition or size record: five native int64s (``Recorder(packed=True)``). Packing it
as it is recorded costs ~0.07 us more than a tuple appended to a deque; packing a batch of tuples
cost ~1.2 us a request of three transitions and a size (asyncio at zero latency)."""
RECORDS_2 = struct.Struct("=10q")  # two of them packed by one call (a request's RUNNING and DONE)


@dataclass
class Batch:
    """Everything recorded between two drains. Picklable: it is what crosses the pipe."""

    transitions: list[Transition] = field(default_factory=list)
    latencies: list[Latency] = field(default_factory=list)
    lags: list[Lag] = field(default_factory=list)
    t_ns: int = 0
    dropped: int = 0
    info: dict | None = None  # host status (ports, settings, scenario, errors) when it changed
    digests: list[tuple[int, dict]] = field(default_factory=list)  # (engine id, {"server"|"client": record}), in order
    blocks: list[Block] = field(default_factory=list)  # what held a loop or worker (the watchdogs'), in order
    sizes: list[Size] = field(default_factory=list)  # finished requests' bytes in and out
    frames: list[bytes] | None = None  # the pipe frames it holds all of, as read (the tape keeps them as they came)
    servers: dict[str, dict[str, int]] | None = None  # engine -> its source counters at the drain (recordings)
    packed: tuple[bytearray, bytearray] | None = None  # a packed recorder's transitions and sizes (RECORD each)

    def __len__(self) -> int:
        return len(self.transitions) + len(self.latencies) + len(self.lags)

    def extend(self, other: Batch) -> None:
        """Append ``other`` to this batch (replaying, merging several drains)."""
        self.transitions.extend(other.transitions)
        self.latencies.extend(other.latencies)
        self.lags.extend(other.lags)
        self.t_ns = max(self.t_ns, other.t_ns)
        self.dropped += other.dropped
        if other.info is not None:
            self.info = other.info
        self.digests.extend(getattr(other, "digests", ()))
        self.blocks.extend(getattr(other, "blocks", ()))
        self.sizes.extend(getattr(other, "sizes", ()))
        if getattr(other, "servers", None):
            self.servers = other.servers


class Recorder:
    """Bounded, lock-free (GIL-atomic) buffers every producer appends to.

    Producers bind the ``append`` methods once (``rec = recorder.transition``) and call
    ``rec((now_ns(), engine, rid, lane, phase))``. When ``enabled`` is false the servers
    and the client record no transitions and no lag (the overhead benchmark's baseline);
    the load generator's latency samples, the measurement itself, are always kept.

    ``packed``: transitions and sizes are kept as :data:`RECORD` bytes (an engine process whose
    digest process reads them as they are); ``transition`` and ``size`` still take tuples, and
    :func:`~syncviz.engines.work.emitters` packs directly into :attr:`packed_transitions`. A drain
    puts them in :attr:`Batch.packed`, the newest :data:`MAX_PACKED` of a kind (the oldest dropped first).
    """

    def __init__(self, enabled: bool = True, packed: bool = False) -> None:
        self.enabled = enabled
        self.packed = packed
        self._transitions: deque[Transition] = deque(maxlen=MAX_TRANSITIONS)
        self._latencies: deque[Latency] = deque(maxlen=MAX_SAMPLES)
        self._lags: deque[Lag] = deque(maxlen=MAX_SAMPLES)
        self._sizes: deque[Size] = deque(maxlen=MAX_SAMPLES)
        self.transition = self._transitions.append
        self.latency = self._latencies.append
        self.lag = self._lags.append
        self.size = self._sizes.append
        self._packed_tr, self._packed_sz = bytearray(), bytearray()
        self._trimmed = 0  # 1: packed records were dropped by trim() since the last drain
        if packed:
            pack, tr_extend, sz_extend = RECORD.pack, self._packed_tr.extend, self._packed_sz.extend
            self.packed_transitions = tr_extend
            self.transition = lambda rec: tr_extend(pack(*rec))
            self.packed_sizes = sz_extend
            self.size = lambda rec: sz_extend(pack(*rec))

    def drain(self) -> Batch:
        """Take everything recorded so far (safe while producers keep appending)."""
        batch = Batch(t_ns=now_ns())
        # A full buffer means its oldest records were dropped (maxlen) since the last drain.
        buffers = (self._transitions, self._latencies, self._lags, self._sizes)
        batch.dropped = sum(len(b) == b.maxlen for b in buffers)
        batch.transitions = _drain(self._transitions)
        batch.latencies = _drain(self._latencies)
        batch.lags = _drain(self._lags)
        batch.sizes = _drain(self._sizes)
        if self.packed:
            tr, tr_over = _take(self._packed_tr, MAX_PACKED)
            sz, sz_over = _take(self._packed_sz, MAX_PACKED)
            batch.packed = (tr, sz)
            batch.dropped += max(tr_over + sz_over, self._trimmed)
            self._trimmed = 0
        return batch

    def trim(self) -> None:
        """Drop the oldest packed records past the bounds: called while no drain can run (the engine's
        writer waits on a full pipe); the next drain's ``dropped`` says so. Records are whole and
        only added at the end, so deleting a multiple of their size from the front is safe."""
        for buf in (self._packed_tr, self._packed_sz):
            excess = len(buf) - MAX_PACKED * RECORD.size
            if excess > 0:
                del buf[:excess]
                self._trimmed = 1

    def clear(self) -> None:
        self._transitions.clear()
        self._latencies.clear()
        self._lags.clear()
        self._sizes.clear()
        del self._packed_tr[:], self._packed_sz[:]


def _take(buf: bytearray, most: int) -> tuple[bytearray, int]:
    """The packed records in ``buf`` now, taken out of it, the newest ``most`` of them; and 1 if
    older ones were dropped. Producers only add whole records at the end, each in one C call:
    the prefix copied is the prefix deleted, whatever they add meanwhile."""
    n = len(buf)
    keep = most * RECORD.size
    data = buf[max(0, n - keep) : n]  # one copy, of the newest only
    del buf[:n]
    return data, int(n > keep)


def _drain(buf: deque) -> list:
    """Pop what is there now; items appended concurrently stay for the next drain (one C loop:
    ``starmap`` calls ``popleft`` ``len(buf)`` times, the GIL held throughout)."""
    return list(starmap(buf.popleft, repeat((), len(buf))))
