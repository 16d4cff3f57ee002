"""One prefork worker process, and what it shares with the engine process that starts it.

Run as ``python -m syncviz.engines.backends._prefork_worker lane fds...`` (:func:`worker_main`) by
:class:`~syncviz.engines.backends._prefork.PreforkEngine`, which says how the engine works. A
worker (:class:`_Worker`) is a threaded engine with no pool, serving one request at a time on
its own lane (one more thread only counts what waits behind a long request). What crosses
between the processes is here too: the fixed-size binary records a worker writes over its pipe
(:data:`RECORD`: no pickle), the shared page of free flags (:class:`_Free`) and the datagram a
handed-over connection travels with (:data:`HANDOFF`).
"""

from __future__ import annotations

import contextlib
import itertools
import json
import mmap
import os
import selectors
import signal
import socket
import struct
import sys
import threading
import time
from typing import Any

from ..counts import has_bytes
from ..events import now_ns
from ..placement import die_with_parent
from ..reading import ReadingTracker
from ..registry import MAX_WORKERS
from ..request import EXTERNAL_IDS_START
from ..settings import Settings
from ..work import BlockingWork
from ._threaded import SELECT_S, ThreadedEngine, _Conn

RECORD = struct.Struct("<5q")  # (kind, a, b, c, d): a transition (t, rid, lane, phase), counts or a size
TRANSITION, COUNTS, READY, SIZE = 0, 1, 2, 3  # SIZE: (t, rid, bytes_in, bytes_out) of a finished request
WAITING = 4  # (n, 0, 0, 0): its connections readable behind the one it serves (the engine's ``waiting``)
WAITING_EVERY_NS = 50_000_000  # how often a busy worker counts them (a poll of its selector; counters go at 5 Hz)
WATCH_S = 0.1
"""How often a thread of the worker counts them again while one request holds it for longer than
:data:`WAITING_EVERY_NS`: counted only before each request, a worker held 1.5 s showed the count
from before it (0) while two connections waited. A read-only poll of the selector, GIL held ~20 us."""
HANDOFF = struct.Struct("<q")  # a handed-over connection's datagram: when its giver saw it readable


class _Free:
    """One byte per lane in a page the engine process and its workers share: 1 while that worker
    waits in its selector with nothing of its own to serve (free to take a connection)."""

    def __init__(self, fd: int) -> None:
        self.map = mmap.mmap(fd, MAX_WORKERS)

    def set(self, lane: int, free: bool) -> None:
        self.map[lane] = 1 if free else 0

    def other(self, lane: int) -> int | None:
        """A free worker other than ``lane``, or ``None``."""
        at = self.map.find(b"\x01")
        if at == lane:
            at = self.map.find(b"\x01", lane + 1)
        return None if at < 0 else at


class _Pipe:
    """A worker's side of the pipe: what a :class:`~syncviz.engines.events.Recorder` and a
    :class:`~syncviz.engines.counts.ServerCounts` are to the code it shares with threaded."""

    def __init__(self, fd: int, enabled: bool) -> None:
        self.fd = fd
        self.enabled = enabled
        self.packed = False  # records go out one by one, as tuples (emitters' plain path)

    def put(self, *record: int) -> None:
        os.write(self.fd, RECORD.pack(*record))

    def transition(self, rec: tuple[int, int, int, int, int]) -> None:
        t, _engine, rid, lane, phase = rec
        self.put(TRANSITION, t, rid, lane, phase)

    def size(self, rec: tuple[int, int, int, int, int]) -> None:
        t, _engine, rid, bytes_in, bytes_out = rec
        self.put(SIZE, t, rid, bytes_in, bytes_out)

    def add(self, served: int = 0, failed: int = 0, timeouts: int = 0, reading: int = 0) -> None:
        self.put(COUNTS, served, failed, timeouts, reading)


class _Worker(ThreadedEngine):
    """One worker process: a threaded engine with no pool, its one thread serving one request at a time
    (a second only counts the connections waiting behind a long request: :data:`WATCH_S`)."""

    name = "prefork"

    def __init__(
        self,
        lane: int,
        lsock: socket.socket,
        pipe: _Pipe,
        config: dict[str, Any],
        handoff: tuple[socket.socket, socket.socket],
        free: _Free,
    ) -> None:
        super().__init__(pipe, Settings(**config["settings"]), config["mode"], config["upstream_port"])  # type: ignore[arg-type]
        self.lane = lane
        self.counts = pipe  # type: ignore[assignment]
        self.work = BlockingWork(pipe, self.engine_id, self.upstream_port)  # type: ignore[arg-type]
        self._stopping = False
        self._lsock = lsock
        self._idle_s = float(config["keepalive_idle_s"])
        self._deferred = bool(config["deferred"])  # the kernel accepts only connections that sent (or idled)
        self._held: set[_Conn] = set()  # every connection it has open (parked or being served)
        self._give, self._take = handoff  # the ends of the datagram socket handed connections go through
        self._free = free
        self._waiting_sent = 0  # the last WAITING it sent
        self._waiting_at = 0  # when it last counted them
        self._serving_since = 0  # when the request it serves began (0: none)
        # Server-given ids of its own, interleaved with the other workers' (never the same twice).
        self._external_ids = itertools.count(EXTERNAL_IDS_START + lane, MAX_WORKERS)

    def _tally_ok(self, lane: int) -> None:
        """A request served DONE: counted through the pipe, as every count of a worker is (the engine
        process adds it to its counts; threaded's own per-lane slots are not read here)."""
        self.counts.add(served=1)

    def serve_forever(self, control: int, pending: bytes = b"") -> None:
        """Serve until stopped; ``pending``: control bytes read with the config (settings lines)."""
        sel = selectors.DefaultSelector()
        sel.register(self._lsock, selectors.EVENT_READ, None)
        sel.register(control, selectors.EVENT_READ, None)
        sel.register(self._take, selectors.EVENT_READ, None)
        parked: dict[_Conn, int] = {}  # conn -> idle since
        *lines, pending = pending.split(b"\n")
        for line in lines:
            self.settings = Settings(**json.loads(line))
        self._lsock.setblocking(False)
        self._take.setblocking(False)
        self.counts.put(READY, os.getpid(), 0, 0, 0)  # type: ignore[attr-defined]
        idle_ns = int(self._idle_s * 1e9)
        threading.Thread(target=self._watch_waiting, args=(sel,), name="waiting", daemon=True).start()
        try:
            while not self._stopping:
                pending = self._turn(sel, parked, control, pending, idle_ns)
        finally:
            self._free.set(self.lane, False)
        for conn in list(self._held):  # stopping: the parked ones are idle, nothing of them is recorded
            self._close(conn)

    def _turn(
        self, sel: selectors.BaseSelector, parked: dict[_Conn, int], control: int, pending: bytes, idle_ns: int
    ) -> bytes:
        """One turn of the loop: wait, serve what is readable (handing over what a free sibling can
        take sooner), take one new connection; returns the control bytes not yet a whole line."""
        self._free.set(self.lane, True)  # nothing of its own to serve until the selector says otherwise
        events = sel.select(SELECT_S)
        t = now_ns()  # when the selector saw them readable
        readable: list[_Conn] = []
        backlog = handed = False
        for key, _ in events:
            if key.fileobj is self._lsock:
                backlog = True
            elif key.fileobj is self._take:
                handed = True
            elif key.fileobj == control:
                data = os.read(control, 65536)
                if not data:
                    self._stopping = True  # the engine process closed our stdin (or died)
                    return pending
                pending += data
                *lines, pending = pending.split(b"\n")
                for line in lines:
                    self.settings = Settings(**json.loads(line))
            else:
                conn = key.data
                conn.t_ready = t
                readable.append(conn)
        if readable:
            self._free.set(self.lane, False)
        elif handed:  # free: a busy sibling's waiting connection first (another free one may take it)
            conn = self._take_handed()
            if conn is not None:
                self._free.set(self.lane, False)
                readable.append(conn)
        for i, conn in enumerate(readable):  # one request at a time, in the order the selector saw them
            if parked.pop(conn, None) is not None:
                sel.unregister(conn.sock)
            self._give_away(readable, i + 1, sel, parked)
            self._count_waiting(sel)
            self._serving_since = now_ns()
            try:
                keep = self._serve(conn, self.lane, self._serving_since)
            except Exception:  # never let a request end the worker: drop its connection, go on
                conn.track.fail(now_ns())
                keep = False
            finally:
                self._serving_since = 0
            if keep and not self._stopping:
                sel.register(conn.sock, selectors.EVENT_READ, conn)
                parked[conn] = now_ns()
            else:
                self._close(conn)
        if not readable:
            self._waiting(0)  # free: nothing of its own waits for it
        if backlog and not self._stopping:  # after serving: a sibling free meanwhile has taken it (then EAGAIN)
            self._accept_one(sel, parked)
        cutoff = now_ns() - idle_ns
        for conn in [c for c, since in parked.items() if since < cutoff and not has_bytes(c.sock.fileno())]:
            sel.unregister(conn.sock)
            del parked[conn]
            self._close(conn)
        return pending

    def _count_waiting(self, sel: selectors.BaseSelector) -> None:
        """Before a request: its connections readable now (those behind this one in the turn, and
        parked ones that became readable since), at most every :data:`WAITING_EVERY_NS`."""
        t = now_ns()
        if t - self._waiting_at >= WAITING_EVERY_NS:
            self._waiting_at = t
            self._waiting(sum(isinstance(key.data, _Conn) for key, _ in sel.select(0)))

    def _watch_waiting(self, sel: selectors.BaseSelector) -> None:
        """Count again, every :data:`WATCH_S`, while one request holds the worker (its thread is in
        the request, not in the selector: the poll only reads which connections are readable)."""
        while not self._stopping:
            time.sleep(WATCH_S)
            since = self._serving_since
            if since and now_ns() - since >= WAITING_EVERY_NS:
                with contextlib.suppress(OSError, ValueError, KeyError, RuntimeError):
                    self._count_waiting(sel)

    def _waiting(self, n: int) -> None:
        """Say how many connections wait for this worker now (only when it changed: one record)."""
        if n != self._waiting_sent:
            self._waiting_sent = n
            self.counts.put(WAITING, n, 0, 0, 0)  # type: ignore[attr-defined]

    def _give_away(
        self, readable: list[_Conn], start: int, sel: selectors.BaseSelector, parked: dict[_Conn, int]
    ) -> None:
        """Hand the requests waiting behind the one about to be served (``readable[start:]``, last first)
        to free siblings, one each, while there are any: they would wait here, not in the backlog."""
        while len(readable) > start and not self._stopping:
            lane = self._free.other(self.lane)
            if lane is None:
                return
            conn = readable[-1]
            if conn.reader.partial or conn.track.reading:  # mid-request: its state is this worker's
                return
            try:
                socket.send_fds(self._give, [HANDOFF.pack(conn.t_ready)], [conn.sock.fileno()], socket.MSG_DONTWAIT)
            except OSError:  # the queue is full: serve it here
                return
            self._free.set(lane, False)  # taken, as far as the other givers are concerned
            readable.pop()
            if parked.pop(conn, None) is not None:
                sel.unregister(conn.sock)
            self._close(conn)  # the descriptor in flight keeps the connection open

    def _take_handed(self) -> _Conn | None:
        """A connection a busy sibling handed over (another free worker may have taken it first)."""
        try:
            msg, fds, _flags, _addr = socket.recv_fds(self._take, HANDOFF.size, 1, socket.MSG_DONTWAIT)
        except OSError:  # BlockingIOError: a sibling took it
            return None
        if not fds:
            return None
        sock = socket.socket(fileno=fds[0])
        sock.setblocking(False)  # ThreadedEngine._serve's sockets are non-blocking
        conn = self._conn(sock)
        conn.t_ready = HANDOFF.unpack(msg)[0] if len(msg) == HANDOFF.size else now_ns()
        self._held.add(conn)
        return conn

    def _conn(self, sock: socket.socket) -> _Conn:
        track = ReadingTracker(self.provisional_id, self.work.emit_at, self.counts)  # type: ignore[arg-type]
        return _Conn(sock, track, self._timeout_s)

    def stop_now(self) -> None:
        """SIGTERM: what threaded's stop does, in this one thread. Waits and CPU steps end, and every
        connection's reads see EOF (the interrupted ``recv`` resumes and returns nothing), so a request
        being read or served ends FAILED and the reading count goes back down before the worker exits."""
        self._stopping = True
        self.work.stopping = True
        self.work.abort()
        for conn in list(self._held):
            with contextlib.suppress(OSError):
                conn.sock.shutdown(socket.SHUT_RD)

    def _close(self, conn: _Conn) -> None:
        self._held.discard(conn)
        conn.sock.close()

    def _accept_one(self, sel: selectors.BaseSelector, parked: dict[_Conn, int]) -> None:
        """Take one connection from the shared backlog (another worker may have taken it first)."""
        try:
            sock, _ = self._lsock.accept()
        except OSError:  # BlockingIOError: a sibling took it; EMFILE: later
            return
        if self._deferred and not has_bytes(sock.fileno()):  # silent since it connected, the idle time: close it
            sock.close()
            return
        sock.setblocking(False)  # ThreadedEngine._serve's sockets are non-blocking
        with contextlib.suppress(OSError):
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        conn = self._conn(sock)
        self._held.add(conn)
        sel.register(sock, selectors.EVENT_READ, conn)
        parked[conn] = now_ns()


def worker_main(argv: list[str]) -> int:
    """A worker process: ``lane listen_fd pipe_fd give_fd take_fd free_fd``; its config (a JSON line)
    and settings on stdin."""
    lane, lfd, pfd, gfd, tfd, ffd = (int(a) for a in argv)
    die_with_parent()  # the engine process
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the engine process decides when we end
    control = sys.stdin.fileno()
    line = b""
    while b"\n" not in line:
        data = os.read(control, 65536)
        if not data:
            return 0
        line += data
    line, rest = line.split(b"\n", 1)  # settings sent right after it may have come in the same read
    config = json.loads(line)
    lsock = socket.socket(fileno=lfd)
    handoff = (socket.socket(fileno=gfd), socket.socket(fileno=tfd))
    worker = _Worker(lane, lsock, _Pipe(pfd, bool(config["record"])), config, handoff, _Free(ffd))
    signal.signal(signal.SIGTERM, lambda *_: worker.stop_now())
    try:
        worker.serve_forever(control, rest)
    except (BrokenPipeError, KeyboardInterrupt):  # the engine process is gone
        return 0
    return 0


if __name__ == "__main__":
    sys.exit(worker_main(sys.argv[1:]))
