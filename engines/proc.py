"""One child process of the engine process host: ``python -m syncviz.engines.proc``.

A process plays one role, told by its first frame on stdin:

* ``engine``: one engine server (threaded, asyncio or gevent) alone in its process, so its
  GIL, CPU, memory and crashes are its own;
* ``load``: the load generator and the upstream service, outside every server's process
  (:mod:`~syncviz.engines.proc_load`, imported only there).

It pins itself to the CPUs it is given, reads commands on stdin, and writes its recorded
batches on stdout ~30 times a second as :mod:`~syncviz.engines.wire` frames tagged with the
run they belong to (an engine's also carry its server's source counters, ``srv``; an engine
that digests writes them through its digest process, :mod:`~syncviz.engines.digester`). It
exits when told to or as soon as stdin closes (the parent died).
"""

from __future__ import annotations

import contextlib
import os
import signal
import sys
import threading
import time
from collections import deque
from typing import Any, BinaryIO

from .allocator import keep_reads_off_mmap
from .base import Engine, EngineError, engine_class
from .digest import ServerDigest
from .digester import DigestPipe, View, collect_rarely, niceness, pack_batch
from .events import ENGINE_IDS, Batch, Recorder
from .host import raise_fd_limit, sample_stalls
from .placement import set_cpus, short_slices
from .registry import ENGINE_SPECS, engine_spec
from .scenarios import get_scenario
from .settings import Settings, SettingsError
from .wire import WireError, batch_to_wire, read_frame, write_frame

SEND_INTERVAL_S = 1 / 30
DIGEST_CHUNK = 256  # transitions digested (~0.2 ms) before the flush thread steps aside
DIGEST_PAUSE_S = 0.0001
"""A batch digested in one go held the GIL for milliseconds while the loop waited (lag p99 ~3 ->
~8 ms, -5% req/s at io-bound); a real sleep between chunks hands the GIL to the loop. The chunk
was 64 transitions when one cost ~3 us; at ~1 us (ServerDigest.feed) 256 take as long, and a
quarter of the pauses, each a GIL hand-over and back, went with them (wrk at zero latency,
asyncio ~40k -> ~50k req/s, gevent ~40k -> ~46k)."""


class _Role:
    """What a process runs; ``command`` handles a frame, ``drain`` returns a wire batch."""

    run = 0

    def __init__(self, out: BinaryIO, record: bool) -> None:
        self.out = out
        self.recorder = Recorder(enabled=record)

    def send(self, kind: str, payload: object = None) -> None:
        write_frame(self.out, kind, payload)

    def flush(self) -> None:
        """Send what is recorded now, under the current run."""
        self.send("batch", self.drain())

    def drain(self) -> dict[str, Any]:
        return batch_to_wire(self.recorder.drain(), self.run)

    def command(self, kind: str, payload: Any) -> None:
        raise NotImplementedError

    def close(self) -> None:
        raise NotImplementedError

    def finish(self) -> None:
        """After the last frame: nothing more is sent."""

    def broken(self) -> str | None:
        """Why a write failed when the parent is not the one gone (one line), else None."""
        return None


def _settings(payload: dict[str, Any]) -> Settings:
    return Settings(**payload["settings"]).validate()


class EngineRole(_Role):
    """One engine server. With ``stream: digest`` its events are digested
    (:class:`~syncviz.engines.digest.ServerDigest`) and only the digest crosses the pipe: by its
    digest process (:mod:`~syncviz.engines.digester`, on ``digest_cpus``), which every frame then
    goes through, or here, in a thread of the engine's own process, where that process cannot
    start (said on stderr) or ``digest_here`` asks for it.
    """

    def __init__(self, out: BinaryIO, start: dict[str, Any]) -> None:
        super().__init__(out, bool(start.get("record", True)))
        self.name: str = start["engine"]
        self.engine_id = ENGINE_IDS[self.name]
        self.host: str = start.get("host", "127.0.0.1")
        self.port: int = int(start.get("port", 0))
        self.engine: Engine | None = None
        self.digest: ServerDigest | None = None
        self.view = View(start)
        self.pipe: DigestPipe | None = None
        if self.view.digest and not start.get("digest_here"):
            try:
                nice = niceness(start.get("digest_nice"))
                self.pipe = DigestPipe(out, list(start.get("digest_cpus") or []), nice)
            except OSError as exc:  # no process to be had (a process or descriptor limit): digest here
                print(
                    f"syncviz: {self.name}: no digest process ({exc}); digesting in the engine's process",
                    file=sys.stderr,
                )
        if self.pipe is not None:  # records packed as they are made: the batch crosses as those bytes
            self.recorder = Recorder(enabled=self.recorder.enabled, packed=True)
        self._start(start)

    def _start(self, p: dict[str, Any]) -> None:
        scenario = get_scenario(p["scenario"])
        self.run = int(p["run"])
        engine = engine_class(self.name)(
            self.recorder, _settings(p), scenario.mode(self.name), p.get("upstream_port"), self.host, self.port
        )
        self.port = engine.start()  # a restart binds the same port again: curl keeps working
        self.engine = engine
        has_loop = engine_spec(self.name).has_loop
        started = {"port": self.port, "pid": os.getpid(), "run": self.run}
        if self.pipe is not None:  # its digest starts afresh for the run, before the run's first batch
            config = {
                "engine": self.engine_id,
                "has_loop": has_loop,
                "ns": self.view.ns,
                "window_s": self.view.window_s,
            }
            self.pipe.send("digest", config)
            started["digest_pid"] = self.pipe.pid
        elif self.view.digest:
            self.digest = ServerDigest(has_loop, self.view.ns, self.view.window_s)
        self.send("started", started)

    def send(self, kind: str, payload: object = None) -> None:
        if self.pipe is not None:
            self.pipe.send(kind, payload)
        else:
            write_frame(self.out, kind, payload)

    def flush(self) -> None:
        if self.pipe is None:
            super().flush()
            return
        batch = self.recorder.drain()
        transitions, sizes = batch.packed or (b"", b"")
        self.pipe.write(pack_batch(transitions, sizes, self._record(batch)), self.recorder.trim)

    def drain(self) -> dict[str, Any]:
        """The recorded batch, digested here when there is a digest to make."""
        batch = self.recorder.drain()
        digest = self.digest
        if digest is not None:
            transitions = batch.transitions
            for i in range(0, len(transitions), DIGEST_CHUNK):
                if i:
                    time.sleep(DIGEST_PAUSE_S)  # the server's threads get the GIL between chunks
                digest.feed(transitions[i : i + DIGEST_CHUNK])
            for t, _e, lag in batch.lags:
                digest.lag_sample(t, lag)
            digest.feed_sizes(batch.sizes)  # after the transitions: the rows' requests only
            batch.transitions, batch.lags, batch.sizes = [], [], []
            batch.digests = [(self.engine_id, {"server": digest.take(batch.t_ns, self.view.counters_due(batch.t_ns))})]
        return self._record(batch)

    def _record(self, batch: Batch) -> dict[str, Any]:
        """``batch`` as a wire record, with the server's source counters (``srv``), its loop's stall
        and the calls its watchdog found holding the loop or a worker (``bk``)."""
        engine = self.engine
        stall = sample_stalls(batch, [engine] if engine is not None else []) if self.recorder.enabled else 0
        server = engine.server_snapshot(batch.t_ns) if engine is not None else None
        batch.blocks = engine.take_blocks(batch.t_ns) if engine is not None else []  # what held its loop
        wire = batch_to_wire(batch, self.run, server)
        wire["stall_ns"] = stall
        return wire

    def command(self, kind: str, payload: Any) -> None:
        if kind == "view":
            self.view.zoom(payload)
            if self.pipe is not None:
                self.pipe.send("view", {"ns": self.view.ns})
            elif self.digest is not None:
                self.digest.set_zoom(self.view.ns)
        elif kind == "apply" and self.engine is not None:
            self.engine.apply(_settings(payload))
        elif kind == "scenario":
            self.flush()
            self._stop_engine()
            self._start(payload)

    def _stop_engine(self) -> None:
        if self.engine is not None:
            self.engine.stop()
            self.engine = None
        self.recorder.clear()

    def close(self) -> None:
        self._stop_engine()

    def finish(self) -> None:
        if self.pipe is not None:
            self.pipe.close()

    def broken(self) -> str | None:
        if self.pipe is not None and self.pipe.proc.poll() is not None:
            return f"syncviz: {self.name}'s digest process {self.pipe.exit_detail()}"
        return None


SWITCH_INTERVAL_S = 0.001  # an engine's loop waits at most this for the GIL behind its own sender
# thread (Python's default is 5 ms); with short_slices, io-bound loop lag p99 together vs alone went
# from 1.5-2.9x to 0.9-1.9x (2-core machine). Engines with a loop only: a pool's threads keep Python's
# 5 ms, as gunicorn's would; at 1 ms their GIL changed hands 5x as often, each hand-over a wakeup the OS
# favours, and cpu-bound together read 66-68 / 55-56 / 54-56 req/s (62 / 59 / 58 at 5 ms; Linux 6.18).


def child_main() -> int:
    out = sys.stdout.buffer
    sys.stdout = sys.stderr  # nothing else may write into the frame stream
    inp = sys.stdin.buffer
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the parent decides when this process ends
    try:
        first = read_frame(inp)
    except WireError:
        return 2
    if first is None or first[0] != "start" or not isinstance(first[1], dict):
        return 2
    start = first[1]
    set_cpus(start.get("cpus") or [])
    if start.get("role") == "engine":
        short_slices()  # before any thread starts: they all inherit it
        spec = ENGINE_SPECS.get(str(start.get("engine")))
        if spec is None or spec.has_loop:
            sys.setswitchinterval(SWITCH_INTERVAL_S)
    raise_fd_limit()
    keep_reads_off_mmap()  # an asyncio read's 256 KiB buffer from the heap (engine and load alike)
    try:
        if start.get("role") == "engine":
            role: _Role = EngineRole(out, start)
        else:
            from .proc_load import LoadRole  # its modules (asyncio among them) are no engine process's

            role = LoadRole(out, start)
    except (EngineError, SettingsError, KeyError, TypeError, ValueError) as exc:
        write_frame(out, "error", str(exc))
        return 2
    if isinstance(role, EngineRole):
        collect_rarely()
    return _serve(role, inp, out)


def _serve(role: _Role, inp: BinaryIO, out: BinaryIO) -> int:
    commands: deque[tuple[str, Any]] = deque()
    done = threading.Event()

    def read_commands() -> None:
        while True:
            try:
                frame = read_frame(inp)
            except WireError:
                frame = None
            commands.append(frame or ("stop", None))
            if frame is None or frame[0] == "stop":
                done.set()
                return

    threading.Thread(target=read_commands, name="commands", daemon=True).start()
    broken: str | None = None
    try:
        while not done.is_set() or commands:
            while commands:
                kind, payload = commands.popleft()
                if kind == "stop":
                    done.set()
                    break
                try:
                    role.command(kind, payload)
                except (EngineError, SettingsError, KeyError, TypeError, ValueError) as exc:
                    role.send("error", f"{kind} failed: {exc}")
            role.flush()
            done.wait(SEND_INTERVAL_S)
    except OSError:  # the parent is gone (broken pipe), or the digest process
        broken = role.broken()
    finally:
        role.close()
    if broken is not None:
        print(broken, file=sys.stderr, flush=True)  # the parent shows the last line: why this engine exited
        role.finish()
        os._exit(1)  # at once: the commands thread is still reading the parent's pipe, which stays open
    with contextlib.suppress(OSError):
        role.send("stopped")
    role.finish()
    return 0


if __name__ == "__main__":
    sys.exit(child_main())
