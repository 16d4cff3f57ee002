"""The load generator: real HTTP/1.1 clients over real loopback sockets.

It runs its own asyncio loop in its own thread, with protocol callbacks rather than
streams (a Python client is the bottleneck long before the servers otherwise).

* Closed loop: ``clients`` keep-alive connections per engine, each sending its next
  request as soon as the answer arrives (plus ``think_ms``).
* Open loop (``rate`` set): Poisson arrivals per engine; an arrival takes an idle
  connection, opens one (up to ``clients``), or waits. Latency counts from the *intended*
  send time, so queueing inside the client is not hidden (coordinated omission).

Every request is recorded as QUEUED at its intended send time (the ``X-Req-Id`` header ties
it to the server's transitions) and as a latency sample when its answer is complete.
Connections are opened before traffic starts; :attr:`LoadGen.connected` tells when.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import random
import socket
import threading
from collections import deque

import httptools

from .events import Phase, Recorder, now_ns
from .settings import Settings

REQUEST = b"GET / HTTP/1.1\r\nHost: syncviz\r\nX-Req-Id: %d\r\nX-Sent-Ns: %d\r\n\r\n"
"""``X-Sent-Ns``: the intended send time (monotonic ns), so the server records the request's QUEUED itself."""
RECONNECT_S = 0.1
BURST_PERIOD_S, BURST_LEN_S = 5.0, 1.0  # open loop: a spike of ``burst`` x rate, 1 s in every 5


class _Response:
    """Incremental HTTP/1.1 response parser on httptools (llhttp): fixed length, chunked, until-close.

    One request is in flight per connection, so one response at a time; bytes that are not a
    response (an engine gone wrong) never raise: they end in :data:`BAD_RESPONSE`.
    """

    __slots__ = ("_parser", "bad", "done", "status")

    def __init__(self) -> None:
        self._parser = httptools.HttpResponseParser(self)
        self.status = 0  # of the last complete response
        self.done = 0  # complete responses in the current feed
        self.bad = False  # the stream is not HTTP: every later feed says so too

    def feed(self, data: bytes) -> int:
        """Add bytes; return the status when a whole response is in, else 0 (``BAD_RESPONSE``: not HTTP)."""
        if self.bad:
            return BAD_RESPONSE
        self.done = 0
        try:
            self._parser.feed_data(data)
        except Exception:  # llhttp's verdict: the connection is unusable
            self.bad = True
            return BAD_RESPONSE
        return self.status if self.done else 0

    def on_message_complete(self) -> None:
        if not self.done:
            self.status = self._parser.get_status_code()
        self.done += 1


BAD_RESPONSE = -1  # what _Response.feed says of bytes that are not a response (counted as a failure)


class _Client(asyncio.Protocol):
    def __init__(self, target: _Target) -> None:
        self.target = target
        self.parser = _Response()
        self.rid = 0
        self.t0 = 0
        self.busy = False
        self.retire = False
        self.transport: asyncio.Transport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]
        transport.get_extra_info("socket").setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

    def send(self, rid: int, t0: int) -> None:
        self.rid, self.t0, self.busy = rid, t0, True
        self.transport.write(REQUEST % (rid, t0))  # type: ignore[union-attr]

    def data_received(self, data: bytes) -> None:
        status = self.parser.feed(data)
        if status:
            self.busy = False
            self.target.answered(self, 200 <= status < 400)

    def connection_lost(self, exc: Exception | None) -> None:
        self.target.lost(self)


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
        self.connecting = 0
        self.refilling = False  # a refill is scheduled
        self.queued = gen.recorder.transition
        self.sample = gen.recorder.latency
        self.record = gen.recorder.enabled

    async def connect(self) -> _Client | None:
        loop = asyncio.get_running_loop()
        self.connecting += 1
        try:
            _, client = await loop.create_connection(lambda: _Client(self), "127.0.0.1", self.port)
        except OSError:
            return None
        finally:
            self.connecting -= 1
        self.conns.add(client)
        return client

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
        if client.busy:
            t = now_ns()
            self.sample((t, self.engine, client.rid, t - client.t0, False))
        if self.gen.running and not client.retire and self.gen.settings.rate is None and not self.refilling:
            self.refilling = True  # one refill for many lost connections: a dead server is not stormed
            self.gen.loop.call_later(RECONNECT_S, self.gen.spawn, self.refill())

    async def refill(self) -> None:
        """Closed loop: bring the connection count to ``clients`` and start each new one."""
        self.refilling = False
        want = self.gen.settings.clients - len(self.conns) - self.connecting
        clients = await asyncio.gather(*(self.connect() for _ in range(max(0, want))))
        for client in clients:
            if client is not None and self.gen.running:
                self.next_for(client) if self.gen.settings.rate is not None else self.start_request(client)

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
        client = await self.connect()
        if client is not None:
            self.next_for(client)


class LoadGen:
    """Drives every engine in ``ports`` (engine id -> port) with the same settings."""

    def __init__(self, recorder: Recorder, ports: dict[int, int], settings: Settings, seed: int = 1) -> None:
        self.recorder = recorder
        self.ports = ports
        self.settings = settings
        self.running = False
        self.connected = threading.Event()
        self.random = random.Random(seed)
        self._tasks: set[asyncio.Task] = set()
        self._thread: threading.Thread | None = None

    def spawn(self, coro: object) -> None:
        task = self.loop.create_task(coro)  # type: ignore[arg-type]
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    def start(self, wait_s: float = 10.0) -> None:
        self.loop = asyncio.new_event_loop()
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
        self._stop = asyncio.get_running_loop().create_future()
        s = self.settings
        first = s.clients if s.rate is None else min(s.clients, 64)
        opened = await asyncio.gather(*(t.connect() for t in self.targets for _ in range(first)))
        self.connected.set()
        for client in opened:
            if client is not None:
                self._begin(client)
        self.spawn(self._arrivals())
        await self._stop
        self.running = False
        for task in list(self._tasks):
            task.cancel()
        for target in self.targets:
            for client in list(target.conns):
                client.transport.abort()  # type: ignore[union-attr]
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
                    self.spawn(target.refill())

    def stop(self, timeout: float = 2.0) -> None:
        if self._thread is None or not self._thread.is_alive():
            return
        self.running = False
        with contextlib.suppress(RuntimeError):
            self.loop.call_soon_threadsafe(lambda: self._stop.done() or self._stop.set_result(None))
        self._thread.join(timeout)
