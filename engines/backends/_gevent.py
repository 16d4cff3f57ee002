"""The gevent engine: one hub in its own thread, one greenlet per connection.

Like ``gunicorn -k gevent``, but with no monkey patching: the handler uses gevent's own
``sleep`` and sockets, so its waits switch to the hub (YIELDED). In the ``blocking`` mode it
gets the stdlib versions instead, which never yield: the whole hub is BLOCKED.

The hub is this thread's own (``gevent.get_hub()`` inside it); it is stopped from outside
through ``hub.loop.run_callback_threadsafe`` and destroyed when ``serve_forever`` returns.

A request whose bytes are still arriving is ``reading``: its greenlet waits in ``recv``
(lane -1: the hub serves others), up to ``settings.timeout_s`` from its first byte (then
408); it still takes one of the pool's greenlets, so a crowd of slow clients can fill the
pool (``pool_used`` of the server counts). A connection idle for ``keepalive_idle_s`` is closed
by a sweep (as the asyncio engine's): a read between requests starts no timer of its own.
"""

from __future__ import annotations

from collections.abc import Callable

import gevent
import gevent.pool
import gevent.server
import gevent.socket

from ..counts import ServerSnapshot, has_bytes
from ..events import Phase, now_ns
from ..handler import SEND, instant_answer
from ..http import CONTINUE, RECV_SIZE, error_page, send_final
from ..reading import ReadingTracker
from ..registry import GEVENT_POOL
from ..request import HttpError, Request, RequestReader
from ..work import BlockingWork, Send, run_plan, serve_sync
from ._loop import LoopEngine

HUB = 0  # the lane of the hub's thread
IDLE_SWEEP_S = 0.5  # how often idle keep-alive connections are looked for
RUNNING, READY, DONE, FAILED = (int(p) for p in (Phase.RUNNING, Phase.READY, Phase.DONE, Phase.FAILED))  # plain ints


class GeventWork(BlockingWork):
    """Cooperative: ``gevent.sleep`` and gevent sockets switch to the hub while waiting."""

    WAIT_PHASE = Phase.YIELDED
    sockets = gevent.socket
    sleep = staticmethod(gevent.sleep)


class GeventEngine(LoopEngine):
    name = "gevent"
    native_work = GeventWork
    thread_name = "gevent-hub"

    def start(self) -> int:
        self.counts.pool_size = GEVENT_POOL
        return super().start()

    def server_snapshot(self, t_ns: int) -> ServerSnapshot:
        pool = getattr(self, "_pool", None)
        if pool is not None:
            self.counts.pool_used = len(pool)  # greenlets in use now (a plain read from another thread)
        return super().server_snapshot(t_ns)

    def _run(self) -> None:
        hub = gevent.get_hub()  # this thread's own hub and loop
        self._hub = hub
        try:
            listener = gevent.socket.socket(fileno=self._lsock.detach())
            self.counts.listener = listener  # type: ignore[assignment]  # the same socket: its accept queue
            self._pool = gevent.pool.Pool(GEVENT_POOL)
            self._server = gevent.server.StreamServer(listener, self._handle, spawn=self._pool)
            self._server.start()
            self._ticker = gevent.spawn(self._tick)
            self._idle: dict[gevent.socket.socket, int] = {}  # connection -> idle since (0: a request under way)
            self._sweeper = gevent.spawn(self._sweep_idle)
            # A high-priority check watcher runs right after each poll, before the I/O
            # callbacks that switch into the woken greenlets: its time is when they turned READY.
            self._t_poll, self._polls = now_ns(), 0
            self._poll_watcher = hub.loop.check()
            self._poll_watcher.priority = 2
            self._poll_watcher.start(self._polled)
            self._ready.set()
            self._server.serve_forever()
        except BaseException as exc:  # reported by start(); never a traceback on the terminal
            self._error = exc
            self._ready.set()
        finally:
            if getattr(self, "_poll_watcher", None) is not None:
                self._poll_watcher.stop()
                self._poll_watcher.close()
            self.native.close()
            self.blocking.close()
            hub.destroy(destroy_loop=True)

    def _tick(self) -> None:
        for period in self._ticks():
            gevent.sleep(period)

    def _polled(self) -> None:
        self._t_poll = now_ns()
        self._polls += 1

    def _timeout_s(self) -> float:
        return self.settings.timeout_s

    def _sweep_idle(self) -> None:
        """Close, quietly, connections idle (no byte of a next request) for ``keepalive_idle_s``: their
        greenlet's ``recv`` ends with an OSError (closed in another greenlet) and it returns."""
        idle_ns = int(self.keepalive_idle_s * 1e9)
        while True:
            gevent.sleep(min(IDLE_SWEEP_S, self.keepalive_idle_s / 4))
            cutoff = now_ns() - idle_ns
            for sock in [s for s, since in self._idle.items() if 0 < since < cutoff]:
                if not has_bytes(sock.fileno()):  # its next request arrived: the hub has not got to it
                    sock.close()

    def _handle(self, sock: gevent.socket.socket, _address: object) -> None:
        """One connection's greenlet: read, serve, repeat; whatever happens, it ends here."""
        track = ReadingTracker(self.new_id, self.native.emit_at, self.counts)
        try:
            self._converse(sock, RequestReader(), track)
        except Exception:  # never a greenlet's traceback from a request: the connection closes
            track.fail(now_ns())
        finally:  # also on GreenletExit (the engine stops): a request still arriving is dropped
            self._idle.pop(sock, None)
            track.close(now_ns())
            sock.close()

    def _converse(self, sock: gevent.socket.socket, reader: RequestReader, track: ReadingTracker) -> None:
        timeout_s = self.settings.timeout_s
        idle = self._idle
        send = _sender(sock, self._timeout_s)
        sock.settimeout(None)  # between requests the sweep closes it once idle too long
        while True:
            if reader.partial:  # the rest of a request: wait up to its deadline
                idle[sock] = 0
                track.begin(reader.started_ns, -1, reader.partial_req_id)
                left = reader.started_ns / 1e9 + timeout_s - now_ns() / 1e9
                if left <= 0:
                    self._refuse(sock, track, 408, timeout=True)
                    return
                sock.settimeout(left)
            else:  # between requests: idle until the next one's first byte
                idle[sock] = now_ns()
            polls = self._polls
            try:
                data = sock.recv(RECV_SIZE)
            except TimeoutError:  # only a request's deadline times a read out
                self._refuse(sock, track, 408, timeout=True)
                return
            except OSError:
                return
            if not data:
                return
            t = self._t_poll if polls != self._polls else now_ns()  # when the bytes were there to read
            idle[sock] = 0
            if reader.partial:
                sock.settimeout(None)
            try:
                reqs = reader.feed(data, t)
            except HttpError as exc:
                if not exc.requests or self._serve_reqs(sock, send, track, exc.requests, t, polls):
                    self._refuse(sock, track, exc.status)
                return
            if reader.continue_due:
                reader.continue_due = False
                send(CONTINUE)
            if reqs and not self._serve_reqs(sock, send, track, reqs, t, polls):
                return

    def _serve_reqs(
        self, sock: gevent.socket.socket, send: Send, track: ReadingTracker, reqs: list[Request], t: int, polls: int
    ) -> bool:
        """Serve complete requests in order; false once the connection must close."""
        track.assign(reqs, t)
        work = self.native if self.mode == "native" else self.blocking
        counts, settings = self.counts, self.settings
        if polls != self._polls:  # it waited for the hub: READY since the poll that woke it
            work.emit_at(self._t_poll, reqs[0].rid, HUB, READY)
        for req in reqs:  # pipelined ones run right after the one before
            try:
                ok = self._sent_at_once(req, sock, send)
                if ok is None:
                    work.emit(req.rid, HUB, RUNNING)
                    ok = serve_sync(req, req.rid, HUB, work, settings, send)
            except OSError:
                counts.add(failed=1)  # the client went away mid-response
                return False
            if ok:
                self._served_ok += 1  # counts.add(served=1) without its lock: the hub alone counts here
            else:
                counts.add(served=1, failed=1)
            if not req.keep_alive:
                return False
        return True

    def _sent_at_once(self, req: Request, sock: gevent.socket.socket, send: Send) -> bool | None:
        """Serve the commonest request as :func:`~syncviz.engines.work.serve_sync` would, the same
        records and bytes: the handler's own path, natively, a plan of one write (zero latency).
        When one non-blocking send takes the answer whole, nothing could hold the hub meanwhile:
        RUNNING and DONE are recorded in one call; otherwise RUNNING is recorded before the rest is
        sent as ``serve_sync`` sends it (waiting for a slow reader). True (DONE); None when it is
        not that request (nothing done or recorded). OSError: the client went away (FAILED)."""
        t_run = now_ns()
        if self.mode != "native":
            return None
        data = instant_answer(req, self.settings)
        if data is None:
            return None  # a plan that waits, early_response's answers, /boom's 500
        work, rid = self.native, req.rid
        try:
            n = sock.send(data, 0, 0.0)
        except BlockingIOError:
            n = 0
        except OSError:
            work.emit_at(t_run, rid, HUB, RUNNING)
            work.end(rid, HUB, FAILED, req.bytes_in, -1)
            raise
        if n == len(data):
            work.ran(rid, HUB, t_run, req.bytes_in, n)
            return True
        work.emit_at(t_run, rid, HUB, RUNNING)  # the rest waits for the client to read
        try:
            run_plan(((SEND, data[n:]),), rid, HUB, work, False, send)
        except OSError:
            work.end(rid, HUB, FAILED, req.bytes_in, -1)
            raise
        work.end(rid, HUB, DONE, req.bytes_in, len(data))
        return True

    def _refuse(self, sock: gevent.socket.socket, track: ReadingTracker, status: int, timeout: bool = False) -> None:
        track.fail(now_ns(), timeout)
        send_final(sock, error_page(status), lambda: self.counts.add(served=1))

    def _request_stop(self) -> None:
        def stop_in_hub() -> None:
            gevent.spawn(self._shutdown)

        self._hub.loop.run_callback_threadsafe(stop_in_hub)

    def _shutdown(self) -> None:
        """Runs in the hub: close the listener, kill idle keep-alive handlers, then stop."""
        self._server.close()
        self._ticker.kill(block=False)
        self._sweeper.kill(block=False)
        self._pool.kill(block=True, timeout=1)
        self._server.stop(timeout=0)


def _sender(sock: gevent.socket.socket, timeout_s: Callable[[], float]) -> Send:
    """``sock.sendall`` for a response: one ``send`` that does not wait when the buffer has room (the
    common case: gevent's ``sendall`` asks the buffer's size first, a syscall), else the rest within
    ``timeout_s()`` seconds (a client that stops reading)."""

    def send(data: bytes) -> None:
        try:
            n = sock.send(data, 0, 0.0)
        except BlockingIOError:
            n = 0
        if n < len(data):
            timeout = sock.gettimeout()
            sock.settimeout(timeout_s())
            try:
                sock.sendall(memoryview(data)[n:])
            finally:
                sock.settimeout(timeout)

    return send
