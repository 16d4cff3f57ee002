"""The models beside the three (uvloop, trio, prefork): their own behaviour, ``--engines``, the extra.

Every engine test in the suite already runs on them (the ``engine_name`` fixture); this file
checks what only they have: prefork's worker processes (lanes, restarts, nothing left after
stop, its placement and bound), trio's and uvloop's loop phases, and the one line that names
``pip install 'syncviz[all]'`` when their package is missing.
"""

from __future__ import annotations

import importlib.util
import os
import socket
import time
from collections.abc import Iterator

import psutil
import pytest
from support import wait_for
from syncviz.engines.base import Engine, engine_class
from syncviz.engines.digest_client import ClientDigest
from syncviz.engines.events import DEFAULT_ENGINES, ENGINE_IDS, ENGINES, Phase, Recorder
from syncviz.engines.placement import plan
from syncviz.engines.registry import EngineError, require
from syncviz.engines.settings import Settings, bound_rps, offered_rps
from syncviz.engines.stats import Counters
from syncviz.engines.window import bench_bound
from syncviz.tui.board import Board
from syncviz.tui.cli import main
from syncviz.tui.widgets.counters import CounterView, counter_text

GET = b"GET / HTTP/1.1\r\nHost: t\r\nX-Req-Id: %d\r\nX-Sent-Ns: %d\r\n\r\n"


def _get(port: int, rid: int) -> bytes:
    with socket.create_connection(("127.0.0.1", port), timeout=5) as sock:
        sock.sendall(GET % (rid, time.monotonic_ns()))
        return sock.recv(4096)


def _phases(recorder: Recorder, rid: int) -> list[tuple[int, int]]:
    """The request's ``(lane, phase)`` steps until it ended: an engine records DONE just after its
    last send, and the client (a thread of this process) may have read the response before that."""
    steps: list[tuple[int, int]] = []

    def ended() -> bool:
        steps.extend((lane, phase) for _, _, r, lane, phase in recorder.drain().transitions if r == rid)
        return bool(steps) and steps[-1][1] in (Phase.DONE, Phase.FAILED)

    wait_for(ended, 2.0)
    return steps


@pytest.fixture
def prefork(recorder: Recorder) -> Iterator[Engine]:
    eng = engine_class("prefork")(recorder, Settings(io_ms=200, workers=2), "native")
    eng.start()
    yield eng
    eng.stop()


def test_the_default_is_still_the_three_and_every_model_has_an_id() -> None:
    assert DEFAULT_ENGINES == ("threaded", "asyncio", "gevent")
    assert [ENGINE_IDS[e] for e in ENGINES] == list(range(6))


def test_prefork_serves_two_requests_at_once_on_two_worker_lanes(prefork: Engine, recorder: Recorder) -> None:
    socks = [socket.create_connection(("127.0.0.1", prefork.port), timeout=5) for _ in range(2)]
    t0 = time.monotonic()
    for rid, sock in enumerate(socks, 1):
        sock.sendall(GET % (rid, time.monotonic_ns()))
    assert all(s.recv(4096).startswith(b"HTTP/1.1 200") for s in socks)
    assert time.monotonic() - t0 < 0.39  # two 200 ms requests side by side, not one after the other
    for s in socks:
        s.close()
    seen = recorder.drain().transitions
    lanes = {lane for _, e, rid, lane, phase in seen if phase == Phase.BLOCKED}
    assert lanes == {0, 1} and {e for _, e, *_ in seen} == {ENGINE_IDS["prefork"]}
    assert [p for _, _, rid, _, p in seen if rid == 1][:2] == [Phase.QUEUED, Phase.RUNNING]  # from X-Sent-Ns


def test_a_killed_prefork_worker_is_started_again(prefork: Engine) -> None:
    pids = prefork.worker_pids()  # type: ignore[attr-defined]
    os.kill(pids[0], 9)
    assert wait_for(lambda: prefork.workers_alive() == 2 and pids[0] not in prefork.worker_pids(), 10)  # type: ignore[attr-defined]
    assert prefork.counts.workers == 2
    assert _get(prefork.port, 7).startswith(b"HTTP/1.1 200")


def test_prefork_leaves_no_process_after_stop(recorder: Recorder) -> None:
    eng = engine_class("prefork")(recorder, Settings(io_ms=1, workers=3), "native")
    eng.start()
    pids = eng.worker_pids()  # type: ignore[attr-defined]
    assert len(pids) == 3
    eng.stop()
    assert not [p for p in pids if psutil.pid_exists(p) and psutil.Process(p).status() != psutil.STATUS_ZOMBIE]
    assert not psutil.Process().children()


def test_prefork_workers_follow_the_knob(prefork: Engine) -> None:
    prefork.apply(prefork.settings.with_changes(workers=3))
    assert wait_for(lambda: prefork.workers_alive() == 3, 10)  # type: ignore[attr-defined]
    assert prefork.server_snapshot(0).workers == 3


@pytest.mark.parametrize("name", ["trio", "uvloop"])
def test_a_blocking_call_holds_the_loop_and_an_await_does_not(name: str, recorder: Recorder) -> None:
    for mode, wait in (("native", Phase.AWAITING), ("blocking", Phase.BLOCKED)):
        with engine_class(name)(recorder, Settings(io_ms=20), mode) as eng:  # type: ignore[arg-type]
            assert _get(eng.port, 3).startswith(b"HTTP/1.1 200")
            phases = _phases(recorder, 3)
        assert (0, wait) in phases and phases[-1] == (0, Phase.DONE), phases


def test_placement_gives_prefork_the_cores_the_others_leave() -> None:
    alone = plan(["prefork"], [0, 1])
    assert alone.engines["prefork"] == (0, 1) and alone.share("prefork") == 2
    together = plan(["threaded", "prefork"], [0, 1])
    assert together.engines == {"threaded": (1,), "prefork": (1,)} and together.label("prefork") == "½ of cpu 1"
    wide = plan(["threaded", "asyncio", "prefork"], list(range(8)))
    assert wide.engines["prefork"] == (1, 2, 3, 4, 5) and wide.ui == (0,)


def test_prefork_is_bound_by_its_workers_and_their_cores() -> None:
    cpu = Settings(clients=20, io_ms=0, cpu_ms=5)
    assert bound_rps("threaded", "native", cpu, 2.0) == pytest.approx(200)  # one GIL
    assert bound_rps("prefork", "native", cpu, 2.0, (0, 1)) == pytest.approx(400)  # a GIL per worker
    assert bound_rps("prefork", "native", cpu.with_changes(workers=4), 2.0, (0, 1)) == pytest.approx(400)  # 2 cores
    io = Settings(clients=100, io_ms=50, workers=2)
    assert bound_rps("prefork", "native", io) == pytest.approx(40)  # min(clients, N) / time


def test_an_open_loop_with_spikes_is_bound_by_what_the_window_can_hold() -> None:
    # burst: 60 a second, 480 for 1 s in every 5. The bound was the 60 alone: bench read
    # "req/s 141 of bound 60, 235%" for an engine that answered every request sent (144 a second)
    burst = Settings(clients=400, pool=8, io_ms=50, rate=60, burst=8)
    assert offered_rps(burst) == pytest.approx(144)  # the long-run mean
    assert offered_rps(burst, 2.0) == pytest.approx(270)  # the panel's req/s window: one whole spike
    assert offered_rps(burst, 10.0) == pytest.approx(144) and offered_rps(burst, 0.5) == pytest.approx(480)
    assert bound_rps("asyncio", "native", burst, window_s=2.0) == pytest.approx(270)
    assert bound_rps("threaded", "native", burst, window_s=2.0) == pytest.approx(160)  # 8 threads / 50 ms first
    assert bound_rps("asyncio", "native", burst.with_changes(burst=1)) == pytest.approx(60)
    assert offered_rps(Settings()) is None  # a closed loop: its clients, not a rate


def test_bench_bounds_an_open_loop_by_what_was_sent_where_the_arrivals_bind() -> None:
    """A 2 s bench of burst read `63 of bound 270, 23%`: the window held no spike and the engines
    answered every request. Where arrivals bind, the bound is what the clients sent in the window."""
    burst = Settings(clients=400, pool=8, io_ms=50, rate=60, burst=8)
    assert bench_bound("asyncio", "native", burst, 2.0, 58.5) == (58.5, 58.5)
    assert bench_bound("threaded", "native", burst, 2.0, 58.5) == (pytest.approx(160), 58.5)  # its pool binds
    assert bench_bound("asyncio", "native", burst, 2.0, 0.0) == (pytest.approx(270), None)  # nothing measured
    closed = Settings(clients=100, io_ms=50)
    assert bench_bound("asyncio", "native", closed, 2.0, 1900.0) == (pytest.approx(2000), None)


def test_a_panel_bound_by_its_arrivals_says_offered_and_what_was_sent() -> None:
    """burst's asyncio read `req/s 281 of bound 270` in a spike and `req/s 55 of bound 270` between
    them: 270 is what a window holding a spike takes on average, not what was sent. Where the
    arrivals bind, the panel says `of offered` and the clients' measured send rate over the same
    window; where the server binds (threaded's 8 threads), `of bound 160`."""
    burst = Settings(clients=400, pool=8, io_ms=50, rate=60, burst=8)
    board = Board({"scenario": "burst", "settings": burst.as_dict()})
    texts = {}
    for name in ("asyncio", "threaded"):
        info = board.engine_info(name)
        counters = Counters(name, rps=55.0, sent_rps=58.4)
        view = CounterView(counters, info.bound, 1, "loop", True, [], [], 0, offered=info.offered)
        texts[name] = counter_text(view, 64, stacked=False).plain
    assert "req/s 55 of offered 58" in texts["asyncio"] and "bound" not in texts["asyncio"], texts
    assert "of bound 160" in texts["threaded"], texts
    digest = ClientDigest(1_000_000, rate_window_s=2.0)
    for i in range(120):  # 60 a second for 2 s
        digest.sent(i * 16_666_667, i + 1)
    assert digest.counters(2_000_000_000)["sent_rps"] == pytest.approx(60, rel=0.05)


def test_a_missing_package_is_one_line_naming_the_extra(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda n, *a: None if n == "uvloop" else real(n, *a))
    with pytest.raises(EngineError, match=r"^the uvloop engine needs uvloop: pip install 'syncviz\[all\]'$"):
        require(["threaded", "uvloop"])
    assert main(["bench", "--engines", "uvloop", "--seconds", "1"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "pip install 'syncviz[all]'" in err


@pytest.mark.parametrize(
    ("argv", "says"),
    [
        (["bench", "--engines", "threaded,tornado"], "unknown engine 'tornado'"),
        (["bench", "--engines", "trio,trio"], "names an engine twice"),
        (["serve", "--engines", "trio"], "takes 2 to 6 engines, not 1"),  # the app; --headless serves one
        (["claims", "--engines", "uvloop", "--id", "not-faster"], "takes 2 to 6 engines, not 1"),
    ],
)
def test_engines_flag_errors_are_one_line(argv: list[str], says: str, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and says in err, err
