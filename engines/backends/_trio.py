"""The trio engine: the same server on Trio through anyio, one task per connection.

``anyio.run(..., backend="trio")`` in the engine's own thread; anyio's sockets and
``anyio.sleep``; a task per connection in one task group. Its phases are the asyncio
engine's: a request is READY from the scheduler's I/O poll that found its bytes (a Trio
instrument's ``after_io_wait``, like the gevent hub's poll watcher) until its task runs on
lane 0, the loop; each await is AWAITING, READY from the moment its timer or upstream reply
was due. In the ``blocking`` mode the handler calls ``time.sleep`` inside ``async def``:
BLOCKED, the whole loop held.

A request whose bytes are still arriving is ``reading`` and holds nothing (lane -1), up to
``settings.timeout_s`` from its first byte (then 408); a connection idle for
``keepalive_idle_s`` is closed quietly. The engine stops by cancelling its task group from
another thread through the run's token.
"""

from __future__ import annotations

import contextlib
import socket

import anyio
import trio
from anyio.abc import SocketAttribute, SocketListener, SocketStream

from ..events import Phase, now_ns
from ..handler import CPU, IO, SEND, early_response, error_response, handler_plan
from ..http import CONTINUE, RECV_SIZE, error_page
from ..reading import ReadingTracker
from ..request import HttpError, Request, RequestReader
from ..work import (
    GIL_GAP_NS,
    UPSTREAM_REQUEST,
    UpstreamError,
    parse_sent_ns,
)
from ._asyncio import AsyncWork
from ._loop import LoopEngine

LOOP = 0  # the lane of the loop's thread
ACCEPT_RETRY_S = 0.05  # after a failed accept (e.g. too many open files)
GONE = (OSError, anyio.BrokenResourceError, anyio.ClosedResourceError, anyio.EndOfStream)
"""What a connection that went away raises (the client hung up, reset, or the engine stops)."""


class TrioWork(AsyncWork):
    """Awaits: ``anyio.sleep`` and pooled anyio streams to the upstream."""

    asleep = staticmethod(anyio.sleep)

    async def _aupstream(self, seconds: float) -> int:
        if self._idle:
            stream = self._idle.pop()
        else:
            try:
                stream = await anyio.connect_tcp("127.0.0.1", self.upstream_port or 0)
            except OSError as exc:
                raise UpstreamError(str(exc)) from None
            self._all.append(stream)
        try:
            await stream.send(UPSTREAM_REQUEST % int(seconds * 1e6))
            head = b""
            while b"\r\n\r\n" not in head:
                head += await stream.receive()
        except GONE as exc:
            self._all.remove(stream)
            _close(stream)
            raise UpstreamError(str(exc) or "upstream closed the connection") from None
        self._idle.append(stream)
        return parse_sent_ns(head)

    def close(self) -> None:
        for stream in self._all:
            _close(stream)
        self._all.clear()
        self._idle.clear()


def _close(stream: SocketStream) -> None:
    """Close a stream's socket at once, from anywhere (no await: the run may be over)."""
    with contextlib.suppress(Exception):
        stream.extra(SocketAttribute.raw_socket).close()


class _Polls:
    """A Trio instrument: when the scheduler's I/O poll last returned (requests found by it are READY since)."""

    def __init__(self, engine: TrioEngine) -> None:
        self.engine = engine

    def after_io_wait(self, _timeout: float) -> None:
        engine = self.engine
        engine._t_poll = now_ns()
        engine._polls += 1


class TrioEngine(LoopEngine):
    name = "trio"
    native_work = TrioWork
    thread_name = "trio-engine"
    native: TrioWork

    # -- the loop thread -----------------------------------------------------------------
    def _run(self) -> None:
        self._t_poll, self._polls = now_ns(), 0
        try:
            anyio.run(self._main, backend="trio")
        except BaseException as exc:  # reported by start(); never a traceback on the terminal
            self._error = exc
            self._ready.set()

    async def _main(self) -> None:
        trio.lowlevel.add_instrument(_Polls(self))
        self._token = trio.lowlevel.current_trio_token()
        listener = await SocketListener.from_socket(self._lsock)
        try:
            async with anyio.create_task_group() as tg:
                self._tg = tg
                tg.start_soon(self._tick)
                tg.start_soon(self._accept, listener, tg)
                self._ready.set()
        finally:
            self.native.close()
            self.blocking.close()

    async def _tick(self) -> None:
        for period in self._ticks():
            await anyio.sleep(period)

    async def _accept(self, listener: SocketListener, tg: anyio.abc.TaskGroup) -> None:
        while True:
            try:
                stream = await listener.accept()
            except OSError:
                await anyio.sleep(ACCEPT_RETRY_S)
                continue
            with contextlib.suppress(OSError):
                stream.extra(SocketAttribute.raw_socket).setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            tg.start_soon(self._handle, stream)

    async def _handle(self, stream: SocketStream) -> None:
        """One connection's task: read, serve, repeat; whatever happens, it ends here."""
        track = ReadingTracker(self.provisional_id, self.native.emit_at, self.counts)
        try:
            await self._converse(stream, RequestReader(), track)
        except GONE:
            pass
        except Exception:  # never a task's traceback from a request: the connection closes
            track.fail(now_ns())
        finally:  # also when cancelled (the engine stops): a request still arriving is dropped
            track.close(now_ns())
            _close(stream)

    async def _converse(self, stream: SocketStream, reader: RequestReader, track: ReadingTracker) -> None:
        timeout_s = self.settings.timeout_s
        while True:
            if reader.partial:  # the rest of a request: wait up to its deadline
                track.begin(reader.started_ns, -1, reader.partial_req_id)
                wait = reader.started_ns / 1e9 + timeout_s - now_ns() / 1e9
                if wait <= 0:
                    await self._refuse(stream, track, 408, timeout=True)
                    return
            else:  # between requests: idle until the next one's first byte
                wait = self.keepalive_idle_s
            polls = self._polls
            data = b""
            with anyio.move_on_after(wait):
                data = await stream.receive(RECV_SIZE)
            if not data:  # the deadline passed (EOF raises EndOfStream)
                if reader.partial:
                    await self._refuse(stream, track, 408, timeout=True)
                return
            t = self._t_poll if polls != self._polls else now_ns()  # when the bytes were there to read
            try:
                reqs = reader.feed(data, t)
            except HttpError as exc:
                if not exc.requests or await self._serve_reqs(stream, track, exc.requests, t, polls):
                    await self._refuse(stream, track, exc.status)
                return
            if reader.continue_due:
                reader.continue_due = False
                await stream.send(CONTINUE)
            if reqs and not await self._serve_reqs(stream, track, reqs, t, polls):
                return

    async def _serve_reqs(
        self, stream: SocketStream, track: ReadingTracker, reqs: list[Request], t: int, polls: int
    ) -> bool:
        """Serve complete requests in order; false once the connection must close."""
        track.assign(reqs, t)
        work = self.native
        if polls != self._polls:  # it waited for the loop: READY since the poll that found it
            work.emit_at(self._t_poll, reqs[0].rid, LOOP, Phase.READY)
        for req in reqs:  # pipelined ones run right after the one before
            work.emit(req.rid, LOOP, Phase.RUNNING)
            try:
                ok = await self._serve(req, req.rid, stream)
            except GONE:
                self.counts.add(failed=1)  # the client went away mid-response
                raise
            self.counts.add(served=1, failed=0 if ok else 1)
            if not req.keep_alive:
                return False
        return True

    async def _serve(self, req: Request, rid: int, stream: SocketStream) -> bool:
        """Serve one request, ending it DONE or FAILED; true if DONE (its response is written)."""
        work = self.native
        early = early_response(req)
        if early is not None:
            await self._send(stream, early[0], rid)
            work.end(rid, LOOP, early[1], req.bytes_in, len(early[0]))
            return early[1] == Phase.DONE
        settings = self.settings
        upstream = settings.io == "upstream"
        sent = 0  # the response's bytes written
        try:
            for op, arg in handler_plan(req, settings):
                if op == SEND:
                    await self._send(stream, arg, rid)  # type: ignore[arg-type]
                    sent += len(arg)  # type: ignore[arg-type]
                elif op == IO and self.mode == "blocking":  # the mistake: a blocking call inside async def
                    self.blocking.io(rid, LOOP, arg, upstream)  # type: ignore[arg-type]
                elif op == IO:
                    await work.aio(rid, LOOP, arg, upstream)  # type: ignore[arg-type]
                elif op == CPU:
                    work.cpu(rid, LOOP, arg)  # type: ignore[arg-type]
        except (*GONE, anyio.get_cancelled_exc_class()):
            work.end(rid, LOOP, Phase.FAILED, req.bytes_in, -1)  # how much of it left is unknown
            raise
        except Exception:
            page = error_response(req, settings)
            try:  # the 500 is written first: a send that gives the loop away shows READY before the end
                await self._send(stream, page, rid)
            finally:
                work.emit(rid, LOOP, Phase.FAILED)
            work.size(rid, req.bytes_in, sent + len(page))
            return False
        work.end(rid, LOOP, Phase.DONE, req.bytes_in, sent)
        return True

    async def _send(self, stream: SocketStream, data: bytes, rid: int) -> None:
        """Write ``data``; a send that gave the loop away (its checkpoint, a slow reader) shows as READY."""
        t0 = now_ns()
        await stream.send(data)
        t1 = now_ns()
        if t1 - t0 > GIL_GAP_NS:
            self.native.emit_at(t0, rid, LOOP, Phase.READY)
            self.native.emit_at(t1, rid, LOOP, Phase.RUNNING)

    async def _refuse(self, stream: SocketStream, track: ReadingTracker, status: int, timeout: bool = False) -> None:
        """Answer a refused or timed-out request (``Connection: close``), then read off what is left."""
        track.fail(now_ns(), timeout)
        with contextlib.suppress(*GONE), anyio.move_on_after(1.0):
            await stream.send(error_page(status))
            self.counts.add(served=1)
            await stream.send_eof()
            for _ in range(16):  # unread bytes at close would reset the connection and lose the answer
                if not await stream.receive(RECV_SIZE):
                    break

    # -- stop ----------------------------------------------------------------------------
    def _request_stop(self) -> None:
        tg = getattr(self, "_tg", None)
        token = getattr(self, "_token", None)
        if tg is not None and token is not None:
            with contextlib.suppress(trio.RunFinishedError, RuntimeError):
                token.run_sync_soon(tg.cancel_scope.cancel)
