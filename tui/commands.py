"""Command palette entries: every scenario, a swap of any panel's engine, and the other actions by name."""

from __future__ import annotations

from functools import partial
from typing import TYPE_CHECKING

from syncviz.engines.events import ENGINES
from syncviz.engines.registry import engine_spec, missing
from syncviz.engines.scenarios import SCENARIOS
from textual.command import DiscoveryHit, Hit, Hits, Provider

if TYPE_CHECKING:
    from syncviz.tui.app import SyncvizApp


class ScenarioCommands(Provider):
    """``Scenario: blocking-call`` and friends."""

    def _commands(self) -> list[tuple[str, str, object]]:
        app: SyncvizApp = self.app  # type: ignore[assignment]
        out: list[tuple[str, str, object]] = []
        for name, sc in SCENARIOS.items():
            out.append((f"Scenario: {name}", sc.description, partial(app.switch_scenario, name)))
        shown = app.board.engines
        for old in shown:  # swap a panel's engine for a model not on screen (installed ones only)
            for new in (e for e in ENGINES if e not in shown and not missing(e)):
                out.append(
                    (f"Engine: {new} in place of {old}", engine_spec(new).model, partial(app.swap_engine, old, new))
                )
        out.append(("Slow motion", "cycle x1, x10, x40", app.action_slow))
        out.append(("Pause / resume", "freeze the picture", app.action_pause))
        out.append(("Screenshot", "save an SVG", app.action_shot))
        out.append(("Help", "phases, scenario, keys", app.action_help))
        return out

    async def discover(self) -> Hits:
        for title, help_, callback in self._commands():
            yield DiscoveryHit(title, callback, help=help_)  # type: ignore[arg-type]

    async def search(self, query: str) -> Hits:
        matcher = self.matcher(query)
        for title, help_, callback in self._commands():
            score = matcher.match(title)
            if score > 0:
                yield Hit(score, matcher.highlight(title), callback, help=help_)  # type: ignore[arg-type]
