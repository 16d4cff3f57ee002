"""Slow clients: connections that trickle their request bytes over seconds.

A slow client (a phone on a bad network, a deliberate slowloris) opens a connection, sends
one complete ``GET`` a few bytes at a time over :data:`TRICKLE_S` seconds (its request line and
``X-Req-Id`` in the first write, so the server can tell it from an outside client), reads the
answer, closes and starts again. A server that gives each connection a worker while it reads the
request (a sync server's pool thread) has that worker held for the whole trickle; an event
loop or a hub parks the connection for the cost of a coroutine or a greenlet. This is why
gunicorn's docs put sync workers behind a buffering proxy (nginx) that takes the slow bytes
first.

:class:`SlowClients` runs in the load process beside the :class:`~syncviz.engines.loadgen.LoadGen`
with the same lifecycle (``start``, ``apply``, ``stop``), on its own asyncio loop in its own
thread. ``Settings.slow_clients`` is the number per engine. They are not the measured load:
they record no latency samples and no transitions of their own (the servers record their
requests, ``reading`` first, under the ``X-Req-Id`` from :data:`SLOW_IDS_START` up, a range the
load generator's ids, counted from 1, never reach, below the servers' own ids for outside
clients). A trickle (3.5 s) is well under the servers' default 10 s read timeout, so they
are served, slowly; with ``timeout_s`` below it they get 408. Connection errors are counted
(:meth:`SlowClients.summary`), never printed.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import random
import socket
import threading
from collections import Counter
from dataclasses import dataclass, field

from .events import ENGINES
from .request import EXTERNAL_IDS_START
from .settings import Settings

SLOW_IDS_START = EXTERNAL_IDS_START >> 1


def client_of(rid: int) -> tuple[str, int]:
    """Who sent request ``rid`` and its number among them: ``built-in`` (the load generator),
    ``slow`` (its slow clients) or ``outside`` (curl, wrk, a browser: a server-given id)."""
    if rid >= EXTERNAL_IDS_START:
        return "outside", rid - EXTERNAL_IDS_START
    if rid >= SLOW_IDS_START:
        return "slow", rid - SLOW_IDS_START
    return "built-in", rid


"""First ``X-Req-Id`` of the slow clients (per engine): the load generator counts from 1 (at
40k req/s it would need 159 days to get here), the servers' ids for outside clients start above."""

TRICKLE_S = 3.5  # from the first request byte to the last
PIECE_BYTES = 4  # bytes per write
RETRY_S = 0.5  # pause after a failed connection (a dead engine is not stormed)
ANSWER_TIMEOUT_S = 60.0  # an answer that never ends is given up on (counted as an error)
REQUEST = (  # the id first: a server that reads headers as they come can tell whose bytes these are early
    b"GET / HTTP/1.1\r\nX-Req-Id: %d\r\nHost: syncviz\r\nUser-Agent: syncviz-slow-client\r\nConnection: close\r\n\r\n"
)


@dataclass
class SlowStats:
    """What one engine's slow clients got, since start."""

    served: int = 0  # answered 2xx/3xx
    failed: int = 0  # answered 4xx/5xx (408 when the trickle outlasts the server's timeout)
    timeouts: int = 0  # of which 408
    errors: Counter[str] = field(default_factory=Counter)  # no answer: exception name -> count

    def as_dict(self) -> dict[str, object]:
        return {"served": self.served, "failed": self.failed, "timeouts": self.timeouts, "errors": dict(self.errors)}


class _Target:
    """The slow clients of one engine: one task each."""

    def __init__(self, engine: int, port: int) -> None:
        self.engine = engine
        self.port = port
        self.ids = itertools.count(SLOW_IDS_START)
        self.tasks: list[asyncio.Task] = []
        self.stats = SlowStats()
        self.trickling = 0  # clients sending their request right now


class SlowClients:
    """``settings.slow_clients`` trickling clients per engine in ``ports`` (engine id -> port)."""

    def __init__(self, ports: dict[int, int], settings: Settings, host: str = "127.0.0.1", seed: int = 2) -> None:
        self.ports = ports
        self.settings = settings
        self.host = host
        self.random = random.Random(seed)
        self.targets = {engine: _Target(engine, port) for engine, port in ports.items()}
        self.loop_errors: Counter[str] = Counter()  # anything the loop itself reported
        self._thread: threading.Thread | None = None
        self._writers: set[asyncio.StreamWriter] = set()

    # -- lifecycle -----------------------------------------------------------------------
    def start(self) -> SlowClients:
        self.loop = asyncio.new_event_loop()
        self.loop.set_exception_handler(self._loop_error)  # nothing is ever printed
        self._stop = self.loop.create_future()
        self._thread = threading.Thread(target=self._run, name="slowclients", daemon=True)
        self._thread.start()
        return self

    def _run(self) -> None:
        try:
            self.loop.run_until_complete(self._main())
        finally:
            self.loop.close()

    async def _main(self) -> None:
        self._resize(self.settings)
        await self._stop
        tasks = [t for target in self.targets.values() for t in target.tasks]
        for task in tasks:
            task.cancel()
        for writer in list(self._writers):
            writer.transport.abort()
        await asyncio.gather(*tasks, return_exceptions=True)
        await asyncio.sleep(0)  # the aborted transports close their sockets in callbacks: let them run

    def apply(self, settings: Settings) -> None:
        """New settings while running (thread-safe): the number of clients follows at once."""
        if self._thread is None:  # not started: they start with these
            self.settings = settings
            return
        with contextlib.suppress(RuntimeError):  # the loop is already closed
            self.loop.call_soon_threadsafe(self._resize, settings)

    def stop(self, timeout: float = 2.0) -> None:
        """Close every connection and end the thread (milliseconds; ``timeout`` bounds it)."""
        if self._thread is None or not self._thread.is_alive():
            return
        with contextlib.suppress(RuntimeError):
            self.loop.call_soon_threadsafe(lambda: self._stop.done() or self._stop.set_result(None))
        self._thread.join(timeout)

    # -- reading -------------------------------------------------------------------------
    def counts(self) -> dict[int, int]:
        """Engine id -> slow clients running now (read from any thread)."""
        return {e: sum(not t.done() for t in target.tasks) for e, target in self.targets.items()}

    def stats(self) -> dict[int, SlowStats]:
        return {e: target.stats for e, target in self.targets.items()}

    def summary(self) -> str:
        """One line: what the slow clients got, errors by kind (empty when nothing happened)."""
        parts = []
        for target in self.targets.values():
            s = target.stats
            if not (s.served or s.failed or s.errors):
                continue
            errors = ", ".join(f"{n} {kind}" for kind, n in s.errors.most_common())
            parts.append(
                f"{ENGINES[target.engine]}: {s.served} served, {s.failed} failed ({s.timeouts} timed out)"
                + (f", errors: {errors}" if errors else "")
            )
        if self.loop_errors:
            parts.append("loop: " + ", ".join(f"{n} {kind}" for kind, n in self.loop_errors.most_common()))
        return "slow clients: " + "; ".join(parts) if parts else ""

    # -- inside the loop -----------------------------------------------------------------
    def _resize(self, settings: Settings) -> None:
        self.settings = settings
        if self._stop.done():
            return
        for target in self.targets.values():
            target.tasks = [t for t in target.tasks if not t.done()]
            while len(target.tasks) < settings.slow_clients:
                delay = self.random.uniform(0, TRICKLE_S)  # spread out: not all in step
                target.tasks.append(self.loop.create_task(self._client(target, delay)))
            while len(target.tasks) > settings.slow_clients:
                target.tasks.pop().cancel()  # its connection closes now (the finally below)

    async def _client(self, target: _Target, delay: float) -> None:
        await asyncio.sleep(delay)
        while True:
            try:
                status = await self._one_request(target, next(target.ids))
            except (OSError, NoAnswer, asyncio.TimeoutError) as exc:
                target.stats.errors[type(exc).__name__] += 1
                await asyncio.sleep(RETRY_S)
                continue
            if 200 <= status < 400:
                target.stats.served += 1
            else:
                target.stats.failed += 1
                target.stats.timeouts += status == 408
                await asyncio.sleep(RETRY_S)

    async def _one_request(self, target: _Target, rid: int) -> int:
        """Open, trickle one request, read the answer to its end; the status."""
        reader, writer = await asyncio.open_connection(self.host, target.port)
        self._writers.add(writer)
        try:
            sock = writer.get_extra_info("socket")
            if sock is not None:
                sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            await self._trickle(target, writer, REQUEST % rid)
            answer = await asyncio.wait_for(reader.read(), ANSWER_TIMEOUT_S)  # Connection: close: to EOF
        finally:
            self._writers.discard(writer)
            writer.transport.abort()
        return _status(answer)

    async def _trickle(self, target: _Target, writer: asyncio.StreamWriter, data: bytes) -> None:
        pieces = _pieces(data)
        gap = TRICKLE_S / max(1, len(pieces) - 1)
        target.trickling += 1
        try:
            for i, piece in enumerate(pieces):
                if i:
                    await asyncio.sleep(gap)
                writer.write(piece)
                await writer.drain()
        except ConnectionError:
            pass  # the server gave up on us (a 408, say): its answer, if any, is read next
        finally:
            target.trickling -= 1

    def _loop_error(self, loop: asyncio.AbstractEventLoop, context: dict) -> None:
        exc = context.get("exception")
        self.loop_errors[type(exc).__name__ if exc is not None else str(context.get("message"))] += 1


def _pieces(data: bytes) -> list[bytes]:
    """The writes of one trickle: the request line, its ``X-Req-Id`` line and the next line's first
    byte at once (llhttp reports a header only when that byte shows it is not folded onto the next
    line), so the server knows whose bytes these are from its first read and never counts a slow
    client as an outside one; then :data:`PIECE_BYTES` at a time."""
    head = data.index(b"\r\n", data.index(b"\r\nX-Req-Id:") + 2) + 3
    return [data[:head]] + [data[i : i + PIECE_BYTES] for i in range(head, len(data), PIECE_BYTES)]


class NoAnswer(Exception):
    """The connection ended without an HTTP answer."""


def _status(answer: bytes) -> int:
    """The status of an HTTP/1.x answer; :class:`NoAnswer` when there is none."""
    if not answer.startswith(b"HTTP/1.") or len(answer) < 12 or not answer[9:12].isdigit():
        raise NoAnswer("no answer" if not answer else "not an HTTP answer")
    return int(answer[9:12])
