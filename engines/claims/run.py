"""``run_claims``: run the chosen claims' experiments and judge each from its figures.

Every run the claims need is measured first (:meth:`~.plan.Plan.measure_ahead`: one start of
the engine processes per engine, mode and placement, the points of a sweep applied live); each
claim's ``elapsed_s`` is then the measuring time of the runs it was the first to use.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from ..events import DEFAULT_ENGINES
from .plan import Plan


def run_claims(
    ids: list[str] | None = None,
    quick: bool = False,
    progress: Callable[[str], None] | None = None,  # hears what is being measured
    engines: tuple[str, ...] | list[str] = (),
    cpus: tuple[int, ...] | list[int] | None = None,
) -> list[dict[str, Any]]:
    """Run the claims named (all by default); one JSON-shaped dict per claim, catalogue order.
    ``engines``: the per-engine experiments compare these too (besides the three the verdicts read);
    ``cpus``: the machine's CPUs (before the CLI pinned itself), for the claims that need several."""
    from . import get_claims

    claims = get_claims(ids)  # unknown ids fail before anything runs
    plan = Plan(quick=quick, engines=tuple(engines) or DEFAULT_ENGINES)
    if cpus:
        plan.cpus = tuple(cpus)
    plan.measure_ahead(claims, progress)
    out = []
    for claim in claims:
        figures, settings = claim.run(plan)
        settings["experiment"] = claim.experiment
        settings["elapsed_s"] = round(plan.bill(), 1)
        out.append(
            {
                "id": claim.id,
                "claim": claim.claim,
                "criterion": claim.criterion,
                "verdict": claim.verdict(figures),
                "figures": figures,
                "settings": settings,
            }
        )
    return out
