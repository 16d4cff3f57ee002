"""HdrWindow's running sum and the binary-searched percentiles give hdrh's own figures.

The window keeps its closed buckets summed (added as they close, taken out as they leave) and
``percentiles`` searches the running counts: both against the plain way, every bucket of the
window merged afresh and hdrh's ``get_percentile_to_value_dict``, on random streams.
"""

from __future__ import annotations

import random

import pytest
from syncviz.engines.digest_client import (
    BUCKET_NS,
    HDR_HIGH,
    HDR_LOW,
    PERCENTILES,
    HdrWindow,
    _hist,
    in_ms,
    percentiles,
)


def _plain(records: list[tuple[int, int]], now: int, window_ns: int, dropped_below: int) -> dict[str, float | None]:
    """The figures of every value in the window, merged from scratch, read by hdrh's own walk."""
    low = max((now - window_ns) // BUCKET_NS, dropped_below)
    h = _hist()
    for t, v in records:
        if t // BUCKET_NS >= low:
            h.record_value(max(HDR_LOW, min(HDR_HIGH, v)))
    if not h.get_total_count():
        return percentiles(None)
    return in_ms(h, h.get_percentile_to_value_dict(list(PERCENTILES)))


@pytest.mark.parametrize("seed", range(3))
def test_the_running_window_reads_what_a_fresh_merge_reads(seed: int) -> None:
    rng = random.Random(seed)
    window_ns = rng.choice((500_000_000, 2_000_000_000, 5_000_000_000))
    w = HdrWindow(window_ns)
    records: list[tuple[int, int]] = []
    t = now = rng.randrange(0, 10**12)
    newest_key = -1
    for _ in range(200):
        for _ in range(rng.randrange(0, 40)):
            t += rng.choice((rng.randrange(0, 3_000_000), rng.randrange(0, 400_000_000), 0))
            v = rng.choice((rng.randrange(0, 2_000), rng.randrange(10**6, 10**9), rng.randrange(1, 10**13)))
            at = t - rng.randrange(0, 300_000_000) if rng.random() < 0.1 else t  # now and then a late one
            w.record(at, v)
            records.append((max(at, newest_key * BUCKET_NS), v))  # a late value lands in the newest bucket
            newest_key = max(newest_key, at // BUCKET_NS)
        now = max(now, t) + rng.choice((0, rng.randrange(0, 10 * window_ns)))
        # buckets left the window for good when a newer one opened past them, or at an earlier read
        low = max((now - window_ns) // BUCKET_NS, newest_key - window_ns // BUCKET_NS)
        assert percentiles(w.merged(now)) == _plain(records, now, window_ns, low)
        records = [r for r in records if r[0] // BUCKET_NS >= low]  # gone for good
        t = max(t, now - rng.randrange(0, window_ns))


def test_an_emptied_window_reads_nothing_then_counts_again() -> None:
    w = HdrWindow(1_000_000_000)
    for i in range(30):
        w.record(i * 50_000_000, 5_000_000)
    assert percentiles(w.merged(1_500_000_000))["n"] == 20  # 0.5 s .. 1.5 s
    assert w.merged(60_000_000_000) is None or percentiles(w.merged(60_000_000_000))["n"] == 0
    w.record(61_000_000_000, 7_000_000)
    got = percentiles(w.merged(61_000_000_000))
    assert got["n"] == 1 and 6.9 < got["p50"] < 7.1 and got["max"] == got["p99"]
