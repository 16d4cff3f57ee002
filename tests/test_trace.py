"""The Perfetto / Chrome trace export: well-formed for Perfetto's importer, true to the stream.

:func:`check_trace` holds the export to the rules ui.perfetto.dev's JSON importer applies: every
``E`` closes a ``B`` of its thread, ``X`` slices on one thread nest and never partly overlap, every
``e`` closes the innermost open ``b`` of its async track (one per category and id, whatever the
process: so no id may be shared by two processes), and each time reads back as the same
nanosecond both as a decimal and as a double times 1000 (truncated, as the importer does).
Hand-made batches pin down what lands where; one short live run and one short recording are the
issue's must-show.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import math
import os
import random
import subprocess
import threading
import time
from collections import defaultdict
from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from support import SYNCVIZ, new_threads
from syncviz.engines.bench import BENCH_LOCK
from syncviz.engines.events import ENGINE_IDS, HANDED_OVER, Batch, Phase
from syncviz.engines.http import EXTERNAL_IDS_START
from syncviz.engines.stall import BUSY
from syncviz.engines.trace import build_trace, us, write_trace
from syncviz.engines.trace_collect import collect
from syncviz.tui.cli import main

T, A, G = ENGINE_IDS["threaded"], ENGINE_IDS["asyncio"], ENGINE_IDS["gevent"]
Q, RUN, BLK, AW, YLD, RDY, DONE, FAIL, READ = (
    Phase.QUEUED,
    Phase.RUNNING,
    Phase.BLOCKED,
    Phase.AWAITING,
    Phase.YIELDED,
    Phase.READY,
    Phase.DONE,
    Phase.FAILED,
    Phase.READING,
)
MS = 1_000_000
BASE = 5_000_000_000_000  # a monotonic clock some hours after boot


def syncviz(*args: str, timeout: float = 120) -> subprocess.CompletedProcess:
    return subprocess.run([*SYNCVIZ, *args], capture_output=True, text=True, timeout=timeout)


# -- the checker -----------------------------------------------------------------------
def ns(value: Any) -> int:
    """A time as Perfetto's importer reads it: decimal (timestamps) and double (durations) must agree."""
    exact = int(Decimal(repr(value)) * 1000)
    assert math.floor(float(value) * 1000.0) == exact, value
    assert exact >= 0, value
    return exact


def check_trace(obj: dict[str, Any]) -> dict[str, int]:
    """Assert ``obj`` is a well-formed trace (see the module docstring); counts of what it holds."""
    obj = json.loads(json.dumps(obj))  # plain JSON, nothing Python-only
    events = obj["traceEvents"]
    assert obj["displayTimeUnit"] == "ms"
    order = sorted(range(len(events)), key=lambda i: (events[i]["ph"] != "M", ns(events[i].get("ts", 0))))
    begun: dict[tuple[int, int], list[str]] = defaultdict(list)  # B/E per thread
    ends: dict[tuple[int, int], list[int]] = defaultdict(list)  # X nesting per thread
    async_open: dict[tuple[str, str], list[str]] = defaultdict(list)
    async_pid: dict[tuple[str, str], int] = {}
    counts = defaultdict(int)
    xs = sorted(
        (i for i in order if events[i]["ph"] == "X"), key=lambda i: (ns(events[i]["ts"]), -ns(events[i]["dur"]))
    )
    for i in xs:
        ev = events[i]
        key, t0 = (ev["pid"], ev["tid"]), ns(ev["ts"])
        t1 = t0 + ns(ev["dur"])
        stack = ends[key]
        while stack and stack[-1] <= t0:
            stack.pop()
        assert not stack or t1 <= stack[-1], f"X partly overlaps its enclosing slice: {ev}"
        stack.append(t1)
        counts["X"] += 1
    for i in order:
        ev = events[i]
        ph = ev["ph"]
        assert isinstance(ev["pid"], int) and 0 <= ev["pid"] < 2**32
        assert ph in "MXbeC", ev  # no B/E at all: requests interleave on one loop
        counts[ph] += ph != "X"
        if ph == "M":
            counts[ev["name"]] += 1
            assert ev["args"].get("name") or ev["name"].endswith(("sort_index", "labels")), ev
        elif ph in "BE":
            stack = begun[(ev["pid"], ev["tid"])]
            if ph == "B":
                stack.append(ev["name"])
            else:
                assert stack, f"unmatched E: {ev}"
                stack.pop()
        elif ph in "be":
            key = (ev["cat"], str(ev["id"]))
            assert async_pid.setdefault(key, ev["pid"]) == ev["pid"], f"async id shared by two processes: {ev}"
            if ph == "b":
                async_open[key].append(ev["name"])
            else:
                assert async_open[key] and async_open[key][-1] == ev["name"], f"e without its b: {ev}"
                async_open[key].pop()
        elif ph == "C":
            assert ev["args"] and all(isinstance(v, (int, float)) for v in ev["args"].values()), ev
    assert not any(begun.values()), "a B without its E"
    assert not any(async_open.values()), "a b without its e"
    return dict(counts)


def names(obj: dict[str, Any], kind: str) -> dict[int, str] | dict[tuple[int, int], str]:
    out: dict[Any, str] = {}
    for ev in obj["traceEvents"]:
        if ev["ph"] == "M" and ev["name"] == kind:
            out[ev["pid"] if kind == "process_name" else (ev["pid"], ev["tid"])] = ev["args"]["name"]
    return out


def worker_slices(obj: dict[str, Any], pid: int) -> list[dict[str, Any]]:
    threads = names(obj, "thread_name")
    out = []
    for ev in obj["traceEvents"]:
        if ev["ph"] == "X" and ev["pid"] == pid:
            out.append({**ev, "thread": threads[(pid, ev["tid"])]})
    return out


def request_events(obj: dict[str, Any], engine: str, rid: int) -> list[tuple[str, str, int]]:
    """``(ph, name, ns)`` of one request's async events, in file order."""
    ident = f"{engine}:{rid}"
    return [(ev["ph"], ev["name"], ns(ev["ts"])) for ev in obj["traceEvents"] if ev.get("id") == ident]


def batch(*transitions: tuple[int, int, int, int, int], **more: Any) -> Batch:
    """A batch of transitions given as (ms after BASE, engine, rid, lane, phase)."""
    return Batch(
        transitions=[(BASE + int(t * MS), e, rid, lane, int(ph)) for t, e, rid, lane, ph in transitions], **more
    )


# -- units -------------------------------------------------------------------------------
def test_times_read_back_as_the_same_nanosecond() -> None:
    rng = random.Random(7)
    values = [0, 1, 999, 1000, 1001, 7, 3_000_000_001, *(rng.randrange(0, 700_000_000_000) for _ in range(20_000))]
    for v in values:
        assert ns(us(v)) == v


def test_a_threaded_request_is_one_slice_on_its_thread_with_its_phases() -> None:
    obj = build_trace(
        [
            batch((0, T, 1, -1, Q), (1, T, 1, 3, RUN), (1.5, T, 1, 3, BLK), (51.5, T, 1, 3, RDY), (52, T, 1, 3, RUN)),
            batch((52.25, T, 1, 3, DONE)),
        ]
    )
    check_trace(obj)
    assert set(names(obj, "process_name").values()) == {"threaded"}
    slices = worker_slices(obj, T + 1)
    parent = [s for s in slices if s["name"] == "#1"]
    assert len(parent) == 1 and parent[0]["thread"] == "w3"
    assert ns(parent[0]["ts"]) == 1 * MS and ns(parent[0]["dur"]) == int(51.25 * MS)
    assert parent[0]["args"] == {
        "rid": 1,
        "request": "#1",
        "client": "built-in",
        "outside": False,
        "phases": ["running", "blocked", "ready"],
    }
    children = [(s["name"], ns(s["dur"])) for s in slices if s["name"] != "#1"]
    assert children == [("running", MS // 2), ("blocked", 50 * MS), ("ready", MS // 2), ("running", MS // 4)]
    assert request_events(obj, "threaded", 1) == [
        ("b", "request", 0),
        ("b", "queued", 0),
        ("e", "queued", 1 * MS),
        ("b", "running", 1 * MS),
        ("e", "running", int(1.5 * MS)),
        ("b", "blocked", int(1.5 * MS)),
        ("e", "blocked", int(51.5 * MS)),
        ("b", "ready", int(51.5 * MS)),
        ("e", "ready", 52 * MS),
        ("b", "running", 52 * MS),
        ("e", "running", int(52.25 * MS)),
        ("e", "request", int(52.25 * MS)),
    ]
    start = next(ev for ev in obj["traceEvents"] if ev.get("id") == "threaded:1" and ev["name"] == "request")
    assert start["cat"] == "request" and start["args"]["result"] == "done" and start["args"]["workers"] == ["w3"]


def test_requests_interleaving_on_the_loop_never_overlap_and_a_ready_one_holds_nothing() -> None:
    obj = build_trace(
        [
            batch(
                (0, A, 1, -1, Q),
                (0, A, 2, -1, Q),
                (1, A, 1, 0, RDY),
                (1, A, 2, 0, RDY),
                (2, A, 1, 0, RUN),
                (3, A, 1, 0, AW),
                (3, A, 2, 0, RUN),
                (4, A, 2, 0, AW),
                (53, A, 1, 0, RDY),
                (54, A, 2, 0, RDY),
                (60, A, 2, 0, RUN),
                (61, A, 2, 0, DONE),
                (61, A, 1, 0, RUN),
                (62, A, 1, 0, DONE),
            )
        ]
    )
    counts = check_trace(obj)
    slices = [s for s in worker_slices(obj, A + 1) if s["name"].startswith("#")]
    assert {s["thread"] for s in slices} == {"loop"}
    spans = [(s["name"], ns(s["ts"]) // MS, (ns(s["ts"]) + ns(s["dur"])) // MS) for s in slices]
    assert sorted(spans, key=lambda x: x[1]) == [("#1", 2, 3), ("#2", 3, 4), ("#2", 60, 61), ("#1", 61, 62)]
    assert counts["b"] == counts["e"]
    phases = [name for ph, name, _t in request_events(obj, "asyncio", 1) if ph == "b"]
    assert phases == ["request", "queued", "ready", "running", "awaiting", "ready", "running"]


def test_offload_threads_and_the_hub_are_named() -> None:
    obj = build_trace(
        [
            batch(
                (0, A, 1, -1, Q),
                (1, A, 1, 0, RUN),
                (2, A, 1, 4, BLK),
                (52, A, 1, 4, RDY),
                (53, A, 1, 0, RUN),
                (54, A, 1, 0, DONE),
                (0, G, 1, -1, Q),
                (1, G, 1, 0, RUN),
                (2, G, 1, 0, YLD),
                (52, G, 1, 0, RDY),
                (53, G, 1, 0, RUN),
                (54, G, 1, 0, DONE),
            )
        ]
    )
    check_trace(obj)
    threads = set(names(obj, "thread_name").values())
    assert {"loop", "t4", "hub"} <= threads
    held = {(s["thread"], s["name"]) for s in worker_slices(obj, A + 1)}
    assert ("t4", "blocked") in held and ("t4", "ready") in held  # an offload thread keeps its request for the GIL
    assert not any(s["name"] == "yielded" for s in worker_slices(obj, G + 1))  # a yielded greenlet holds no hub


def test_a_handed_over_reading_is_dropped_and_outside_clients_are_marked() -> None:
    prov, outside = EXTERNAL_IDS_START + 5, EXTERNAL_IDS_START + 6
    obj = build_trace(
        [
            batch((0, T, 9, -1, Q), (1, T, prov, 0, READ), (3, T, outside, 1, READ)),
            batch(
                (4, T, prov, HANDED_OVER, READ),
                (1, T, 9, 0, READ),
                (5, T, 9, 0, RUN),
                (6, T, 9, 0, DONE),
                (7, T, outside, 1, RUN),
                (8, T, outside, 1, DONE),
            ),
        ]
    )
    check_trace(obj)
    assert request_events(obj, "threaded", prov) == []
    assert [n for ph, n, _ in request_events(obj, "threaded", 9) if ph == "b"] == [
        "request",
        "queued",
        "reading",
        "running",
    ]
    slices = worker_slices(obj, T + 1)
    mine = next(s for s in slices if s["name"] == "#9")
    assert mine["args"]["phases"] == ["reading", "running"] and ns(mine["ts"]) == 1 * MS  # a pool thread in recv
    theirs = next(s for s in slices if s["name"] == "outside 6")
    assert theirs["args"]["outside"] is True and theirs["args"]["client"] == "outside"
    assert obj["otherData"]["handed_over"] == 1


def test_an_unfinished_request_ends_with_the_stream_and_one_seen_only_ending_is_left_out() -> None:
    obj = build_trace([batch((0, G, 1, -1, Q), (1, G, 1, 0, RUN), (2, G, 2, 0, DONE), (10, G, 3, -1, Q))])
    check_trace(obj)
    ev = request_events(obj, "gevent", 1)
    assert ev[0][:2] == ("b", "request") and ev[-1] == ("e", "request", 10 * MS)
    assert request_events(obj, "gevent", 2) == []
    start = next(e for e in obj["traceEvents"] if e.get("id") == "gevent:1" and e["ph"] == "b")
    assert start["args"]["result"] == "unfinished"
    assert obj["otherData"]["unfinished"] == 2


def test_slices_recorded_a_little_early_are_clipped_not_overlapped() -> None:
    obj = build_trace([batch((0, T, 1, 0, RUN), (10, T, 1, 0, DONE), (9.99, T, 2, 0, RUN), (20, T, 2, 0, DONE))])
    check_trace(obj)
    two = next(s for s in worker_slices(obj, T + 1) if s["name"] == "#2")
    assert ns(two["ts"]) == 10 * MS and obj["otherData"]["clipped"] == 1


def test_out_of_order_steps_of_one_request_are_put_in_time_order() -> None:
    # a slow client's QUEUED is recorded by the server when the request completes, dated when it was sent
    obj = build_trace([batch((2, T, 1, 0, READ), (5, T, 1, 0, RUN), (0, T, 1, -1, Q), (6, T, 1, 0, DONE))])
    check_trace(obj)
    assert [n for ph, n, _ in request_events(obj, "threaded", 1) if ph == "b"] == [
        "request",
        "queued",
        "reading",
        "running",
    ]


def test_counters_sample_in_flight_queued_and_done_per_second() -> None:
    ts = []
    for i in range(10):  # ten requests sent at 0 ms, taken at 150 ms, done at 250 ms
        ts += [(0, T, i + 1, -1, Q), (150, T, i + 1, i, RUN), (250, T, i + 1, i, DONE)]
    ts.append((400, T, 99, -1, Q))  # one more, never answered
    obj = build_trace([batch(*ts)])
    check_trace(obj)
    series: dict[str, list[tuple[int, float]]] = defaultdict(list)
    for ev in obj["traceEvents"]:
        if ev["ph"] == "C":
            (value,) = ev["args"].values()
            series[ev["name"]].append((ns(ev["ts"]) // MS, value))
    assert series["in flight"] == [(0, 10), (100, 10), (200, 10), (300, 0), (400, 1)]
    assert series["queued"] == [(0, 10), (100, 10), (200, 0), (300, 0), (400, 1)]
    assert series["req/s"] == [(100, 0), (200, 0), (300, 100.0), (400, 0)]


def test_loop_lag_is_a_counter_and_the_watchdog_call_is_on_the_slice_that_held_the_loop() -> None:
    b = batch((0, A, 1, -1, Q), (1, A, 1, 0, RUN), (2, A, 1, 0, BLK), (52, A, 1, 0, RUN), (53, A, 1, 0, DONE))
    b.lags = [(BASE + 60 * MS, A, 51 * MS)]
    where = "time.sleep ← BlockingWork._sleep (engines/work.py:136)"
    b.blocks = [  # reported while ongoing, then once over; dated from the loop's last tick (before the request)
        (BASE + int(0.5 * MS), 30 * MS, A, 0, True, where),
        (BASE + int(0.5 * MS), 51 * MS, A, 0, False, where),
        (BASE + 70 * MS, 25 * MS, A, 0, False, "nobody's"),
        (BASE + int(1.5 * MS), 40 * MS, A, 0, False, BUSY),  # the loop's own work: on no slice, counted nowhere
    ]
    obj = build_trace([b])
    check_trace(obj)
    lag = [ev for ev in obj["traceEvents"] if ev["ph"] == "C" and ev["name"] == "loop lag"]
    assert [ev["args"] for ev in lag] == [{"ms": 51.0}]
    held = next(s for s in worker_slices(obj, A + 1) if s["name"] == "#1")
    assert held["args"]["blocked_in"] == [{"where": where, "ms": 51.0}]
    start = next(e for e in obj["traceEvents"] if e.get("id") == "asyncio:1" and e["ph"] == "b")
    assert start["args"]["blocked_in"] == [{"where": where, "ms": 51.0}]
    assert obj["otherData"]["blocks"] == 1 and obj["otherData"]["blocks_unattached"] == 1


def test_the_servers_connection_counts_are_a_counter_where_the_stream_has_them() -> None:
    def srv(t_ms: int, backlog: int, waiting: int) -> dict[str, int]:
        return {"t_ns": BASE + t_ms * MS, "served": 1, "reading": 2, "backlog": backlog, "waiting": waiting}

    first = batch((0, T, 1, -1, Q), (1, T, 1, 0, RUN), servers={"threaded": srv(0, 0, 12)})
    again = batch(servers={"threaded": srv(0, 0, 12)})  # a drain before the next counts: the same ones
    last = batch((200, T, 1, 0, DONE), servers={"threaded": srv(100, 3, 0), "nginx": srv(100, 9, 9)})
    obj = build_trace([first, again, last])
    check_trace(obj)
    got = [(ns(ev["ts"]) // MS, ev["args"]) for ev in obj["traceEvents"] if ev.get("name") == "connections"]
    assert got == [(0, {"backlog": 0, "waiting": 12, "reading": 2}), (100, {"backlog": 3, "waiting": 0, "reading": 2})]
    assert not any(ev.get("name") == "connections" for ev in build_trace([batch((0, T, 1, -1, Q))])["traceEvents"])


def test_malformed_records_are_skipped() -> None:
    b = batch((0, T, 1, -1, Q), (1, T, 1, 0, RUN), (2, T, 1, 0, DONE))
    b.transitions += [(BASE, 7, 1, 0, 1), (BASE, T, 2, 0, 99)]
    b.blocks = [("x", 1, 0, 0, False, "w"), (1, 2, 3), None]
    check_trace(build_trace([b]))


def test_write_trace_streams_the_same_object() -> None:
    import io

    batches = [batch(*((i, e, r, -1, Q) for i in range(3) for e in (T, A, G) for r in (1, 2)))]
    batches.append(batch(*((5, e, r, 0, RUN) for e in (T, A, G) for r in (1, 2))))
    buf = io.StringIO()
    summary = write_trace(buf, collect(batches), chunk=7)
    written = json.loads(buf.getvalue())
    assert written == build_trace(batches)
    assert summary.events == len(written["traceEvents"]) and summary.requests == 6


# -- the command -------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("args", "words"),
    [
        (["--out", "/nonexistent/dir/t.json"], "cannot write /nonexistent/dir/t.json"),
        (["--out", "/tmp"], "it is a directory"),
        (["--scenario", "nope", "--out", "/tmp/never.json"], "unknown scenario 'nope'"),
        (["--seconds", "0", "--out", "/tmp/never.json"], "--seconds"),
        (["--from", "/nonexistent/rec", "--out", "/tmp/never.json"], "/nonexistent/rec"),
        (["--from", "x.rec", "--seconds", "2", "--out", "/tmp/never.json"], "--from reads a recording"),
        (["--from", "/nonexistent/rec", "--out", "/nonexistent/dir/t.json"], "cannot write"),
    ],
)
def test_bad_input_is_one_line_and_exit_2_before_anything_runs(
    args: list[str], words: str, capsys: pytest.CaptureFixture[str]
) -> None:
    # in this process, as test_cli's bad input (a process each cost 0.1-0.2 s of CPU)
    start, threads = time.monotonic(), set(threading.enumerate())
    code = main(["trace", *args])
    out, err = capsys.readouterr()
    assert code == 2, out + err
    lines = err.strip().splitlines()
    assert len(lines) == 1 and words in lines[0] and "Traceback" not in err, err
    assert time.monotonic() - start < 20 and not new_threads(threads)  # no engine was started
    assert not Path("/tmp/never.json").exists()


def test_a_corrupt_recording_is_one_line_and_exit_2(tmp_path: Path) -> None:
    bad = tmp_path / "bad.rec"
    bad.write_bytes(os.urandom(300))
    out = tmp_path / "t.json"
    proc = syncviz("trace", "--from", str(bad), "--out", str(out))
    assert proc.returncode == 2 and len(proc.stderr.strip().splitlines()) == 1, proc.stderr
    assert "Traceback" not in proc.stderr and not out.exists() and os.listdir(tmp_path) == ["bad.rec"]


@contextlib.contextmanager
def bench_lock_if_free() -> Iterator[None]:
    """The benchmark lock while this test's engines run, when no benchmark holds it now; when one
    does, the test runs beside it instead of waiting (a suite run waited minutes on another's
    benchmark): the must-show holds on a busy machine (10 clients, hundreds of requests each)."""
    fd = os.open(BENCH_LOCK, os.O_RDWR | os.O_CREAT, 0o666)
    try:
        with contextlib.suppress(BlockingIOError):
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        yield
    finally:
        os.close(fd)  # and with it the lock, if held


def _must_show(path: Path) -> dict[str, int]:
    obj = json.loads(path.read_text())
    counts = check_trace(obj)
    assert sorted(names(obj, "process_name").values()) == ["asyncio", "gevent", "threaded"]
    slices = counts["X"] + counts["b"]
    assert slices >= 100, counts
    assert {"w0", "loop", "hub"} <= set(names(obj, "thread_name").values())
    assert {ev["name"] for ev in obj["traceEvents"] if ev["ph"] == "C"} >= {"in flight", "queued", "req/s"}
    return counts


def test_a_live_two_second_run_is_the_issues_must_show(tmp_path: Path) -> None:
    out = tmp_path / "t.json"
    with bench_lock_if_free():  # no benchmark starts while it runs
        # 10 clients an engine, not the scenario's 100: hundreds of requests each, a trace quick to check
        proc = syncviz("trace", "--scenario", "io-bound", "--seconds", "2", "--clients", "10", "--out", str(out))
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.startswith(f"wrote {out}: 2 s of io-bound, 3 engines") and "Traceback" not in proc.stderr
    _must_show(out)
    assert os.listdir(tmp_path) == ["t.json"]  # no temporary file left beside it


def test_a_recording_exports_the_same_way(tmp_path: Path) -> None:
    rec, out = tmp_path / "run.rec", tmp_path / "t.json"
    with bench_lock_if_free():
        made = syncviz("record", str(rec), "--scenario", "io-bound", "--seconds", "1.5", "--clients", "10")
    assert made.returncode == 0, made.stderr
    proc = syncviz("trace", "--from", str(rec), "--out", str(out))
    assert proc.returncode == 0, proc.stderr
    assert "batches of" in proc.stdout
    _must_show(out)
