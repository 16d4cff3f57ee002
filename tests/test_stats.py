"""The one interpreter of the stream: counters and tracks from hand-made batches."""

from __future__ import annotations

import pytest
from syncviz.engines.events import ENGINE_IDS, Batch, Phase
from syncviz.engines.stats import StreamStats, percentile

MS = 1_000_000
T, A = ENGINE_IDS["threaded"], ENGINE_IDS["asyncio"]


def test_percentile_is_nearest_rank() -> None:
    values = list(range(1, 101))
    assert percentile(values, 50) == 50
    assert percentile(values, 99) == 99
    assert percentile(values, 100) == 100
    assert percentile([7], 99) == 7
    with pytest.raises(ValueError):
        percentile([], 50)


def test_phase_means_busy_workers_and_latency() -> None:
    b = Batch(t_ns=100 * MS)
    # request 1 on the threaded engine: queued 2 ms, running 1, blocked 10, ready 1, running 1 -> done
    for t, ph, lane in [
        (0, Phase.QUEUED, -1),
        (2, Phase.RUNNING, 0),
        (3, Phase.BLOCKED, 0),
        (13, Phase.READY, 0),
        (14, Phase.RUNNING, 0),
        (15, Phase.DONE, 0),
    ]:
        b.transitions.append((t * MS, T, 1, lane, ph))
    # request 2 still blocked on thread 1, request 3 queued
    b.transitions += [
        (10 * MS, T, 2, -1, Phase.QUEUED),
        (11 * MS, T, 2, 1, Phase.RUNNING),
        (12 * MS, T, 2, 1, Phase.BLOCKED),
        (20 * MS, T, 3, -1, Phase.QUEUED),
    ]
    # asyncio: one awaiting, one ready on the loop (does not hold it)
    b.transitions += [
        (5 * MS, A, 9, 0, Phase.RUNNING),
        (6 * MS, A, 9, 0, Phase.AWAITING),
        (7 * MS, A, 8, 0, Phase.READY),
    ]
    b.latencies += [(15 * MS, T, 1, 15 * MS, True), (16 * MS, T, 5, 3 * MS, False)]
    b.lags += [(50 * MS, A, 2 * MS), (60 * MS, A, 4 * MS)]
    stats = StreamStats()
    stats.feed(b)
    c = stats.counters()
    t = c["threaded"]
    assert (t.completed, t.failed, t.in_flight, t.queued, t.busy) == (1, 1, 2, 1, 1)
    assert t.p50_ms == t.p99_ms == pytest.approx(15.0, rel=0.01)  # HDR histograms: 2 significant digits
    assert t.phase_ms["queued"] == 2.0 and t.phase_ms["running"] == 2.0
    assert t.phase_ms["blocked"] == 10.0 and t.phase_ms["ready"] == 1.0
    a = c["asyncio"]
    assert a.busy == 0 and a.by_phase["awaiting"] == 1 and a.by_phase["ready"] == 1
    assert a.lag_p50_ms == pytest.approx(2.0, rel=0.01) and a.lag_max_ms == pytest.approx(4.0, rel=0.01)
    assert c["gevent"].p50_ms is None and c["gevent"].lag_p99_ms is None
    assert [s[1] for s in stats["threaded"].recent[0].steps][-1] == Phase.DONE


def test_rates_and_windows_forget_old_samples() -> None:
    stats = StreamStats(window_s=1.0, rate_window_s=1.0)
    b = Batch(t_ns=3_000 * MS)
    b.latencies += [(t * MS, A, i, MS, True) for i, t in enumerate(range(0, 3000, 10))]
    stats.feed(b)
    c = stats.counters()["asyncio"]
    assert c.rps == pytest.approx(100, abs=2)
    assert c.samples == pytest.approx(100, abs=2)
    assert c.completed == 300


def test_reading_holds_a_pool_thread_and_a_hand_over_drops_the_provisional_row() -> None:
    from syncviz.engines.events import HANDED_OVER
    from syncviz.engines.http import EXTERNAL_IDS_START

    cid, cid2 = EXTERNAL_IDS_START + 1, EXTERNAL_IDS_START + 2
    b = Batch(t_ns=50 * MS)
    b.transitions += [
        (1 * MS, T, cid, 3, Phase.READING),  # a pool thread (lane 3) blocked reading a slow client
        (2 * MS, T, cid2, 4, Phase.READING),  # another; it turns out to be the load generator's #9
        (5 * MS, T, cid2, HANDED_OVER, Phase.READING),
        (2 * MS, T, 9, 4, Phase.READING),
        (5 * MS, T, 9, 4, Phase.RUNNING),
        (1 * MS, A, cid + 5, -1, Phase.READING),  # asyncio: reading holds no worker
    ]
    s = StreamStats()
    s.feed(b)
    t = s.counters()["threaded"]
    assert t.reading == 1 and t.by_phase["running"] == 1
    assert t.busy == 2  # lane 3 (reading) and lane 4 (running #9)
    assert t.outside == 1  # the provisional row left; #9 is the load generator's
    assert cid2 not in s["threaded"].inflight
    assert s["threaded"].inflight[9].steps[0][1] == Phase.READING
    a = s.counters()["asyncio"]
    assert a.reading == 1 and a.busy == 0 and a.outside == 1
