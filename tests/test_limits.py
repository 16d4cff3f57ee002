"""Honest limits: descriptor arithmetic and the one-line refusal, connection errors summed up in
one line, and when the load generator (not the server) is the bottleneck."""

from __future__ import annotations

import errno
import resource
import subprocess
import sys
import time

import pytest
from support import free_ports
from syncviz.engines import limits
from syncviz.engines.bottleneck import LOAD_SATURATED, SERVER_HEADROOM, client_bound
from syncviz.engines.events import DEFAULT_ENGINES, ENGINE_IDS, ENGINES, Recorder
from syncviz.engines.limits import (
    FD_MARGIN,
    FdLimitError,
    clients_that_fit,
    connection_note,
    ensure_fds,
    fd_need,
    max_clients,
    require_fds,
    suggested_limit,
)
from syncviz.engines.loadgen import LoadGen
from syncviz.engines.loadgen_conn import (
    connect_error_name,
    connect_error_rid,
    connect_errors,
    connect_errors_line,
    is_connect_error,
)
from syncviz.engines.settings import Settings
from syncviz.tui.cli import main

NATIVE = dict.fromkeys(DEFAULT_ENGINES, "native")  # the engines the app runs (its need follows them)


# -- descriptor arithmetic -----------------------------------------------------------------
def test_the_load_process_needs_every_engines_clients_and_an_engine_its_own() -> None:
    s = Settings(clients=1000)
    assert fd_need(s, NATIVE) == 3 * 1000 + FD_MARGIN  # the load process holds them all
    assert fd_need(s, {"asyncio": "native"}) == 1000 + FD_MARGIN  # one engine at a time (bench)
    assert fd_need(s, NATIVE, in_process=True) == 2 * 3 * 1000 + FD_MARGIN  # both ends in one process
    slow = Settings(clients=1000, slow_clients=16)
    assert fd_need(slow, {"gevent": "native"}) == 1016 + FD_MARGIN
    up = Settings(clients=100, pool=8, io="upstream")  # pooled upstream sockets: at most one per request held
    assert fd_need(up, {"threaded": "native"}) == 100 + 8 + FD_MARGIN
    assert fd_need(up, {"asyncio": "native"}) == 200 + FD_MARGIN


def test_clients_that_fit_is_the_largest_whose_need_fits() -> None:
    s = Settings(clients=1000)
    fit = clients_that_fit(256, s, NATIVE)
    assert fit == (256 - FD_MARGIN) // 3
    assert fd_need(Settings(clients=fit), NATIVE) <= 256 < fd_need(Settings(clients=fit + 1), NATIVE)
    assert clients_that_fit(FD_MARGIN, s, NATIVE) == 0
    assert clients_that_fit(10**7, s, NATIVE) == 10_000
    assert suggested_limit(3064) == 4096 and suggested_limit(4096) == 4096 and suggested_limit(1) == 1


class FakeLimits:
    """RLIMIT_NOFILE as a test sets it: getrlimit/setrlimit on a (soft, hard) pair."""

    def __init__(self, soft: int, hard: int) -> None:
        self.soft, self.hard = soft, hard

    def getrlimit(self, which: int) -> tuple[int, int]:
        assert which == resource.RLIMIT_NOFILE
        return self.soft, self.hard

    def setrlimit(self, which: int, pair: tuple[int, int]) -> None:
        soft, hard = pair
        if hard > self.hard or soft > hard:
            raise ValueError("not allowed to raise maximum limit")
        self.soft, self.hard = soft, hard


@pytest.fixture
def fake(monkeypatch: pytest.MonkeyPatch) -> FakeLimits:
    f = FakeLimits(256, 256)
    monkeypatch.setattr(limits.resource, "getrlimit", f.getrlimit)
    monkeypatch.setattr(limits.resource, "setrlimit", f.setrlimit)
    return f


def test_a_low_soft_limit_is_raised_to_the_need_not_beyond(fake: FakeLimits) -> None:
    fake.soft, fake.hard = 256, 100_000
    assert ensure_fds(Settings(clients=1000), NATIVE) == 3064
    assert (fake.soft, fake.hard) == (3064, 100_000)
    ensure_fds(Settings(clients=10), NATIVE)  # never lowered
    assert fake.soft == 3064


def test_a_low_hard_limit_is_one_line_naming_it_and_what_fits(fake: FakeLimits) -> None:
    with pytest.raises(FdLimitError) as err:
        ensure_fds(Settings(clients=1000), NATIVE)
    msg = str(err.value)
    assert "\n" not in msg
    assert msg == (
        "1000 clients per engine need ~3064 file descriptors; the hard limit is 256 (ulimit -n): "
        "at most 64 clients fit; raise it with ulimit -n 4096"
    )
    assert (fake.soft, fake.hard) == (256, 256)  # nothing changed


def test_max_clients_is_what_the_hard_limit_holds(fake: FakeLimits) -> None:
    fake.soft, fake.hard = 256, 20_000
    assert max_clients(Settings(), NATIVE) == (20_000 - FD_MARGIN) // 3
    assert max_clients(Settings(), {"asyncio": "native", "gevent": "native"}) == 9968


def test_require_fds_takes_the_worst_run_of_all(fake: FakeLimits) -> None:
    fake.soft, fake.hard = 1024, 2000
    require_fds(["io-bound"], ENGINES, together=False, clients=1500)  # one engine at a time: 1564
    assert fake.soft == 1564
    with pytest.raises(FdLimitError, match="at most 645 clients fit"):
        require_fds(["io-bound"], DEFAULT_ENGINES, together=True, clients=1500)  # all three at once: 4564
    with pytest.raises(FdLimitError, match="at most 322 clients fit"):
        require_fds(["io-bound"], ENGINES, together=True, clients=1500)  # all six at once: 9064


def test_cli_refuses_in_one_line_before_starting_anything(fake: FakeLimits, capsys: pytest.CaptureFixture) -> None:
    started = time.monotonic()
    assert main(["bench", "--clients", "1000", "--seconds", "3"]) == 2
    assert main(["--clients", "1000"]) == 2  # the app checks before it opens
    assert time.monotonic() - started < 2  # no engine was started
    out, err = capsys.readouterr()
    lines = err.splitlines()
    assert out == "" and len(lines) == 2
    assert lines[0].startswith("syncviz: 1000 clients per engine need ~1064 file descriptors; the hard limit is 256")
    assert lines[1].startswith("syncviz: 1000 clients per engine need ~3064 file descriptors")
    assert all("Traceback" not in line for line in lines)


def test_under_a_real_hard_limit_of_256_it_is_exit_2_and_one_line() -> None:
    code = "import resource, sys; resource.setrlimit(resource.RLIMIT_NOFILE, (256, 256)); "
    code += "from syncviz.tui.cli import main; sys.exit(main(sys.argv[1:]))"
    args = ["bench", "--clients", "1000", "--engines", "asyncio", "--seconds", "1"]
    done = subprocess.run([sys.executable, "-c", code, *args], capture_output=True, text=True, timeout=30)
    assert done.returncode == 2
    assert done.stdout == ""
    assert done.stderr.count("\n") == 1 and "the hard limit is 256 (ulimit -n): at most 192 clients fit" in done.stderr


def test_gevent_pool_below_the_clients_is_said() -> None:
    assert connection_note("asyncio", 10_000) is None
    assert connection_note("gevent", 1000) is None
    note = connection_note("gevent", 10_000)
    assert note is not None and "1000" in note and "9000 of 10000 clients wait" in note


# -- connection errors ---------------------------------------------------------------------
def test_connect_error_ids_name_the_errno() -> None:
    refused = ConnectionRefusedError(errno.ECONNREFUSED, "refused")
    rid = connect_error_rid(refused)
    assert is_connect_error(rid) and connect_error_name(rid) == "ECONNREFUSED"
    assert connect_error_name(connect_error_rid(TimeoutError())) == "ETIMEDOUT"
    assert connect_error_name(connect_error_rid(OSError("no errno"))) == "error"
    assert not is_connect_error(1)
    samples = [(0, 1, rid, 0, False)] * 30 + [(0, 1, -errno.ETIMEDOUT, 0, False)] * 7 + [(0, 1, 5, 9, False)]
    counts = connect_errors(samples)
    assert counts == {"ECONNREFUSED": 30, "ETIMEDOUT": 7}  # a failed request is not a failed connection
    assert connect_errors_line(counts) == "37 connections failed (ECONNREFUSED 30, ETIMEDOUT 7)"
    assert connect_errors_line({}) is None
    assert connect_errors_line({"EMFILE": 1}) == "1 connection failed (EMFILE 1)"


def _closed_port() -> int:
    return free_ports()  # nothing listens there (support.free_ports: not a port the kernel hands out)


def test_refused_connections_are_counted_once_each_and_retried_gently(capfd: pytest.CaptureFixture) -> None:
    recorder = Recorder(enabled=True)
    gen = LoadGen(recorder, {ENGINE_IDS["asyncio"]: _closed_port()}, Settings(clients=500, io_ms=5))
    started = time.monotonic()
    gen.start(wait_s=5)
    try:
        assert gen.connected.is_set() and time.monotonic() - started < 3
        time.sleep(1.0)
    finally:
        gen.stop()
    samples = recorder.drain().latencies
    counts = connect_errors(samples)
    # all 500 tried once, then one probe at a time with a growing pause: a dead server is not stormed
    assert 500 <= counts["ECONNREFUSED"] <= 510
    assert all(not ok and is_connect_error(rid) for _, _, rid, _, ok in samples)
    out, err = capfd.readouterr()
    assert out == "" and err == ""  # never one line per connection, never a traceback


def test_bench_counts_connections_it_could_not_open_as_failed(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture
) -> None:
    from syncviz.engines import bench

    def fake_run_bench(_scenarios: list[str], **_kw: object) -> list[dict]:
        return [{"engine": "asyncio", "connect_errors": {"ECONNREFUSED": 30, "ETIMEDOUT": 7}, "failed": 37}]

    monkeypatch.setattr(bench, "run_bench", fake_run_bench)
    assert main(["bench", "--engines", "asyncio", "--clients", "5", "--json"]) == 0
    _, err = capsys.readouterr()
    assert err == "syncviz: 37 connections failed (ECONNREFUSED 30, ETIMEDOUT 7)\n"


# -- client-bound --------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("load", "load_cores", "engine", "share", "expected"),
    [
        (98.0, 1, 40.0, 1.0, True),  # the load is flat out, the server has room: client-bound
        (98.0, 1, 97.0, 1.0, False),  # both flat out: the server is the limit too
        (50.0, 1, 40.0, 1.0, False),  # neither: the handler's waits limit it (Little's law)
        (50.0, 1, 99.0, 1.0, False),  # the server is the limit
        (95.0, 2, 20.0, 0.5, True),  # one GIL: the load can use one core of its two; the engine has ½
        (95.0, 2, 45.0, 0.5, False),  # the engine uses its ½ core
        (None, 1, 40.0, 1.0, False),  # not measured: never claimed
        (98.0, 1, None, 1.0, False),
        (98.0, 0, 40.0, 1.0, False),
    ],
)
def test_client_bound_truth_table(
    load: float | None, load_cores: float, engine: float | None, share: float, expected: bool
) -> None:
    assert client_bound(load, load_cores, engine, share) is expected


def test_client_bound_thresholds_are_the_edges() -> None:
    edge_load, edge_engine = 100 * LOAD_SATURATED, 100 * SERVER_HEADROOM
    assert client_bound(edge_load, 1, edge_engine - 0.1, 1.0)
    assert not client_bound(edge_load - 0.1, 1, edge_engine - 0.1, 1.0)
    assert not client_bound(edge_load, 1, edge_engine, 1.0)
