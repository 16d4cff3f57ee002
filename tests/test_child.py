"""The engine processes seen through their host: the stream over the pipes, commands, a clean exit."""

from __future__ import annotations

import time

import pytest
from support import wait_for
from syncviz.engines.base import EngineError
from syncviz.engines.child import ChildHost
from syncviz.engines.recording import Replay, read_recording, record, write_recording
from syncviz.engines.stats import StreamStats


def test_child_streams_takes_commands_and_exits(tmp_path) -> None:
    child = ChildHost(scenario="io-bound", clients=10, io_ms=20).start()
    pids = [p.pid for p in child.procs.values()] + [child.loadproc.pid]  # type: ignore[union-attr]
    try:
        assert child.info()["scenario"] == "io-bound" and set(child.info()["ports"]) == {
            "threaded",
            "asyncio",
            "gevent",
        }
        stats = StreamStats()
        assert wait_for(lambda: stats.feed(child.drain()) or stats.counters()["gevent"].completed > 20)
        child.apply(pool=2)
        assert wait_for(
            lambda: (
                (child.drain().info or {}).get("settings", {}).get("pool") == 2 or child.info()["settings"]["pool"] == 2
            )
        )
        batches = record(child, 0.5)
        assert sum(len(b.transitions) for b in batches) > 0
        assert all(b.frames is None for b in batches if b.transitions)  # raw transitions are cut at the watermark
        path = tmp_path / "io.rec.gz"
        write_recording(path, child.info(), batches)
        info, again = read_recording(path)
        assert info["scenario"] == "io-bound" and len(again) == len(batches)
        replay = Replay(info, again)
        assert len(replay.drain().transitions) == len(batches[0].transitions)
    finally:
        t0 = time.monotonic()
        child.close()
        assert time.monotonic() - t0 < 3.0
    assert not any(_alive(pid) for pid in pids)


def test_child_start_errors_come_back_as_one_line() -> None:
    with pytest.raises(EngineError, match="unknown engine"):
        ChildHost(engines=["nope"]).start()


def _alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/status") as f:
            return "zombie" not in f.read()
    except FileNotFoundError:
        return False


def test_a_failing_command_is_reported_and_the_engines_keep_running() -> None:
    with ChildHost(scenario="io-bound", clients=5, io_ms=10) as child:
        child.set_scenario("io-bound", slow=2.0)  # once crashed the child (slow passed twice)
        child.apply(pool=0)  # out of range: an error, not a crash
        assert wait_for(lambda: bool(child.drain().transitions) and len(child.errors) >= 1, timeout=5)
        assert "pool must be between" in child.errors[-1]
        assert child.alive
        assert wait_for(lambda: child.drain().info is not None or child.info()["settings"]["slow"] == 2.0)


def test_a_digest_stream_batch_is_its_frames_and_packs_back_the_same() -> None:
    """The app's stream: each drained batch is all of the frames it came in (the tape keeps their
    bytes), and those frames unpacked are the batch the board was fed."""
    import json
    import zlib

    from syncviz.engines.wire import batch_to_wire
    from syncviz.tui.entries import pack_batch, unpack_record

    with ChildHost(scenario="io-bound", clients=5, io_ms=10, stream="digest") as child:
        seen = []
        assert wait_for(lambda: seen.append(child.drain()) or sum(bool(b.digests) for b in seen) >= 5)
    for batch in seen:
        assert batch.frames is not None and bool(batch.frames) == bool(batch.digests or batch.latencies)
        back = unpack_record(json.loads(zlib.decompress(pack_batch(batch))))
        assert batch_to_wire(back, 0) == batch_to_wire(batch, 0)
