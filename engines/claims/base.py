"""What a claim is: its words, its experiment, its live judge, its scene, and the one verdict both use.

A :class:`Claim` carries the sentence as articles put it, the experiment in words and as a
function (``plan -> (figures, settings)``), the criterion, the live judge (``counters,
settings -> (figures, measured, scope)``) and its :class:`Scene` for presenter mode. Both
judges end in the same :attr:`Claim.verdict`, a pure function of JSON-shaped figures: the
experiment hands it everything it measured, the live judge the part its scene measures, in
the experiment's keys (one pool of a sweep, one half of a comparison). A verdict function
given a part judges that part and says so (``holds at pool 8``), so a threshold exists once,
here or in the claim's module, and the live and experiment verdicts cannot drift apart.

Figure dicts are JSON-shaped: sweeps are dicts keyed by the swept value as a string
(``{"8": 160.0, "64": 1230.5}``). Nothing here imports an engine.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from ..settings import Settings
    from ..stats import Counters
    from .plan import Plan

Figures = dict[str, Any]
Result = tuple[Figures, dict[str, Any]]  # an experiment's (figures, settings)
LiveFigures = tuple[Figures, str, str]  # a live judge's (figures, measured in words, what the scene leaves out)

HOLDS = "holds"
NOT = "does not hold"
ONLY = "holds only when"
NO_LIVE = "no live verdict"

# Thresholds more than one claim reads; a claim's own live in its module.
NO_GAIN = 1.10  # "no difference" / "no gain" is a ratio within 10%
LEAD = 1.5  # "outperforms" is a lead of at least 1.5x
REACHES = 0.85  # a throughput "reaches" a bound at 85% of it
CAPPED = 1.20  # a throughput is "capped" at a bound when it stays under 1.2x of it


@dataclass(frozen=True)
class Scene:
    """A claim's live scene in presenter mode: the same scenario and knobs every time."""

    scenario: str
    knobs: dict[str, Any] = field(default_factory=dict)  # overrides of the scenario's settings (never ``slow``)
    watch: str = ""  # what to look at in the picture, one or two sentences
    zoom_ms: int | None = None  # ms per column where the scenario's zoom would not show a whole request
    min_seconds: float = 3.0  # of the scene's own data before any verdict
    needs_lag: tuple[str, ...] = ()  # engines whose loop-lag p99 the verdict reads
    needs_samples: bool = True  # whether the verdict reads latency (enough samples per engine first)
    engines: tuple[str, ...] = ("threaded", "asyncio", "gevent")  # the engines its judge reads
    in_help: bool = True  # whether ``?`` lists the claim under its scenario (its default knobs show it)


@dataclass(frozen=True)
class LiveVerdict:
    """A claim judged from what its scene is measuring right now."""

    figures: Figures  # the experiment's keys, as measured live (rounded)
    verdict: str  # holds / does not hold: ... / holds only when ... / holds at ... (a part) / no live verdict: ...
    measured: str  # the figures in words, for the screen
    scope: str = ""  # what the scene does not show, and the command that measures it

    @property
    def tone(self) -> str:
        """``holds``, ``not``, ``only`` or ``none``, for colouring."""
        return tone(self.verdict)


def tone(verdict: str) -> str:
    """A verdict's kind: ``holds``, ``not``, ``only`` or ``none`` (no verdict)."""
    if verdict.startswith(NOT):
        return "not"
    if verdict.startswith(ONLY):
        return "only"
    if verdict.startswith(HOLDS):
        return "holds"
    return "none"


@dataclass(frozen=True)
class Claim:
    """One claim: its words, both judges and its scene; :meth:`judge_live` ends in :attr:`verdict`."""

    id: str
    claim: str  # the sentence, as articles put it
    experiment: str  # what runs, in words (scaled-down numbers said here)
    criterion: str  # when the verdict is "holds", in words
    verdict: Callable[[Figures], str]  # figures (all or a part) -> holds / does not hold: ... / holds only when ...
    run: Callable[[Plan], Result]  # the experiment: measure, return (figures, settings)
    live: Callable[[dict[str, Counters], Settings], LiveFigures]  # the scene's figures from live counters
    scene: Scene

    def judge(self, figures: Figures) -> str:
        return self.verdict(figures)

    def judge_live(self, counters: dict[str, Counters], settings: Settings) -> LiveVerdict:
        """The live figures, judged by the experiment's own verdict function."""
        figures, measured, scope = self.live(counters, settings)
        return LiveVerdict(figures, self.verdict(figures), measured, scope)


# -- words shared by the verdicts and the live judges ----------------------------------------
def x(value: float) -> str:
    return f"{value:.1f}x" if value < 10 else f"{value:.0f}x"


def ms(value: float) -> str:
    return f"{value:,.0f} ms" if value >= 10 else f"{value:.1f} ms"


def rps(value: float) -> str:
    return f"{value:,.0f} req/s"


def r2(value: float | None) -> float | None:
    return None if value is None else round(value, 2)


def part(verdict: str, where: str) -> str:
    """A plain ``holds`` from part of a claim says which part it is."""
    return f"{HOLDS} {where}" if verdict == HOLDS else verdict


def full(claim_id: str) -> str:
    """The command that runs a claim's whole experiment."""
    return f"syncviz claims --id {claim_id}"


def sweep(figures: Figures, key: str) -> dict[int, float]:
    """A sweep's points keyed by the swept value as an int."""
    return {int(k): val for k, val in figures[key].items()}
