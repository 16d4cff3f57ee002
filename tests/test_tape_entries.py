"""The tape's entries and side tracks kept as columns read back as the objects they replace: the
same order, times, status info, files and values, across packing, dropping and moving the columns down."""

from __future__ import annotations

import bisect
import json
from pathlib import Path

import pytest
from syncviz.engines.recording import read_recording
from syncviz.tui import sides as sides_module
from syncviz.tui.entries import Entries, Entry
from syncviz.tui.sides import SERVERS_CODEC, Side
from syncviz.tui.spill import Spill

DATA = Path(__file__).parent / "data"
INFO, BATCHES = read_recording(DATA / "io-bound.rec.gz")


def as_json(entry: Entry) -> object:
    b = entry.batch
    return json.loads(json.dumps((b.t_ns, b.transitions, b.latencies, b.digests, b.blocks)))


def test_entries_read_back_in_order_across_packing_dropping_and_compaction(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(sides_module, "COMPACT_AT", 7)
    entries, mirror = Entries(), []
    infos = [{"scenario": "io-bound"}, {"scenario": "blocking"}]
    spills = [Spill(0), Spill(1)]
    for i, batch in enumerate(BATCHES):
        entry = Entry(batch.t_ns, i, infos[(i // 25) % 2], 1_000 + i, batch)
        entries.append(entry)
        mirror.append((batch.t_ns, i, infos[(i // 25) % 2], 1_000 + i, as_json(entry)))
        if i % 3:  # pack the oldest hot one: into a file, or (every fifth) into memory
            size, failed = entries.pack_oldest(None if i % 5 == 0 else spills[(i // 40) % 2])
            assert failed is None and size > 0
        if i % 4 == 0 and i > 30:
            gone = entries.popleft()
            assert (gone.t_ns, gone.items, gone.info, gone.ns_per_col) == mirror.pop(0)[:4]
        got = [(e.t_ns, e.items, e.info, e.ns_per_col) for e in entries]
        assert got == [m[:4] for m in mirror] and len(entries) == len(mirror)
    assert entries.packed_count > 20 and any(e.spill is None for e in entries if e.hot is None)
    assert entries._base > 0  # the columns were moved down on the way
    assert [as_json(e) for e in entries] == [m[4] for m in mirror]
    times = [m[0] for m in mirror]
    for t in (times[0] - 1, times[0], times[len(times) // 2], times[-1], times[-1] + 1):
        assert entries.index_after(t) == bisect.bisect_right(times, t)
    assert entries[-1].t_ns == times[-1] and entries[0].t_ns == entries.times(0) == times[0]
    while entries:
        entries.popleft()
    assert entries.spilled_bytes() == 0 and not entries._mem and not entries._files  # nothing held


def test_a_file_is_let_go_once_no_kept_entry_is_in_it() -> None:
    entries = Entries()
    first, second = Spill(0), Spill(1)
    for i, batch in enumerate(BATCHES[:6]):
        entries.append(Entry(batch.t_ns, 1, INFO, 1, batch))
        entries.pack_oldest(first if i < 3 else second)
    assert entries.spilled_bytes() == first.size + second.size
    for _ in range(3):
        entries.popleft()
    assert entries.spilled_bytes() == second.size and first not in entries._files.values()


def test_a_side_reads_back_its_values_packed_and_after_compaction(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(sides_module, "COMPACT_AT", 5)
    from syncviz.engines.counts import ServerSnapshot

    side, plain = Side(3, SERVERS_CODEC), Side(None)
    for t in range(0, 200, 2):
        value = {"asyncio": ServerSnapshot(t_ns=t, served=t * 7, workers=1)}
        side.append(t, value)
        plain.append(t, value)
        if t % 10 == 0:
            side.trim(t - 40)
            plain.trim(t - 40)
        assert len(side) == len(plain) and side.last() == plain.last()
        assert side.values(0, len(side)) == plain.values(0, len(plain))
    assert side.packed_count > 10 and len(side._times) < 100 - 10  # the buffers were moved down
    for t in (-1, 150, 151, 198, 500):
        assert side.index_after(t) == plain.index_after(t)


def test_a_batch_of_pipe_frames_is_packed_as_its_frames_and_reads_back_the_same() -> None:
    """The digest stream's batches keep the frames' bytes as read; unpacked, they are the batch
    the app drew (its parts merged in order, its own time and drop count), and a packed frame
    that is not a batch is refused as the pipe would refuse it."""
    import io
    import zlib

    from syncviz.engines.events import Batch
    from syncviz.engines.wire import batch_to_wire, read_frame_bytes, write_frame
    from syncviz.tui.entries import pack_batch, unpack_record

    parts = [b for b in BATCHES if b.transitions][:3]
    merged = Batch(t_ns=123, dropped=7, frames=[], info={"scenario": "io-bound"})
    for part in parts:
        buf = io.BytesIO()
        write_frame(buf, "batch", batch_to_wire(part, 0))
        buf.seek(0)
        kind, _payload, data = read_frame_bytes(buf)  # type: ignore[misc]
        assert kind == "batch"
        merged.frames.append(data)  # type: ignore[union-attr]
        merged.transitions.extend(part.transitions)  # what the frames hold, as objects
        merged.latencies.extend(part.latencies)
        merged.lags.extend(part.lags)
        merged.digests.extend(part.digests)
        merged.blocks.extend(part.blocks)
        merged.sizes.extend(part.sizes)
    packed = pack_batch(merged)
    record = json.loads(zlib.decompress(packed))
    assert "frames" in record and "tr" not in record  # the frames as they came, not encoded again
    back = unpack_record(record)
    assert batch_to_wire(back, 0) == batch_to_wire(merged, 0)
    assert back.info == merged.info
    plain = Batch(**{**merged.__dict__, "frames": None})  # no frames: the objects encoded, the same batch back
    assert batch_to_wire(unpack_record(json.loads(zlib.decompress(pack_batch(plain)))), 0) == batch_to_wire(merged, 0)
    record["frames"][0][0] = "start"
    with pytest.raises(ValueError):
        unpack_record(record)
