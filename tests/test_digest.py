"""The digests: counters and picture kept where the events happen, checked on hand-made events."""

from __future__ import annotations

import contextlib
import json

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from syncviz.engines.digest import ROW_RATE, ServerDigest
from syncviz.engines.digest_client import ClientDigest
from syncviz.engines.digest_record import check_record
from syncviz.engines.events import ENGINE_IDS, HANDED_OVER, Batch, Phase
from syncviz.engines.http import EXTERNAL_IDS_START
from syncviz.engines.stats import COUNTERS_EVERY_NS, StreamStats
from syncviz.tui.widgets.counters import CounterView, counter_text

MS = 1_000_000
NS = 10 * MS  # 10 ms columns
T0 = 1_000_000 * NS  # an instant on a column boundary


def test_a_pool_thread_held_running_then_blocked_lands_in_its_columns() -> None:
    d = ServerDigest(has_loop=False, ns_per_col=NS)
    d.transition(T0, 1, -1, Phase.QUEUED)
    d.transition(T0 + 4 * MS, 1, 3, Phase.RUNNING)
    d.transition(T0 + 6 * MS, 1, 3, Phase.BLOCKED)
    assert d.holders[3][1:] == (1, T0 + 6 * MS)  # held now: slot 1 (blocked) since 6 ms
    d.transition(T0 + 25 * MS, 1, 3, Phase.DONE)
    c = T0 // NS
    assert d.hold[3][c] == [2 * MS, 4 * MS, 0, 0]
    assert d.hold[3][c + 1] == [0, 10 * MS, 0, 0]
    assert d.hold[3][c + 2] == [0, 5 * MS, 0, 0]
    assert d.wait[c] == [4 * MS, 0]  # queued 4 ms in the first column
    rec = json.loads(json.dumps(d.take(T0 + 30 * MS, with_counters=True)))  # as the pipe carries it
    check_record({"server": rec})
    assert sorted(c for lane, c, *_ in rec["hold"] if lane == 3) == [c, c + 1, c + 2]
    assert rec["held"] == [] and d.take(T0 + 31 * MS, False)["hold"] == []  # sent once
    counters = rec["counters"]
    assert counters["in_flight"] == 0 and counters["phase_ms"]["blocked"] == pytest.approx(19.0)


def test_a_ready_request_holds_a_pool_thread_but_not_the_loop() -> None:
    pool, loop = ServerDigest(False, NS), ServerDigest(True, NS)
    for d in (pool, loop):
        d.transition(T0, 1, 0, Phase.RUNNING)
        d.transition(T0 + MS, 1, 0, Phase.READY)
    assert pool.busy() == 1 and not pool.open_wait[1]
    assert loop.busy() == 0 and loop.open_wait[1] == {T0 // NS: 1}  # waiting for the loop, which is free


def test_a_hand_over_keeps_the_reading_start_and_counts_once() -> None:
    d = ServerDigest(False, NS)
    cid = EXTERNAL_IDS_START + 7
    d.transition(T0, cid, 2, Phase.READING)
    assert d.outside == 1 and d.by_phase[Phase.READING] == 1
    d.transition(T0 + 30 * MS, cid, HANDED_OVER, Phase.READING)
    d.transition(T0, 42, 2, Phase.READING)  # the same bytes under the load generator's id
    d.transition(T0 + 30 * MS, 42, 2, Phase.RUNNING)
    d.transition(T0 + 31 * MS, 42, 2, Phase.DONE)
    assert d.outside == 0 and d.by_phase[Phase.READING] == 0 and not d.inflight
    held = sum(acc[3] for acc in d.hold[2].values())
    assert held == 30 * MS  # reading from its first byte, painted once


def test_remote_records_give_the_counters_the_raw_events_give() -> None:
    """One interpreter: digested in the processes or here, the same figures."""
    e = ENGINE_IDS["asyncio"]
    raw = Batch(t_ns=T0 + 200 * MS)
    server, client = ServerDigest(True, NS), ClientDigest(NS)
    for i in range(1, 41):
        t = T0 + i * MS
        steps = [(t, -1, Phase.QUEUED), (t + MS, 0, Phase.RUNNING), (t + 2 * MS, 0, Phase.AWAITING)]
        if i <= 30:
            steps += [(t + 50 * MS, 0, Phase.READY), (t + 51 * MS, 0, Phase.RUNNING), (t + 52 * MS, 0, Phase.DONE)]
        client.sent(t, i)
        for ts, lane, ph in steps:
            raw.transitions.append((ts, e, i, lane, ph))
            server.transition(ts, i, lane, ph)
        if i <= 30:
            raw.latencies.append((t + 53 * MS, e, i, 53 * MS, True))
            client.answered(t + 53 * MS, i, 53 * MS, True)
    remote = Batch(t_ns=raw.t_ns)
    now = raw.t_ns
    remote.digests = [(e, {"server": server.take(now, True)}), (e, {"client": client.take(now, True)})]
    remote.digests = json.loads(json.dumps(remote.digests))  # what the pipe carries
    a, b = StreamStats(), StreamStats()
    a.feed(raw)
    b.feed(remote)
    ca, cb = a.counters(now)["asyncio"], b.counters(now)["asyncio"]
    assert (ca.completed, ca.in_flight, ca.queued, ca.busy) == (cb.completed, cb.in_flight, cb.queued, cb.busy)
    assert ca.in_flight == 10 and ca.by_phase["awaiting"] == 10 and cb.by_phase == ca.by_phase
    assert ca.p99_ms == cb.p99_ms == pytest.approx(53, rel=0.01)
    assert ca.phase_ms == cb.phase_ms


def test_requests_sent_but_not_read_yet_count_as_queued() -> None:
    e = ENGINE_IDS["threaded"]
    client = ClientDigest(NS)
    for i in range(1, 11):
        client.sent(T0 + i * MS, i)
    server = ServerDigest(False, NS)
    server.transition(T0 + MS, 1, -1, Phase.QUEUED)  # the server read only the first one
    server.transition(T0 + 2 * MS, 1, 0, Phase.RUNNING)
    b = Batch(t_ns=T0 + 20 * MS)
    b.digests = [(e, {"server": server.take(b.t_ns, True)}), (e, {"client": client.take(b.t_ns, True)})]
    s = StreamStats()
    s.feed(b)
    c = s.counters()["threaded"]
    assert (c.in_flight, c.queued, c.busy) == (10, 9, 1)
    assert sum(s["threaded"].picture.open_q.values()) == 9


def test_a_server_s_counters_and_its_clients_are_paired_by_the_moment_they_were_taken() -> None:
    # streaming on asyncio: 50 clients, answered ten at a time; the server's counters were taken just
    # after a burst of answers, its clients' just before (up to 200 ms apart): the panel read
    # "queued 10" beside an idle loop (the clients' outstanding less the server's in flight)
    e = ENGINE_IDS["asyncio"]
    tick = COUNTERS_EVERY_NS
    server, client = ServerDigest(True, NS), ClientDigest(NS)
    t = 100 * tick
    for rid in range(1, 51):
        client.sent(t, rid)
        server.transition(t, rid, -1, Phase.QUEUED)
        server.transition(t + 1, rid, 0, Phase.AWAITING)
    s = StreamStats()
    b = Batch(t_ns=t + 10)
    b.digests = [(e, {"server": server.take(t + 10, True)}), (e, {"client": client.take(t + 10, True)})]
    s.feed(b)
    for rid in range(1, 11):  # the burst, in the next tick: the server has answered, the clients not yet told
        server.transition(t + tick + 5, rid, 0, Phase.DONE)
    b = Batch(t_ns=t + tick + 10)
    b.digests = [(e, {"server": server.take(t + tick + 10, True)})]
    s.feed(b)
    c = s.counters()["asyncio"]
    assert (c.in_flight, c.queued) == (50, 0)  # the moment both reported: nothing waits unread
    for rid in range(1, 11):
        client.answered(t + tick + 6, rid, tick, True)
    b = Batch(t_ns=t + tick + 12)
    b.digests = [(e, {"client": client.take(t + tick + 12, True)})]
    s.feed(b)
    c = s.counters()["asyncio"]
    assert (c.in_flight, c.queued) == (40, 0)  # the next moment, both sides of it


def test_clients_not_accepted_yet_are_counted_connecting_and_said_on_the_panel() -> None:
    # 5,000 clients against gevent's full pool of 1,000: its panel read "in flight 2,025" and the
    # other 2,975 clients, waiting for the server to accept them, were nowhere on screen
    e = ENGINE_IDS["gevent"]
    client = ClientDigest(NS)
    client.connecting = 2975
    b = Batch(t_ns=T0 + 20 * MS)
    b.digests = json.loads(json.dumps([(e, {"client": client.take(b.t_ns, True)})]))  # what the pipe carries
    s = StreamStats()
    s.feed(b)
    c = s.counters()["gevent"]
    assert c.connecting == 2975
    view = CounterView(c, 20_000.0, 1, "hub", True, [], [], 0)
    assert "connecting 2,975" in counter_text(view, 64, stacked=False).plain
    s["gevent"].client_gone()  # the load process died: none of its clients is connecting any more
    assert s.counters()["gevent"].connecting == 0
    assert (
        "connecting"
        not in counter_text(CounterView(s.counters()["gevent"], 1.0, 1, "hub", True, [], [], 0), 64, False).plain
    )


def test_rows_are_a_bounded_sample_spread_over_time() -> None:
    d = ServerDigest(True, NS)
    n = 60_000  # 20,000 new requests a second for three seconds
    for i in range(n):
        d.transition(T0 + i * 50_000, i + 1, -1, Phase.QUEUED)
    last = {r[2] for r in d.rows if r[2] > 2 * n // 3}  # the third second (the rate is known by then)
    assert ROW_RATE * 0.5 <= len(last) <= ROW_RATE * 2
    late = [rid for rid in last if rid > 5 * n // 6]
    assert len(late) >= len(last) // 3  # spread over the second, not its first 300


@pytest.mark.parametrize(
    "bad",
    [
        None,
        [],
        {"server": []},
        {"other": {}},
        {"server": {"ns": 0, "now": 1}},
        {"client": {"ns": 1, "now": 1, "out": [[1]]}},
        {"client": {"ns": 1, "now": 1, "out": [[1, "2"]]}},
        {"client": {"ns": 1, "now": -5, "out": []}},
        {
            "server": {
                "ns": 1,
                "now": 1,
                **{k: [] for k in ("hold", "wait", "held", "open_q", "open_r", "sent")},
                "rows": [1, 2, 3, 99],
            }
        },
        {"client": {"ns": 1, "now": 1, "out": [], "counters": {"rps": True}}},
        {"client": {"ns": 1, "now": 1, "out": [], "counters": {"x": {"a": "b"}}}},
    ],
)
def test_a_malformed_record_is_refused_in_one_line(bad: object) -> None:
    with pytest.raises(ValueError) as err:
        check_record(bad)
    assert "\n" not in str(err.value)


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=5),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=6), inner, max_size=4),
    max_leaves=20,
)


@settings(max_examples=200, deadline=None)
@given(st.dictionaries(st.sampled_from(["server", "client", "x"]), json_values, max_size=2))
def test_any_json_is_accepted_or_refused_with_a_value_error(rec: dict) -> None:
    with contextlib.suppress(ValueError):  # refused in one line, or accepted: never another exception
        check_record(rec)
