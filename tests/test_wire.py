"""The pipe format: plain, versioned records; anything else is a one-line WireError, never code run."""

from __future__ import annotations

import io
import json
import struct

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from syncviz.engines.events import Batch
from syncviz.engines.wire import WireError, batch_from_wire, batch_to_wire, read_frame, write_frame


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
