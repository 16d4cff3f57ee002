"""The load generator: real HTTP/1.1 clients over real loopback sockets.

It runs its own event loop in its own thread (:func:`new_load_loop`: uvloop's where installed),
with protocol callbacks rather than streams (a Python client is the bottleneck long before the
servers otherwise).

* Closed loop: ``clients`` keep-alive connections per engine, each sending its next
  request as soon as the answer arrives (plus ``think_ms``).
* Open loop (``rate`` set): Poisson arrivals per engine; an arrival takes an idle
  connection, opens one (up to ``clients``), or waits. Latency counts from the *intended*
  send time, so queueing inside the client is not hidden (coordinated omission).

Every request is recorded as QUEUED at its intended send time (the ``X-Req-Id`` header ties
it to the server's transitions) and as a latency sample when its answer is complete.

Connections are opened before traffic starts, at most :data:`CONNECT_BATCH` at once per engine
(well under every listen backlog, so 10,000 clients connect without a dropped SYN); traffic
starts once all are open, or once none has opened for :data:`CONNECT_STALL_S` (a server that
stops accepting, like gevent with its pool full: the rest join as they connect).
:attr:`LoadGen.connected` tells when. A connection that cannot be opened is a failed latency
sample whose request id is minus its errno
(:func:`~syncviz.engines.loadgen_conn.connect_error_rid`): counted as ``failed`` wherever
samples are, summarised in one line by
:func:`~syncviz.engines.loadgen_conn.connect_errors_line`, retried with a growing pause (a
single probe while they keep failing: a dead server is not stormed).
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import random
import threading
from collections import deque

from .events import Phase, Recorder, now_ns
from .loadgen_conn import _Client, connect_error_rid
from .settings import BURST_LEN_S, BURST_PERIOD_S, Settings

RECONNECT_S = 0.1  # first pause before connections are opened again; doubles while they fail
RECONNECT_MAX_S = 2.0
CONNECT_BATCH = 256  # connects in flight at once per engine (listen backlogs are 1,024)
CONNECT_STALL_S = 1.0  # the first connections: traffic starts when none has opened for this long
STOP_WAIT_S = 1.0  # stop: how long the cancelled tasks get to finish


class _Target:
    """The clients of one engine."""

    def __init__(self, gen: LoadGen, engine: int, port: int) -> None:
        self.gen = gen
        self.engine = engine
        self.port = port
        self.ids = itertools.count(1)
        self.conns: set[_Client] = set()
        self.idle: list[_Client] = []
        self.pending: deque[tuple[int, int]] = deque()  # open loop: (rid, intended time)
        self.connecting = 0  # connections asked for and not yet open (or failed)
        self.refilling = False  # a refill is scheduled
        self.failing = False  # the last connect failed: refills send one probe until one opens
        self.backoff = RECONNECT_S
        self.gate = asyncio.Semaphore(CONNECT_BATCH)
        self.queued = gen.recorder.transition
        self.sample = gen.recorder.latency
        self.record = gen.recorder.enabled

    async def connect(self) -> _Client | None:
        """One connection (at most :data:`CONNECT_BATCH` connecting at once); ``None`` when it failed
        (recorded: :func:`connect_error_rid`) or the load is stopping."""
        loop = asyncio.get_running_loop()
        async with self.gate:
            if not self.gen.running:
                return None
            t0 = now_ns()
            try:
                _, client = await loop.create_connection(lambda: _Client(self), "127.0.0.1", self.port)
            except OSError as exc:
                self.connect_failed(exc, t0)
                return None
        self.failing, self.backoff = False, RECONNECT_S
        self.conns.add(client)
        return client

    def connect_failed(self, exc: OSError, t0: int) -> None:
        if not self.gen.running:
            return
        t = now_ns()
        self.sample((t, self.engine, connect_error_rid(exc), t - t0, False))
        self.failing = True
        self.schedule_refill()

    async def open(self, n: int) -> None:
        """Open ``n`` connections, :data:`CONNECT_BATCH` at a time, each handed to the load as it opens."""
        if n <= 0:
            return
        left = n
        self.connecting += n

        async def worker() -> None:
            nonlocal left
            while left > 0 and self.gen.running:
                left -= 1
                await self._connect_counted()

        try:
            await asyncio.gather(*(worker() for _ in range(min(n, CONNECT_BATCH))))
        finally:
            self.connecting -= left  # those never tried (stopping)

    def start_request(self, client: _Client, t0: int | None = None) -> None:
        if self.pending:
            rid, t0 = self.pending.popleft()
        else:
            rid = next(self.ids)
            t0 = now_ns() if t0 is None else t0
            if self.record:
                self.queued((t0, self.engine, rid, -1, Phase.QUEUED))
        client.send(rid, t0)

    def answered(self, client: _Client, ok: bool) -> None:
        t = now_ns()
        self.sample((t, self.engine, client.rid, t - client.t0, ok))
        self.next_for(client)

    def next_for(self, client: _Client) -> None:
        gen = self.gen
        if not gen.running or client.retire:
            client.transport.close()  # type: ignore[union-attr]
        elif self.pending or (gen.settings.rate is None and gen.settings.think_ms <= 0):
            self.start_request(client)
        elif gen.settings.rate is None:
            gen.loop.call_later(gen.settings.think_ms / 1000.0, self._after_think, client)
        else:
            self.idle.append(client)

    def _after_think(self, client: _Client) -> None:
        if client in self.conns and not client.busy:
            if self.gen.running and not client.retire:
                self.start_request(client)
            else:
                client.transport.close()  # type: ignore[union-attr]

    def lost(self, client: _Client) -> None:
        self.conns.discard(client)
        if client in self.idle:
            self.idle.remove(client)
        if not self.gen.running:  # our own stop cut it: no failure of the server's
            return
        if client.busy:
            t = now_ns()
            self.sample((t, self.engine, client.rid, t - client.t0, False))
        if not client.retire:
            self.schedule_refill()

    def schedule_refill(self) -> None:
        """Closed loop: one refill after a pause, for many lost or failed connections at once."""
        gen = self.gen
        if self.refilling or not gen.running or gen.settings.rate is not None:
            return
        self.refilling = True
        delay = self.backoff
        if self.failing:  # they keep failing: wait longer each time
            self.backoff = min(RECONNECT_MAX_S, self.backoff * 2)
        gen.loop.call_later(delay, self._refill_now)

    def _refill_now(self) -> None:
        if self.gen.running:
            self.gen.spawn(self.refill())
        else:
            self.refilling = False

    async def refill(self) -> None:
        """Closed loop: bring the connection count to ``clients`` and start each new one."""
        self.refilling = False
        want = self.gen.settings.clients - len(self.conns) - self.connecting
        if self.failing:
            want = min(want, 1)  # a probe: the rest follow once one opens
        await self.open(want)
        if (
            self.gen.running
            and not self.failing
            and want > 0
            and len(self.conns) + self.connecting < self.gen.settings.clients
        ):
            self.schedule_refill()  # the probe opened: now the rest

    def shrink(self) -> None:
        extra = len(self.conns) - self.gen.settings.clients
        for client in list(self.conns)[: max(0, extra)]:
            client.retire = True
            if not client.busy:
                if client in self.idle:
                    self.idle.remove(client)
                client.transport.close()  # type: ignore[union-attr]

    def arrive(self, t0: int) -> None:
        """Open loop: one arrival at intended time ``t0``."""
        rid = next(self.ids)
        if self.record:
            self.queued((t0, self.engine, rid, -1, Phase.QUEUED))
        self.pending.append((rid, t0))
        if self.idle:
            self.start_request(self.idle.pop())
        elif len(self.conns) + self.connecting < self.gen.settings.clients:
            self.gen.spawn(self._open_and_send())

    async def _open_and_send(self) -> None:
        self.connecting += 1
        await self._connect_counted()

    async def _connect_counted(self) -> None:
        """Open one connection already counted in ``connecting``, and hand it to the generator."""
        try:
            client = await self.connect()
        finally:
            self.connecting -= 1
        if client is not None:
            self.gen.opened(client)


def new_load_loop() -> asyncio.AbstractEventLoop:
    """The load's event loop: uvloop's (libuv) where it is installed, asyncio's otherwise.

    The clients' requests cost the same bytes on either; on uvloop the load process used about
    half the CPU (``bench --together --clients 1000``: 47-56% of a core on asyncio's loop,
    24-25% on uvloop's; the engines' req/s and p99 within the runs' noise), which leaves the
    core it shares with the UI room for its frames and keeps the load from being the bound.
    """
    try:
        import uvloop
    except ImportError:
        return asyncio.new_event_loop()
    return uvloop.new_event_loop()


class LoadGen:
    """Drives every engine in ``ports`` (engine id -> port) with the same settings."""

    def __init__(self, recorder: Recorder, ports: dict[int, int], settings: Settings, seed: int = 1) -> None:
        self.recorder = recorder
        self.ports = ports
        self.settings = settings
        self.running = False
        self.connected = threading.Event()
        self.flowing = False  # traffic has started: a connection that opens starts at once
        self.random = random.Random(seed)
        self._tasks: set[asyncio.Task] = set()
        self._held: list[_Client] = []  # opened before traffic started
        self._last_open = 0.0
        self._thread: threading.Thread | None = None

    def spawn(self, coro: object) -> asyncio.Task:
        task = self.loop.create_task(coro)  # type: ignore[arg-type]
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return task

    def opened(self, client: _Client) -> None:
        """A connection is open: it starts now, or with the others when traffic starts."""
        self._last_open = self.loop.time()
        if not self.running or client.retire:
            client.transport.close()  # type: ignore[union-attr]
        elif self.flowing:
            self._begin(client)
        else:
            self._held.append(client)

    def connecting(self) -> dict[int, int]:
        """Per engine: clients waiting for their connection to open (asked for, neither open nor
        failed yet); a server that stops accepting keeps them there (any thread may ask)."""
        return {t.engine: t.connecting for t in getattr(self, "targets", ())}

    def start(self, wait_s: float = 10.0) -> None:
        self.loop = new_load_loop()
        self._thread = threading.Thread(target=self._run, name="loadgen", daemon=True)
        self.running = True
        self._thread.start()
        self.connected.wait(wait_s)

    def _run(self) -> None:
        loop = self.loop
        self.targets = [_Target(self, engine, port) for engine, port in self.ports.items()]
        try:
            loop.run_until_complete(self._main())
        finally:
            loop.close()

    async def _main(self) -> None:
        loop = asyncio.get_running_loop()
        self._stop = loop.create_future()
        s = self.settings
        first = s.clients if s.rate is None else min(s.clients, 64)
        self._last_open = loop.time()
        opening = [self.spawn(t.open(first)) for t in self.targets]
        while not self._stop.done():  # until all are open, or none has opened for a while
            _, pending = await asyncio.wait(opening, timeout=0.1)
            if not pending or loop.time() - self._last_open > CONNECT_STALL_S:
                break
        self.flowing = True
        self.connected.set()
        held, self._held = self._held, []
        for client in held:
            if client in client.target.conns:
                self._begin(client)
        self.spawn(self._arrivals())
        await self._stop
        self.running = False
        tasks = list(self._tasks)
        for task in tasks:
            task.cancel()
        for target in self.targets:
            for client in list(target.conns):
                client.transport.abort()  # type: ignore[union-attr]
        if tasks:
            await asyncio.wait(tasks, timeout=STOP_WAIT_S)
        await asyncio.sleep(0)

    def _begin(self, client: _Client) -> None:
        client.target.next_for(client) if self.settings.rate is not None else client.target.start_request(client)

    async def _arrivals(self) -> None:
        """Open loop: Poisson arrivals at ``rate`` per engine, spiking ``burst`` x for 1 s in 5."""
        start = now_ns()
        nxt = {t: start for t in self.targets}
        while True:
            rate = self.settings.rate
            if rate is None:
                await asyncio.sleep(0.05)
                start = now_ns()
                nxt = dict.fromkeys(self.targets, start)
                continue
            now = now_ns()
            for target in self.targets:
                while nxt[target] <= now:
                    target.arrive(nxt[target])
                    phase_s = ((nxt[target] - start) / 1e9) % BURST_PERIOD_S
                    r = rate * (self.settings.burst if phase_s < BURST_LEN_S else 1.0)
                    nxt[target] += int(self.random.expovariate(r) * 1e9)
            await asyncio.sleep(max(0.0, (min(nxt.values()) - now_ns()) / 1e9))

    def apply(self, settings: Settings) -> None:
        """New settings while running (thread-safe)."""
        self.loop.call_soon_threadsafe(self._apply, settings)

    def _apply(self, settings: Settings) -> None:
        old, self.settings = self.settings, settings
        for target in self.targets:
            if settings.clients < len(target.conns):
                target.shrink()
            if settings.rate is None:
                for client in list(target.idle):  # back to closed loop: idle ones start again
                    target.idle.remove(client)
                    target.start_request(client)
                if settings.clients > len(target.conns) or old.rate is not None:
                    target.failing, target.backoff = False, RECONNECT_S  # asked for: try them all now
                    self.spawn(target.refill())

    def stop(self, timeout: float = 2.0) -> None:
        if self._thread is None or not self._thread.is_alive():
            return
        self.running = False
        with contextlib.suppress(RuntimeError):
            self.loop.call_soon_threadsafe(lambda: self._stop.done() or self._stop.set_result(None))
        self._thread.join(timeout)
