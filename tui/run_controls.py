"""What the user changes about the run: the scenario (keys 1…N), the knobs (c/C, w/W, …),
slow-mo (m) and, from the command palette, which engines run; and the zoom each scenario starts at.

:class:`RunControls` is a mixin of :class:`~syncviz.tui.app.SyncvizApp`: each change goes to the
source, and the status bar shows it at once (the stream's next status confirms it).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from syncviz.engines.registry import EngineError
from syncviz.engines.scenarios import SCENARIOS
from syncviz.engines.source import EventSource
from syncviz.tui.board import DEFAULT_ZOOM_MS, Board
from syncviz.tui.knobs import KNOBS, next_slow
from textual.binding import Binding

KNOB_KEYS = {"c": "clients", "w": "pool", "i": "io_ms", "u": "cpu_ms", "r": "rate", "l": "slow_clients", "p": "workers"}


def _knob_bindings() -> list[Binding]:
    out = []
    for key, name in KNOB_KEYS.items():
        group = Binding.Group(KNOBS[name].label, compact=True)
        out.append(Binding(key, f"knob('{name}', -1)", f"{KNOBS[name].label}-", group=group))
        out.append(Binding(key.upper(), f"knob('{name}', 1)", f"{KNOBS[name].label}+", group=group))
    return out


SCENARIO_ZOOM_MS = {"blocking-call": 50, "streaming": 20, "burst": 20, "cpu-bound": 5}
"""Where the default 10 ms per column would hide the story (a 3 s queue, a 200 ms stream)."""


def scenario_zoom(name: str) -> float:
    return SCENARIO_ZOOM_MS.get(name, DEFAULT_ZOOM_MS)


RUN_BINDINGS = [
    Binding("1", "scenario(0)", "scenario · restart", key_display=f"1…{len(SCENARIOS)}"),
    *(Binding(str(i + 1), f"scenario({i})", name, show=False) for i, name in enumerate(SCENARIOS) if i),
    *_knob_bindings(),
    Binding("m", "slow", "slow-mo"),
]
"""The scenario, knob and slow-mo keys, in the footer's order (the first of the app's ``BINDINGS``)."""


class RunControls:
    """The scenario, knob, slow-mo and engine-swap actions of :class:`~syncviz.tui.app.SyncvizApp`."""

    # what the app holds and does (tui/app.py)
    board: Board
    source: EventSource
    notify: Callable[..., None]
    check_source: Callable[[], None]
    _show_status: Callable[[], None]

    def switch_scenario(self, name: str) -> None:
        self.source.set_scenario(name)
        self.board.set_zoom(scenario_zoom(name))
        self.notify(f"restarting the engines on {name}…", timeout=2)
        self.check_source()

    def action_scenario(self, index: int) -> None:
        self.switch_scenario(list(SCENARIOS)[index])

    def action_knob(self, name: str, direction: int) -> None:
        knob = KNOBS[name]
        current = getattr(self.board.settings, name)
        value = knob.step(current, direction)
        if value == current:
            self.notify(f"{knob.label} stays at {knob.show(current)}", timeout=1.5)
            return
        self.source.apply(**{name: value})
        self._optimistic(**{name: value})

    def action_slow(self) -> None:
        old = self.board.settings.slow
        new = next_slow(old)
        self.source.apply(slow=new)
        self._optimistic(slow=new)
        self.board.set_zoom(self.board.zoom_ms * new / old)
        self._show_status()

    def _optimistic(self, **changes: Any) -> None:
        """Show the new setting at once; the stream's next status confirms it."""
        settings = dict(self.board.info.get("settings") or self.board.settings.as_dict())
        settings.update(changes)
        self.board.info["settings"] = settings
        self._show_status()

    def swap_engine(self, old: str, new: str) -> None:
        """Run ``new`` in ``old``'s place (the command palette's swap)."""
        names = [new if name == old else name for name in self.board.engines]
        try:
            self.source.set_engines(names)
        except EngineError as exc:
            self.notify(str(exc), severity="error", timeout=6)
            return
        self.notify(f"starting {new} in place of {old}…", timeout=2)
