"""Live verdicts: each claim judged from what its scene in the app is measuring right now.

The presenter mode runs every claim's :class:`~.base.Scene` (its scenario with its knobs) and,
once enough data has come in, :func:`judge_live` hands the live per-engine
:class:`~syncviz.engines.stats.Counters` to the claim's live judge, whose figures the claim's
own verdict function judges (:meth:`~.base.Claim.judge_live`). Nothing is judged while the
stream is not running the claim's scene.

Pure functions, no Textual, no engine: the app and the tests feed them hand-made counters.
"""

from __future__ import annotations

from typing import Any

from ..scenarios import SCENARIOS
from ..settings import Settings
from ..stats import Counters
from .base import NO_LIVE, Claim, LiveVerdict, full

MIN_SAMPLES = 20  # latency samples per engine the verdict reads


def scene_knobs(claim: Claim) -> dict[str, Any]:
    """The knobs a scene always starts with (a talk goes the same way twice).

    Not ``slow``: the host keeps its own across a restart (and takes no override for it);
    a scene run in slow motion does not match :func:`scene_settings` and gets no verdict.
    """
    return dict(claim.scene.knobs)


def scene_settings(claim: Claim) -> Settings:
    return SCENARIOS[claim.scene.scenario].settings.with_changes(**scene_knobs(claim))


def scene_matches(claim: Claim, info: dict[str, Any]) -> bool:
    """True when the stream's status says the engines run exactly this claim's scene."""
    raw = info.get("settings")
    if info.get("scenario") != claim.scene.scenario or not raw:
        return False
    try:
        return Settings(**raw) == scene_settings(claim)
    except TypeError:
        return False


def _claim(claim: Claim | str) -> Claim:
    from . import lookup

    return lookup(claim) if isinstance(claim, str) else claim


def min_seconds(claim: Claim | str) -> float:
    return _claim(claim).scene.min_seconds


def enough_data(claim: Claim | str, counters: dict[str, Counters], elapsed_s: float) -> bool:
    """The scene has run long enough, every engine its judge reads has samples (and lag, if read)."""
    claim = _claim(claim)
    if elapsed_s < claim.scene.min_seconds or not all(e in counters for e in claim.scene.engines):
        return False
    if claim.scene.needs_samples and any(counters[e].samples < MIN_SAMPLES for e in claim.scene.engines):
        return False
    return all(counters[e].lag_p99_ms is not None for e in claim.scene.needs_lag)


def judge_live(
    claim: Claim | str,
    counters: dict[str, Counters],
    info: dict[str, Any],
    elapsed_s: float,
    down: dict[str, str] | None = None,
) -> LiveVerdict | None:
    """The live verdict on ``claim``, or ``None`` while the stream is not its scene or has too little data.

    ``counters`` are the engines' counters since the scene started, ``elapsed_s`` how long it
    has run (stream time), ``info`` the stream's status (scenario and settings). ``down``: the
    processes not live now (an engine's name or ``load`` -> why: "killed by SIGKILL", "no answer
    for 3.1 s"); while one the scene reads is down there is no verdict (its figures stopped
    with it: a dead engine read as "async/sync 0.0x").
    """
    claim = _claim(claim)
    gone = [f"the {name} process {why}" for name, why in (down or {}).items() if name in (*claim.scene.engines, "load")]
    if gone and scene_matches(claim, info):
        return LiveVerdict({}, f"{NO_LIVE}: {'; '.join(gone)}", "", f"the experiment: {full(claim.id)}")
    missing = [e for e in claim.scene.engines if e not in counters]
    if counters and missing and scene_matches(claim, info) and elapsed_s >= claim.scene.min_seconds:
        return LiveVerdict(
            {},
            f"{NO_LIVE}: this scene needs {' and '.join(missing)} beside {', '.join(counters)}",
            "",
            f"the experiment: {full(claim.id)}",
        )
    if not scene_matches(claim, info) or not enough_data(claim, counters, elapsed_s):
        return None
    shown = {e: counters[e] for e in claim.scene.engines}
    return claim.judge_live(shown, Settings(**info["settings"]))
