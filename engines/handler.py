"""The handler every engine runs, as data: its plan of steps and its answers (split from :mod:`.work`).

A request the handler serves becomes a plan, ``(CPU, s)``, ``(IO, s)``, ``(SEND, bytes)`` steps made
from the scenario's settings (:func:`handler_plan`), which each engine runs its own way (blocking,
awaiting or yielding: :mod:`.work` and the backends). Requests it does not serve get their answer
here too (:func:`early_response`: 404, 405, health), and a failed handler its 500
(:func:`error_response`). :func:`instant_answer` is the commonest request's whole answer at zero
latency, the engines' fast path.
"""

from __future__ import annotations

from .events import Phase
from .http import (
    BOOM_PATH,
    HANDLER_METHODS,
    HANDLER_PATHS,
    HEALTH_PATH,
    HandlerBoom,
    chunk,
    chunked_head,
    response,
    route,
)
from .request import Request
from .settings import Settings

CPU, IO, SEND = 0, 1, 2
HELLO = b"hello from syncviz\n"


Plan = tuple[tuple[int, float | bytes], ...]
_plans: tuple[Settings | None, dict[tuple[bool, bool], tuple[Plan, bytes | None]]] = (None, {})
"""The plans made for the latest settings, by (keep-alive, HEAD): a plan depends on nothing else; beside
each, its whole answer when it is one write that never waits (:func:`instant_answer`), else None."""


def handler_plan(req: Request, settings: Settings) -> Plan:
    """The handler as steps ``(CPU, s)``, ``(IO, s)``, ``(SEND, bytes)``.

    Every engine runs the same plan its own way (blocking, awaiting or yielding). ``/boom``
    raises here: the handler exception the servers must survive. Plans are kept for the
    latest settings (a frozen :class:`~syncviz.engines.settings.Settings`): made once, not per request.
    """
    if req.path == BOOM_PATH:
        raise HandlerBoom("boom")
    return _made(req, settings)[0]


def instant_answer(req: Request, settings: Settings) -> bytes | None:
    """The whole answer when the handler serves ``req`` in one write that never waits (its plan is one
    ``SEND``: zero latency), else None (its own plan, a route's answer, or /boom's 500): the engines'
    fast path, kept beside the plan (the plan's shape checked on every request took ~0.3 us)."""
    if req.path not in HANDLER_PATHS or req.method not in HANDLER_METHODS:
        return None
    return _made(req, settings)[1]


def _made(req: Request, settings: Settings) -> tuple[Plan, bytes | None]:
    global _plans
    key = (req.keep_alive, req.method == "HEAD")
    made_for, plans = _plans
    if made_for is settings:
        made = plans.get(key)
        if made is not None:
            return made
    else:
        plans = {}
    plan = _make_plan(req, settings)
    made = plans[key] = (plan, plan[0][1] if len(plan) == 1 and plan[0][0] == SEND else None)  # type: ignore[assignment]
    _plans = (settings, plans)  # one assignment: a thread never sees a half-made pair
    return made


def _make_plan(req: Request, settings: Settings) -> Plan:
    plan: list[tuple[int, float | bytes]] = []
    if settings.cpu_s > 0:
        plan.append((CPU, settings.cpu_s))
    if settings.chunks <= 1:
        if settings.io_s > 0:
            plan.append((IO, settings.io_s))
        plan.append((SEND, head_only(req, response(200, HELLO, req.keep_alive))))
        return tuple(plan)
    plan.append((SEND, chunked_head(req.keep_alive)))
    for i in range(settings.chunks):
        plan.append((IO, settings.io_s / settings.chunks))
        if req.method != "HEAD":  # a HEAD response is the head alone (curl -I on keep-alive)
            plan.append((SEND, chunk(b"chunk %d\n" % i)))
    if req.method != "HEAD":
        plan.append((SEND, chunk(b"")))
    return tuple(plan)


def early_response(req: Request) -> tuple[bytes, int] | None:
    """The answer and final phase for a request that never reaches the handler (404, 405, health)."""
    if req.path in HANDLER_PATHS and req.method in HANDLER_METHODS:
        return None  # the handler's own request, the common case: no need to route further
    status = route(req)
    if status == 200 and req.path != HEALTH_PATH:
        return None
    if status == 200:
        return head_only(req, response(200, b"ok\n", req.keep_alive)), Phase.DONE
    return head_only(req, response(status, b"no such path\n", req.keep_alive)), Phase.FAILED


def head_only(req: Request, data: bytes) -> bytes:
    """``data`` for any method; for HEAD its head alone (the same Content-Length, no body)."""
    if req.method != "HEAD":
        return data
    return data[: data.index(b"\r\n\r\n") + 4]


def error_response(req: Request, settings: Settings) -> bytes:
    """The 500 for a failed handler; mid-stream there is no way to say it but to hang up."""
    if settings.chunks > 1:
        raise ConnectionAbortedError("handler failed mid-stream")
    return head_only(req, INTERNAL_ERROR if req.keep_alive else response(500, b"handler failed\n", False))


INTERNAL_ERROR = response(500, b"handler failed\n", True)
