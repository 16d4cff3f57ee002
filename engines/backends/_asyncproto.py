"""The asyncio engine's connection protocol and how its handler waits (split from :mod:`._asyncio`).

:class:`_Conn` parses a connection's bytes as the loop reads them and queues complete requests
for the connection's task (the engine's ``_serve_conn``). :class:`AsyncWork` waits with
``asyncio.sleep`` and pooled asyncio streams to the upstream (the trio engine's extends it),
recorded as every wait is (:mod:`syncviz.engines.work`): AWAITING from the start, READY from the
moment the thing waited for completed, RUNNING when the coroutine really runs again.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
from collections import deque
from typing import TYPE_CHECKING

from ..counts import has_bytes
from ..events import Phase, now_ns
from ..http import CONTINUE
from ..reading import ReadingTracker
from ..request import HttpError, Request, RequestReader
from ..work import UPSTREAM_REQUEST, UpstreamError, Work, parse_sent_ns

if TYPE_CHECKING:
    from ._asyncio import AsyncioEngine

LOOP = 0  # the lane of the event loop thread
READY, FAILED = int(Phase.READY), int(Phase.FAILED)  # plain ints on the hot path
MAX_QUEUED = 64  # pipelined requests queued on one connection before its reading pauses


class AsyncWork(Work):
    """Awaits: ``asyncio.sleep`` and pooled asyncio streams to the upstream."""

    WAIT_PHASE = Phase.AWAITING
    asleep = staticmethod(asyncio.sleep)  # the trio engine's is anyio.sleep

    def __init__(self, *args: object) -> None:
        super().__init__(*args)  # type: ignore[arg-type]
        self._idle: list = []  # (reader, writer) pairs here; the trio engine's streams
        self._all: list = []

    async def aio(self, rid: int, lane: int, seconds: float, upstream: bool) -> None:
        t0 = now_ns()
        self.emit_at(t0, rid, lane, Phase.AWAITING)
        if upstream:
            t_ready = await self._aupstream(seconds)
        else:
            await self.asleep(seconds)
            t_ready = t0 + int(seconds * 1e9)
        t1 = now_ns()
        self.emit_at(min(max(t_ready, t0), t1), rid, lane, Phase.READY)
        self.emit_at(t1, rid, lane, Phase.RUNNING)

    async def _aupstream(self, seconds: float) -> int:
        if self._idle:
            reader, writer = self._idle.pop()
        else:
            try:
                reader, writer = await asyncio.open_connection("127.0.0.1", self.upstream_port)
            except OSError as exc:
                raise UpstreamError(str(exc)) from None
            self._all.append(writer)
        try:
            writer.write(UPSTREAM_REQUEST % int(seconds * 1e6))
            head = await reader.readuntil(b"\r\n\r\n")
        except (OSError, asyncio.IncompleteReadError) as exc:
            writer.close()
            raise UpstreamError(str(exc)) from None
        self._idle.append((reader, writer))
        return parse_sent_ns(head)

    def close(self) -> None:
        for writer in self._all:
            writer.close()
        self._all.clear()
        self._idle.clear()


class _Conn(asyncio.Protocol):
    """Parses requests as bytes arrive and hands them to the connection's task.

    The task's queue holds complete requests, or a status (an int) to answer before closing:
    a refused request or a read timeout. A request still arriving holds no worker (lane -1)
    and has its own deadline timer; a connection with nothing to do is closed by the
    engine's idle sweep.
    """

    def __init__(self, engine: AsyncioEngine) -> None:
        self.engine = engine
        self.reader = RequestReader()
        self._emit_at = engine.native.emit_at
        self.track = ReadingTracker(engine.new_id, self._emit_at, engine.counts)
        self.requests: deque[Request | int] = deque()
        self.closed = False
        self.eof = False  # the client half-closed: no more requests will come
        self.idle_since = now_ns()  # nonzero: no request in progress nor started since then
        self._waiter: asyncio.Future | None = None
        self._drain: asyncio.Future | None = None
        self._deadline: asyncio.TimerHandle | None = None
        self._held = False  # reading paused: too many pipelined requests queued, or a refusal queued
        self.refused = False  # a refusal (status) is queued: the connection ends with it
        self.paused = False

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport: asyncio.Transport = transport  # type: ignore[assignment]
        sock = transport.get_extra_info("socket")
        if sock is not None:
            with contextlib.suppress(OSError):
                sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.engine._conns.add(self)
        loop = asyncio.get_running_loop()
        self._create_future = loop.create_future  # not get_running_loop() a wait: on 3.11 that is a getpid() call
        self.task = loop.create_task(self.engine._serve_conn(self))

    def data_received(self, data: bytes) -> None:
        t = now_ns()
        self.idle_since = 0
        reader, track = self.reader, self.track
        try:
            try:
                reqs = reader.feed(data, t)
            except HttpError as exc:
                self._queue(exc.requests, t)
                self._refuse(exc.status)
                return
            if reqs:
                self._queue(reqs, t)
            if reader.continue_due:
                reader.continue_due = False
                self.transport.write(CONTINUE)
            if reader.partial:
                was_reading = track.reading
                track.begin(reader.started_ns, -1, reader.partial_req_id)  # no lane: the loop is free meanwhile
                if not was_reading:
                    left = (reader.started_ns - t) / 1e9 + self.engine.settings.timeout_s
                    self._deadline = asyncio.get_running_loop().call_later(max(0.0, left), self._timed_out)
            if len(self.requests) >= MAX_QUEUED and not self._held:
                self._held = True
                self.transport.pause_reading()
        except Exception:  # never a traceback from a client's bytes: refuse and close
            self._refuse(400)
        waiter = self._waiter  # self._wake(), inline: once a read
        if waiter is not None and not waiter.done():
            waiter.set_result(None)

    def _queue(self, reqs: list[Request], t: int) -> None:
        if not reqs:
            return
        track = self.track
        if track.cid:  # a request was being read: its deadline goes
            self._cancel_deadline()
        track.assign(reqs, t)
        emit_at = self._emit_at
        for req in reqs:
            emit_at(t, req.rid, LOOP, READY)  # here and runnable; the loop is busy
        self.requests.extend(reqs)

    def _refuse(self, status: int, timeout: bool = False) -> None:
        """Fail the request (``FAILED`` if being read) and queue its answer; stop reading."""
        self._cancel_deadline()
        self.track.fail(now_ns(), timeout)
        self.requests.append(status)
        self.refused = True
        if not self._held:
            self._held = True
            with contextlib.suppress(RuntimeError):
                self.transport.pause_reading()
        self._wake()

    def _timed_out(self) -> None:
        self._deadline = None
        if self.track.reading and not self.closed:
            self._refuse(408, timeout=True)

    def _cancel_deadline(self) -> None:
        if self._deadline is not None:
            self._deadline.cancel()
            self._deadline = None

    def eof_received(self) -> bool | None:
        """The client sends no more (a half-close: ``nc -N``, scripts) but still reads: its requests
        are answered, then the connection closes. A request still arriving can never complete,
        and nothing under way has nothing to answer: closed at once, as before."""
        if self.reader.partial or (not self.requests and self.idle_since > 0):
            return None
        self.eof = True
        self._wake()
        return True  # keep the transport open for the answers

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        self._cancel_deadline()
        self.track.close(now_ns())  # a request still arriving is dropped
        self.engine._conns.discard(self)
        self._wake()
        if self._drain is not None and not self._drain.done():
            self._drain.set_result(None)

    def pause_writing(self) -> None:
        self.paused = True

    def resume_writing(self) -> None:
        self.paused = False
        if self._drain is not None and not self._drain.done():
            self._drain.set_result(None)

    def _wake(self) -> None:
        if self._waiter is not None and not self._waiter.done():
            self._waiter.set_result(None)

    async def next_request(self) -> Request | int | None:
        while not self.requests:
            if self.closed or self.eof:
                return None
            self._waiter = self._create_future()
            await self._waiter
        item = self.requests.popleft()
        if self._held and not self.refused and len(self.requests) < MAX_QUEUED // 2:
            self._held = False
            self.transport.resume_reading()
        return item

    def drop_queued(self) -> None:
        """The connection ended with requests still queued (a pipeline whose client left, or
        whose answer failed): each ends FAILED, never in flight for ever."""
        work, t, dropped = self.engine.native, now_ns(), 0
        while self.requests:
            item = self.requests.popleft()
            if type(item) is not int:
                work.emit_at(t, item.rid, LOOP, FAILED)  # type: ignore[union-attr]
                work.size(item.rid, item.bytes_in, 0)  # type: ignore[union-attr]
                dropped += 1
        if dropped:
            self.engine.counts.add(failed=dropped)

    def has_bytes(self) -> bool:
        """Whether bytes of a next request wait in the kernel, not read by the loop yet."""
        sock = self.transport.get_extra_info("socket")
        return sock is not None and has_bytes(sock.fileno())

    async def write(self, data: bytes, rid: int, work: Work) -> None:
        if self.closed:
            raise ConnectionResetError("client went away")
        self.transport.write(data)
        if self.paused:  # the client reads slowly: wait for the buffer to drain
            work.emit(rid, LOOP, Phase.AWAITING)
            self._drain = asyncio.get_running_loop().create_future()
            await self._drain
            work.emit(rid, LOOP, Phase.RUNNING)
