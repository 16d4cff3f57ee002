"""Named scenarios: presets of the knobs, the handler mode per engine, and what to watch.

``syncviz scenarios`` lists them; the app's captions and help come from here too, so the
words and the experiment cannot drift apart.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from .registry import engine_spec
from .settings import Mode, Settings, SettingsError


@dataclass(frozen=True)
class Scenario:
    name: str
    description: str  # one line
    caption: tuple[str, ...]  # two or three lines: what to watch
    settings: Settings
    modes: dict[str, Mode] = field(default_factory=dict)  # engine -> mode; default "native"

    def mode(self, engine: str) -> Mode:
        return self.modes.get(engine, "native")


SCENARIOS: dict[str, Scenario] = {
    s.name: s
    for s in (
        Scenario(
            "io-bound",
            "Every request waits 50 ms on I/O and computes nothing.",
            (
                "A pool thread is held for the whole 50 ms wait: 8 threads serve 8 requests, the rest queue.",
                "The event loop and the hub start a request, park it (awaiting / yielded) and take the next.",
            ),
            Settings(clients=100, pool=8, io_ms=50),
        ),
        Scenario(
            "cpu-bound",
            "Every request burns 5 ms of pure-Python CPU and waits for nothing.",
            (
                "One GIL: whatever the engine, one request computes at a time.",
                "Throughput x CPU per request is about one core for all three; the loop serves no one meanwhile.",
            ),
            Settings(clients=20, pool=8, io_ms=0, cpu_ms=5),
        ),
        Scenario(
            "mixed",
            "0.5 ms of CPU plus a 50 ms round trip to an upstream service over loopback.",
            (
                "Real sockets to a real upstream: the wait is I/O, the 0.5 ms (and parsing) is the GIL's.",
                "8 threads overlap 8 waits; the loop and the hub overlap all 100, until their CPU share is full.",
                "Sized for 2 cores, where the three engines share one: each has ⅓ of it, ~1 ms of CPU a request.",
            ),
            Settings(clients=100, pool=8, io_ms=50, cpu_ms=0.5, io="upstream"),
        ),
        Scenario(
            "blocking-call",
            "The async engines are handed time.sleep(0.05) by mistake; threads run it as usual.",
            (
                "One time.sleep inside async def holds the loop: every other request turns ready and waits.",
                "gevent without monkey patching: the stdlib call never yields, the hub stalls the same way.",
                "Threaded carries on: blocking a pool thread is what threads are for.",
            ),
            Settings(clients=100, pool=8, io_ms=50),
            modes={"asyncio": "blocking", "gevent": "blocking", "uvloop": "blocking", "trio": "blocking"},
        ),
        Scenario(
            "streaming",
            "Long responses written in 10 chunks, 20 ms apart (200 ms per request).",
            (
                "A thread is held for the whole stream: the pool bounds concurrent streams.",
                "Coroutines and greenlets hold nothing while waiting between chunks.",
            ),
            Settings(clients=50, pool=8, io_ms=200, chunks=10),
        ),
        Scenario(
            "burst",
            "Open loop: Poisson arrivals at 60 req/s with 8x spikes (1 s in 5), 50 ms of I/O each.",
            (
                "Arrivals do not wait for answers: during a spike the pool's queue grows and drains.",
                "Latency counts from the intended send time, so queueing is not hidden.",
            ),
            Settings(clients=400, pool=8, io_ms=50, rate=60, burst=8),
        ),
        Scenario(
            "offload",
            "asyncio runs a blocking handler via anyio.to_thread.run_sync (FastAPI def endpoint).",
            (
                "The loop stays free but the work runs on anyio's 40 threads: a thread pool after all.",
                "Throughput is capped at 40 / request time, like a threaded server with 40 workers.",
            ),
            Settings(clients=100, pool=8, io_ms=50),
            modes={"asyncio": "offload", "uvloop": "offload"},
        ),
        Scenario(
            "slow-clients",
            "The io-bound load plus 16 slow clients per engine, each trickling its request over 3.5 s.",
            (
                "Threaded hands each connection to a pool thread to read: slow clients hold its lanes (reading).",
                "The loop and the hub park a slow connection for the cost of a coroutine and keep serving.",
                "Why sync servers sit behind a buffering proxy (gunicorn's docs: nginx takes the slow clients).",
            ),
            Settings(clients=100, pool=8, io_ms=50, slow_clients=16),
        ),
    )
}

DEFAULT_SCENARIO = "io-bound"


def get_scenario(name: str) -> Scenario:
    """The scenario called ``name``, or a one-line SettingsError listing the known ones."""
    try:
        return SCENARIOS[name]
    except KeyError:
        known = ", ".join(SCENARIOS)
        raise SettingsError(f"unknown scenario {name!r} (known: {known})") from None


def io_line(engine: str, mode: Mode, settings: Settings) -> str:
    """The handler's I/O line as code, for the panel titles (e.g. ``await anyio.sleep(0.05)``)."""
    secs = f"{settings.io_s / max(settings.chunks, 1):g}"
    return engine_spec(engine).io_line(mode, settings.io == "upstream", secs)
