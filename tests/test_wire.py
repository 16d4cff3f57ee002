"""The pipe format: plain, versioned records; anything else is a one-line WireError, never code run."""

from __future__ import annotations

import io
import json
import struct
from collections.abc import Callable

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from syncviz.engines.counts import ServerSnapshot
from syncviz.engines.events import Batch
from syncviz.engines.wire import WireError, batch_from_wire, batch_to_wire, decode_batch, read_frame, write_frame


def test_a_batch_survives_the_pipe() -> None:
    b = Batch(t_ns=10, dropped=1)
    b.transitions = [(1, 0, 5, 2, 1), (2, 1, 6, -1, 0)]
    b.latencies = [(3, 2, 5, 1000, True), (4, 0, 6, 9, False)]
    b.lags = [(5, 1, 77)]
    buf = io.BytesIO()
    write_frame(buf, "batch", batch_to_wire(b, run=3))
    buf.seek(0)
    kind, payload = read_frame(buf)  # type: ignore[misc]
    again, run = batch_from_wire(payload)
    assert kind == "batch" and run == 3
    assert (again.transitions, again.latencies, again.lags, again.t_ns, again.dropped) == (
        b.transitions,
        b.latencies,
        b.lags,
        10,
        1,
    )


def test_the_server_counts_ride_with_the_batch() -> None:
    srv = ServerSnapshot(t_ns=99, served=5, failed=1, timeouts=1, reading=2, workers=8, pool_used=0, pool_size=0)
    buf = io.BytesIO()
    write_frame(buf, "batch", batch_to_wire(Batch(t_ns=99), run=2, server=srv))
    buf.seek(0)
    got = decode_batch(read_frame(buf)[1])  # type: ignore[index]
    assert got.server == srv and got.run == 2 and got.stall_ns == 0
    old = batch_to_wire(Batch(t_ns=5), run=1)  # a frame without ``srv`` (the load process's, an older one)
    assert "srv" not in old and decode_batch(old).server is None and batch_from_wire(old)[1] == 1


@pytest.mark.parametrize(
    "srv",
    [
        {"served": -1},
        {"served": 1.5},
        {"served": True},
        {"served": "3"},
        {"bogus": 1},
        [1, 2, 3],
        "served",
    ],
)
def test_bad_server_counts_are_a_wire_error(srv: object) -> None:
    payload = batch_to_wire(Batch(t_ns=1), run=1)
    payload["srv"] = srv
    with pytest.raises(WireError, match="srv") as caught:
        decode_batch(payload)
    assert "\n" not in str(caught.value)
    with pytest.raises(WireError):
        batch_from_wire(payload)


def _frame(obj: object) -> io.BytesIO:
    data = json.dumps(obj).encode()
    return io.BytesIO(struct.pack(">I", len(data)) + data)


@pytest.mark.parametrize(
    "frame",
    [
        ["exec", None],
        {"kind": "batch"},
        ["batch", {"v": 99}],
        ["batch", {"v": 1, "run": 1, "t": 1, "tr": [1, 2, 3], "lat": [], "lag": []}],
        ["batch", {"v": 1, "run": 1, "t": 1, "tr": [1, 2, 3, 4, "x"], "lat": [], "lag": []}],
        ["batch", {"v": 1, "run": -1, "t": 1, "tr": [], "lat": [], "lag": []}],
    ],
)
def test_foreign_frames_are_refused(frame: object) -> None:
    with pytest.raises(WireError):
        got = read_frame(_frame(frame))
        assert got is not None
        batch_from_wire(got[1])


def test_a_pickle_is_not_a_frame() -> None:
    import pickle

    data = pickle.dumps(["batch", {}])
    with pytest.raises(WireError):
        read_frame(io.BytesIO(struct.pack(">I", len(data)) + data))


@settings(max_examples=200, deadline=None)
@given(st.binary(max_size=300))
def test_random_bytes_never_raise_anything_but_wire_error(data: bytes) -> None:
    try:
        got = read_frame(io.BytesIO(data))
        if got is not None and got[0] == "batch":
            batch_from_wire(got[1])
    except WireError:
        pass


def test_an_engine_id_or_phase_out_of_range_is_a_wire_error() -> None:
    from syncviz.engines.events import Batch as B
    from syncviz.engines.wire import WireError, batch_to_wire, decode_batch

    good = batch_to_wire(B(transitions=[(5, 1, 9, 0, 1)], t_ns=10), run=1)
    decode_batch(good)
    for bad in ([5, 7, 9, 0, 1], [5, 1, 9, 0, 42], [5, 1, 9, -9, 1]):
        with pytest.raises(WireError):
            decode_batch({**good, "tr": bad})


def test_a_digests_rows_come_as_tuples_the_collector_leaves_alone() -> None:
    """The app keeps seconds of batches: their picture rows must not be lists the cyclic GC scans."""
    import gc

    from syncviz.engines.digest import ServerDigest
    from syncviz.engines.events import Phase

    server = ServerDigest(True, 10_000_000)
    for rid in range(20):
        server.transition(1_000 + rid * 3_000_000, rid, 0, Phase.RUNNING)
        server.transition(2_000_000 + rid * 3_000_000, rid, 0, Phase.DONE)
    batch = Batch(t_ns=70_000_000, digests=[(1, {"server": server.take(70_000_000, True)})])
    got, _ = batch_from_wire(json.loads(json.dumps(batch_to_wire(batch, 0))))
    part = got.digests[0][1]["server"]
    rows = [r for key in ("hold", "wait", "held", "open_q", "open_r", "sent") for r in part[key]]
    assert rows and all(type(r) is tuple for r in rows)
    gc.collect()
    assert not any(gc.is_tracked(r) for r in rows)


_INT64 = st.integers(-(1 << 63), (1 << 63) - 1)
_NEAR_BOUNDS_LIST = [
    -(1 << 63),
    -3,
    -2,
    -1,
    0,
    1,
    5,
    6,
    8,
    9,
    255,
    256,
    (1 << 31) - 1,
    1 << 31,
    1 << 32,
    1 << 56,
    (1 << 63) - 1,
]
_NEAR_BOUNDS = st.sampled_from(_NEAR_BOUNDS_LIST)


@settings(max_examples=300, deadline=None)
@given(
    key=st.sampled_from(["tr", "sz"]),
    rows=st.lists(st.tuples(*[st.one_of(_NEAR_BOUNDS, _INT64)] * 5), min_size=1, max_size=6),
)
def test_packed_records_are_judged_as_the_json_ones_are(key: str, rows: list[tuple[int, ...]]) -> None:
    """check_packed (bytes, in the digest process) and check_ranges (a decoded record) agree on every value."""
    verdicts = _verdicts(key, rows)
    assert verdicts[0] == verdicts[1], (rows, verdicts)


def _verdicts(key: str, rows: list[tuple[int, ...]]) -> tuple[bool, bool]:
    """Whether check_ranges, then check_packed, accept ``rows`` as field ``key``."""
    from syncviz.engines.events import RECORD
    from syncviz.engines.wire import check_packed, check_ranges

    flat = [x for row in rows for x in row]
    packed = b"".join(RECORD.pack(*r) for r in rows)
    return _accepts(lambda: check_ranges({"t": 0, key: flat})), _accepts(lambda: check_packed(key, packed))


def _accepts(check: Callable[[], object]) -> bool:
    try:
        check()
    except ValueError:
        return False
    return True


@pytest.mark.parametrize("key", ["tr", "sz"])
def test_each_value_near_a_bound_in_each_column_is_judged_as_the_json_ones_are(key: str) -> None:
    """Every near-bound value in every column of an otherwise valid record (random rows rarely reach
    the later columns: one bad value earlier refuses the record first), alone and beside a valid row."""
    valid = (1, 1, 7, 0, 1)
    for column in range(5):
        for value in _NEAR_BOUNDS_LIST:
            row = (*valid[:column], value, *valid[column + 1 :])
            for rows in ([row], [valid, row]):
                verdicts = _verdicts(key, rows)
                assert verdicts[0] == verdicts[1], (key, rows, verdicts)


def test_a_packed_field_that_is_not_whole_records_is_refused() -> None:
    from syncviz.engines.wire import check_packed

    with pytest.raises(ValueError, match="whole number of records"):
        check_packed("tr", b"\0" * 41)
    check_packed("tr", b"")  # nothing recorded: nothing to refuse
