"""The handler's instant answer is its plan's one write, exactly, and only when the plan is one write.

:func:`~syncviz.engines.handler.instant_answer` (the engines' zero-latency fast path) keeps its
answers per settings; it must give the bytes :func:`~syncviz.engines.handler.handler_plan` would
send, nothing for a plan that waits or computes, nothing for routes, /boom or other methods, and
keep nothing for paths a client makes up.
"""

from __future__ import annotations

import pytest
from syncviz.engines import handler
from syncviz.engines.handler import SEND, handler_plan, instant_answer
from syncviz.engines.request import Request
from syncviz.engines.settings import Settings


def _req(path: str = "/", method: str = "GET", keep_alive: bool = True) -> Request:
    return Request(method, path, "HTTP/1.1", keep_alive, None)


@pytest.mark.parametrize("method", ["GET", "HEAD", "POST"])
@pytest.mark.parametrize("path", ["/", "/work"])
@pytest.mark.parametrize("keep_alive", [True, False])
def test_zero_latency_answer_is_the_plan_s_one_write(path: str, method: str, keep_alive: bool) -> None:
    settings = Settings(io_ms=0, cpu_ms=0).validate()
    req = _req(path, method, keep_alive)
    plan = handler_plan(req, settings)
    assert [op for op, _ in plan] == [SEND]
    assert instant_answer(req, settings) == plan[0][1]
    assert instant_answer(req, settings) == plan[0][1]  # kept: the same again


@pytest.mark.parametrize(
    "settings",
    [Settings(io_ms=5, cpu_ms=0), Settings(io_ms=0, cpu_ms=1), Settings(io_ms=0, cpu_ms=0, chunks=3)],
    ids=["io", "cpu", "chunked"],
)
def test_a_plan_that_waits_computes_or_streams_has_no_instant_answer(settings: Settings) -> None:
    assert instant_answer(_req(), settings.validate()) is None


@pytest.mark.parametrize(("path", "method"), [("/boom", "GET"), ("/health", "GET"), ("/nope", "GET"), ("/", "DELETE")])
def test_routes_boom_and_other_methods_have_none_and_made_up_paths_are_not_kept(path: str, method: str) -> None:
    settings = Settings(io_ms=0, cpu_ms=0).validate()
    instant_answer(_req(), settings)  # the settings' answers begin
    for i in range(50):
        assert instant_answer(_req(f"{path}{'x' * (i % 2)}", method), settings) is None
    made_for, kept = handler._plans  # the answers are kept beside the plans, by (keep-alive, HEAD) alone
    assert made_for is settings
    assert set(kept) <= {(alive, head) for alive in (True, False) for head in (True, False)}


def test_new_settings_start_afresh() -> None:
    fast, slow = Settings(io_ms=0, cpu_ms=0).validate(), Settings(io_ms=10, cpu_ms=0).validate()
    assert instant_answer(_req(), fast) is not None
    assert instant_answer(_req(), slow) is None
    assert instant_answer(_req(), fast) is not None
