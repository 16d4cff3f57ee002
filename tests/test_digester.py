"""The engine's digest process: the records a digest in the engine would make, checked input, tied to the engine."""

from __future__ import annotations

import contextlib
import io
import json
import os
import signal
import time

import psutil
import pytest
from support import wait_for
from syncviz.engines import digester as digester_module
from syncviz.engines import proc
from syncviz.engines.child import ChildHost
from syncviz.engines.digest import ServerDigest
from syncviz.engines.digester import (
    HEADLESS_NICE,
    NICE,
    PACKED,
    PACKED_HEAD,
    YIELD_EVERY,
    Digester,
    View,
    niceness,
    pack_batch,
    pack_records,
)
from syncviz.engines.events import Batch, Phase
from syncviz.engines.settings import Settings
from syncviz.engines.wire import FRAME, VERSION, WireError, batch_to_wire, frame_bytes, read_frame

NS = 10_000_000
T0 = 5_000_000_000


def _events() -> tuple[list, list, list]:
    """Three requests on a loop (engine 1): ready, running, done; their sizes; two lag samples."""
    transitions, sizes = [], []
    for i in range(3):
        t, rid = T0 + i * 3_000_000, 10 + i
        transitions += [(t, 1, rid, 0, int(Phase.READY)), (t + 1_000_000, 1, rid, 0, int(Phase.RUNNING))]
        transitions.append((t + 2_500_000, 1, rid, 0, int(Phase.DONE)))
        sizes.append((t + 2_500_000, 1, rid, 40, 120))
    return transitions, sizes, [(T0, 1, 200_000), (T0 + 9_000_000, 1, 300_000)]


def _config() -> dict:
    return {"engine": 1, "has_loop": True, "ns": NS, "window_s": 5.0}


def _digester() -> tuple[Digester, io.BytesIO]:
    out = io.BytesIO()
    digester = Digester(out)
    digester.frame(json.dumps(["digest", _config()]).encode())
    return digester, out


def test_a_packed_batch_becomes_the_record_a_digest_in_the_engine_would_send() -> None:
    transitions, sizes, lags = _events()
    now = T0 + 20_000_000
    here = ServerDigest(True, NS, 5.0)  # as EngineRole digests in its own process
    here.feed(transitions)
    for t, _e, lag in lags:
        here.lag_sample(t, lag)
    here.feed_sizes(sizes)
    batch = Batch(t_ns=now, digests=[(1, {"server": here.take(now, View({"stream": "digest"}).counters_due(now))})])
    expected = batch_to_wire(batch, 3)

    digester, out = _digester()
    record = batch_to_wire(Batch(t_ns=now, lags=lags), 3)
    del record["tr"]
    digester.frame(pack_batch(pack_records(transitions), pack_records(sizes), record)[FRAME.size :])
    out.seek(0)
    kind, payload = read_frame(out)  # type: ignore[misc]
    assert kind == "batch"
    assert payload == expected
    assert payload["dg"][0][1]["server"]["counters"]["in_flight"] == 0  # the three were digested: done


def test_a_long_batch_is_digested_a_slice_at_a_time_offering_the_cpu_between_and_the_record_is_the_same(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Between slices of :data:`YIELD_EVERY` transitions the digest process offers its CPU (the load
    generator beside it goes first); the record is the one digesting all at once gives."""
    transitions, sizes = [], []
    for i in range(700):  # 2,100 transitions: 20 slices, crossing columns and requests between slices
        t, rid = T0 + i * 40_000, 10 + i
        transitions += [(t, 1, rid, 0, int(Phase.READY)), (t + 9_000, 1, rid, 0, int(Phase.RUNNING))]
        transitions.append((t + 30_000, 1, rid, 0, int(Phase.DONE)))
        sizes.append((t + 30_000, 1, rid, 40, 120))
    now = T0 + 40_000_000
    here = ServerDigest(True, NS, 5.0)
    here.feed(transitions)
    here.feed_sizes(sizes)
    expected = batch_to_wire(Batch(t_ns=now, digests=[(1, {"server": here.take(now, True)})]), 3)
    offers = []
    monkeypatch.setattr(digester_module, "_yield", lambda: offers.append(1))
    digester, out = _digester()
    record = batch_to_wire(Batch(t_ns=now), 3)
    del record["tr"]
    digester.frame(pack_batch(pack_records(transitions), pack_records(sizes), record)[FRAME.size :])
    out.seek(0)
    _kind, payload = read_frame(out)  # type: ignore[misc]
    assert len(offers) == -(-len(transitions) // YIELD_EVERY) - 1
    assert payload == expected
    assert payload["dg"][0][1]["server"]["counters"]["in_flight"] == 0


def test_control_frames_pass_through_as_they_came_and_view_changes_the_zoom() -> None:
    digester, out = _digester()
    digester.frame(b'["started",{"port":1,"pid":2,"run":0}]')
    digester.frame(b'["view",{"ns":50000000}]')
    out.seek(0)
    assert read_frame(out) == ("started", {"port": 1, "pid": 2, "run": 0})
    assert read_frame(out) is None  # "view" and "digest" are the digest process's own
    assert digester.digest is not None and digester.digest.ns == 50_000_000


def _packed(n_tr: int, n_sz: int, body: bytes, record: bytes = b'{"t":1,"lag":[]}') -> bytes:
    return PACKED + PACKED_HEAD.pack(VERSION, n_tr, n_sz) + body + record


@pytest.mark.parametrize(
    "data",
    [
        PACKED + b"\x01",  # shorter than its header
        _packed(4, 0, b"\x00" * 32),  # four ints: not whole transitions
        _packed(10, 0, b"\x00" * 40),  # says ten ints, holds five
        _packed(5, 0, b"".join(x.to_bytes(8, "little", signed=True) for x in (1, 1, 1, 0, 99))),  # phase 99
        _packed(0, 0, b"", b'{"t":1,"lag":[1,1,0.5]}'),  # a lag that is not an integer
        _packed(0, 0, b"", b"not json"),
        b"neither",
    ],
)
def test_what_is_not_a_packed_batch_or_a_frame_is_a_wire_error(data: bytes) -> None:
    digester, out = _digester()
    with pytest.raises(WireError):
        digester.frame(data)
    assert out.getvalue() == b""  # nothing half-digested passed on


def _digest_pid(child: ChildHost, name: str) -> int:
    pid = child.procs[name].digest_pid
    assert pid is not None
    return pid


def test_each_engine_digests_in_a_process_of_its_own_on_the_ui_s_cpus_and_it_goes_with_the_engine() -> None:
    assert NICE > HEADLESS_NICE  # where no UI draws (syncviz serve) it is not made late
    child = ChildHost(stream="digest", engines=("threaded", "asyncio"), clients=4, io_ms=10).start()
    try:
        handle = child.procs["asyncio"]
        pid = _digest_pid(child, "asyncio")
        digest = psutil.Process(pid)
        assert digest.ppid() == handle.pid and pid != _digest_pid(child, "threaded")
        if hasattr(os, "sched_getaffinity"):
            assert tuple(sorted(digest.cpu_affinity())) == tuple(child.placement.ui)
        assert pid not in [p.pid for p in handle._descendants()]  # its CPU is not the engine's
        assert wait_for(lambda: digest.nice() == NICE)  # beside the app's UI it gives way (serve's: test_serve)
        assert wait_for(lambda: child.status().engines["asyncio"].state == "live")
        os.kill(handle.pid, signal.SIGKILL)
        assert wait_for(lambda: not psutil.pid_exists(pid) or digest.status() == psutil.STATUS_ZOMBIE, timeout=3)
    finally:
        child.close()


def test_a_digest_process_s_niceness_is_0_to_19_from_a_start_record_or_its_command_line() -> None:
    assert [niceness(v) for v in (0, 7, "0", "19", HEADLESS_NICE)] == [0, 7, 0, 19, HEADLESS_NICE]
    assert {niceness(v) for v in (None, -1, 20, "x", "-3", 5.0, True)} == {NICE}


def test_a_killed_digest_process_ends_its_engine_with_one_line_saying_so() -> None:
    child = ChildHost(stream="digest", engines=("threaded", "asyncio"), clients=4, io_ms=10).start()
    try:
        os.kill(_digest_pid(child, "asyncio"), signal.SIGKILL)
        said = "exited with status 1: syncviz: asyncio's digest process killed by SIGKILL"
        # the exit can be seen a moment before the stderr reader has its last line
        assert wait_for(lambda: child.status().engines["asyncio"].detail == said, timeout=3)
        assert child.status().engines["asyncio"].state == "exited"
        assert child.status().engines["threaded"].state == "live"
    finally:
        child.close()


def _engine_start(**extra: object) -> dict:
    return {
        "role": "engine",
        "engine": "asyncio",
        "scenario": "io-bound",
        "settings": Settings().as_dict(),
        "run": 0,
        "stream": "digest",
        **extra,
    }


def _frames(out: io.BytesIO) -> list[tuple[str, object]]:
    out.seek(0)
    frames = []
    while (frame := read_frame(out)) is not None:
        frames.append(frame)
    return frames


@pytest.mark.parametrize("why", ["asked", "no process"])
def test_without_a_digest_process_the_engine_digests_in_its_own(
    why: str, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    if why == "no process":

        def refuse(*_args: object) -> None:
            raise OSError(11, "Resource temporarily unavailable")

        monkeypatch.setattr(proc, "DigestPipe", refuse)
    out = io.BytesIO()
    role = proc.EngineRole(out, _engine_start(digest_here=why == "asked"))
    try:
        role.flush()
    finally:
        role.close()
    frames = _frames(out)
    assert frames[0][0] == "started" and "digest_pid" not in frames[0][1]  # type: ignore[operator]
    assert frames[1][0] == "batch" and frames[1][1]["dg"][0][0] == 1  # type: ignore[index]
    said = capsys.readouterr().err
    assert ("no digest process (" in said) == (why == "no process")


def test_a_stopped_digest_process_is_said_not_the_engine_and_dies_with_the_engine() -> None:
    child = ChildHost(stream="digest", engines=("threaded", "asyncio"), clients=4, io_ms=10).start()
    pid = _digest_pid(child, "asyncio")
    try:
        assert wait_for(lambda: child.status().engines["asyncio"].state == "live")
        os.kill(pid, signal.SIGSTOP)
        assert wait_for(lambda: child.status().engines["asyncio"].state == "stalled", timeout=3)
        assert "digest process is stopped (SIGSTOP)" in child.status().engines["asyncio"].detail
        os.kill(child.procs["asyncio"].pid, signal.SIGKILL)  # the frozen digest process reads no end of input
    finally:
        child.close()
    gone = psutil.Process(pid) if psutil.pid_exists(pid) else None
    assert gone is None or wait_for(lambda: not gone.is_running() or gone.status() == psutil.STATUS_ZOMBIE, timeout=3)


def test_restarting_an_engine_whose_digest_process_is_stopped_replaces_both_at_once() -> None:
    child = ChildHost(stream="digest", engines=("threaded", "asyncio"), clients=4, io_ms=10).start()
    pid = _digest_pid(child, "asyncio")
    try:
        os.kill(pid, signal.SIGSTOP)
        assert wait_for(lambda: child.status().engines["asyncio"].state == "stalled", timeout=3)
        took = time.monotonic()
        child._restart_engine("asyncio")  # what `1` does: asked, its writes would wait behind the frozen one
        assert time.monotonic() - took < 5
        assert wait_for(lambda: child.status().engines["asyncio"].state == "live", timeout=5)
        assert _digest_pid(child, "asyncio") != pid
        gone = psutil.Process(pid) if psutil.pid_exists(pid) else None
        assert gone is None or wait_for(lambda: gone.status() == psutil.STATUS_ZOMBIE, timeout=3)
    finally:
        child.close()


def test_a_packed_recorder_keeps_every_record_its_threads_add_while_it_is_drained() -> None:
    """Four threads record through emitters and size_emitter while another drains: every record arrives
    once, whole and in each thread's order; past the bound the oldest go and the batch says so."""
    import threading

    from syncviz.engines.events import MAX_PACKED, RECORD, Recorder
    from syncviz.engines.work import emitters, size_emitter

    recorder = Recorder(packed=True)
    emit, emit_at = emitters(recorder, 1)
    size = size_emitter(recorder, 1)
    per_thread = 10_000  # 40,000 in all: under MAX_PACKED, however the drains fall

    def produce(lane: int) -> None:
        for i in range(per_thread):
            emit_at(i + 1, lane * per_thread + i, lane, 1)
            size(lane * per_thread + i, 7, 9)

    threads = [threading.Thread(target=produce, args=(lane,)) for lane in range(4)]
    got_tr, got_sz = [], []
    for th in threads:
        th.start()
    while any(th.is_alive() for th in threads):
        batch = recorder.drain()
        assert batch.packed is not None and batch.dropped == 0
        got_tr += RECORD.iter_unpack(batch.packed[0])
        got_sz += RECORD.iter_unpack(batch.packed[1])
    batch = recorder.drain()
    got_tr += RECORD.iter_unpack(batch.packed[0])  # type: ignore[index]
    got_sz += RECORD.iter_unpack(batch.packed[1])  # type: ignore[index]
    assert len(got_tr) == len(got_sz) == 4 * per_thread
    for lane in range(4):
        mine = [rec for rec in got_tr if rec[3] == lane]
        assert [rec[0] for rec in mine] == list(range(1, per_thread + 1))  # all, in order
        assert {rec[1] for rec in mine} == {1} and {rec[4] for rec in mine} == {1}
    assert {(rec[1], rec[3], rec[4]) for rec in got_sz} == {(1, 7, 9)}
    emit(1, 0, 1)  # the plain tuple path packs too (prefork's host thread uses it)
    recorder.transition((5, 1, 2, 0, 1))
    assert list(RECORD.iter_unpack(recorder.drain().packed[0]))[1] == (5, 1, 2, 0, 1)  # type: ignore[index]

    for i in range(MAX_PACKED + 10):
        emit_at(i, i, 0, 1)
    over = recorder.drain()
    assert over.dropped == 1
    kept = list(RECORD.iter_unpack(over.packed[0]))  # type: ignore[index]
    assert len(kept) == MAX_PACKED and kept[0][0] == 10  # the newest kept


def test_while_a_stopped_digest_process_leaves_the_pipe_full_the_engine_s_records_stay_bounded() -> None:
    """The writer waits on the full pipe without blocking for good: every WAIT_S it trims the recorder,
    whose packed records then hold at most their bound, and the next drain says some were dropped."""
    import threading

    from syncviz.engines.digester import DigestPipe
    from syncviz.engines.events import MAX_PACKED, RECORD, Recorder
    from syncviz.engines.work import emitters

    recorder = Recorder(packed=True)
    _emit, emit_at = emitters(recorder, 1)
    with open(os.devnull, "wb") as sink:
        pipe = DigestPipe(sink, [])
        os.kill(pipe.pid, signal.SIGSTOP)
        try:
            waits: list[int] = []

            def waiting() -> None:
                for i in range(MAX_PACKED // 4):  # an engine recording meanwhile
                    emit_at(i, i, 0, 1)
                recorder.trim()
                waits.append(len(recorder._packed_tr))

            frame = frame_bytes("started", {"pad": "x" * 200_000})

            def write() -> None:
                with contextlib.suppress(BrokenPipeError):  # the process is killed at the end
                    for _ in range(40):
                        pipe.write(frame, waiting)

            writer = threading.Thread(target=write, daemon=True)
            writer.start()
            deadline = time.monotonic() + 20
            while len(waits) < 8 and time.monotonic() < deadline:
                time.sleep(0.05)
            assert len(waits) >= 8, "the writer never waited on the full pipe"
            assert max(waits) <= MAX_PACKED * RECORD.size  # bounded, however long the stall
            assert writer.is_alive()  # still waiting to write: nothing was lost from the frame stream
        finally:
            os.kill(pipe.pid, signal.SIGKILL)
            pipe.proc.wait(5)
            writer.join(5)
            pipe.proc.stdin.close()  # type: ignore[union-attr]
    batch = recorder.drain()
    assert batch.dropped >= 1 and len(batch.packed[0]) <= MAX_PACKED * RECORD.size  # type: ignore[index]


def test_a_digest_process_busy_while_no_frame_comes_is_said_to_be_behind_not_silent() -> None:
    """The silent engine's panel names what is late: a digest process that keeps using CPU is behind
    (its engine serves on), one that does not is 'no answer' as before. Its share is measured from
    /proc, here on a real busy process and a real idle one."""
    import subprocess
    import sys
    from types import SimpleNamespace

    from syncviz.engines.proc_handle import BEHIND_CPU, ProcHandle

    procs = [
        subprocess.Popen([sys.executable, "-c", code]) for code in ("while True: pass", "import time; time.sleep(30)")
    ]
    try:
        shares = []
        for p in procs:
            look = SimpleNamespace(_digest_ps=psutil.Process(p.pid), _digest_cpu=None, _digest_share=0.0)
            ProcHandle._look_at_digest(look, time.monotonic())  # type: ignore[arg-type]
            time.sleep(1.0)
            ProcHandle._look_at_digest(look, time.monotonic())  # type: ignore[arg-type]
            shares.append(look._digest_share)
    finally:
        for p in procs:
            p.kill()
            p.wait(5)
    assert shares[0] >= BEHIND_CPU > shares[1], shares  # (the busy one shares the cores with the suite's workers)

    def handle(share: float) -> SimpleNamespace:
        return SimpleNamespace(
            alive=True,
            stopped=lambda: False,
            _digest_stopped=False,
            last_frame=time.monotonic() - 3.0,
            _grace_until=0.0,
            _digest_share=share,
        )

    state, detail = ProcHandle.state(handle(shares[0]), 1.0)  # type: ignore[arg-type]
    assert state == "stalled" and detail.startswith("its digest process is behind (3.") and "serves on" in detail
    state, detail = ProcHandle.state(handle(shares[1]), 1.0)  # type: ignore[arg-type]
    assert state == "stalled" and detail.startswith("no answer for 3.")
