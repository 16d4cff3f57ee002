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
import threading

import anyio.to_thread

from ..events import Phase, now_ns
from ..handler import CPU, IO, SEND, Plan, early_response, error_response, handler_plan, instant_answer
from ..http import error_page
from ..request import Request
from ..work import run_plan
from ._asyncproto import LOOP, AsyncWork, _Conn
from ._loop import LoopEngine

# plain ints on the hot path (an IntEnum member costs a class attribute lookup each time)
RUNNING, DONE, FAILED = (int(p) for p in (Phase.RUNNING, Phase.DONE, Phase.FAILED))
BACKLOG = 1024  # create_server would otherwise listen() again with 100
IDLE_SWEEP_S = 0.5  # how often idle keep-alive connections are looked for


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
                if not conn.has_bytes():  # its next request arrived: the loop has not read it yet
                    conn.transport.close()

    async def _serve_conn(self, conn: _Conn) -> None:
        emit, counts, requests = self.native.emit, self.counts, conn.requests
        create_future = conn._create_future
        try:
            while True:
                if not requests and not conn.closed and not conn.eof:  # conn.next_request's wait, inline (no
                    # coroutine a wait: ~0.2 us a request at zero latency)
                    conn._waiter = waiter = create_future()
                    await waiter
                    continue
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
                t_ran = self._served_at_once(req, conn)
                if t_ran:
                    self._served_ok += 1  # counts.add(served=1) without its lock: the loop alone counts here
                else:
                    emit(req.rid, LOOP, RUNNING)
                    try:
                        ok = await self._serve(req, req.rid, conn)
                    except OSError:
                        counts.add(failed=1)  # the client went away mid-response
                        raise
                    counts.add(served=1, failed=0 if ok else 1)
                if not req.keep_alive:
                    break
                if not requests and not conn.reader.partial:  # answered, nothing else under way: idle from now
                    conn.idle_since = t_ran or now_ns()  # served at once: idle from when it ran, microseconds ago
        except OSError:
            pass
        except Exception:  # never a dead task's traceback from a request: the connection closes
            counts.add(failed=1)
        finally:
            conn.transport.close()
            conn.drop_queued()  # what it had read and not answered

    def _served_at_once(self, req: Request, conn: _Conn) -> int:
        """Serve the commonest request without a coroutine, as :meth:`_serve` would, the same records
        and bytes (RUNNING from its start, then DONE, recorded in one call): the handler's own path,
        natively, a plan of one write (zero latency), the client reading. Returns when it began to
        run; 0 when it is not that request (nothing done or recorded: it runs through :meth:`_serve`)."""
        t_run = now_ns()
        if self.mode != "native" or conn.paused or conn.closed:
            return 0
        data = instant_answer(req, self.settings)
        if data is None:
            return 0  # a plan that waits, early_response's answers, /boom's 500
        conn.transport.write(data)  # buffered: it never waits, so RUNNING is recorded with DONE
        self.native.ran(req.rid, LOOP, t_run, req.bytes_in, len(data))
        return t_run

    async def _serve(self, req: Request, rid: int, conn: _Conn) -> bool:
        """Serve one request, ending it DONE or FAILED; true if DONE (its response is written)."""
        work = self.native
        early = early_response(req)
        if early is not None:
            await conn.write(early[0], rid, work)
            work.end(rid, LOOP, early[1], req.bytes_in, len(early[0]))
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
            work.end(rid, LOOP, FAILED, req.bytes_in, -1)  # how much of it left is unknown
            raise
        except Exception:
            page = error_response(req, settings)
            try:  # the 500 is written first: a slow reader's wait shows AWAITING before the end
                await conn.write(page, rid, work)
            finally:
                work.emit(rid, LOOP, Phase.FAILED)
            work.size(rid, req.bytes_in, sent + len(page))
            return False
        work.end(rid, LOOP, DONE, req.bytes_in, sent)
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
