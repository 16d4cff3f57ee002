"""The threaded engine: gunicorn gthread's shape (also Flask, sync Django behind it).

One selector thread accepts connections and parks idle keep-alive ones. When a parked
connection turns readable it is handed to a fixed pool of worker threads for ONE request,
then given back to the selector. (A pool thread that owned a connection for its life would
serve ``pool`` clients and starve the rest.) A worker holds its thread for the whole
request, blocking calls included: lane = worker index.
"""

from __future__ import annotations

import contextlib
import queue
import selectors
import socket
import threading
from collections import deque

from ..base import STOP_TIMEOUT_S, Engine, join_threads, listen
from ..events import Phase, now_ns
from ..http import BAD_REQUEST, BadRequest, parse_request
from ..settings import Settings
from ..work import BlockingWork, serve_sync

READ_TIMEOUT_S = 30.0  # a worker waiting for the rest of a request gives up after this
IDLE_POLL_S = 0.2  # how often an idle worker checks whether the pool shrank


class _Conn:
    __slots__ = ("buf", "sock")

    def __init__(self, sock: socket.socket) -> None:
        self.sock = sock
        self.buf = bytearray()


class ThreadedEngine(Engine):
    name = "threaded"

    def start(self) -> int:
        self._lsock = listen(self.host, self.port)
        self._lsock.setblocking(False)
        self.port = self._lsock.getsockname()[1]
        self.work = BlockingWork(self.recorder, self.engine_id, self.upstream_port)
        self._sel = selectors.DefaultSelector()
        self._wake_r, self._wake_w = socket.socketpair()
        self._wake_r.setblocking(False)
        self._wake_w.setblocking(False)
        self._returned: deque[_Conn] = deque()
        self._jobs: queue.SimpleQueue[_Conn | None] = queue.SimpleQueue()
        self._stopping = False
        self._target = self.settings.pool
        self._workers: dict[int, threading.Thread] = {}
        self._open: set[_Conn] = set()
        self._open_lock = threading.Lock()
        self._sel.register(self._lsock, selectors.EVENT_READ, None)
        self._sel.register(self._wake_r, selectors.EVENT_READ, None)
        self._acceptor = threading.Thread(target=self._select_loop, name="threaded-selector", daemon=True)
        self._acceptor.start()
        self._grow()
        return self.port

    # -- pool ---------------------------------------------------------------------------
    def _grow(self) -> None:
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
            self._serve_one(conn, lane, now_ns())

    def _serve_one(self, conn: _Conn, lane: int, t_taken: int) -> None:
        sock = conn.sock
        try:
            sock.settimeout(READ_TIMEOUT_S)
            req, used = parse_request(conn.buf)
            while req is None:
                data = sock.recv(65536)
                if not data:
                    self._close(conn)
                    return
                conn.buf += data
                req, used = parse_request(conn.buf)
            del conn.buf[:used]
            rid = self.request_id(req)
            self.work.emit_at(t_taken, rid, lane, Phase.RUNNING)
            serve_sync(req, rid, lane, self.work, self.settings, sock.sendall)
        except BadRequest:
            _send_quietly(sock, BAD_REQUEST)
            self._close(conn)
            return
        except OSError:
            self._close(conn)
            return
        if not req.keep_alive or self._stopping:
            self._close(conn)
        elif conn.buf:
            self._jobs.put(conn)  # a pipelined request is already here
        else:
            self._returned.append(conn)
            _send_quietly(self._wake_w, b"x")

    # -- selector thread ---------------------------------------------------------------
    def _select_loop(self) -> None:
        sel = self._sel
        while not self._stopping:
            for key, _ in sel.select(timeout=0.5):
                obj = key.fileobj
                if obj is self._lsock:
                    self._accept()
                elif obj is self._wake_r:
                    self._take_back()
                else:
                    sel.unregister(obj)
                    self._jobs.put(key.data)
        self._shutdown_selector()

    def _accept(self) -> None:
        while True:
            try:
                sock, _ = self._lsock.accept()
            except (BlockingIOError, InterruptedError):
                return
            except OSError:
                return  # e.g. too many open files: try again on the next readiness
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            conn = _Conn(sock)
            with self._open_lock:
                self._open.add(conn)
            self._sel.register(sock, selectors.EVENT_READ, conn)

    def _take_back(self) -> None:
        try:
            while self._wake_r.recv(4096):
                pass
        except (BlockingIOError, InterruptedError):
            pass
        while self._returned:
            conn = self._returned.popleft()
            try:
                self._sel.register(conn.sock, selectors.EVENT_READ, conn)
            except (ValueError, KeyError, OSError):
                self._close(conn)

    def _close(self, conn: _Conn) -> None:
        with self._open_lock:
            self._open.discard(conn)
        conn.sock.close()

    def _shutdown_selector(self) -> None:
        self._sel.close()
        self._lsock.close()

    # -- stop ---------------------------------------------------------------------------
    def stop(self, timeout: float = STOP_TIMEOUT_S) -> None:
        if getattr(self, "_stopping", True):
            return
        deadline = now_ns() + int(timeout * 1e9)
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
        self._wake_r.close()
        self._wake_w.close()
        self.work.close()


def _send_quietly(sock: socket.socket, data: bytes) -> None:
    with contextlib.suppress(OSError):
        sock.sendall(data)
