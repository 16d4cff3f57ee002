"""The command line as a user meets it: bad input is one line and exit 2; bench --json's shape."""

from __future__ import annotations

import json
import os
import subprocess
import time
from pathlib import Path

import psutil
import pytest
from support import SYNCVIZ, wait_for
from syncviz.engines.base import listen
from syncviz.engines.settings import Settings, bound_rps, fmt_rate
from syncviz.tui.cli import main


def syncviz(*args: str, timeout: float = 120) -> subprocess.CompletedProcess:
    return subprocess.run([*SYNCVIZ, *args], capture_output=True, text=True, timeout=timeout)


@pytest.mark.parametrize(
    ("args", "words"),
    [
        (["bench", "--clients", "-3"], "clients must be between"),
        (["bench", "--scenario", "nope"], "unknown scenario 'nope'"),
        (["bench", "--engines", "threaded,tornado"], "unknown engine 'tornado'"),
        (["bench", "--seconds", "0"], "--seconds"),
        (["bench", "--io-ms", "nan"], "io-ms must be a number"),
        (["--scenario", "nope"], "unknown scenario"),
        (["--pool", "0"], "pool must be between"),
        (["--bogus"], "unrecognized arguments"),
        (["--replay", "/nonexistent/file.rec"], "cannot read recording"),
        (["claims", "--id", "no-such-claim"], "no-such-claim"),
        (["bench", "--timeout", "0"], "timeout must be between"),
        (["--slow-clients", "-1"], "slow-clients must be between"),
        (["serve", "--json"], "--json goes with --headless"),
        (["serve", "--headless", "--port", "65535"], "between 1 and 65530"),
        (["serve", "--headless", "--scenario", "nope"], "unknown scenario 'nope'"),
        (["serve", "--headless", "--timeout", "nan"], "timeout must be a number"),
        ([], "needs a terminal"),  # stdout is a pipe here: the app refuses instead of drawing into it
        (["serve"], "needs a terminal"),
        (["--seconds", "0"], "not a command nor a value of an app flag"),
        (["--port", "70000"], "between 1 and 65530"),  # one limit for every command: room for all six
        (["--in-process", "--port", "70000"], "between 1 and 65530"),
        (["record", "/nonexistent-dir/x.rec", "--seconds", "1"], "cannot write recording"),
    ],
)
def test_bad_input_is_one_line_and_exit_2(args: list[str], words: str, capsys: pytest.CaptureFixture[str]) -> None:
    # in this process (main() is what the command runs; nothing starts before the refusal): a
    # process each cost 0.1-0.2 s of CPU; the real process is checked below, on a few of them
    code = main(list(args))
    out, err = capsys.readouterr()
    assert code == 2 and out == ""
    lines = err.strip().splitlines()
    assert len(lines) == 1 and words in lines[0], err
    assert "Traceback" not in err


@pytest.mark.parametrize(
    ("args", "words"),
    [
        (["bench", "--clients", "-3"], "clients must be between"),
        (["--bogus"], "unrecognized arguments"),
        ([], "needs a terminal"),  # stdout is a pipe here: the app refuses instead of drawing into it
        (["serve", "--headless", "--port", "65535"], "between 1 and 65530"),
    ],
)
def test_bad_input_is_one_line_and_exit_2_from_the_command(args: list[str], words: str) -> None:
    proc = syncviz(*args)
    assert proc.returncode == 2 and proc.stdout == ""
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and words in lines[0], proc.stderr
    assert "Traceback" not in proc.stderr


def test_an_engine_killed_during_claims_gives_no_verdict_one_line_and_exit_1() -> None:
    """``kill -9`` of an engine process while a claim is measured: its zero figures were judged
    ("does not hold: async/sync was already 0.0x", exit 0); now one line naming what died, exit 1."""
    code, out, err = _kill_a_child_mid_run(["claims", "--id", "not-faster", "--quick", "--json"], 1, 2)
    assert code == 1, err
    lines = err.strip().splitlines()
    assert len(lines) == 1 and "killed by SIGKILL" in lines[-1] and "no verdicts" in lines[-1], err
    assert out == ""


def _kill_a_child_mid_run(args: list[str], which: int, connections: int, after_s: float = 0.0) -> tuple[int, str, str]:
    """``syncviz *args``; once its ``which``-th process (by start: 0 the load process, which runs the
    upstream; then the engines) holds ``connections`` TCP connections, and ``after_s`` later, ``kill -9``
    it. Its exit status, stdout and stderr; nothing of it may be left running."""
    proc = subprocess.Popen([*SYNCVIZ, *args], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:

        def child() -> psutil.Process | None:
            kids = sorted(psutil.Process(proc.pid).children(), key=lambda p: p.create_time())
            return kids[which] if len(kids) >= 2 else None

        assert wait_for(lambda: child() is not None and len(child().net_connections("tcp")) >= connections, timeout=30)
        time.sleep(after_s)
        child().kill()  # type: ignore[union-attr]
        out, err = proc.communicate(timeout=120)
    finally:
        proc.kill()
    assert wait_for(lambda: not psutil.Process(os.getpid()).children(recursive=True), timeout=5)
    return proc.returncode, out, err


def test_the_app_refuses_a_redirected_stderr_it_would_draw_into() -> None:
    """Textual draws through stderr: with ``2>file`` on a terminal every frame went into the file."""
    master, slave = os.openpty()
    try:
        proc = subprocess.run(
            [*SYNCVIZ, "--replay", str(Path(__file__).parent / "data" / "io-bound.rec.gz")],
            stdin=slave,
            stdout=slave,
            stderr=subprocess.PIPE,
            text=True,
            timeout=60,
        )
    finally:
        os.close(master)
        os.close(slave)
    assert proc.returncode == 2
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and "needs a terminal (stderr is not one)" in lines[0], proc.stderr


def test_a_port_in_use_is_one_line_and_exit_2() -> None:
    taken = listen("127.0.0.1", 0)
    try:
        port = taken.getsockname()[1] - 1  # threaded gets P, asyncio P+1: the taken one
        proc = syncviz("record", "/tmp/never.rec", "--seconds", "1", "--port", str(port))
        assert proc.returncode == 2
        assert "cannot listen on 127.0.0.1" in proc.stderr and "Traceback" not in proc.stderr
    finally:
        taken.close()


def test_version_is_one_line_and_exit_0(capsys: pytest.CaptureFixture[str]) -> None:
    from importlib import metadata

    with pytest.raises(SystemExit) as exit_info:
        main(["--version"])
    assert exit_info.value.code == 0
    assert capsys.readouterr().out == f"syncviz {metadata.version('syncviz')}\n"


def test_scenarios_lists_every_scenario() -> None:
    proc = syncviz("scenarios")
    assert proc.returncode == 0
    for name in ("io-bound", "cpu-bound", "mixed", "blocking-call", "streaming", "burst", "offload"):
        assert name in proc.stdout


def test_bench_json_is_one_object_in_the_documented_shape() -> None:
    proc = syncviz(
        "bench",
        "--scenario",
        "io-bound",
        "--engines",
        "asyncio,gevent",
        "--seconds",
        "1",
        "--clients",
        "10",
        "--io-ms",
        "20",
        "--together",  # one window for both (alone, one after the other: 5 s of the default run)
        "--json",
    )
    assert proc.returncode == 0, proc.stderr
    doc = json.loads(proc.stdout)
    assert list(doc) == ["results"] and len(doc["results"]) == 2
    for r in doc["results"]:
        assert r["scenario"] == "io-bound" and r["engine"] in ("asyncio", "gevent")
        assert r["params"] == {
            "clients": 10,
            "pool": 8,
            "io_ms": 20.0,
            "cpu_ms": 0.0,
            "rate": None,
            "seconds": 1.0,
            "together": True,
        }
        assert r["completed"] > 50 and r["failed"] == 0
        assert 0 < r["throughput_rps"] <= r["bound_rps"] * 1.05
        assert set(r["latency_ms"]) == {"p50", "p95", "p99", "max"}
        assert r["latency_ms"]["p50"] >= 20.0
        assert set(r["loop_lag_ms"]) == {"p50", "p99"}
        assert set(r["phase_ms"]) == {"reading", "queued", "running", "blocked", "awaiting", "yielded", "ready"}
    own = {"asyncio": "awaiting", "gevent": "yielded"}
    pids = {r["process"]["pid"] for r in doc["results"]}
    assert len(pids) == 2 and os.getpid() not in pids  # one process per engine, not this one
    for r in doc["results"]:
        proc_ = r["process"]
        assert set(proc_) == {"pid", "cpus", "cpu_percent", "rss_mb"} and proc_["cpus"]
        assert 0 < proc_["cpu_percent"] < 150 and 5 < proc_["rss_mb"] < 500
        assert r["phase_ms"][own[r["engine"]]] >= 19.0


def test_a_bound_below_one_request_a_second_is_not_shown_as_0() -> None:
    # The case (--cpu-ms 2000 showed a bound of 0): one GIL, 2 s of CPU a request.
    assert fmt_rate(bound_rps("asyncio", "native", Settings(cpu_ms=2000, io_ms=0))) == "0.5"
    # The table, end to end, with the second a request spent waiting (the same bound, no CPU burnt:
    # --cpu-ms 1250 here cost 2.6 CPU-s of the default run)
    proc = syncviz("bench", "--engines", "asyncio", "--io-ms", "1250", "--seconds", "1", "--clients", "1")
    assert proc.returncode == 0, proc.stderr
    row = next(line for line in proc.stdout.splitlines() if "asyncio" in line)
    assert [c.strip() for c in row.split("│")][4] == "0.8"  # 1 client, 1.25 s a request


def test_a_memory_limit_too_low_is_one_line_and_exit_2() -> None:
    resource = pytest.importorskip("resource")

    def limit() -> None:
        resource.setrlimit(resource.RLIMIT_AS, (45_000_000, 45_000_000))  # `ulimit -v 44000`

    proc = subprocess.run(
        [*SYNCVIZ, "bench", "--engines", "asyncio", "--seconds", "1"],
        capture_output=True,
        text=True,
        timeout=60,
        preexec_fn=limit,
    )
    assert proc.returncode == 2, proc.stderr[-500:]
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and "out of memory" in lines[0] and "ulimit -v" in lines[0], proc.stderr


def test_a_process_killed_during_bench_gives_no_figures_one_line_and_exit_1() -> None:
    """``kill -9`` of the load process mid-window: never a table from a half-run (it read 45% of the
    bound as if measured), one line naming what died, exit 1 (not the user's input), nothing left."""
    args = ["bench", "--engines", "asyncio", "--seconds", "3", "--clients", "5"]
    code, out, err = _kill_a_child_mid_run(args, 0, 5, after_s=1.5)  # inside the window (after a 1 s warm-up)
    assert code == 1, err
    lines = err.strip().splitlines()
    assert len(lines) == 1 and "load generator's process killed by SIGKILL" in lines[0], err
    assert "asyncio" not in out  # no table
