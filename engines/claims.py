"""The catalogue of claims about sync and async Python servers, each run as an experiment.

A :class:`Claim` names the sentence, the experiment in words (what runs, what is scaled down
and why), the criterion in words, a live scene (a scenario and its knobs, for the app's
presenter mode) and its :attr:`Claim.verdict`: a pure function of the measured figures
(:mod:`syncviz.engines.claims_verdicts`), which the app may apply to live figures too.

The measuring lives apart, in :mod:`syncviz.engines.claims_experiments`
(``run_claims(ids, quick)``); this module imports no engine.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from . import claims_verdicts as v
from .settings import SettingsError


@dataclass(frozen=True)
class Claim:
    id: str
    claim: str  # the sentence, as articles put it
    experiment: str  # what runs, in words (scaled-down numbers said here)
    criterion: str  # when the verdict is "holds", in words
    verdict: Callable[[dict[str, Any]], str]  # figures -> holds / does not hold: ... / holds only when ...
    scene: str  # scenario for a live scene
    scene_settings: dict[str, Any] = field(default_factory=dict)  # knob overrides for that scene

    def judge(self, figures: dict[str, Any]) -> str:
        return self.verdict(figures)


CLAIMS: dict[str, Claim] = {
    c.id: c
    for c in (
        Claim(
            "io-throughput",
            "For I/O-bound work under high concurrency, async servers deliver 2-4x the throughput of sync ones.",
            "200 keep-alive clients, 50 ms of I/O per request; threaded with pools of 8, 64 and 200, "
            "against asyncio and gevent.",
            "asyncio's req/s divided by threaded's lies in 2-4x for every pool size "
            "(by Little's law the factor is about clients / pool).",
            v.io_throughput,
            "io-bound",
            {"clients": 200, "pool": 8},
        ),
        Claim(
            "not-faster",
            "Async is not faster per request: with one client at a time, latency is the same.",
            "One client, 10 ms of I/O per request, each engine alone.",
            f"every engine's median latency is within {v.SAME_LATENCY_SHARE:.0%} "
            f"(or {v.SAME_LATENCY_MS} ms) of the others'.",
            v.not_faster,
            "io-bound",
            {"clients": 1, "io_ms": 10},
        ),
        Claim(
            "cpu-bound",
            "For CPU-bound work async brings no gain, and while one request computes the loop serves no one.",
            "20 clients, 5 ms of pure-Python CPU per request, no I/O; loop lag from a 10 ms ticker on the "
            "loop and the hub.",
            f"async req/s is at most {v.NO_GAIN:.2f}x threaded's, and the loop's lag p99 is at least one "
            f"request's CPU time.",
            v.cpu_bound,
            "cpu-bound",
        ),
        Claim(
            "threads-needed",
            "If each request takes 2 s, 100 concurrent users need 100 threads or processes in a sync server.",
            "Scaled down 10x in time: 100 clients, 200 ms of I/O per request (2 s would need minutes per "
            "point), threaded with pools of 10, 50 and 100; asyncio with its one thread for comparison.",
            f"100 threads reach {v.REACHES:.0%} of 100 users / 0.2 s = 500 req/s, 50 threads at most "
            f"{v.HALF:.0%} of it, and every smaller pool about pool / users of it.",
            v.threads_needed,
            "io-bound",
            {"clients": 100, "pool": 10, "io_ms": 200},
        ),
        Claim(
            "thousands",
            "If 90% of a request is waiting, one event loop holds thousands of connections, with a much "
            "smaller memory footprint than threads.",
            "asyncio with 1,000 connections (2,000 in the full run): 90% waiting as 9 ms I/O + 1 ms CPU, "
            "and mostly idle as 1 s I/O + no CPU; RSS per connection from the memory experiment.",
            f"no connection fails, median latency at 90% waiting is within {v.LATENCY_STRETCH:g}x of the "
            f"10 ms request, and asyncio's RSS per connection is at most {v.MEMORY_SHARE:.0%} of a thread's.",
            v.thousands,
            "io-bound",
            {"clients": 1000, "io_ms": 9, "cpu_ms": 1},
        ),
        Claim(
            "blocking-call",
            "One blocking call inside async code stalls every request on that loop.",
            "100 clients, 50 ms per request: asyncio awaiting asyncio.sleep, then calling time.sleep.",
            f"with time.sleep asyncio serves at most {v.CAPPED:g}x one request per call "
            f"(1 / 50 ms = 20 req/s) and its loop lag p99 is at least the call's 50 ms.",
            v.blocking_call,
            "blocking-call",
        ),
        Claim(
            "greenlets",
            "Greenlets give sync-style code async scalability without rewriting it, but a call that does not "
            "cooperate blocks the hub.",
            "100 clients, 50 ms per request: gevent's sync-style handler (gevent.sleep, what monkey patching "
            "makes of time.sleep) against asyncio and threaded (pool 8), then the stdlib time.sleep on the hub.",
            f"gevent reaches {v.CLOSE:.0%} of asyncio's req/s and {v.LEAD:g}x threaded's; with time.sleep it "
            f"serves at most {v.CAPPED:g}x 20 req/s and the hub's lag p99 is at least 50 ms.",
            v.greenlets,
            "blocking-call",
        ),
        Claim(
            "high-load-only",
            "Async outperforms sync only under high load: below the pool size there is no difference.",
            "Threaded pool of 16 against asyncio, 50 ms of I/O, at 4, 16 and 64 clients.",
            f"at or below 16 clients async/sync is within {v.NO_GAIN:.2f}x either way; above it async leads by "
            f"at least {v.LEAD:g}x.",
            v.high_load_only,
            "io-bound",
            {"pool": 16, "clients": 64},
        ),
        Claim(
            "offload",
            "Sync handlers offloaded to a thread pool from an async server (FastAPI `def` endpoints) are "
            "capped by that pool's limit.",
            "100 and 200 clients, 50 ms of blocking I/O run by asyncio through anyio.to_thread (limit 40); "
            "native asyncio and threaded with 40 threads (100 clients) for comparison.",
            f"offloaded req/s stays at most {v.CAPPED:g}x 40 / 50 ms = 800 req/s (and above half of it), "
            f"grows by at most {v.NO_GAIN:.2f}x from 100 to 200 clients, while native asyncio goes past the cap.",
            v.offload,
            "offload",
        ),
        Claim(
            "memory",
            "Per connection, threads cost more memory than coroutines or greenlets.",
            "Each engine alone in a child process; RSS (VmRSS) before and after 1,000 connections are all "
            "mid-request (threaded grows its pool to 1,000 threads to hold them). 1,000 is also gevent's "
            "pool and the threaded pool's largest setting.",
            f"threads' RSS per connection is at least {v.MEMORY_MORE:g}x both coroutines' and greenlets'.",
            v.memory,
            "io-bound",
            {"clients": 200, "pool": 200, "io_ms": 1000},  # stage-sized; the RSS probe opens 1,000
        ),
        Claim(
            "streaming",
            "Long-lived connections (streaming, websockets) hold a thread each in a sync server; async holds "
            "them for the cost of a coroutine.",
            f"{v.STREAM_CLIENTS} keep-alive clients, each reading a {v.STREAM_MS:g} ms stream of {v.STREAM_CHUNKS} "
            f"chunks with I/O before each (long streams scaled down so a run takes seconds), the three engines "
            f"at once; threaded with a pool of {v.STREAM_POOL}. Streams served at once by Little's law: streams "
            f"per second x the time each one is being written; time to first byte is the time before a worker "
            f"takes it.",
            f"threaded serves at most {v.CAPPED:g}x its {v.STREAM_POOL} threads' worth of streams at once (the rest "
            f"wait for a thread); asyncio and gevent serve at least {v.REACHES:.0%} of the {v.STREAM_CLIENTS} at once.",
            v.streaming,
            "streaming",
            {"clients": v.STREAM_CLIENTS, "pool": v.STREAM_POOL, "io_ms": v.STREAM_MS, "chunks": v.STREAM_CHUNKS},
        ),
        Claim(
            "slow-clients",
            "A handful of slow clients can starve a sync worker pool; async servers are not affected.",
            f"The io-bound load (100 keep-alive clients, 50 ms of I/O, threaded pool 8), the three engines at "
            f"once, without and with {v.SLOW_CLIENTS} slow clients per engine, each trickling one request over "
            f"3.5 s on a new connection, then again; req/s counts the load generator's answers only.",
            f"with the slow clients threaded keeps at most {1 - v.STARVED:.0%} of its req/s, while asyncio's and "
            f"gevent's change by at most {v.UNAFFECTED:.0%}.",
            v.slow_clients,
            "slow-clients",
        ),
    )
}


def get_claims(ids: list[str] | tuple[str, ...] | None = None) -> list[Claim]:
    """The claims named (all when ``ids`` is empty), in catalogue order; unknown ids raise SettingsError."""
    if not ids:
        return list(CLAIMS.values())
    for claim_id in ids:
        if claim_id not in CLAIMS:
            raise SettingsError(f"unknown claim {claim_id!r} (known: {', '.join(CLAIMS)})")
    return [c for c in CLAIMS.values() if c.id in ids]
