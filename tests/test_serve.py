"""``syncviz serve``: fixed ports, the headless JSON lines, a port in use, signals, a closed pipe; the
server counts' way to the parent (wire ``srv``, :class:`ProcHandle`, ``EngineStatus.server``) and
:class:`ServedRate`. Loopback only; every run here is a few seconds at most."""

from __future__ import annotations

import json
import queue
import signal
import socket
import subprocess
import threading
import time

import psutil
import pytest
from support import SYNCVIZ, free_ports, get, wait_for
from syncviz.engines.base import listen
from syncviz.engines.child import ChildHost
from syncviz.engines.counts import ServerSnapshot
from syncviz.engines.digester import HEADLESS_NICE
from syncviz.engines.host import EngineHost
from syncviz.engines.serve import (
    EngineLine,
    PortInUse,
    StatusLine,
    engine_ports,
    exposure_warning,
    json_line,
    probe_ports,
    text_line,
    url,
)
from syncviz.engines.served import ServedRate

KEYS = {"served_rps", "in_flight", "reading", "busy", "workers", "failed", "backlog", "waiting"}
ENGINES = ("threaded", "asyncio", "gevent")


# -- ServedRate ------------------------------------------------------------------------------
def _snap(t_s: float, served: int) -> ServerSnapshot:
    return ServerSnapshot(t_ns=int(t_s * 1e9), served=served)


def test_served_rate_is_responses_over_the_window() -> None:
    rate = ServedRate(window_s=1.0)
    assert rate.rps() == 0.0
    rate.update(_snap(10.0, 0))
    assert rate.rps() == 0.0  # one snapshot: no rate yet
    for i in range(1, 31):  # 100 responses a second, a snapshot every 0.1 s
        rate.update(_snap(10.0 + i / 10, i * 10))
    assert rate.rps() == pytest.approx(100.0)
    for i in range(31, 41):  # then 300 a second for a whole window: the old rate is gone
        rate.update(_snap(10.0 + i / 10, 300 + (i - 30) * 30))
    assert rate.rps() == pytest.approx(300.0)


def test_served_rate_ignores_repeats_starts_again_after_a_restart_and_goes_stale() -> None:
    rate = ServedRate(window_s=1.0)
    rate.update(_snap(1.0, 50))
    rate.update(_snap(1.5, 100))
    rate.update(_snap(1.5, 100))  # the same snapshot twice
    rate.update(_snap(1.2, 999))  # an older one
    rate.update(None)
    assert rate.rps() == pytest.approx(100.0)
    rate.update(_snap(2.0, 3))  # served went down: a new engine, counting from zero
    assert rate.rps() == 0.0
    rate.update(_snap(2.5, 23))
    assert rate.rps() == pytest.approx(40.0)
    assert rate.rps(now_ns=int(3.0e9)) == pytest.approx(40.0)
    assert rate.rps(now_ns=int(3.6e9)) is None  # nothing heard for a whole window: not known, not 0
    with pytest.raises(ValueError):
        ServedRate(window_s=0)


# -- the counts' way to the parent -----------------------------------------------------------
def test_in_process_status_carries_the_engines_counts() -> None:
    with EngineHost(scenario="io-bound", engines=["asyncio"], load=False, io_ms=1) as host:
        engine = host.engines["asyncio"]
        engine.counts.add(served=7, failed=2, timeouts=1)
        srv = host.status().engines["asyncio"].server
        assert srv is not None and (srv.served, srv.failed, srv.timeouts) >= (7, 2, 1)
        assert srv.workers >= 1 and srv.t_ns > 0


def test_each_engine_process_sends_its_counts_and_the_status_holds_the_latest() -> None:
    with ChildHost(scenario="io-bound", load=False, io_ms=1) as child:
        assert child.info()["load"] is False  # the app can say the built-in load is off
        assert wait_for(lambda: all(st.server is not None for st in child.status().engines.values()), timeout=5)
        first = {n: st.server.t_ns for n, st in child.status().engines.items()}  # type: ignore[union-attr]
        status, _, _ = get(child.ports["asyncio"])
        assert status == 200
        assert wait_for(
            lambda: all(st.server.t_ns > first[n] for n, st in child.status().engines.items()),  # type: ignore[union-attr]
        )
        assert wait_for(lambda: child.status().engines["asyncio"].server.served >= 1)  # type: ignore[union-attr]
        srv = child.status().engines["asyncio"].server
        assert srv is not None and srv.workers >= 1 and srv.failed == 0
        assert child.status().engines["gevent"].server.served == 0  # type: ignore[union-attr]
        assert child.procs["asyncio"].server(run=child.run + 1) is None  # another run's counts are not these


# -- pieces of the command -------------------------------------------------------------------
def test_ports_urls_and_the_exposure_warning() -> None:
    assert engine_ports(8001) == {"threaded": 8001, "asyncio": 8002, "gevent": 8003}
    assert engine_ports(0) == dict.fromkeys(ENGINES, 0)
    assert url("127.0.0.1", 8002) == "http://127.0.0.1:8002/" and url("::1", 9) == "http://[::1]:9/"
    for host in ("127.0.0.1", "127.0.0.2", "::1", "localhost"):
        assert exposure_warning(host) is None
    for host in ("0.0.0.0", "::", "192.168.1.5", "example.org"):
        warning = exposure_warning(host)
        assert warning is not None and "\n" not in warning and "beyond this machine" in warning


def test_a_status_line_is_the_documented_object_and_an_exited_engine_says_so() -> None:
    line = StatusLine(
        3.0004,
        {
            "threaded": EngineLine(12.345, 8, 2, 8, 8, 1),
            "asyncio": EngineLine(),
            "gevent": EngineLine(state="exited", detail="killed by SIGKILL"),
        },
    )
    doc = json.loads(json_line(line))
    assert doc["t"] == 3.0 and list(doc["engines"]) == list(ENGINES)
    assert doc["engines"]["threaded"] == {
        "served_rps": 12.35,
        "in_flight": 8,
        "reading": 2,
        "busy": 8,
        "workers": 8,
        "failed": 1,
        "backlog": 0,
        "waiting": 0,
    }
    assert set(doc["engines"]["asyncio"]) == KEYS
    assert doc["engines"]["gevent"]["state"] == "exited"
    text = text_line(line)
    assert "\n" not in text and "busy 8/8" in text and "gevent exited (killed by SIGKILL)" in text


def test_probe_names_the_port_in_use_and_its_engine() -> None:
    base = _free_base()
    taken = listen("127.0.0.1", base + 2)
    try:
        with pytest.raises(PortInUse, match=rf"^port {base + 2} is in use \(gevent\)$"):
            probe_ports("127.0.0.1", engine_ports(base))
    finally:
        taken.close()
    probe_ports("127.0.0.1", engine_ports(base))  # free again


# -- the command -----------------------------------------------------------------------------
def _free_base() -> int:
    """A first port P with P, P+1 and P+2 all free (support.free_ports: below the ephemeral range)."""
    return free_ports(len(engine_ports(1)))


def _refused(port: int) -> bool:
    try:
        socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
    except ConnectionRefusedError:
        return True
    return False


class Serve:
    """``syncviz serve ...`` in a subprocess, its stdout lines read as they come."""

    def __init__(self, *args: str) -> None:
        self.proc = subprocess.Popen(
            [*SYNCVIZ, "serve", *args], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
        )
        self.lines: queue.Queue[str] = queue.Queue()
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            self.lines.put(line)

    def line(self, timeout: float = 15.0) -> str:
        return self.lines.get(timeout=timeout)

    def stop(self, sig: int) -> tuple[int, float, str]:
        t0 = time.monotonic()
        self.proc.send_signal(sig)
        code = self.proc.wait(10)
        took = time.monotonic() - t0
        return code, took, self.proc.stderr.read() if self.proc.stderr else ""

    def kill(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(5)


def _alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/status") as f:
            return "zombie" not in f.read()
    except FileNotFoundError:
        return False


def _children(pid: int) -> list[int]:
    psutil = pytest.importorskip("psutil")
    try:
        return [c.pid for c in psutil.Process(pid).children(recursive=True)]
    except psutil.Error:
        return []


def test_headless_json_lines_then_sigint_exits_within_2_s_and_frees_the_ports() -> None:
    base = _free_base()
    serve = Serve("--headless", "--json", "--port", str(base), "--io-ms", "1")
    try:
        doc = json.loads(serve.line())
        kids = _children(serve.proc.pid)
        assert len(kids) == 7  # three engines, their digest processes and the load process (its upstream)
        digests = [p for p in map(psutil.Process, kids) if "syncviz.engines.digester" in p.cmdline()]
        assert len(digests) == 3 and {p.nice() for p in digests} == {HEADLESS_NICE}  # no UI to give way to
        assert set(doc) == {"t", "engines"} and isinstance(doc["t"], float) and 0.5 < doc["t"] < 3
        assert list(doc["engines"]) == list(ENGINES)
        for e in doc["engines"].values():
            assert set(e) == KEYS and isinstance(e["served_rps"], float)
            assert all(type(e[k]) is int and e[k] >= 0 for k in KEYS - {"served_rps"})
        assert get(base + 1)[0] == 200  # the fixed ports serve an outside client, and the server counts it
        later = [json.loads(serve.line()) for _ in range(2)]
        assert later[0]["t"] == pytest.approx(doc["t"] + 1, abs=0.5)  # a line a second (a busy machine delays one)
        assert any(d["engines"]["asyncio"]["served_rps"] > 0 for d in later)
        assert all(d["engines"]["gevent"]["served_rps"] == 0 for d in later)
        code, took, err = serve.stop(signal.SIGINT)
    finally:
        serve.kill()
    assert code == 0 and took < 2.0, err
    assert err.splitlines() == [f"{name:<9} http://127.0.0.1:{base + i}/" for i, name in enumerate(ENGINES)]
    assert all(_refused(base + i) for i in range(3))
    assert not [pid for pid in kids if _alive(pid)]


def test_sigterm_stops_the_plain_summary_too() -> None:
    base = _free_base()
    serve = Serve("--headless", "--port", str(base))
    try:
        urls = [serve.line() for _ in range(3)]
        assert urls[1].split() == ["asyncio", f"http://127.0.0.1:{base + 1}/"]
        summary = serve.line()
        assert summary.startswith("t ") and all(name in summary for name in ENGINES) and "busy" in summary
        code, took, err = serve.stop(signal.SIGTERM)
    finally:
        serve.kill()
    assert code == 0 and took < 2.0 and "Traceback" not in err
    assert all(_refused(base + i) for i in range(3))


def test_a_port_in_use_is_one_line_exit_2_and_nothing_left() -> None:
    base = _free_base()
    taken = listen("127.0.0.1", base + 1)
    try:
        proc = subprocess.run(
            [*SYNCVIZ, "serve", "--headless", "--json", "--port", str(base)],
            capture_output=True,
            text=True,
            timeout=30,
        )
    finally:
        taken.close()
    assert proc.returncode == 2 and proc.stdout == ""
    assert proc.stderr.splitlines() == [f"syncviz: port {base + 1} is in use (asyncio)"]
    assert _refused(base) and _refused(base + 2)


def test_a_closed_pipe_is_a_clean_exit() -> None:
    base = _free_base()
    command = f"{' '.join(SYNCVIZ)} serve --headless --json --port {base} | head -1"
    proc = subprocess.run(["bash", "-o", "pipefail", "-c", command], capture_output=True, text=True, timeout=30)
    json.loads(proc.stdout)
    assert proc.returncode == 0, proc.stderr
    assert "Traceback" not in proc.stderr and "Error" not in proc.stderr, proc.stderr
    assert wait_for(lambda: all(_refused(base + i) for i in range(3)), timeout=5)


def test_no_record_serves_and_counts_and_goes_only_with_headless() -> None:
    """``--no-record`` (the recording-overhead baseline of benchmarks/run.py): the servers still
    serve an outside client and count it; the app, which draws what they record, refuses it."""
    refused = subprocess.run([*SYNCVIZ, "serve", "--no-record"], capture_output=True, text=True, timeout=30)
    assert refused.returncode == 2 and len(refused.stderr.splitlines()) == 1 and "--headless" in refused.stderr
    base = _free_base()
    serve = Serve("--headless", "--json", "--no-record", "--port", str(base), "--io-ms", "1")
    try:
        serve.line()
        assert get(base + 1)[0] == 200
        later = [json.loads(serve.line()) for _ in range(2)]
        assert any(d["engines"]["asyncio"]["served_rps"] > 0 for d in later)
        code, _took, err = serve.stop(signal.SIGINT)
    finally:
        serve.kill()
    assert code == 0, err


def test_headless_serves_one_engine_alone_and_the_app_wants_two() -> None:
    """``--engines asyncio`` with ``--headless``: that engine alone (its process and digest process, no
    idle siblings: how benchmarks/ceilings.py measures each engine against its bare server); the app,
    which draws engines side by side, still refuses one (one line, exit 2, before anything starts)."""
    refused = subprocess.run([*SYNCVIZ, "serve", "--engines", "asyncio"], capture_output=True, text=True, timeout=30)
    assert refused.returncode == 2 and refused.stderr.splitlines() == [
        "syncviz: error: --engines takes 2 to 6 engines, not 1"
    ]
    base = _free_base()
    serve = Serve("--headless", "--json", "--engines", "asyncio", "--port", str(base))
    try:
        doc = json.loads(serve.line())
        kids = _children(serve.proc.pid)
        assert list(doc["engines"]) == ["asyncio"]
        assert len(kids) == 3  # the engine, its digest process and the load process
        assert get(base + 1)[0] == 200 and _refused(base) and _refused(base + 2)
        code, _took, err = serve.stop(signal.SIGTERM)
    finally:
        serve.kill()
    assert code == 0, err
    assert err.splitlines() == [f"asyncio   http://127.0.0.1:{base + 1}/"]
    assert not [pid for pid in kids if _alive(pid)]
