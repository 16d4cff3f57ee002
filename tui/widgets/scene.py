"""Presenter mode's slide header: the claim in large type, what to watch, and its live verdict."""

from __future__ import annotations

from rich.text import Text
from syncviz.engines.claims import Claim, LiveVerdict
from textual.app import ComposeResult
from textual.containers import Vertical
from textual.widgets import Static

MUTED = "#8b93a7"
TONES = {  # verdict tone -> (glyph, colour); the Okabe-Ito colours the phases use
    "holds": ("✔", "#009e73"),
    "not": ("✘", "#d55e00"),
    "only": ("◐", "#e69f00"),
    "none": ("·", MUTED),
}


def claim_text(claim: Claim) -> Text:
    return Text(f"“{claim.claim}”", style="bold")


def watch_text(watch: str) -> Text:
    t = Text()
    if watch:
        t.append("watch ▸ ", "bold #56b4e9")
        t.append(watch)
    return t


def waiting_text(elapsed_s: float, needed_s: float, running: bool) -> Text:
    if not running:
        return Text("verdict: waiting for the engines to run this scene…", MUTED)
    return Text(f"verdict: measuring… {min(elapsed_s, needed_s):.1f} of {needed_s:g} s", MUTED)


def verdict_text(live: LiveVerdict, window: str) -> Text:
    glyph, colour = TONES[live.tone]
    t = Text()
    t.append(f" {glyph} {live.verdict} ", f"bold #1b1e28 on {colour}")
    t.append(f"  live, {window}: ", MUTED)
    t.append(live.measured)
    return t


class SceneView(Vertical):
    """The claim, what to watch in the picture below, and the verdict once measured."""

    def compose(self) -> ComposeResult:
        yield Static("", id="scene-claim")
        yield Static("", id="scene-watch")
        yield Static("", id="scene-wait")
        yield Static("", id="scene-verdict")
        yield Static("", id="scene-scope")

    def set_scene(self, claim: Claim, index: int, total: int, watch: str) -> None:
        self.border_title = f"[b]scene {index + 1}/{total}[/b] · {claim.id} · {claim.scene.scenario}"
        self.border_subtitle = "← p previous · next n →"
        self.query_one("#scene-claim", Static).update(claim_text(claim))
        self.query_one("#scene-watch", Static).update(watch_text(watch))
        self.show(None, 0.0, 1.0, running=False)

    def show(
        self, live: LiveVerdict | None, elapsed_s: float, needed_s: float, running: bool, window: str = ""
    ) -> None:
        """The verdict when there is one; until then how much data is in."""
        wait = self.query_one("#scene-wait", Static)
        verdict = self.query_one("#scene-verdict", Static)
        scope = self.query_one("#scene-scope", Static)
        wait.display = live is None
        verdict.display = scope.display = live is not None
        if live is None:
            wait.update(waiting_text(elapsed_s, needed_s, running))
            return
        verdict.update(verdict_text(live, window))
        scope.update(Text(f"not in this scene: {live.scope}", MUTED) if live.scope else "")
        scope.display = bool(live.scope)
