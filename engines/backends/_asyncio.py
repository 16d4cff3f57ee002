"""The asyncio engine: one event loop in its own thread, one task per connection.

Like uvicorn running FastAPI ``async def`` endpoints. A protocol object parses the bytes
the loop reads (the moment a request arrives, it is READY: runnable, waiting for the
loop); the connection's task then RUNS it on lane 0, the loop. Awaits are AWAITING. In
the ``blocking`` mode the handler calls ``time.sleep`` inside ``async def`` (BLOCKED, loop
held); in ``offload`` it runs the blocking handler on anyio's worker threads (lanes 1+).

A request whose bytes are still arriving is ``reading`` and holds nothing (lane -1): the
loop serves others meanwhile. It has ``settings.timeout_s`` from its first byte (then 408);
a connection idle for ``keepalive_idle_s`` is closed quietly by a sweep.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import socket
import threading
from collections import deque

import anyio.to_thread

from ..events import Phase, now_ns
from ..http import HttpError, ReadingTracker, Request, RequestReader, error_page
from ..work import (
    CPU,
    IO,
    SEND,
    UPSTREAM_REQUEST,
    Plan,
    UpstreamError,
    Work,
    early_response,
    error_response,
    handler_plan,
    parse_sent_ns,
    run_plan,
)
from ._loop import LoopEngine

LOOP = 0  # the lane of the event loop thread
# plain ints on the hot path (an IntEnum member costs a class attribute lookup each time)
RUNNING, READY, DONE, FAILED = (int(p) for p in (Phase.RUNNING, Phase.READY, Phase.DONE, Phase.FAILED))
BACKLOG = 1024  # create_server would otherwise listen() again with 100
MAX_QUEUED = 64  # pipelined requests queued on one connection before its reading pauses
IDLE_SWEEP_S = 0.5  # how often idle keep-alive connections are looked for


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
        self.track = ReadingTracker(engine.new_id, engine.native.emit_at, engine.counts)
        self.requests: deque[Request | int] = deque()
        self.closed = False
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
        self.task = asyncio.get_running_loop().create_task(self.engine._serve_conn(self))

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
        self._wake()

    def _queue(self, reqs: list[Request], t: int) -> None:
        if not reqs:
            return
        if self.track.reading:
            self._cancel_deadline()
        self.track.assign(reqs, t)
        emit_at = self.engine.native.emit_at
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
            if self.closed:
                return None
            self._waiter = asyncio.get_running_loop().create_future()
            await self._waiter
        item = self.requests.popleft()
        if self._held and not self.refused and len(self.requests) < MAX_QUEUED // 2:
            self._held = False
            self.transport.resume_reading()
        return item

    def served(self) -> None:
        """A response is written: the connection is idle from now if nothing else is under way."""
        if not self.requests and not self.reader.partial:
            self.idle_since = now_ns()

    async def write(self, data: bytes, rid: int, work: Work) -> None:
        if self.closed:
            raise ConnectionResetError("client went away")
        self.transport.write(data)
        if self.paused:  # the client reads slowly: wait for the buffer to drain
            work.emit(rid, LOOP, Phase.AWAITING)
            self._drain = asyncio.get_running_loop().create_future()
            await self._drain
            work.emit(rid, LOOP, Phase.RUNNING)


class AsyncioEngine(LoopEngine):
    name = "asyncio"
    native_work = AsyncWork
    thread_name = "asyncio-engine"
    native: AsyncWork

    def start(self) -> int:
        self._conns: set[_Conn] = set()
        self._thread_lanes: dict[int, int] = {}
        self._offload_threads: list[threading.Thread] = []
        self._next_lane = itertools.count(1)
        return super().start()

    # -- the loop thread -----------------------------------------------------------------
    def _new_loop(self) -> asyncio.AbstractEventLoop:
        """The event loop to serve on (the uvloop engine's is uvloop's)."""
        return asyncio.new_event_loop()

    def _run(self) -> None:
        loop = self._new_loop()
        self._loop = loop
        try:
            loop.run_until_complete(self._main())
        except BaseException as exc:  # reported by start(); never a traceback on the terminal
            self._error = exc
            self._ready.set()
        finally:
            loop.run_until_complete(loop.shutdown_asyncgens())
            loop.close()

    async def _main(self) -> None:
        loop = asyncio.get_running_loop()
        self._stop = loop.create_future()
        server = await loop.create_server(lambda: _Conn(self), sock=self._lsock, backlog=BACKLOG)
        ticker = loop.create_task(self._tick())
        sweeper = loop.create_task(self._sweep_idle())
        self._ready.set()
        await self._stop
        server.close()
        ticker.cancel()
        sweeper.cancel()
        for conn in list(self._conns):
            conn.transport.abort()
        me = asyncio.current_task()
        while True:  # connections accepted just before close() start their tasks late
            tasks = [t for t in asyncio.all_tasks() if t is not me]
            if not tasks:
                break
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
        self.native.close()
        self.blocking.close()
        await asyncio.sleep(0)

    async def _tick(self) -> None:
        for period in self._ticks():
            await asyncio.sleep(period)

    async def _sweep_idle(self) -> None:
        """Close, quietly, connections idle (no byte of a next request) for ``keepalive_idle_s``."""
        idle_ns = int(self.keepalive_idle_s * 1e9)
        while True:
            await asyncio.sleep(min(IDLE_SWEEP_S, self.keepalive_idle_s / 4))
            cutoff = now_ns() - idle_ns
            for conn in [c for c in self._conns if 0 < c.idle_since < cutoff]:
                conn.transport.close()

    async def _serve_conn(self, conn: _Conn) -> None:
        emit, counts, requests = self.native.emit, self.counts, conn.requests
        try:
            while True:
                if requests and not conn._held:  # the next request is here already: no wait
                    item: Request | int | None = requests.popleft()
                else:
                    item = await conn.next_request()
                if item is None:
                    break
                if type(item) is int:  # a refused request or a read timeout: answer and close
                    if not conn.closed:
                        conn.transport.write(error_page(item))
                        counts.add(served=1)
                    break
                req: Request = item  # type: ignore[assignment]
                emit(req.rid, LOOP, RUNNING)
                try:
                    ok = await self._serve(req, req.rid, conn)
                except OSError:
                    counts.add(failed=1)  # the client went away mid-response
                    raise
                counts.add(served=1, failed=0 if ok else 1)
                if not req.keep_alive:
                    break
                conn.served()
        except OSError:
            pass
        except Exception:  # never a dead task's traceback from a request: the connection closes
            counts.add(failed=1)
        finally:
            conn.transport.close()

    async def _serve(self, req: Request, rid: int, conn: _Conn) -> bool:
        """Serve one request, ending it DONE or FAILED; true if DONE (its response is written)."""
        work = self.native
        early = early_response(req)
        if early is not None:
            await conn.write(early[0], rid, work)
            work.emit(rid, LOOP, early[1])
            work.size(rid, req.bytes_in, len(early[0]))
            return early[1] == Phase.DONE
        settings = self.settings
        upstream = settings.io == "upstream"
        sent = 0  # the response's bytes written
        try:
            plan = handler_plan(req, settings)
            if self.mode == "offload":
                sent = await self._offload(plan, rid, upstream, conn)
            else:
                for op, arg in plan:
                    if op == SEND:
                        if conn.paused or conn.closed:
                            await conn.write(arg, rid, work)  # type: ignore[arg-type]
                        else:  # the common case, conn.write without a coroutine
                            conn.transport.write(arg)  # type: ignore[arg-type]
                        sent += len(arg)  # type: ignore[arg-type]
                    elif op == IO and self.mode == "native":
                        await work.aio(rid, LOOP, arg, upstream)  # type: ignore[arg-type]
                    elif op == IO:  # the mistake: a blocking call inside async def
                        self.blocking.io(rid, LOOP, arg, upstream)  # type: ignore[arg-type]
                    elif op == CPU:
                        work.cpu(rid, LOOP, arg)  # type: ignore[arg-type]
        except (OSError, asyncio.CancelledError):
            work.emit(rid, LOOP, FAILED)
            work.size(rid, req.bytes_in, -1)  # how much of it left is unknown
            raise
        except Exception:
            page = error_response(req, settings)
            try:  # the 500 is written first: a slow reader's wait shows AWAITING before the end
                await conn.write(page, rid, work)
            finally:
                work.emit(rid, LOOP, Phase.FAILED)
            work.size(rid, req.bytes_in, sent + len(page))
            return False
        work.emit(rid, LOOP, DONE)
        work.size(rid, req.bytes_in, sent)
        return True

    async def _offload(self, plan: Plan, rid: int, upstream: bool, conn: _Conn) -> int:
        """FastAPI's ``def`` endpoint: the whole blocking handler runs on anyio's thread pool; the bytes it wrote."""
        loop = asyncio.get_running_loop()
        emit = self.native.emit

        def send(data: bytes) -> None:
            loop.call_soon_threadsafe(conn.transport.write, data)

        def in_thread() -> int:
            lane = self._thread_lane()
            emit(rid, lane, Phase.RUNNING)
            sent = run_plan(plan, rid, lane, self.blocking, upstream, send)
            emit(rid, LOOP, Phase.READY)  # back to the loop, which has to resume the task
            return sent

        emit(rid, -1, Phase.QUEUED)  # waiting for one of the limiter's 40 tokens
        sent = await anyio.to_thread.run_sync(in_thread)
        emit(rid, LOOP, Phase.RUNNING)
        return sent

    def _thread_lane(self) -> int:
        ident = threading.get_ident()
        lane = self._thread_lanes.get(ident)
        if lane is None:
            lane = self._thread_lanes[ident] = next(self._next_lane)
            self._offload_threads.append(threading.current_thread())
        return lane

    # -- stop ----------------------------------------------------------------------------
    def _request_stop(self) -> None:
        with contextlib.suppress(RuntimeError):  # the loop already closed
            self._loop.call_soon_threadsafe(lambda: self._stop.done() or self._stop.set_result(None))

    def _helper_threads(self) -> list[threading.Thread]:
        return list(self._offload_threads)  # anyio's workers exit once the loop's main task ends
