"""One OS process per engine: distinct pids, faults shown at once and isolated, restarts, no leftovers."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

import psutil
import pytest
from support import wait_for
from syncviz.engines import child as child_module
from syncviz.engines.child import ChildHost
from syncviz.engines.events import Phase
from syncviz.engines.placement import SHORT_SLICE_NS, plan
from syncviz.engines.proc_handle import ProcHandle
from syncviz.engines.source import Progress
from syncviz.engines.stats import StreamStats
from syncviz.tui.board import Board
from syncviz.tui.widgets.bars import health_label
from syncviz.tui.widgets.perf import PerfMeter, perf_text


def _done(child: ChildHost, stats: StreamStats, name: str) -> int:
    stats.feed(child.drain())
    return stats.counters()[name].completed


def test_each_engine_has_its_own_process_and_a_fault_stays_in_it() -> None:
    child = ChildHost(scenario="io-bound", clients=10, io_ms=10).start()
    everyone = [p.pid for p in child.procs.values()] + [child.loadproc.pid]  # type: ignore[union-attr]
    try:
        pids = {name: st.process.pid for name, st in child.status().engines.items()}  # type: ignore[union-attr]
        assert len(set(pids.values())) == 3 and os.getpid() not in pids.values()
        assert all(st.state == "live" for st in child.status().engines.values()) or wait_for(
            lambda: all(st.state == "live" for st in child.status().engines.values())
        )
        stats = StreamStats()
        assert wait_for(lambda: _done(child, stats, "gevent") > 50)

        os.kill(pids["gevent"], signal.SIGKILL)
        t0 = time.monotonic()
        assert wait_for(lambda: child.status().engines["gevent"].state == "exited", timeout=2)
        assert time.monotonic() - t0 < 2
        assert "SIGKILL" in child.status().engines["gevent"].detail
        before = {n: _done(child, stats, n) for n in ("threaded", "asyncio")}
        assert wait_for(lambda: all(_done(child, stats, n) > before[n] + 20 for n in before), timeout=5)

        child.set_scenario("io-bound")  # what the current scenario's key does: restart what is missing
        assert wait_for(lambda: child.status().engines["gevent"].state == "live" and not child.restarting, timeout=10)
        new_pid = child.status().engines["gevent"].process.pid  # type: ignore[union-attr]
        assert new_pid != pids["gevent"]
        everyone.append(new_pid)
        stats = StreamStats()
        assert wait_for(lambda: _done(child, stats, "gevent") > 20, timeout=5)
    finally:
        child.close()
    assert not any(psutil.pid_exists(p) and psutil.Process(p).status() != psutil.STATUS_ZOMBIE for p in everyone)


def test_a_stopped_engine_is_shown_stalled_and_closing_leaves_nothing() -> None:
    child = ChildHost(scenario="io-bound", clients=5, io_ms=10).start()
    pid = child.procs["asyncio"].pid
    try:
        threaded = child.procs["threaded"]

        seen: list[str] = []

        def silent_for_10_s() -> bool:  # as if the app had been suspended (ctrl+z) for 10 s; its reader
            threaded.last_frame = time.monotonic() - 10  # thread may set it again between two looks
            status = child.status().engines["threaded"]
            seen.append(status.detail)
            return status.state == "stalled"

        assert wait_for(silent_for_10_s, timeout=3)
        assert "no answer" in seen[-1] or "digest process is behind" in seen[-1], seen  # (frames did come)
        child.resumed()  # fg: that silence was the app's; the engine may catch up before "no answer"
        assert child.status().engines["threaded"].state == "live"
        os.kill(pid, signal.SIGSTOP)  # a real stop is still seen at once
        assert wait_for(lambda: child.status().engines["asyncio"].state == "stalled", timeout=2)
        assert "SIGSTOP" in child.status().engines["asyncio"].detail
        assert child.status().engines["threaded"].state == "live"
    finally:
        t0 = time.monotonic()
        child.close()
        assert time.monotonic() - t0 < 5
    assert not psutil.pid_exists(pid) or psutil.Process(pid).status() == psutil.STATUS_ZOMBIE


def test_a_loop_late_while_it_answers_is_live_one_held_with_no_answer_is_stalled() -> None:
    # blocking-call: time.sleep(0.05) in the handler, 40 requests ready: the loop runs them all
    # before its timers, its ticker ~2 s late, while it answers 20 a second (the panel said
    # "stalled · press 2 to restart it", its figures "the last before it went down")
    with ChildHost(scenario="blocking-call", engines=["threaded", "asyncio"], clients=40) as child:
        proc = child.procs["asyncio"]
        assert wait_for(lambda: proc.stall_ns > 1.5e9, timeout=10), proc.stall_ns
        served = proc.server().served  # type: ignore[union-attr]
        assert child.status().engines["asyncio"].state == "live", child.status().engines["asyncio"].detail
        assert wait_for(lambda: proc.server().served > served, timeout=1)  # type: ignore[union-attr]
    # one call holding the loop 3 s, nothing answered meanwhile: stalled, and why
    with ChildHost(scenario="blocking-call", engines=["threaded", "asyncio"], clients=1, io_ms=3000) as child:
        assert wait_for(lambda: child.status().engines["asyncio"].state == "stalled", timeout=5)
        assert child.status().engines["asyncio"].detail.startswith("loop held ")
        assert child.procs["asyncio"].server().served == 0  # type: ignore[union-attr]


def test_progress_calls_a_late_loop_stalled_only_when_it_answers_nothing_for_as_long() -> None:
    p = Progress(now=100.0)
    p.see(5, 100.0)
    assert not p.stalled(overdue_ns=int(3e9), now=100.5)  # answered half a second ago
    assert p.stalled(overdue_ns=int(3e9), now=101.5)  # late, and nothing answered for 1.5 s
    p.see(5, 101.6)  # the same count: no answer
    assert p.stalled(overdue_ns=int(3e9), now=101.6)
    p.see(6, 101.7)
    assert not p.stalled(overdue_ns=int(3e9), now=102.0)
    assert not p.stalled(overdue_ns=int(0.5e9), now=110.0)  # on time: live however long it was idle


def test_a_killed_load_process_is_said_and_comes_back_with_the_scenario() -> None:
    """The load has no panel: its death is the status badge, the perf line and one notice, never
    ``live`` over counters frozen at its last batch; restarting the scenario starts it again."""
    with ChildHost(scenario="io-bound", engines=["threaded", "asyncio"], clients=5, io_ms=200) as child:
        assert child.loadproc is not None
        stats = StreamStats(names=["threaded", "asyncio"])
        assert wait_for(lambda: stats.feed(child.drain()) or stats.counters()["asyncio"].in_flight == 5, timeout=5)
        os.kill(child.loadproc.pid, signal.SIGKILL)
        assert wait_for(lambda: child.status().load_state == "exited", timeout=3)
        gone = lambda: stats.counters()["asyncio"]  # noqa: E731

        def feed_while_down() -> bool:
            # what the app does at every health check while the load is down (Board.drop_dead): its
            # clients' last figures wait no more, those of batches sent before it died and taken after too
            stats.feed(child.drain())
            stats.client_gone()
            return (gone().in_flight, gone().rps) == (0, 0)

        assert wait_for(feed_while_down, timeout=4)
        assert gone().queued == 0 and not stats["asyncio"].picture.open_q
        status = child.status()
        assert "SIGKILL" in status.load_detail
        assert "load exited" in health_label(status)[0] and "live" not in health_label(status)[0]
        assert "load exited" in perf_text(PerfMeter(), status).plain
        assert wait_for(lambda: any("load generator" in e and "SIGKILL" in e for e in child.errors), timeout=2)
        child.set_scenario("io-bound")
        assert wait_for(lambda: "● live" in health_label(child.status())[0], timeout=10)
        assert child.status().load_state == "live" and child.loadproc.alive


def test_a_killed_engine_holds_nothing_on_its_panel() -> None:
    """An exited engine's picture held its pool's workers: none are held once it is down (the app's
    Board.drop_dead at every health check), its rows' requests end FAILED, and its counters stay its
    last (the panel says "last figures before it went down")."""
    with ChildHost(scenario="io-bound", engines=["threaded", "asyncio"], clients=5, io_ms=300) as child:
        stats = StreamStats(names=["threaded", "asyncio"])
        threaded = lambda: stats.counters()["threaded"]  # noqa: E731
        asyncio = lambda: stats.counters()["asyncio"]  # noqa: E731
        # 5 clients each, pool 8; asyncio's too (a busy machine starts one engine's clients later)
        assert wait_for(lambda: stats.feed(child.drain()) or (threaded().busy >= 3 and asyncio().in_flight == 5), 5)
        os.kill(child.procs["threaded"].pid, signal.SIGKILL)
        assert wait_for(lambda: child.status().engines["threaded"].state == "exited", timeout=3)
        stats.feed(child.drain())
        held, last = list(stats["threaded"].inflight), threaded()
        assert stats["threaded"].picture.held
        stats["threaded"].server_gone()
        assert not stats["threaded"].picture.held and not stats["threaded"].inflight
        assert not stats["threaded"].picture.open_q and not stats["threaded"].picture.open_r
        assert (threaded().in_flight, threaded().busy) == (last.in_flight, last.busy)
        ended = {t.rid: t.phase for t in stats["threaded"].recent}
        assert held and all(ended[rid] == Phase.FAILED for rid in held)
        assert asyncio().in_flight == 5  # the other engine's figures are its own


def test_process_metrics_come_from_the_processes() -> None:
    with ChildHost(scenario="io-bound", engines=["asyncio"], clients=20, io_ms=10) as child:
        assert wait_for(lambda: (child.status().engines["asyncio"].process.rss_mb or 0) > 0, timeout=3)  # type: ignore[union-attr]
        proc = child.status().engines["asyncio"].process
        assert proc is not None and proc.cpus == child.placement.engines["asyncio"]
        assert abs(proc.rss_mb - psutil.Process(proc.pid).memory_info().rss / 1e6) < 20  # type: ignore[operator]
        assert wait_for(lambda: child.status().engines["asyncio"].process.wait_percent is not None, timeout=3)  # type: ignore[union-attr]


@pytest.mark.skipif(sys.version_info < (3, 11), reason="Popen's process_group: a session of its own on 3.10")
def test_engine_processes_share_the_app_s_session_in_a_process_group_of_their_own() -> None:
    """Not a session each: Linux scheduled each session's processes as a group (autogroup), and on a
    shared core that starved the loop engines (cpu-bound together 187 / 0 / 0 req/s); nor the
    app's process group: the terminal's ctrl+c is the app's alone."""
    with ChildHost(scenario="io-bound", engines=["threaded", "asyncio"], clients=5, io_ms=10) as child:
        pids = [p.pid for p in child.procs.values()] + [child.loadproc.pid]  # type: ignore[union-attr]
        assert {os.getsid(pid) for pid in pids} == {os.getsid(0)}
        assert all(os.getpgid(pid) == pid != os.getpgid(0) for pid in pids)


def test_a_prefork_engine_is_the_sum_of_its_processes() -> None:
    """Its workers are found (however late they start) and their memory counted; a one-process
    engine is its process alone (it never looks for children: that reads every /proc entry)."""
    with ChildHost(scenario="io-bound", engines=["prefork", "asyncio"], clients=10, io_ms=10) as child:
        prefork = child.procs["prefork"]
        master = psutil.Process(prefork.pid)
        assert wait_for(lambda: len(master.children(recursive=True)) >= 1, timeout=5)

        def shown() -> float:
            return child.status().engines["prefork"].process.rss_mb or 0  # type: ignore[union-attr]

        def own() -> float:
            return sum(p.memory_info().rss for p in [master, *master.children(recursive=True)]) / 1e6

        assert wait_for(lambda: shown() > 1.3 * master.memory_info().rss / 1e6, timeout=5)  # a worker is counted
        assert abs(shown() - own()) < 10
        assert child.procs["asyncio"]._children() == []
        # the panel draws as many worker lanes as the engine started processes (one per CPU of its placement)
        drawn = Board(child.info()).engine_info("prefork").lanes
        assert len(master.children()) == len(drawn), (master.children(), drawn)


@pytest.mark.parametrize(
    ("cpus", "labels", "shares"),
    [
        ([0, 1], {"threaded": "⅓ of cpu 1"}, {"threaded": 1 / 3}),
        ([0, 1, 2, 3], {"threaded": "1 core (cpu 1)", "gevent": "1 core (cpu 3)"}, {"asyncio": 1.0}),
        ([0], {"asyncio": "⅓ of cpu 0"}, {"gevent": 1 / 3}),
    ],
)
def test_placement_gives_each_engine_its_share(cpus: list[int], labels: dict, shares: dict) -> None:
    p = plan(("threaded", "asyncio", "gevent"), cpus)
    for name, label in labels.items():
        assert p.label(name) == label
    for name, share in shares.items():
        assert p.share(name) == pytest.approx(share)
    if len(cpus) > 1:  # the UI and the load keep off every engine's core
        engine_cpus = {c for cs in p.engines.values() for c in cs}
        assert not engine_cpus & set(p.ui) and not engine_cpus & set(p.load)


def test_one_engine_alone_gets_a_core() -> None:
    p = plan(("gevent",), [0, 1])
    assert p.share("gevent") == 1.0 and p.engines["gevent"] == (1,) and p.load == (0,)


def _slice_ns(pid: int, tid: int) -> int | None:
    try:
        with open(f"/proc/{pid}/task/{tid}/sched") as f:
            for line in f:
                if line.startswith("se.slice"):
                    return int(line.split(":")[1])
    except OSError:
        pass
    return None


def test_engine_threads_ask_for_short_slices_where_the_kernel_has_them() -> None:
    probe = "from syncviz.engines.placement import short_slices as s; import os, threading; "
    probe += "print(s() and open(f'/proc/{os.getpid()}/task/{threading.get_native_id()}/sched').read())"
    out = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, timeout=30).stdout
    if "se.slice" not in out or str(SHORT_SLICE_NS) not in out.split("se.slice", 1)[1].split("\n", 1)[0]:
        pytest.skip("no EEVDF custom slices on this kernel (or its sched file is hidden)")
    child = ChildHost(scenario="io-bound", clients=5, io_ms=10, engines=["asyncio"]).start()
    try:
        pid = child.status().engines["asyncio"].process.pid  # type: ignore[union-attr]
        tids = [int(t) for t in os.listdir(f"/proc/{pid}/task")]
        assert len(tids) > 1  # the loop thread and its helpers, not only the main one
        assert all(_slice_ns(pid, t) == SHORT_SLICE_NS for t in tids)
        load = child.loadproc.pid  # type: ignore[union-attr]
        assert _slice_ns(load, load) != SHORT_SLICE_NS  # the load generator keeps the default
    finally:
        child.close()


def test_swapping_an_engine_runs_the_new_one_in_its_place_and_stops_the_old() -> None:
    child = ChildHost(scenario="io-bound", clients=5, io_ms=10, engines=["threaded", "gevent"]).start()
    try:
        old = child.status().engines["gevent"].process.pid  # type: ignore[union-attr]
        child.set_engines(["threaded", "asyncio"])
        assert wait_for(lambda: not child.restarting and "asyncio" in child.status().engines, timeout=15)
        assert list(child.status().engines) == ["threaded", "asyncio"]
        assert wait_for(lambda: not psutil.pid_exists(old) or psutil.Process(old).status() == psutil.STATUS_ZOMBIE)
        stats = StreamStats()
        assert wait_for(lambda: _done(child, stats, "asyncio") > 20, timeout=10)
    finally:
        child.close()


def test_a_signal_inside_popen_after_the_fork_leaves_no_process(monkeypatch: pytest.MonkeyPatch) -> None:
    """SIGHUP to ``syncviz trace`` while an engine process was being started: the exception came
    out of Popen after the fork, no handle knew the child, and it ran on after the command had
    exited until its imports were done and it read its stdin's end (seen once in .ci/run)."""
    real = subprocess.Popen._execute_child
    started: list[int] = []

    def interrupted(self, *args, **kwargs) -> None:  # type: ignore[no-untyped-def]
        real(self, *args, **kwargs)
        started.append(self.pid)
        raise KeyboardInterrupt  # as the signal handler raises, before Popen returns

    monkeypatch.setattr(subprocess.Popen, "_execute_child", interrupted)
    with pytest.raises(KeyboardInterrupt):
        ProcHandle("asyncio", {"role": "engine"}, (0,))
    assert started
    assert not psutil.pid_exists(started[0]) or psutil.Process(started[0]).status() == psutil.STATUS_ZOMBIE


def test_a_signal_between_a_process_starting_and_its_host_holding_it_leaves_no_process(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The handle exists, ``self.procs[name] = ...`` has not run yet: the host's close still finds it."""
    made: list[ProcHandle] = []

    def then_interrupted(*args, **kwargs) -> ProcHandle:  # type: ignore[no-untyped-def]
        made.append(ProcHandle(*args, **kwargs))
        if len(made) == 2:  # the load's, then the first engine's
            raise KeyboardInterrupt
        return made[-1]

    monkeypatch.setattr(child_module, "ProcHandle", then_interrupted)
    with pytest.raises(KeyboardInterrupt):
        ChildHost(scenario="io-bound", clients=2).start()
    assert len(made) == 2
    for handle in made:
        assert not psutil.pid_exists(handle.pid) or psutil.Process(handle.pid).status() == psutil.STATUS_ZOMBIE


def test_a_signal_while_a_handle_sets_up_is_what_the_host_raises(monkeypatch: pytest.MonkeyPatch) -> None:
    """SIGTERM to ``syncviz record`` while an engine's handle set itself up (in psutil, before its
    reader thread existed): the host's close then found the half-made handle and died on it,
    ``AttributeError: 'ProcHandle' object has no attribute '_reader'``, exit 1 (seen in the suite)."""
    real = psutil.Process.cpu_percent
    calls: list[int] = []

    def interrupted(self, *args, **kwargs) -> float:  # type: ignore[no-untyped-def]
        calls.append(self.pid)
        if len(calls) == 2:  # the load's handle, then the first engine's
            raise KeyboardInterrupt  # as the app's signal handler raises
        return real(self, *args, **kwargs)

    monkeypatch.setattr(psutil.Process, "cpu_percent", interrupted)
    with pytest.raises(KeyboardInterrupt):
        ChildHost(scenario="io-bound", clients=2).start()
    assert len(calls) >= 2
    for pid in calls[:2]:
        assert not psutil.pid_exists(pid) or psutil.Process(pid).status() == psutil.STATUS_ZOMBIE
