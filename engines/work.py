"""The handler's work: CPU and I/O steps, behind one small interface each engine implements.

:class:`Work` is that interface: ``cpu`` (the same everywhere: pure Python measured in thread
CPU time) and ``io`` (a sleep, or a real round trip to the upstream service). Subclasses
only say *how* they wait: :class:`BlockingWork` parks the thread (``time.sleep``, a blocking
socket); the gevent engine's version yields to the hub; the asyncio engine's awaits. The
"mistake" scenarios hand :class:`BlockingWork` to an async engine on purpose.

Every wait is recorded as it really happened: the waiting phase when it starts, ``ready``
from the moment the thing waited for completed (the timer's deadline, or the upstream's
send time) and ``running`` when the code really runs again.

Once a request ends, :attr:`Work.size` records its bytes: ``(t_ns, engine, rid, bytes_in,
bytes_out)`` (:data:`~syncviz.engines.events.Size`), ``bytes_out`` the sum of the writes that
completed (-1 when the client went away mid-response: how much of it left is unknown).
"""

from __future__ import annotations

import contextlib
import socket
import time
from collections.abc import Callable

from .events import RECORD, RECORDS_2, Phase, Recorder, now_ns
from .handler import IO, SEND, Plan, early_response, error_response, handler_plan
from .request import Request
from .settings import Settings

Emit = Callable[[int, int, int], None]  # (rid, lane, phase)
EmitAt = Callable[[int, int, int, int], None]  # (t_ns, rid, lane, phase)
Send = Callable[[bytes], object]
SizeAt = Callable[[int, int, int], None]  # (rid, bytes_in, bytes_out)
End = Callable[[int, int, int, int, int], None]  # (rid, lane, phase, bytes_in, bytes_out)
Ran = Callable[[int, int, int, int, int], None]  # (rid, lane, t_run, bytes_in, bytes_out)

SLEEP_SLICE_S = 0.1
GIL_GAP_NS = 500_000  # a CPU step that lost the CPU for longer than this shows it as READY
_DONE, _FAILED = int(Phase.DONE), int(Phase.FAILED)  # plain ints on the hot path: no enum lookup
UPSTREAM_REQUEST = b"GET /delay?us=%d HTTP/1.1\r\nHost: upstream\r\n\r\n"
SENT_HEADER = b"x-sent-ns: "


def _off(*_args: int) -> None:
    """What every recording call is when recording is off."""


def emitters(recorder: Recorder, engine: int) -> tuple[Emit, EmitAt]:
    """Bind the recording calls for one engine; no-ops when recording is off."""
    if not recorder.enabled:
        return _off, _off
    if recorder.packed:
        extend, pack = recorder.packed_transitions, RECORD.pack

        def emit_packed(rid: int, lane: int, phase: int) -> None:
            extend(pack(now_ns(), engine, rid, lane, phase))

        def emit_at_packed(t: int, rid: int, lane: int, phase: int) -> None:
            extend(pack(t, engine, rid, lane, phase))

        return emit_packed, emit_at_packed
    append = recorder.transition

    def emit(rid: int, lane: int, phase: int) -> None:
        append((now_ns(), engine, rid, lane, phase))

    def emit_at(t: int, rid: int, lane: int, phase: int) -> None:
        append((t, engine, rid, lane, phase))

    return emit, emit_at


def size_emitter(recorder: Recorder, engine: int) -> SizeAt:
    """Bind the record of a finished request's bytes (:data:`~syncviz.engines.events.Size`); a no-op when off."""
    if not recorder.enabled:
        return _off
    if recorder.packed:
        extend, pack = recorder.packed_sizes, RECORD.pack

        def size_packed(rid: int, bytes_in: int, bytes_out: int) -> None:
            extend(pack(now_ns(), engine, rid, bytes_in, bytes_out))

        return size_packed
    append = recorder.size

    def size(rid: int, bytes_in: int, bytes_out: int) -> None:
        append((now_ns(), engine, rid, bytes_in, bytes_out))

    return size


def ender(recorder: Recorder, engine: int) -> End:
    """Bind the record of a request's end: its last transition and its bytes, at one instant, in one
    call (a no-op when off). The same two records :func:`emitters` and :func:`size_emitter` make,
    for one call a request fewer on every server's commonest path."""
    if not recorder.enabled:
        return _off
    if recorder.packed:
        tr_extend, sz_extend, pack = recorder.packed_transitions, recorder.packed_sizes, RECORD.pack

        def end_packed(rid: int, lane: int, phase: int, bytes_in: int, bytes_out: int) -> None:
            t = now_ns()
            tr_extend(pack(t, engine, rid, lane, phase))
            sz_extend(pack(t, engine, rid, bytes_in, bytes_out))

        return end_packed
    tr_append, sz_append = recorder.transition, recorder.size

    def end(rid: int, lane: int, phase: int, bytes_in: int, bytes_out: int) -> None:
        t = now_ns()
        tr_append((t, engine, rid, lane, phase))
        sz_append((t, engine, rid, bytes_in, bytes_out))

    return end


def runner(recorder: Recorder, engine: int) -> Ran:
    """Bind the record of a request run and ended in one go: RUNNING from ``t_run``, then DONE and its
    bytes now, in one call (a no-op when off). Only for a run nothing can interrupt, so nothing is
    missing from the picture meanwhile: a write that cannot wait (asyncio's transport, a
    non-blocking send that took it all), the handler's one step at zero latency."""
    if not recorder.enabled:
        return _off
    running, done = int(Phase.RUNNING), int(Phase.DONE)
    if recorder.packed:
        tr_extend, sz_extend = recorder.packed_transitions, recorder.packed_sizes
        pack, pack2 = RECORD.pack, RECORDS_2.pack

        def ran_packed(rid: int, lane: int, t_run: int, bytes_in: int, bytes_out: int) -> None:
            t = now_ns()
            tr_extend(pack2(t_run, engine, rid, lane, running, t, engine, rid, lane, done))
            sz_extend(pack(t, engine, rid, bytes_in, bytes_out))

        return ran_packed
    tr_append, sz_append = recorder.transition, recorder.size

    def ran(rid: int, lane: int, t_run: int, bytes_in: int, bytes_out: int) -> None:
        t = now_ns()
        tr_append((t_run, engine, rid, lane, running))
        tr_append((t, engine, rid, lane, done))
        sz_append((t, engine, rid, bytes_in, bytes_out))

    return ran


def burn_cpu(seconds: float, rid: int, lane: int, work: Work) -> None:
    """Spend ``seconds`` of this thread's CPU time in pure Python, recording through ``work``.

    Between checks it compares wall time with thread CPU time: a gap means the thread was
    not running (it waited for the GIL or the OS), and that interval is recorded as READY.
    It ends early, raising :class:`Stopping`, when the engine stops: a loop or hub thread
    burning CPU when the interpreter exits would crash it.
    """
    cpu_ns = time.thread_time_ns
    wall = now_ns
    emit_at = work.emit_at
    target = cpu_ns() + int(seconds * 1e9)
    last_w, last_c = wall(), cpu_ns()
    x = 0
    while True:
        for i in range(200):  # ~10-20 us of work between checks
            x += i * i
        w, c = wall(), cpu_ns()
        if (w - last_w) - (c - last_c) > GIL_GAP_NS:
            emit_at(last_w + (c - last_c), rid, lane, Phase.READY)
            emit_at(w, rid, lane, Phase.RUNNING)
        if c >= target:
            return
        if work.stopping:
            raise Stopping("the engine is stopping")
        last_w, last_c = w, c


class Work:
    """The blocking-style interface; subclasses supply how to wait (``_sleep``, ``_upstream``)."""

    WAIT_PHASE = Phase.BLOCKED

    def __init__(self, recorder: Recorder, engine: int, upstream_port: int | None) -> None:
        self.emit, self.emit_at = emitters(recorder, engine)
        self.size = size_emitter(recorder, engine)
        self.end = ender(recorder, engine)
        self.ran = runner(recorder, engine)
        self.upstream_port = upstream_port
        self.stopping = False  # set by the engine's stop(): waits and CPU steps end early so threads can go

    def cpu(self, rid: int, lane: int, seconds: float) -> None:
        if seconds > 0:
            burn_cpu(seconds, rid, lane, self)

    def io(self, rid: int, lane: int, seconds: float, upstream: bool) -> None:
        t0 = now_ns()
        self.emit_at(t0, rid, lane, self.WAIT_PHASE)
        t_ready = self._upstream(seconds) if upstream else self._sleep(seconds, t0)
        t1 = now_ns()
        self.emit_at(min(max(t_ready, t0), t1), rid, lane, Phase.READY)
        self.emit_at(t1, rid, lane, Phase.RUNNING)

    def _sleep(self, seconds: float, t0: int) -> int:
        raise NotImplementedError

    def _upstream(self, seconds: float) -> int:
        raise NotImplementedError


class BlockingWork(Work):
    """Parks the calling thread: ``time.sleep`` and a blocking socket.

    Upstream connections are pooled (like a database pool): taken for one round trip, then
    given back. ``sockets`` and ``sleep`` are class attributes so the gevent engine's
    cooperative version only swaps the modules.
    """

    WAIT_PHASE = Phase.BLOCKED
    sockets = socket
    sleep = staticmethod(time.sleep)

    def __init__(self, recorder: Recorder, engine: int, upstream_port: int | None) -> None:
        super().__init__(recorder, engine, upstream_port)
        self._idle: list = []  # list.pop/append are atomic under the GIL
        self._all: list = []

    def _sleep(self, seconds: float, t0: int) -> int:
        end = t0 + int(seconds * 1e9)
        while True:  # slices of at most 100 ms, so a stop never waits for a slow-motion sleep
            left = (end - now_ns()) / 1e9
            if left <= 0:
                return end
            if self.stopping:
                raise Stopping("the engine is stopping")
            self.sleep(min(left, SLEEP_SLICE_S))

    def _upstream(self, seconds: float) -> int:
        try:
            sock = self._idle.pop()
        except IndexError:
            try:
                sock = self.sockets.create_connection(("127.0.0.1", self.upstream_port))
            except OSError as exc:
                raise UpstreamError(str(exc)) from None
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            self._all.append(sock)
        if self.stopping:  # checked once the socket is in _all: abort() sees it or this sees the flag
            raise Stopping("the engine is stopping")
        try:
            sock.sendall(UPSTREAM_REQUEST % int(seconds * 1e6))
            sent = read_upstream_reply(sock.recv)
        except OSError as exc:
            sock.close()
            raise UpstreamError(str(exc)) from None
        self._idle.append(sock)
        return sent

    def abort(self) -> None:
        """Wake every thread parked on an upstream reply (called by stop(), from another thread).

        Only for stdlib sockets: a gevent socket belongs to its hub (the gevent engine's stop
        kills its greenlets instead).
        """
        for sock in list(self._all):
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)

    def close(self) -> None:
        """Close the pooled upstream connections (the engine is stopping)."""
        for sock in self._all:
            sock.close()
        self._all.clear()
        self._idle.clear()


class Stopping(ConnectionAbortedError):
    """Raised in a wait when the engine stops: the request fails and its connection closes."""


class UpstreamError(RuntimeError):
    """The upstream could not be reached: the handler fails with 500."""


def read_upstream_reply(recv: Callable[[int], bytes]) -> int:
    """Read the upstream's bodyless reply; return the ns timestamp it says it was sent at."""
    buf = b""
    while b"\r\n\r\n" not in buf:
        data = recv(4096)
        if not data:
            raise UpstreamError("upstream closed the connection")
        buf += data
    return parse_sent_ns(buf)


def parse_sent_ns(head: bytes) -> int:
    start = head.lower().find(SENT_HEADER)
    if start < 0:
        return now_ns()
    start += len(SENT_HEADER)
    return int(head[start : head.index(b"\r\n", start)])


def run_plan(plan: Plan, rid: int, lane: int, work: Work, upstream: bool, send: Send) -> int:
    """Run a plan on the calling thread or greenlet; return the bytes it wrote."""
    sent = 0
    for op, arg in plan:
        if op == SEND:
            # A small write on loopback takes microseconds, but it releases the GIL: a long one
            # means the thread waited to get it back (runnable, not running): record that as READY.
            t0 = now_ns()
            send(arg)  # type: ignore[arg-type]
            t1 = now_ns()
            sent += len(arg)  # type: ignore[arg-type]
            if t1 - t0 > GIL_GAP_NS:
                work.emit_at(t0, rid, lane, Phase.READY)
                work.emit_at(t1, rid, lane, Phase.RUNNING)
        elif op == IO:
            work.io(rid, lane, arg, upstream)  # type: ignore[arg-type]
        else:
            work.cpu(rid, lane, arg)  # type: ignore[arg-type]
    return sent


def serve_sync(req: Request, rid: int, lane: int, work: Work, settings: Settings, send: Send) -> bool:
    """Serve one request on a thread or greenlet, ending it DONE or FAILED; true if DONE.

    Its response is completely written when this returns. A handler exception is answered
    with 500 and the connection stays usable; an OSError (the client went away) propagates
    so the caller drops the connection. Its bytes in and out are recorded (:attr:`Work.size`).
    """
    early = early_response(req)
    if early is not None:
        send(early[0])
        work.end(rid, lane, early[1], req.bytes_in, len(early[0]))
        return early[1] == Phase.DONE
    try:
        sent = run_plan(handler_plan(req, settings), rid, lane, work, settings.io == "upstream", send)
    except OSError:
        work.end(rid, lane, _FAILED, req.bytes_in, -1)
        raise
    except Exception:
        work.emit(rid, lane, _FAILED)
        page = error_response(req, settings)  # a plain plan writes last: none of it went out (chunked hangs up)
        send(page)
        work.size(rid, req.bytes_in, len(page))
        return False
    work.end(rid, lane, _DONE, req.bytes_in, sent)
    return True
