"""An engine's digest process: its events digested on the UI's core, not on the engine's own.

An engine process that digests its stream (``stream: digest``) starts this process
(``python -m syncviz.engines.digester``) beside it and hands it its own stdout, the pipe to the
parent. From then on every frame the engine sends goes through it: control frames (``started``,
``error``, ``stopped``) as they came, and the recorded batches packed (:func:`pack_batch`:
transitions and sizes as native int64 arrays, the rest as the batch's JSON record), which it
digests with a :class:`~syncviz.engines.digest.ServerDigest` and sends on as the very batch
record the engine would have sent (``dg`` filled, no raw events). ``digest`` frames (re)start its
digest for an engine's run, ``view`` frames change its zoom.

Why a process: a digest thread in the engine's process shares the engine's GIL and core. At zero
latency it took ~4 us a request of the asyncio engine's ~20 (wrk: 46k -> 56k req/s with it
apart); here the engine records packed (``Recorder(packed=True)``: its writing thread ~0.5 us a
request) and the digesting runs on the CPUs the UI keeps to (``digest_cpus``). It ends when its
input ends: the engine stopped or died.
Nothing read from its pipe is unpickled: packed arrays are checked for size and every field's range
(:func:`~syncviz.engines.wire.check_packed`), like any batch's.
"""

from __future__ import annotations

import contextlib
import fcntl
import gc
import json
import os
import select
import struct
import subprocess
import sys
import time
from collections.abc import Callable, Iterable
from typing import Any, BinaryIO

from .digest import ServerDigest
from .events import RECORD
from .placement import die_with_parent
from .registry import exit_words
from .stats import DEFAULT_NS_PER_COL, counters_tick
from .wire import FRAME, MAX_FRAME, VERSION, WireError, check_packed, check_ranges, frame_bytes, write_frame

MODULE = "syncviz.engines.digester"
PACKED = b"P"  # a packed batch frame's first byte (a JSON frame's is "[")
PACKED_HEAD = struct.Struct("<BII")  # version, int64s of transitions, int64s of sizes; then the JSON record
WIDTH = 5  # ints a transition and a size record take (t, engine, request, ...)
NICE = 5
"""Its niceness beside the UI (the app, and bench, which digests as the app does): the UI's frames come
first. The app at 1,000 clients an engine (``benchmarks/bench_app.py``, 2-core machine, 2 runs each)
drew 27.0-27.3 frames a second with its digest processes at 5 and 20.7-21.6 at 0, the engines' req/s
the same."""
HEADLESS_NICE = 0
"""Its niceness where no UI draws (``syncviz serve --headless``): it offers its CPU every :data:`YIELD_EVERY`
transitions, and a lower priority only made it late beside the client (wrk against ``syncviz serve``,
4 runs each, medians: gevent 52.7k req/s at 5, 57.8k at 0; asyncio 64.5k and 63.7k)."""


def niceness(value: object) -> int:
    """A digest process's niceness from a start record or its command line: 0 to 19, else :data:`NICE`."""
    if isinstance(value, str) and value.isdigit():
        value = int(value)
    return value if type(value) is int and 0 <= value <= 19 else NICE


PIPE_BYTES = 1 << 20
WAIT_S = 0.05
"""While its input pipe is full (the digest process stopped, or behind), the engine's writer waits this
long at a time, and between waits keeps the engine's records within their bounds (``waiting``)."""
STOP_WAIT_S = 2.0  # the engine waits this long for its digest process to send its last frames
YIELD_EVERY = 100
"""Transitions digested between two offers of its CPU (``os.sched_yield``: whoever else is runnable
there goes first). At zero latency a batch (1/30 s of an engine's transitions) is ~5 ms of digesting;
in one go it kept the load generator off the CPU they share for a scheduler slice at a time, and
the engine, its clients late, idled ~10%. wrk against ``syncviz serve`` (2-core machine, 5 runs
each, medians): asyncio 59.8k -> 63.9k req/s, gevent 47.8k -> 50.5k (every 300); the engine idles
~5%. Every 40 to 300 read the same."""


class View:
    """How the parent wants the stream: raw events (``full``) or digests, at which zoom and window.
    ``servers``: the engine processes digest (as for ``digest``) and the load sends raw samples."""

    def __init__(self, start: dict[str, Any]) -> None:
        stream = start.get("stream", "full")
        self.digest = stream == "digest" or (stream == "servers" and start.get("role") == "engine")
        self.window_s = float(start.get("window_s", 5.0))
        self.ns = DEFAULT_NS_PER_COL
        self.zoom(start)
        self._counters_tick = -1

    def zoom(self, payload: Any) -> None:
        ns = payload.get("ns") if isinstance(payload, dict) else None
        if type(ns) is int and ns > 0:
            self.ns = ns

    def counters_due(self, now: int) -> bool:
        """Counters go out a few times a second, on the ticks every process shares
        (:func:`~syncviz.engines.stats.counters_tick`); the picture with every batch."""
        tick = counters_tick(now)
        if tick != self._counters_tick:
            self._counters_tick = tick
            return True
        return False


GC_YOUNG = 20_000
"""An engine process's young-generation threshold (Python's default is 700): at zero latency the
engine allocates ~5 tracked objects a request (transition tuples, the digest's request lists,
futures), so the default ran a collection every ~150 requests (~5% of the engine's CPU, perf), and
the digest's survivors were walked again in every older one. Set after the role starts, with what
startup made frozen out of the collector's way (``gc.freeze``)."""


def collect_rarely() -> None:
    """The collector for a process that allocates per request or per event (:data:`GC_YOUNG`):
    what startup made is frozen out of its way, and young collections run ~30x less often."""
    gc.freeze()
    gc.set_threshold(GC_YOUNG, *gc.get_threshold()[1:])


# -- the engine's end ------------------------------------------------------------------------
def pack_batch(transitions: bytes | bytearray, sizes: bytes | bytearray, record: dict[str, Any]) -> bytes:
    """One packed batch frame (length included): ``record`` is the batch's wire record without
    ``tr`` and ``sz``, which travel in front of it as the packed recorder keeps them
    (:data:`~syncviz.engines.events.RECORD` each, native int64s: :attr:`Batch.packed`)."""
    head = PACKED_HEAD.pack(VERSION, len(transitions) // 8, len(sizes) // 8)
    tail = json.dumps(record, separators=(",", ":")).encode()
    size = len(PACKED) + len(head) + len(transitions) + len(sizes) + len(tail)
    return b"".join((FRAME.pack(size), PACKED, head, transitions, sizes, tail))  # one copy of the records


def pack_records(records: Iterable[tuple[int, ...]]) -> bytes:
    """Records (transitions or sizes) as a packed recorder keeps them."""
    return b"".join(RECORD.pack(*rec) for rec in records)


class DigestPipe:
    """The engine's end of its digest process: started with the engine's stdout as its own."""

    def __init__(self, out: BinaryIO, cpus: list[int], nice: int = NICE) -> None:
        self.proc = subprocess.Popen(
            [sys.executable, "-m", MODULE, str(nice)],
            stdin=subprocess.PIPE,
            stdout=out.fileno(),
            env=dict(os.environ, PYTHONUNBUFFERED="1"),
        )
        self.pid = self.proc.pid
        with contextlib.suppress(OSError, ValueError):  # its interpreter starts on its CPUs, not the engine's
            os.sched_setaffinity(self.pid, cpus)  # (the app's engines start ~0.1 s sooner)
        self._fd = self.proc.stdin.fileno()  # type: ignore[union-attr]
        with contextlib.suppress(OSError, AttributeError):  # a flush in one write, not 64 KB at a time (the
            # engine thread that writes: 2.3 -> 1.7 us a request, asyncio at ~48k req/s)
            fcntl.fcntl(self._fd, fcntl.F_SETPIPE_SZ, PIPE_BYTES)
        os.set_blocking(self._fd, False)
        self._full = select.poll()
        self._full.register(self._fd, select.POLLOUT)

    def write(self, data: bytes, waiting: Callable[[], None] | None = None) -> None:
        """Write a whole frame (BrokenPipeError: the digest process is gone). While the pipe is full
        (or takes a little at a time), ``waiting`` runs every :data:`WAIT_S`: no drain runs meanwhile
        (the writer is the one that drains), and the engine's packed records would otherwise grow
        without bound (a digest process at 10% of a core, reading as it went, let threaded's grow
        to 180 MB when this waited for poll to time out)."""
        view = memoryview(data)
        waited_since = 0.0
        while view:
            try:
                view = view[os.write(self._fd, view) :]
            except BlockingIOError:
                self._full.poll(WAIT_S * 1000)
                now = time.monotonic()  # the pipe may take a little at a time: trimmed by the clock, not by poll
                if not waited_since:
                    waited_since = now
                elif now - waited_since >= WAIT_S and waiting is not None:
                    waited_since = now
                    waiting()

    def send(self, kind: str, payload: object = None) -> None:
        self.write(frame_bytes(kind, payload))

    def exit_detail(self) -> str:
        code = self.proc.poll()
        return "is still running" if code is None else exit_words(code)

    def close(self) -> None:
        """End its input; it sends what it has and exits (killed if it has not within a while)."""
        with contextlib.suppress(OSError):
            self.proc.stdin.close()  # type: ignore[union-attr]
        try:
            self.proc.wait(STOP_WAIT_S)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()


# -- the digest process ----------------------------------------------------------------------
_yield: Callable[[], None] = getattr(os, "sched_yield", lambda: None)


class Digester:
    """Digests packed batches for one engine and passes every other frame on as it came."""

    def __init__(self, out: BinaryIO) -> None:
        self.out = out
        self.engine_id = 0
        self.digest: ServerDigest | None = None
        self.view = View({"stream": "digest"})

    def frame(self, data: bytes) -> None:
        if data[:1] == PACKED:
            self.batch(data)
            return
        try:
            kind, payload = json.loads(data)
        except (ValueError, TypeError):
            raise WireError("frame is neither JSON [kind, payload] nor a packed batch") from None
        if kind == "digest" and isinstance(payload, dict):
            self.engine_id = int(payload["engine"])
            self.view = View({"stream": "digest", **payload})
            self.digest = ServerDigest(bool(payload["has_loop"]), self.view.ns, self.view.window_s)
        elif kind == "view":
            self.view.zoom(payload)
            if self.digest is not None:
                self.digest.set_zoom(self.view.ns)
        else:
            self.out.write(FRAME.pack(len(data)) + data)
            self.out.flush()

    def batch(self, data: bytes) -> None:
        if len(data) < 1 + PACKED_HEAD.size:
            raise WireError("packed batch shorter than its header")
        version, n_tr, n_sz = PACKED_HEAD.unpack_from(data, 1)
        at = 1 + PACKED_HEAD.size
        end = at + 8 * (n_tr + n_sz)
        if version != VERSION or n_tr % WIDTH or n_sz % WIDTH or end > len(data):
            raise WireError("packed batch header does not match its body")
        tr, sz = data[at : at + 8 * n_tr], data[at + 8 * n_tr : end]
        try:
            record = json.loads(data[end:])
            lags = record.get("lag") if isinstance(record, dict) else None
            if not isinstance(lags, list) or type(record.get("t")) is not int or not {int}.issuperset(map(type, lags)):
                raise ValueError("packed batch record is not a batch")
            check_ranges({"t": record["t"], "lag": lags})
            check_packed("tr", tr)
            check_packed("sz", sz)
        except (ValueError, TypeError) as exc:
            raise WireError(str(exc)) from None
        digest = self.digest
        if digest is not None:
            step, view = 8 * WIDTH * YIELD_EVERY, memoryview(tr)
            for at in range(0, len(tr), step):
                if at:
                    _yield()
                digest.feed(RECORD.iter_unpack(view[at : at + step]))
            for t, lag in zip(lags[0::3], lags[2::3], strict=True):
                digest.lag_sample(t, lag)
            digest.feed_sizes(RECORD.iter_unpack(sz))
            now = record["t"]
            record["lag"] = []
            record["dg"] = [[self.engine_id, {"server": digest.take(now, self.view.counters_due(now))}]]
        record["tr"] = []
        write_frame(self.out, "batch", record)


def main() -> int:
    """``python -m syncviz.engines.digester [NICE]``: digest frames from stdin until it ends (placed on
    its CPUs by :class:`DigestPipe`, at its :func:`niceness`)."""
    die_with_parent()  # the engine: even stopped (SIGSTOP), it never outlives it
    with contextlib.suppress(OSError):
        os.nice(niceness(sys.argv[1] if len(sys.argv) > 1 else None))  # beside a UI, the UI goes first
    out, inp = sys.stdout.buffer, sys.stdin.buffer
    sys.stdout = sys.stderr  # nothing else may write into the frame stream
    collect_rarely()  # the digest allocates a few objects an event, as an engine does a request
    digester = Digester(out)
    try:
        while True:
            head = inp.read(FRAME.size)
            if len(head) < FRAME.size:
                return 0  # the engine stopped or died
            (size,) = FRAME.unpack(head)
            if size > MAX_FRAME:
                raise WireError(f"frame of {size} bytes is over the {MAX_FRAME} limit")
            data = inp.read(size)
            if len(data) < size:
                return 0
            digester.frame(data)
    except WireError as exc:
        print(f"syncviz: digest process: {exc}", file=sys.stderr)
        return 2
    except (BrokenPipeError, KeyboardInterrupt):
        return 0


if __name__ == "__main__":
    sys.exit(main())
