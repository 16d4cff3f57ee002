"""``run_claims``: run the chosen claims' experiments and judge each from its figures."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

from ..events import DEFAULT_ENGINES
from .plan import Plan


def run_claims(
    ids: list[str] | None = None,
    quick: bool = False,
    progress: Callable[[str], None] | None = None,
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
    out = []
    for claim in claims:
        if progress is not None:
            progress(claim.id)
        t0 = time.monotonic()
        figures, settings = claim.run(plan)
        settings["experiment"] = claim.experiment
        settings["elapsed_s"] = round(time.monotonic() - t0, 1)
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
