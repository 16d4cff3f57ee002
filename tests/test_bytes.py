"""Bytes in and out of each request: counted by the reader and the writes, carried to the detail panel.

The engines' part runs on every engine (the ``engine`` fixture): a raw socket sends a request of
known size and reads the response's raw bytes; the size record must say exactly those. The rest
follows the record through the wire, the digest, the stats, a recording and the panel.
"""

from __future__ import annotations

import dataclasses
import socket
from pathlib import Path

import pytest
from rich.console import Console
from support import connect, wait_for
from syncviz.engines.base import Engine
from syncviz.engines.child import ChildHost
from syncviz.engines.digest import ServerDigest
from syncviz.engines.digest_record import check_record
from syncviz.engines.events import ENGINE_IDS, Batch, Phase, Recorder, Size
from syncviz.engines.http import RequestReader
from syncviz.engines.recording import read_recording, write_recording
from syncviz.engines.stats import SIZES_KEPT, EngineStats, StreamStats
from syncviz.engines.wire import WireError, batch_to_wire, decode_batch
from syncviz.tui.inspect import request_detail
from syncviz.tui.widgets.detail import request_view

DATA = Path(__file__).parent / "data"
Q, RUN, DONE = int(Phase.QUEUED), int(Phase.RUNNING), int(Phase.DONE)


def post(rid: int, body: bytes, path: str = "/") -> bytes:
    head = b"POST %s HTTP/1.1\r\nHost: t\r\nX-Req-Id: %d\r\nContent-Length: %d\r\n\r\n"
    return head % (path.encode(), rid, len(body)) + body


def raw_response(sock: socket.socket) -> bytes:
    """One fixed-length response, every byte of it as it came off the socket."""
    buf = b""
    while b"\r\n\r\n" not in buf:
        buf += sock.recv(65536)
    head = buf[: buf.index(b"\r\n\r\n") + 4]
    length = int(next(ln for ln in head.split(b"\r\n") if ln.lower().startswith(b"content-length:")).split(b":")[1])
    while len(buf) < len(head) + length:
        buf += sock.recv(65536)
    assert len(buf) == len(head) + length  # nothing past it: the next request is not sent yet
    return buf


# -- the reader -------------------------------------------------------------------------
def test_a_request_alone_in_its_reads_gets_their_exact_total() -> None:
    reader = RequestReader()
    one = post(1, b"x" * 300)
    (req,) = reader.feed(one)
    assert req.bytes_in == len(one)
    two = post(2, b"y" * 5000)
    assert reader.feed(two[:10]) == [] and reader.feed(two[10:70]) == []  # over three reads
    (req,) = reader.feed(two[70:])
    assert req.bytes_in == len(two)


def test_pipelined_requests_sharing_a_read_are_not_split_by_guesswork() -> None:
    reader = RequestReader()
    a, b, c = post(1, b"a" * 10), post(2, b"b" * 20), post(3, b"c" * 30)
    reqs = reader.feed(a + b)
    assert [r.bytes_in for r in reqs] == [-1, -1]  # two in one read: no offsets to split it by
    assert [r.bytes_in for r in reader.feed(c + a[:5])] == [-1]  # another begins in c's read
    assert [r.bytes_in for r in reader.feed(a[5:])] == [-1]  # so that one shared its first read
    assert [r.bytes_in for r in reader.feed(c)] == [len(c)]  # alone again: exact


# -- every engine -----------------------------------------------------------------------
def sizes_of(recorder: Recorder, kept: list[Size], rid: int) -> list[Size]:
    kept.extend(recorder.drain().sizes)
    return [s for s in kept if s[2] == rid]


def test_every_engine_records_a_request_s_exact_bytes_in_and_out(engine: Engine, recorder: Recorder) -> None:
    kept: list[Size] = []
    with connect(engine.port) as sock:
        cases = [(71, post(71, b"z" * 1234)), (72, post(72, b"", "/nope")), (73, post(73, b"q" * 40_000))]
        for rid, request in cases:
            sock.sendall(request)
            response = raw_response(sock)
            assert wait_for(lambda rid=rid: sizes_of(recorder, kept, rid)), f"no size record for #{rid}"
            (size,) = sizes_of(recorder, kept, rid)
            assert size[1] == ENGINE_IDS[engine.name]
            assert size[3:] == (len(request), len(response))  # 40 kB may come in several reads: still its own


# -- wire, digest, stats, recordings, the panel -------------------------------------------
def test_size_records_cross_the_wire_checked_and_old_frames_read_without_them() -> None:
    batch = Batch(t_ns=5, sizes=[(5, 1, 7, 120, 95), (6, 2, 8, -1, 95)])
    wire = batch_to_wire(batch, 1)
    assert decode_batch(wire).batch.sizes == batch.sizes
    old = batch_to_wire(Batch(t_ns=5), 1)
    assert "sz" not in old and decode_batch(old).batch.sizes == []
    for bad in ([5, 1, 7, 120], [5, 1, 7, -2, 95], [5, 9, 7, 1, 1], [5, 1, 7, 1.5, 1], [5, 1, -3, 1, 1]):
        with pytest.raises(WireError):
            decode_batch({**wire, "sz": bad})


def test_the_server_digest_passes_on_only_its_rows_sizes() -> None:
    digest = ServerDigest(True, 10_000_000)
    for rid in (1, 2):
        digest.transition(100 + rid, rid, 0, RUN)
    digest.transition(200, 1, 0, DONE)
    digest.size(1, 90, 95)  # finished, a row: passed on
    digest.size(2, 80, -1)  # still in flight (the client went away mid-response): passed on
    digest.size(3, 70, 95)  # never seen: dropped
    digest.size(2, -1, -1)  # nothing measured: nothing to pass on
    digest._ended_rows.clear()  # a finished request that was no row: dropped
    digest.size(1, 1, 1)
    rec = digest.take(300, False)
    assert rec["sizes"] == [1, 90, 95, 2, 80, -1]
    check_record({"server": rec})
    assert "sizes" not in digest.take(400, False)  # taken once
    for bad in ([1, 90], [1, -2, 3], [-1, 1, 1], [1, 1, True]):
        with pytest.raises(ValueError, match="sizes"):
            check_record({"server": {**rec, "sizes": bad}})


def stream(rid: int, sizes: list[Size]) -> Batch:
    e = ENGINE_IDS["asyncio"]
    steps = [(100, e, rid, -1, Q), (150, e, rid, 0, RUN), (200, e, rid, 0, DONE)]
    return Batch(transitions=steps, sizes=sizes, t_ns=300)


def test_the_detail_shows_a_request_s_bytes_and_n_a_without_them(tmp_path: Path) -> None:
    e = ENGINE_IDS["asyncio"]
    stats = StreamStats()
    stats.feed(stream(7, [(201, e, 7, 1_234, 95)]))
    eng = stats["asyncio"]
    assert eng.sizes == {7: (1_234, 95)}
    (track,) = eng.recent
    d = request_detail(eng, track, {0: "loop"}, 400)
    assert (d.bytes_in, d.bytes_out) == (1_234, 95)
    text = render(d)
    assert "in 1,234 B · out 95 B" in text
    early = request_detail(eng, track, {0: "loop"}, 190)  # before it ended (a scrubbed moment): not yet
    assert (early.bytes_in, early.bytes_out) == (None, None) and "not finished yet" in render(early)
    stats.feed(stream(8, [(201, e, 8, -1, 95)]))  # pipelined: its bytes in unknown
    d = request_detail(eng, eng.recent[-1], {0: "loop"}, 400)
    assert (d.bytes_in, d.bytes_out) == (None, 95) and "in n/a · out 95 B" in render(d)
    # a recording carries them; one without them reads as n/a
    path = tmp_path / "sz.rec.gz"
    info = {"scenario": "io-bound", "engines": ["asyncio"], "run": 1, "load": True}
    write_recording(path, info, [stream(9, [(201, e, 9, 300, 95)]), stream(10, [])])
    replay = StreamStats()
    for batch in read_recording(path)[1]:
        replay.feed(batch)
    got = {t.rid: request_detail(replay["asyncio"], t, {}, 400) for t in replay["asyncio"].recent}
    assert (got[9].bytes_in, got[9].bytes_out) == (300, 95)
    assert (got[10].bytes_in, got[10].bytes_out) == (None, None)
    assert "not measured for this request" in render(got[10])  # this source has them, not for #10


def test_a_recording_without_sizes_reads_as_n_a_and_the_committed_one_has_them() -> None:
    batches = read_recording(DATA / "io-bound.rec.gz")[1]
    for strip in (True, False):
        stats = StreamStats()
        for batch in batches:
            if strip:  # as a recording made before sizes were measured
                batch = dataclasses.replace(batch, sizes=[])
            stats.feed(batch)
        eng = next(e for e in stats.engines if e.recent)
        d = request_detail(eng, eng.recent[-1], {}, stats.last_t_ns)
        if strip:
            assert all(not e.sizes for e in stats.engines)
            assert (d.bytes_in, d.bytes_out) == (None, None)
            assert "n/a  in and out: not measured by this source" in render(d)
        else:
            assert any(e.sizes for e in stats.engines)
            assert any(rid in e.sizes for e in stats.engines for rid in (r.rid for r in e.recent))


def test_the_stats_keep_a_bounded_map() -> None:
    eng = EngineStats("gevent")
    for rid in range(SIZES_KEPT + 10):
        eng.take_size(rid, rid, 1)
    assert len(eng.sizes) == SIZES_KEPT and 0 not in eng.sizes and eng.sizes[SIZES_KEPT + 9] == (SIZES_KEPT + 9, 1)


def render(d: object) -> str:
    console = Console(width=60, record=True, color_system=None)
    console.print(request_view(d))  # type: ignore[arg-type]
    return console.export_text()


# -- the app's path: engine processes digesting, rows' sizes over the pipe -------------------
@pytest.mark.parametrize("mode", ["digest", "full"])
def test_the_engine_processes_carry_the_rows_sizes(mode: str) -> None:
    """``digest`` (the app): the engine process passes on its rows' sizes; ``full`` (bench, record):
    every size record, held back like the transitions so none comes before its request's."""
    stats = StreamStats()

    def finished_and_shown(name: str) -> tuple[list, list]:
        eng = stats[name]
        finished = [t for t in eng.recent if t.phase == Phase.DONE]
        return finished, [eng.sizes.get(t.rid) for t in finished]

    def fed_enough() -> bool:  # the last few may still come
        stats.feed(child.drain())
        return all(
            len(f) > 20 and sum(s is not None for s in shown) >= 0.9 * len(f)
            for f, shown in map(finished_and_shown, ("asyncio", "threaded"))
        )

    with ChildHost(scenario="io-bound", engines=["asyncio", "threaded"], stream=mode, clients=10, io_ms=10) as child:
        wait_for(fed_enough, timeout=10.0)  # ~0.5 s; the bound is a loaded machine's
    for name in ("asyncio", "threaded"):
        finished, shown = finished_and_shown(name)
        assert len(finished) > 20, name
        assert sum(s is not None for s in shown) >= 0.9 * len(finished), name
        ins, outs = {s[0] for s in shown if s}, {s[1] for s in shown if s}
        assert len(outs) == 1 and outs.pop() > 60, name  # the one hello response, every time
        assert min(ins) > 40, name  # the load generator's GET with its id headers
