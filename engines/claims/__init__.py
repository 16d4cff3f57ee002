"""The claims about sync and async Python servers, each an experiment, a live scene and one verdict.

The registry: :data:`CLAIM_LIST` (catalogue order), :data:`CLAIMS` (by id), :func:`lookup`,
:func:`get_claims` and :func:`claims_for` (the claims a scenario shows, for ``?``). What a
claim is lives in :mod:`.base`; the claims themselves in one module per group
(:mod:`.throughput`, :mod:`.blocking`, :mod:`.connections`, :mod:`.streams`, :mod:`.models`);
running them in :mod:`.run` (``syncviz claims``), judging them live in :mod:`.live` (presenter mode).

An application layer on the engines, kept under ``engines/`` because it is headless like them
(``syncviz claims`` runs without the app, and never imports textual or rich); the app reads it.
"""

from __future__ import annotations

from ..settings import SettingsError
from .base import HOLDS, NO_LIVE, NOT, ONLY, Claim, LiveVerdict, Scene, tone
from .blocking import BLOCKING_CALL, CPU_BOUND, GREENLETS, OFFLOAD
from .connections import MEMORY, THOUSANDS
from .models import PROCESSES, UVLOOP
from .run import run_claims
from .streams import SLOW_CLIENTS_CLAIM, STREAMING
from .throughput import HIGH_LOAD_ONLY, IO_THROUGHPUT, NOT_FASTER, THREADS_NEEDED

CLAIM_LIST: tuple[Claim, ...] = (
    IO_THROUGHPUT,
    NOT_FASTER,
    CPU_BOUND,
    THREADS_NEEDED,
    THOUSANDS,
    BLOCKING_CALL,
    GREENLETS,
    HIGH_LOAD_ONLY,
    OFFLOAD,
    MEMORY,
    STREAMING,
    SLOW_CLIENTS_CLAIM,
    PROCESSES,
    UVLOOP,
)
CLAIMS: dict[str, Claim] = {c.id: c for c in CLAIM_LIST}


def lookup(claim_id: str) -> Claim:
    """The claim called ``claim_id``, or a one-line SettingsError listing the known ones."""
    try:
        return CLAIMS[claim_id]
    except KeyError:
        raise SettingsError(f"unknown claim {claim_id!r} (known: {', '.join(CLAIMS)})") from None


def get_claims(ids: list[str] | tuple[str, ...] | None = None) -> list[Claim]:
    """The claims named (all when ``ids`` is empty), in catalogue order; unknown ids raise SettingsError."""
    if not ids:
        return list(CLAIM_LIST)
    for claim_id in ids:
        lookup(claim_id)
    return [c for c in CLAIM_LIST if c.id in ids]


def claims_for(scenario: str) -> list[Claim]:
    """The claims the scenario shows at its default knobs (the help screen lists them)."""
    return [c for c in CLAIM_LIST if c.scene.scenario == scenario and c.scene.in_help]


__all__ = [
    "CLAIMS",
    "CLAIM_LIST",
    "HOLDS",
    "NOT",
    "NO_LIVE",
    "ONLY",
    "Claim",
    "LiveVerdict",
    "Scene",
    "claims_for",
    "get_claims",
    "lookup",
    "run_claims",
    "tone",
]
