"""The threaded engine: gunicorn gthread's shape (also Flask, sync Django behind it).

One selector thread accepts connections and parks idle keep-alive ones. When a parked
connection turns readable it is handed to a fixed pool of worker threads for ONE request
(or the several a client pipelined), then given back to the selector. (A pool thread that
owned a connection for its life would serve ``pool`` clients and starve the rest.) A worker
holds its thread for the whole request, blocking calls included: lane = worker index.

It also holds its thread while it waits in ``recv`` for the rest of a request the client has
not finished sending (the ``reading`` phase, on that worker's lane): the real sync-worker
weakness, bounded by the read timeout (``settings.timeout_s`` from the request's first byte,
then 408). A parked connection idle longer than :data:`KEEPALIVE_IDLE_S` is closed quietly.
"""

from __future__ import annotations

import contextlib
import functools
import queue
import socket
import threading
from collections import OrderedDict, deque
from collections.abc import Callable
from typing import ClassVar

from ..base import STOP_TIMEOUT_S, Engine, join_threads, listen
from ..counts import KEEPALIVE_IDLE_S, ServerSnapshot, has_bytes
from ..events import Phase, now_ns
from ..http import CONTINUE, RECV_SIZE, error_page, send_final
from ..reading import ReadingTracker
from ..request import HttpError, Request, RequestReader
from ..settings import Settings
from ..watchdog import WorkerWatchdog
from ..work import BlockingWork, Work, serve_sync
from ._poller import Poller

IDLE_POLL_S = 0.2  # how often an idle worker checks whether the pool shrank
SELECT_S = 0.25  # the selector's longest wait: how late past its idle timeout a parked connection closes


RUNNING = int(Phase.RUNNING)  # a plain int on the hot path: no enum lookup


class _Conn:
    """A connection: its socket (non-blocking: the selector says when it has bytes), parser and reading state."""

    __slots__ = ("reader", "send", "sock", "t_ready", "track")

    def __init__(self, sock: socket.socket, track: ReadingTracker, timeout_s: Callable[[], float]) -> None:
        self.sock = sock
        self.reader = RequestReader()
        self.track = track
        self.t_ready = 0  # when the selector saw its bytes (a request's deadline counts from them)
        self.send = functools.partial(send_all, sock, timeout_s)


def send_all(sock: socket.socket, timeout_s: Callable[[], float], data: bytes) -> None:
    """``sock.sendall(data)`` on a non-blocking socket: one ``send`` when the buffer has room (the
    common case, one syscall), else the rest within ``timeout_s()`` seconds (TimeoutError after)."""
    try:
        n = sock.send(data)
    except BlockingIOError:
        n = 0
    if n < len(data):
        sock.settimeout(timeout_s())
        try:
            sock.sendall(memoryview(data)[n:])
        finally:
            sock.setblocking(False)


def recv_within(sock: socket.socket, seconds: float) -> bytes:
    """Wait up to ``seconds`` for bytes on a non-blocking socket (TimeoutError after)."""
    sock.settimeout(seconds)
    try:
        return sock.recv(RECV_SIZE)
    finally:
        sock.setblocking(False)


class ThreadedEngine(Engine):
    name = "threaded"
    keepalive_idle_s: ClassVar[float] = KEEPALIVE_IDLE_S

    def start(self) -> int:
        self._lsock = listen(self.host, self.port)
        self.counts.listener = self._lsock  # its accept queue: counts.accept_queue
        self._lsock.setblocking(False)
        self.port = self._lsock.getsockname()[1]
        self.work = BlockingWork(self.recorder, self.engine_id, self.upstream_port)
        self._sel = Poller()
        self._wake_r, self._wake_w = socket.socketpair()
        self._wake_r.setblocking(False)
        self._wake_w.setblocking(False)
        self._returned: deque[_Conn] = deque()
        self._jobs: queue.SimpleQueue[_Conn | None] = queue.SimpleQueue()
        self._stopping = False
        self._wake_due = False  # a wake-up byte is on its way to the selector
        self._new_id = self._external_ids.__next__  # provisional_id without its lock (next() is atomic)
        self._target = self.settings.pool
        self.counts.workers = self._target
        self._ok_by_lane: list[int] = []  # requests served DONE by each lane, counted by that lane's thread alone
        self._ok_folded = 0  # of their sum, already added to self.counts (by server_snapshot)
        self._fold_lock = threading.Lock()
        self._workers: dict[int, threading.Thread] = {}
        self._open: set[_Conn] = set()
        self._open_lock = threading.Lock()
        self._parked: OrderedDict[_Conn, int] = OrderedDict()  # the selector thread's: conn -> idle since
        self._sel.watch(self._lsock)
        self._sel.watch(self._wake_r)
        self._acceptor = threading.Thread(target=self._select_loop, name="threaded-selector", daemon=True)
        self._acceptor.start()
        self._grow()
        # Which blocking call each parked worker is in: a frame of Work.io on its stack (phase blocked).
        self._start_watchdog(WorkerWatchdog(self.name, lambda: self._workers, [Work.io.__code__]))
        return self.port

    def _timeout_s(self) -> float:
        return self.settings.timeout_s

    # -- pool ---------------------------------------------------------------------------
    def _grow(self) -> None:
        ok = self._ok_by_lane
        if len(ok) < self._target:
            ok.extend([0] * (self._target - len(ok)))  # before any thread of a new lane counts in it
        for lane in range(self._target):
            thread = self._workers.get(lane)
            if thread is None or not thread.is_alive():
                thread = threading.Thread(target=self._worker, args=(lane,), name=f"threaded-{lane}", daemon=True)
                self._workers[lane] = thread
                thread.start()

    def apply(self, settings: Settings) -> None:
        super().apply(settings)
        if settings.pool != self._target:
            self._target = settings.pool  # workers above it retire after their current request
            self.counts.workers = settings.pool
            self._grow()

    def _worker(self, lane: int) -> None:
        get = self._jobs.get
        while not self._stopping and lane < self._target:
            try:
                conn = get(timeout=IDLE_POLL_S)
            except queue.Empty:
                continue
            if conn is None:
                break
            if self._stopping:
                self._close(conn)
                break
            try:
                keep = self._serve(conn, lane, now_ns())
            except Exception:  # never let a request kill a pool thread: drop its connection, go on
                conn.track.fail(now_ns())
                keep = False
            if keep and not self._stopping:
                self._returned.append(conn)
                if not self._wake_due:  # one wake-up byte until the selector takes them back
                    self._wake_due = True
                    _send_quietly(self._wake_w, b"x")
            else:
                self._close(conn)

    def _serve(self, conn: _Conn, lane: int, t_taken: int) -> bool:
        """Read and serve what a readable connection has; true to park it again (keep-alive).

        While a request is partial this thread waits in ``recv`` for the rest (held, on its
        lane as ``reading``) until the read deadline, counted from the request's first byte.
        The socket is non-blocking: the first read takes what the selector saw arrive.
        """
        sock, reader, track = conn.sock, conn.reader, conn.track
        t_free = t_taken  # since when this thread is free to read (its lane shows nothing else)
        t_arrived = conn.t_ready  # the first read gets bytes that were there when the selector saw them
        served = False
        while True:
            try:
                if reader.partial:
                    track.begin(max(reader.started_ns, t_free), lane, reader.partial_req_id)
                    left = reader.started_ns / 1e9 + self.settings.timeout_s - now_ns() / 1e9
                    if left <= 0:
                        return self._refuse(conn, 408, timeout=True)
                    data = recv_within(sock, left)
                else:
                    try:
                        data = sock.recv(RECV_SIZE)  # the selector saw it readable: the bytes are there
                    except BlockingIOError:  # they were not (a spurious wake-up): wait as a blocking read would
                        data = recv_within(sock, self.settings.timeout_s)
            except TimeoutError:
                return self._refuse(conn, 408, timeout=True) if reader.partial else False
            except OSError:
                data = b""
            t = t_arrived or now_ns()
            t_arrived = 0
            if not data:
                track.close(t)  # the client left (mid-request: a failure) or the engine stops
                return False
            try:
                reqs = reader.feed(data, t)
            except HttpError as exc:
                if exc.requests and not self._run(conn, exc.requests, lane, t, t if served else t_taken):
                    return False
                return self._refuse(conn, exc.status)
            if reader.continue_due:
                reader.continue_due = False
                try:
                    conn.send(CONTINUE)
                except OSError:
                    track.close(now_ns())
                    return False
            if reqs:
                if not self._run(conn, reqs, lane, t, t if served else t_taken):
                    return False
                served = True
                t_free = now_ns()
            if not reader.partial:
                return True

    def _run(self, conn: _Conn, reqs: list[Request], lane: int, t: int, t_run: int) -> bool:
        """Serve complete requests in order (the first RUNNING from ``t_run``); false to close."""
        track = conn.track
        if track.reading:
            t_run = t  # it was read over several reads: it runs from its last byte
        track.assign(reqs, t)
        work, emit_at, counts, send, settings = self.work, self.work.emit_at, self.counts, conn.send, self.settings
        tally_ok = self._tally_ok
        for req in reqs:
            emit_at(t_run, req.rid, lane, RUNNING)
            try:
                ok = serve_sync(req, req.rid, lane, work, settings, send)
            except OSError:
                counts.add(failed=1)  # the client went away mid-response (or the engine stops)
                return False
            if ok:
                tally_ok(lane)
            else:
                counts.add(served=1, failed=1)
            if not req.keep_alive or self._stopping:
                return False
            t_run = now_ns()
        return True

    def _tally_ok(self, lane: int) -> None:
        """A request served DONE: counted in its lane's slot without the counts' lock (only this lane's
        thread writes it; ~0.08 us against ~0.32 us through the lock), added in by :meth:`server_snapshot`."""
        self._ok_by_lane[lane] += 1

    def server_snapshot(self, t_ns: int) -> ServerSnapshot:
        """The source counters now, the lanes' own counts of requests served (``_tally_ok``) added in,
        and the connections waiting in the hand-off queue for a worker (``waiting``)."""
        with self._fold_lock:
            n = sum(self._ok_by_lane)  # each slot read whole: never more than was served
            if n != self._ok_folded:
                self.counts.add(served=n - self._ok_folded)
                self._ok_folded = n
        self.counts.waiting = self._jobs.qsize()  # readable connections no worker has taken (slow clients too)
        return self.counts.snapshot(t_ns)

    def _refuse(self, conn: _Conn, status: int, timeout: bool = False) -> bool:
        """Answer a refused or timed-out request (``Connection: close``); always false (close)."""
        conn.track.fail(now_ns(), timeout)
        send_final(conn.sock, error_page(status), lambda: self.counts.add(served=1))
        return False

    # -- selector thread ---------------------------------------------------------------
    def _select_loop(self) -> None:
        sel, parked, lsock, wake_r = self._sel, self._parked, self._lsock, self._wake_r
        idle_ns = int(self.keepalive_idle_s * 1e9)
        while not self._stopping:
            ready = sel.poll(SELECT_S)
            t = now_ns()
            for obj in ready:
                if obj is lsock:
                    self._accept()
                elif obj is wake_r:
                    self._take_back()
                else:  # a parked connection, disarmed by the poller until it is parked again
                    parked.pop(obj, None)
                    obj.t_ready = t
                    self._jobs.put(obj)
            if parked:
                self._close_idle(t - idle_ns)
        self._shutdown_selector()

    def _accept(self) -> None:
        while True:
            try:
                sock, _ = self._lsock.accept()
            except (BlockingIOError, InterruptedError):
                return
            except OSError:
                return  # e.g. too many open files: try again on the next readiness
            sock.setblocking(False)
            with contextlib.suppress(OSError):
                sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            track = ReadingTracker(self._new_id, self.work.emit_at, self.counts)
            conn = _Conn(sock, track, self._timeout_s)
            with self._open_lock:
                self._open.add(conn)
            self._park(conn)

    def _take_back(self) -> None:
        try:
            while self._wake_r.recv(4096):
                pass
        except (BlockingIOError, InterruptedError):
            pass
        # After the bytes are read, before the connections are: one returned from now on is either
        # taken below or sends a new wake-up byte (a flag cleared earlier could be left set with no byte).
        self._wake_due = False
        while self._returned:
            self._park(self._returned.popleft())

    def _park(self, conn: _Conn) -> None:
        """Wait in the selector for the connection's next request (idle: no worker holds it)."""
        try:
            self._sel.arm(conn)
        except (ValueError, KeyError, OSError):
            self._close(conn)
            return
        self._parked[conn] = now_ns()

    def _close_idle(self, cutoff: int) -> None:
        """Close, quietly, parked connections idle since before ``cutoff`` (oldest first)."""
        parked = self._parked
        while parked:
            conn, since = next(iter(parked.items()))
            if since > cutoff:
                return
            del parked[conn]
            if has_bytes(conn.sock.fileno()):  # its request came after the poll: the next poll hands it on
                parked[conn] = cutoff + int(self.keepalive_idle_s * 1e9)  # not idle as of now
                continue
            self._close(conn)

    def _close(self, conn: _Conn) -> None:
        with self._open_lock:
            self._open.discard(conn)
        self._sel.forget(conn)  # before the close: its descriptor's number may be reused at once
        conn.sock.close()

    def _shutdown_selector(self) -> None:
        self._sel.close()
        self._lsock.close()

    # -- stop ---------------------------------------------------------------------------
    def stop(self, timeout: float = STOP_TIMEOUT_S) -> None:
        if getattr(self, "_stopping", True):
            return
        deadline = now_ns() + int(timeout * 1e9)
        self._stop_watchdog(deadline)
        self._stopping = True
        self.work.stopping = True  # CPU steps and waits in progress end now
        self.work.abort()  # so does a call parked on the upstream
        _send_quietly(self._wake_w, b"x")
        join_threads(self.name, [self._acceptor], deadline)
        with self._open_lock:
            serving = list(self._open)
        for conn in serving:  # a worker waiting for the rest of a request reads EOF now
            with contextlib.suppress(OSError):
                conn.sock.shutdown(socket.SHUT_RD)
        for _ in self._workers:
            self._jobs.put(None)
        join_threads(self.name, list(self._workers.values()), deadline)
        while True:  # jobs nobody took: close their sockets
            try:
                conn = self._jobs.get_nowait()
            except queue.Empty:
                break
            if conn is not None:
                self._close(conn)
        with self._open_lock:
            leftovers = list(self._open)
            self._open.clear()
        for conn in leftovers:
            conn.sock.close()
        self._parked.clear()
        self._wake_r.close()
        self._wake_w.close()
        self.work.close()


def _send_quietly(sock: socket.socket, data: bytes) -> None:
    with contextlib.suppress(OSError):
        sock.sendall(data)
