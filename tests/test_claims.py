"""The claims: catalogue, pure verdicts on recorded and made-up figures, live and experiment
verdicts agreeing on the same figures, and a short real run.

``tests/data/claims_quick.json`` is the output of a real ``syncviz claims --quick --json``
on the 2-core development machine (all fourteen, one run: 75.0 s, 2026-12-05, after the engine and load
processes kept their reads off mmap: `uvloop` no longer holds); every verdict in it is
recomputed from its figures.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from syncviz.engines.claims import CLAIM_LIST, CLAIMS, claims_for, get_claims, tone
from syncviz.engines.claims import base as v
from syncviz.engines.claims.live import judge_live, scene_settings
from syncviz.engines.events import ENGINES
from syncviz.engines.scenarios import SCENARIOS
from syncviz.engines.settings import Settings, SettingsError
from syncviz.engines.stats import Counters
from syncviz.tui.claims_cli import format_figures, table

IDS = [
    "io-throughput",
    "not-faster",
    "cpu-bound",
    "threads-needed",
    "thousands",
    "blocking-call",
    "greenlets",
    "high-load-only",
    "offload",
    "memory",
    "streaming",
    "slow-clients",
    "processes",
    "uvloop",
]
RECORDED = json.loads((Path(__file__).parent / "data" / "claims_quick.json").read_text())["claims"]
"""A real run of the claims (the first twelve, or all)."""
RECORDED_IDS = [r["id"] for r in RECORDED]
KEYS = {"id", "claim", "criterion", "verdict", "figures", "settings"}


def _is_verdict(text: str) -> bool:
    return text == v.HOLDS or text.startswith((v.NOT + ":", v.ONLY + " "))


def test_every_claim_is_complete() -> None:
    """Words, experiment, live judge, verdict and a scene the app can run, all in one object."""
    assert list(CLAIMS) == IDS and [c.id for c in CLAIM_LIST] == IDS
    for claim in CLAIM_LIST:
        assert claim.claim and claim.criterion and claim.experiment, claim.id
        assert callable(claim.run) and callable(claim.live) and callable(claim.verdict)
        scene = claim.scene
        assert scene.scenario in SCENARIOS and scene.watch and scene.min_seconds > 0, claim.id
        assert scene.zoom_ms is None or scene.zoom_ms > 0
        assert "slow" not in scene.knobs  # the host keeps its own slow motion across a restart
        SCENARIOS[scene.scenario].settings.with_changes(**scene.knobs)  # valid knobs for the app
        Settings().with_changes(**scene.knobs)
        assert set(scene.needs_lag) <= set(scene.engines) <= set(ENGINES)
    assert [c.id for c in claims_for("io-bound")] == ["io-throughput", "threads-needed", "thousands", "high-load-only"]


def test_unknown_ids_raise_a_one_line_settings_error() -> None:
    assert [c.id for c in get_claims(["memory", "not-faster"])] == ["not-faster", "memory"]
    with pytest.raises(SettingsError, match="unknown claim 'nope'") as err:
        get_claims(["memory", "nope"])
    assert "\n" not in str(err.value)


def test_recorded_run_has_every_claim_and_each_verdict_follows_from_its_figures() -> None:
    assert IDS[: len(RECORDED_IDS)] == RECORDED_IDS and len(RECORDED_IDS) >= 12
    for r in RECORDED:
        assert set(r) == KEYS
        assert r["figures"] and r["settings"] and r["criterion"] == CLAIMS[r["id"]].criterion
        assert CLAIMS[r["id"]].verdict(r["figures"]) == r["verdict"], r["id"]
        assert _is_verdict(r["verdict"])


def test_the_measured_factor_beats_the_articles_two_to_four() -> None:
    io = next(r for r in RECORDED if r["id"] == "io-throughput")
    assert io["figures"]["speedup_by_pool"]["8"] > 4  # a small pool: async is far more than 4x
    assert io["verdict"].startswith(v.ONLY)


def _figures(claim_id: str) -> dict:
    return json.loads(json.dumps(next(r["figures"] for r in RECORDED if r["id"] == claim_id)))


@pytest.mark.parametrize(
    ("claim_id", "change", "expected"),
    [
        ("io-throughput", {"speedup_by_pool": {"8": 3.0, "64": 2.5}}, "holds"),
        ("io-throughput", {"speedup_by_pool": {"8": 20.0, "200": 1.0}}, "does not hold:"),
        ("not-faster", {"p50_ms": {"threaded": 10.5, "asyncio": 14.0, "gevent": 10.4}}, "does not hold:"),
        ("cpu-bound", {"rps": {"threaded": 100.0, "asyncio": 180.0, "gevent": 100.0}}, "does not hold:"),
        ("cpu-bound", {"loop_lag_p99_ms": {"asyncio": 1.0, "gevent": 1.0}}, "holds only when"),
        ("threads-needed", {"share_of_bound_by_pool": {"10": 0.1, "50": 0.95, "100": 1.0}}, "does not hold:"),
        ("blocking-call", {"blocking_rps": 900.0}, "does not hold:"),
        ("greenlets", {"gevent_blocking_rps": 1500.0}, "holds only when"),
        ("high-load-only", {"ratio_by_clients": {"4": 2.0, "16": 1.0, "64": 3.0}}, "does not hold:"),
        ("high-load-only", {"ratio_by_clients": {"4": 1.0, "16": 1.0, "64": 1.2}}, "holds only when"),
        ("offload", {"offload_rps_by_clients": {"100": 1700.0, "200": 1800.0}}, "does not hold:"),
        ("offload", {"offload_rps_by_clients": {"100": 500.0, "200": 790.0}}, "does not hold:"),
        ("offload", {"offload_rps_by_clients": {"100": 300.0, "200": 310.0}}, "does not hold:"),
        ("offload", {"native_rps": 800.0}, "holds only when"),
        ("memory", {"rss_kb_per_conn": {"threaded": 6.0, "asyncio": 6.0, "gevent": 10.0}}, "does not hold:"),
    ],
)
def test_verdicts_follow_the_figures_whatever_the_claim_says(claim_id: str, change: dict, expected: str) -> None:
    figures = {**_figures(claim_id), **change}
    verdict = CLAIMS[claim_id].verdict(figures)
    assert verdict.startswith(expected) and _is_verdict(verdict), verdict


def test_thousands_holds_when_latency_and_memory_both_do() -> None:
    f = _figures("thousands")
    f["busy"]["p50_ms"] = 12.0
    f["rss_kb_per_conn"] = {"threaded": 30.0, "asyncio": 5.0}
    assert CLAIMS["thousands"].verdict(f) == "holds"
    f["busy"]["failed"] = 3
    assert CLAIMS["thousands"].verdict(f).startswith("does not hold:")


def test_the_table_shows_claim_figures_and_verdict() -> None:
    from rich.console import Console

    console = Console(width=160, record=True, file=open("/dev/null", "w"))  # noqa: SIM115
    console.print(table(RECORDED, quick=True))
    text = console.export_text()
    for r in RECORDED:
        assert r["id"] in text
    assert "threaded_rps_by_pool: 8=1" in format_figures(_figures("io-throughput"))  # ~160 req/s


@pytest.mark.timing
def test_a_quick_run_of_two_claims_prints_one_json_object_with_verdicts_from_figures() -> None:
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "syncviz.tui.cli",
            "claims",
            "--quick",
            "--json",
            "--id",
            "blocking-call",
            "--id",
            "not-faster",
        ],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 0, proc.stderr
    doc = json.loads(proc.stdout)
    assert list(doc) == ["claims"]
    assert [r["id"] for r in doc["claims"]] == ["not-faster", "blocking-call"]
    for r in doc["claims"]:
        assert set(r) == KEYS
        assert CLAIMS[r["id"]].verdict(r["figures"]) == r["verdict"]
    blocking = doc["claims"][1]["figures"]
    assert blocking["blocking_rps"] <= 1.5 * blocking["one_at_a_time_rps"] < blocking["native_rps"]


# -- issue 8: streaming and slow clients, on fixed figures -----------------------------------
STREAMING = {  # syncviz claims --quick --json --id streaming, 2026-12-01, 2-core machine
    "clients": 32,
    "pool": 8,
    "stream_ms": 500.0,
    "rps": {"threaded": 16.0, "asyncio": 64.0, "gevent": 64.0},
    "concurrent_streams": {"threaded": 8.1, "asyncio": 32.9, "gevent": 32.8},
    "first_byte_ms": {"threaded": 1511.4, "asyncio": 0.4, "gevent": 0.5},
    "p50_ms": {"threaded": 2016.24, "asyncio": 511.13, "gevent": 513.56},
}
SLOW = {  # syncviz claims --quick --json --id slow-clients, same run
    "slow_clients": 16,
    "pool": 8,
    "rps_without": {"threaded": 159.3, "asyncio": 1773.3, "gevent": 1792.3},
    "rps_with": {"threaded": 32.9, "asyncio": 1654.5, "gevent": 1708.4},
    "kept": {"threaded": 0.21, "asyncio": 0.93, "gevent": 0.95},
    "bound_rps_without": {"threaded": 160.0, "asyncio": 2000.0, "gevent": 2000.0},
    "p50_ms_with": {"threaded": 2270.85, "asyncio": 57.17, "gevent": 56.7},
}


@pytest.mark.parametrize(
    ("change", "expected"),
    [
        ({}, "holds"),
        (
            {"concurrent_streams": {"threaded": 14.0, "asyncio": 32.0, "gevent": 32.0}},
            "does not hold: threaded served 14.0 streams at once with 8 threads",
        ),
        (
            {"concurrent_streams": {"threaded": 8.0, "asyncio": 32.0, "gevent": 20.0}},
            "does not hold: gevent served only 20.0 of the 32 streams at once",
        ),
        (
            {"clients": 8, "concurrent_streams": {"threaded": 8.0, "asyncio": 8.0, "gevent": 8.0}},
            "holds only when there are more streams than threads",
        ),
    ],
)
def test_streaming_verdict(change: dict, expected: str) -> None:
    verdict = CLAIMS["streaming"].verdict({**STREAMING, **change})
    assert verdict.startswith(expected) and _is_verdict(verdict), verdict


@pytest.mark.parametrize(
    ("with_", "expected"),
    [
        ({}, "holds"),
        ({"threaded": 150.0}, "does not hold: threaded kept 94% of its bound with 16 slow clients"),
        ({"threaded": 110.0}, "holds only when the slow clients outnumber the pool by more"),
        ({"asyncio": 1300.0}, "does not hold: asyncio's req/s changed by -27% with 16 slow clients"),
        ({"gevent": 2200.0}, "does not hold: gevent's req/s changed by +23%"),
    ],
)
def test_slow_clients_verdict(with_: dict, expected: str) -> None:
    figures = {**SLOW, "rps_with": {**SLOW["rps_with"], **with_}}
    verdict = CLAIMS["slow-clients"].verdict(figures)
    assert verdict.startswith(expected) and _is_verdict(verdict), verdict


def test_the_scenes_of_issue_8_are_registered() -> None:
    assert CLAIMS["slow-clients"].scene.scenario == "slow-clients"
    assert SCENARIOS["slow-clients"].settings.slow_clients == CLAIMS["slow-clients"].run.__globals__["SLOW_CLIENTS"]
    assert list(SCENARIOS).index("slow-clients") == 7  # key 8
    assert [c.id for c in claims_for("slow-clients")] == ["slow-clients"]
    assert [c.id for c in claims_for("streaming")] == ["streaming"]
    scene = scene_settings(CLAIMS["streaming"])
    assert (scene.clients, scene.pool, scene.io_ms, scene.chunks) == (32, 8, 500.0, 10)
    for figures in (STREAMING, SLOW):
        assert format_figures(figures)


# -- live and experiment: the same figures, the same verdict ---------------------------------
THREE = ("threaded", "asyncio", "gevent")


def _counters(**by_engine: dict[str, Any]) -> dict[str, Counters]:
    out = {}
    for e in dict.fromkeys([*THREE, *by_engine]):
        fields = {"samples": 200, "rps": 100.0, "p50_ms": 50.0, "p99_ms": 60.0, "completed": 500, "lag_p99_ms": 1.0}
        fields.update(by_engine.get(e, {}))
        out[e] = Counters(e, **fields)
    return out


def _streams(f: dict) -> dict[str, Counters]:
    """Counters whose req/s and phases give the recorded streams at once and time to first byte."""
    return _counters(
        **{
            e: {
                "rps": f["rps"][e],
                "phase_ms": {
                    "queued": f["first_byte_ms"][e],
                    "running": f["concurrent_streams"][e] * 1000 / f["rps"][e],
                },
            }
            for e in THREE
        }
    )


SCENE_COUNTERS = {  # the counters a scene would show if it measured the experiment's figures at its point
    "io-throughput": lambda f: _counters(
        threaded={"rps": f["threaded_rps_by_pool"]["8"]},
        asyncio={"rps": f["asyncio_rps"]},
        gevent={"rps": f["gevent_rps"]},
    ),
    "not-faster": lambda f: _counters(
        **{e: {"p50_ms": f["p50_ms"][e], "p99_ms": f["p99_ms"][e], "rps": f["rps"][e]} for e in THREE}
    ),
    "cpu-bound": lambda f: _counters(
        **{e: {"rps": f["rps"][e], "lag_p99_ms": f["loop_lag_p99_ms"].get(e)} for e in THREE}
    ),
    "threads-needed": lambda f: _counters(
        threaded={"rps": f["threaded_rps_by_pool"]["10"]}, asyncio={"rps": f["asyncio_rps"]}
    ),
    "thousands": lambda f: _counters(
        asyncio={k: f["busy"][k] for k in ("rps", "p50_ms", "p99_ms", "completed", "failed")}
    ),
    "blocking-call": lambda f: _counters(
        asyncio={"rps": f["blocking_rps"], "lag_p99_ms": f["loop_lag_p99_ms"], "p50_ms": f["blocking_p50_ms"]}
    ),
    "greenlets": lambda f: _counters(gevent={"rps": f["gevent_blocking_rps"], "lag_p99_ms": f["hub_lag_p99_ms"]}),
    "high-load-only": lambda f: _counters(
        threaded={"rps": f["threaded_rps_by_clients"]["64"]}, asyncio={"rps": f["asyncio_rps_by_clients"]["64"]}
    ),
    "offload": lambda f: _counters(asyncio={"rps": f["offload_rps_by_clients"]["100"]}),
    "memory": lambda f: _counters(**{e: {"in_flight": f["held_mid_request"][e]} for e in THREE}),
    "streaming": _streams,
    "slow-clients": lambda f: _counters(**{e: {"rps": f["rps_with"][e]} for e in THREE}),
    "processes": lambda f: _counters(**{e: {"rps": f["rps"][e]} for e in ("threaded", "asyncio", "prefork")}),
    "uvloop": lambda f: _counters(
        **{e: {"rps": f["rps_at_1000"][e], "p50_ms": f["p50_ms_at_1000"][e]} for e in ("asyncio", "uvloop")}
    ),
}


def _cut(whole: Any, shape: Any) -> Any:
    """The part of the experiment's figures shaped like the live ones (a KeyError if a live key is not
    the experiment's: both judges read the same keys)."""
    if isinstance(shape, dict):
        return {k: _cut(whole[k], v) for k, v in shape.items()}
    return whole


def _scene_info(claim_id: str) -> dict[str, Any]:
    claim = CLAIMS[claim_id]
    return {"scenario": claim.scene.scenario, "settings": scene_settings(claim).as_dict()}


@pytest.mark.parametrize("claim_id", RECORDED_IDS)
def test_live_and_experiment_verdicts_agree_on_the_same_figures(claim_id: str) -> None:
    """The recorded experiment's figures, fed to the live judge as its scene's counters, come back in
    the experiment's own keys and get the verdict the experiment's function gives that part; and a
    part never contradicts the whole (a failing part leaves the claim failing or holding only under
    conditions, a holding claim holds in part)."""
    recorded = next(r for r in RECORDED if r["id"] == claim_id)
    claim, figures = CLAIMS[claim_id], recorded["figures"]
    live = judge_live(claim, SCENE_COUNTERS[claim_id](figures), _scene_info(claim_id), elapsed_s=60.0)
    assert live is not None
    assert live.verdict == claim.verdict(live.figures)
    assert claim.verdict(_cut(figures, live.figures)) == live.verdict
    whole = tone(recorded["verdict"])
    if live.tone == "not":
        assert whole in ("not", "only"), (live.verdict, recorded["verdict"])
    if whole == "holds":
        assert live.tone in ("holds", "none"), (live.verdict, recorded["verdict"])


def test_offload_has_one_cap_for_both_judges() -> None:
    """0.6x the cap: the experiment and the live scene both call it capped (they once disagreed)."""
    cut = {"limit": 40, "cap_rps": 800.0, "offload_rps_by_clients": {"100": 480.0}}
    assert CLAIMS["offload"].verdict(cut).startswith("holds for the cap")
    whole = {**cut, "offload_rps_by_clients": {"100": 480.0, "200": 490.0}, "native_rps": 1800.0}
    assert CLAIMS["offload"].verdict(whole) == "holds"
    live = judge_live("offload", _counters(asyncio={"rps": 480.0}), _scene_info("offload"), elapsed_s=60.0)
    assert live is not None and live.verdict.startswith("holds for the cap")
    assert v.CAPPED == 1.2


# -- issue 12: processes and uvloop, on made-up figures (the measured ones are in the recorded run) ----
PROCESSES = {
    "workers": 2,
    "cores": 2,
    "cpu_ms": 5.0,
    "rps": {"threaded": 190.0, "asyncio": 195.0, "prefork": 380.0},
    "core_share": {"threaded": 0.95, "asyncio": 0.98, "prefork": 1.9},
}
UVLOOP = {
    "p50_ms_at_1": {"asyncio": 0.2, "uvloop": 0.15},
    "rps_at_1000": {"asyncio": 9000.0, "uvloop": 14000.0},
}


@pytest.mark.parametrize(
    ("change", "expected"),
    [
        ({}, "holds"),
        ({"core_share": {"threaded": 0.95, "asyncio": 0.98, "prefork": 1.2}}, "does not hold: 2 worker processes"),
        ({"core_share": {"threaded": 1.6, "asyncio": 0.98, "prefork": 1.9}}, "does not hold: threaded did 1.60"),
        ({"cores": 1}, "holds only when there are cores for the workers"),
    ],
)
def test_processes_verdict(change: dict, expected: str) -> None:
    verdict = CLAIMS["processes"].verdict({**PROCESSES, **change})
    assert verdict.startswith(expected) and _is_verdict(verdict), verdict


@pytest.mark.parametrize(
    ("change", "expected"),
    [
        ({}, "holds"),
        ({"rps_at_1000": {"asyncio": 9000.0, "uvloop": 9500.0}}, "does not hold: at 1,000 clients"),
        ({"p50_ms_at_1": {"asyncio": 2.0, "uvloop": 1.0}}, "does not hold: at 1 client"),
    ],
)
def test_uvloop_verdict(change: dict, expected: str) -> None:
    verdict = CLAIMS["uvloop"].verdict({**UVLOOP, **change})
    assert verdict.startswith(expected) and _is_verdict(verdict), verdict


def test_the_new_models_scenes_judge_their_part_or_say_which_engine_is_missing() -> None:
    shown = _counters(prefork={"rps": 200.0}, threaded={"rps": 190.0}, asyncio={"rps": 195.0})
    live = judge_live("processes", shown, _scene_info("processes"), elapsed_s=60.0)
    assert live is not None and live.verdict.startswith("holds for threads and coroutines")
    assert "syncviz claims --id processes" in live.scope
    fast = _counters(uvloop={"rps": 14000.0}, asyncio={"rps": 9000.0})
    assert judge_live("uvloop", fast, _scene_info("uvloop"), elapsed_s=60.0).verdict == "holds for the ceiling"
    missing = judge_live("uvloop", _counters(), _scene_info("uvloop"), elapsed_s=60.0)  # the app's three
    assert missing is not None and missing.verdict.startswith("no live verdict: this scene needs uvloop")
