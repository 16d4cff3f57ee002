"""The tape's older minutes live in unlinked temporary files, not in the app's memory: they come back
as they went in, the files stay bounded over a long run, a save in progress keeps its files, and
without a usable temporary directory the tape keeps them in memory and says so in one line."""

from __future__ import annotations

import copy
import errno
import json
import os
import tempfile
from pathlib import Path

import pytest
from syncviz.engines.counts import ServerSnapshot
from syncviz.engines.events import Batch
from syncviz.engines.recording import RecordingError, read_recording
from syncviz.engines.stats import stream_items
from syncviz.tui import tape as tape_module
from syncviz.tui.board import Board
from syncviz.tui.tape import Spill, Tape

DATA = Path(__file__).parent / "data"
INFO, BATCHES = read_recording(DATA / "io-bound.rec.gz")
LAP_NS = BATCHES[-1].t_ns - BATCHES[0].t_ns + 100_000_000  # one play of the recording, in stream time


def laps(n: int) -> list[Batch]:
    """The recording played ``n`` times end to end (each lap's batches shifted on in stream time)."""
    out = []
    for lap in range(n):
        for batch in BATCHES:
            again = copy.copy(batch)
            again.t_ns = batch.t_ns + lap * LAP_NS
            out.append(again)
    return out


def fill(tape: Tape, batches: list[Batch]) -> None:
    board = Board(INFO)
    for batch in batches:
        tape.add(batch, stream_items(batch), board.info, board.ns_per_col)


def same(a: Batch, b: Batch) -> bool:
    """The same records (a kept batch holds tuples where a fresh one holds lists: compared as JSON)."""
    return as_json(a) == as_json(b)


def as_json(batch: Batch) -> object:
    return json.loads(json.dumps((batch.transitions, batch.latencies, batch.digests, batch.blocks)))


def test_packed_batches_go_to_an_unlinked_file_and_come_back_as_they_went_in() -> None:
    tape = Tape(hot_s=0.5)
    fill(tape, BATCHES)
    packed = [(e, b) for e, b in zip(tape.entries, BATCHES, strict=True) if e.hot is None]
    assert len(packed) > len(BATCHES) // 2 and not tape.spill_note
    assert all(e.spill is not None and e.packed == b"" for e, _ in packed)  # none of it in memory
    assert all(same(e.batch, b) for e, b in packed)
    assert tape.bytes == sum(e.size for e in tape.entries)
    for spill in {id(e.spill): e.spill for e, _ in packed}.values():
        assert os.fstat(spill.file.fileno()).st_nlink == 0  # no name: gone on exit, even on kill -9
    assert tape.spilled_bytes() == sum(e.length for e, _ in packed)


def test_files_stay_bounded_over_a_long_run(monkeypatch: pytest.MonkeyPatch) -> None:
    """40 laps of the recording through a 3 s tape: old files close, the space kept is the tape's
    packed entries and at most one file's worth more, and what is kept still reads back."""
    monkeypatch.setattr(tape_module, "SPILL_NS", 500_000_000)
    tape = Tape(keep_s=3.0, hot_s=0.5)
    fed = laps(40)
    first: Spill | None = None
    seen_files = []
    for i in range(0, len(fed), len(BATCHES)):
        fill(tape, fed[i : i + len(BATCHES)])
        spills = {id(e.spill): e.spill for e in tape.entries if e.spill is not None}
        first = first or next(iter(spills.values()))
        seen_files.append(len(spills))
        kept = sum(e.length for e in tape.entries if e.spill is not None)
        largest = max(s.size for s in spills.values())
        assert kept <= tape.spilled_bytes() <= kept + largest
    file = first.file
    del first  # the only reference left to the first file: it closes
    assert file.closed
    assert max(seen_files) <= 3 / 0.5 + 2
    kept = list(tape.entries)  # the newest of what was fed, in order (two can share a drain time)
    assert all(same(e.batch, b) for e, b in zip(kept, fed[-len(kept) :], strict=True) if e.spill is not None)


def test_a_save_in_progress_keeps_its_files(tmp_path: Path) -> None:
    tape = Tape(keep_s=3.0, hot_s=0.5)
    fill(tape, laps(1))
    taken = list(tape.entries)  # what ctrl+s hands its thread
    fill(tape, laps(4)[len(BATCHES) :])  # meanwhile the tape moves on: those entries expire
    assert taken[0].t_ns < tape.start_ns
    count = tape.save(tmp_path / "saved.rec.gz", taken)
    _, batches = read_recording(tmp_path / "saved.rec.gz")
    assert count == len(batches) == len(BATCHES)
    assert all(same(a, b) for a, b in zip(batches, BATCHES, strict=True))


def test_without_a_temporary_directory_it_keeps_them_in_memory_and_says_so(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path / "gone"))  # as an unusable TMPDIR leaves it
    tape = Tape(hot_s=0.5)
    fill(tape, BATCHES)
    packed = [(e, b) for e, b in zip(tape.entries, BATCHES, strict=True) if e.hot is None]
    assert packed and all(e.spill is None and e.packed for e, _ in packed)
    assert all(same(e.batch, b) for e, b in packed)
    note = tape.spill_note
    assert "kept in memory: no temporary file" in note and "\n" not in note and "Traceback" not in note
    monkeypatch.setattr(tempfile, "tempdir", None)
    tape.clear()  # a fresh tape tries again
    fill(tape, BATCHES)
    assert not tape.spill_note and any(e.spill is not None for e in tape.entries)


def test_a_failed_write_keeps_that_batch_and_the_next_in_memory(monkeypatch: pytest.MonkeyPatch) -> None:
    calls = []

    def full(self: Spill, data: bytes) -> int:
        calls.append(len(data))
        raise OSError(errno.ENOSPC, "No space left on device")

    tape = Tape(hot_s=0.5)
    fill(tape, BATCHES[:40])
    monkeypatch.setattr(Spill, "write", full)
    fill(tape, BATCHES[40:])
    assert len(calls) == 1 and "could not write" in tape.spill_note and "No space left" in tape.spill_note
    assert all(same(e.batch, b) for e, b in zip(tape.entries, BATCHES, strict=True))
    assert any(e.spill is not None for e in tape.entries) and any(e.packed for e in tape.entries)


def test_a_batch_that_cannot_be_read_back_is_one_line() -> None:
    tape = Tape(hot_s=0.5)
    fill(tape, BATCHES)
    entry = next(e for e in tape.entries if e.spill is not None)
    entry.length += 10**6  # past the end of its file
    with pytest.raises(RecordingError, match=r"could not be read back: .*short read") as caught:
        _ = entry.batch
    assert "\n" not in str(caught.value)


def test_counters_and_source_counters_read_back_the_same_when_packed() -> None:
    """Side values older than hot_s are kept packed (JSON, zlib); what the tape says of any moment is unchanged."""
    board = Board(INFO)
    packed, plain = Tape(hot_s=0.5), Tape(hot_s=600)
    served = 0
    for i, batch in enumerate(BATCHES):
        for tape in (packed, plain):
            tape.add(batch, stream_items(batch), board.info, board.ns_per_col)
        board.feed(batch)
        counters = board.refresh_counters()
        served += 37 * i
        snaps = {name: ServerSnapshot(t_ns=batch.t_ns, served=served, workers=8) for name in board.engines}
        for tape in (packed, plain):
            tape.note_counters(board.now_ns, counters, sample=i % 3 == 0)
            tape.note_servers(board.now_ns, snaps)
    assert packed._counters.packed_count and packed._servers.packed_count
    for batch in BATCHES[::7]:
        t = batch.t_ns
        assert packed.counters_at(t) == plain.counters_at(t)
        assert packed.servers_at(t) == plain.servers_at(t)
        a, b = packed.history_at(t), plain.history_at(t)
        assert (a.rps, a.p99) == (b.rps, b.p99)


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@pytest.mark.anyio
async def test_the_app_says_once_when_the_tape_keeps_its_minutes_in_memory(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    from syncviz.engines.recording import Replay
    from syncviz.tui.app import SyncvizApp

    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path / "gone"))  # as an unusable TMPDIR leaves it
    from syncviz.tui.scrub import Scrub

    app = SyncvizApp(Replay.from_file(DATA / "io-bound.rec.gz"), live=False)
    app.tape = Tape(hot_s=0.5)  # the recording's few seconds go past the hot window
    app.scrub = Scrub(app.tape)
    async with app.run_test(size=(200, 50)) as pilot:
        await pilot.pause()
        app.play_to_end()
        app.check_source()
        app.check_source()
        await pilot.pause()
        told = [n.message for n in app._notifications if "kept in memory" in n.message]
        assert app.tape.spill_note and told == [app.tape.spill_note]


def test_a_kept_batch_is_left_alone_by_the_cyclic_collector() -> None:
    """Once the next batch comes (the board has been fed this one), the tape keeps it as tuples:
    full collections no longer walk seconds of records item by item."""
    import gc

    from syncviz.engines.digest import ServerDigest
    from syncviz.engines.events import Phase
    from syncviz.engines.wire import batch_from_wire, batch_to_wire

    server = ServerDigest(True, 10_000_000)
    for rid in range(20):
        server.transition(1_000 + rid * 3_000_000, rid, 0, Phase.RUNNING)
        server.transition(2_000_000 + rid * 3_000_000, rid, 0, Phase.DONE)
    record = Batch(t_ns=BATCHES[29].t_ns, digests=[(1, {"server": server.take(70_000_000, True)})])
    digested, _ = batch_from_wire(json.loads(json.dumps(batch_to_wire(record, 0))))  # as it comes from a pipe
    tape = Tape(hot_s=600)  # all kept as objects: what the newest second holds
    fill(tape, [*BATCHES[:30], digested, BATCHES[30]])
    kept = [e.hot for e in list(tape.entries)[:-1]]
    assert all(b is not None and type(b.transitions) is tuple and type(b.digests) is tuple for b in kept)
    gc.collect()
    gc.collect()  # a tuple of tuples: the inner ones are let go at the first look, the outer at the next
    assert not any(gc.is_tracked(b.transitions) for b in kept if b.transitions)  # type: ignore[union-attr]
    part = kept[-1].digests[0][1]["server"]  # type: ignore[union-attr]
    assert part["rows"] and part["hold"]
    tracked = [key for key in ("rows", "hold", "wait", "held", "open_q", "open_r", "sent") if gc.is_tracked(part[key])]
    assert not tracked, [(key, part[key]) for key in tracked]


def test_a_saved_tape_keeps_the_servers_own_counts_packed_batches_too(tmp_path: Path) -> None:
    # a replay of a ctrl+s recording drew no server line (served/s, conns waiting, pool): the tape had
    # the engines' counts for scrubbing, the file did not
    tape = Tape(hot_s=0.5)
    board = Board(INFO)
    for i, batch in enumerate(laps(2)):
        tape.add(batch, stream_items(batch), board.info, board.ns_per_col)
        tape.note_servers(batch.t_ns, {"threaded": ServerSnapshot(t_ns=batch.t_ns, served=i, waiting=92)})
    assert any(e.hot is None for e in tape.entries)  # some were packed: their batches carry no counts
    assert tape.save(tmp_path / "s.rec.gz") == len(tape.entries)
    _, saved = read_recording(tmp_path / "s.rec.gz")
    assert saved and all(b.servers and b.servers["threaded"]["waiting"] == 92 for b in saved)
    assert [b.servers["threaded"]["served"] for b in saved] == sorted(b.servers["threaded"]["served"] for b in saved)
