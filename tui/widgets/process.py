"""The process line of a panel: which OS process serves this engine, its CPU and memory, its health.

``pid 4242 · ⅓ of cpu 1 · cpu 33% · rss 24 MB`` while live, so ``top`` or ``py-spy`` can be
pointed at it and a viewer sees when an engine's CPU share is full; a bold red or amber
line when the process has exited or stalled, saying how to bring it back.
"""

from __future__ import annotations

from rich.text import Text
from syncviz.engines.source import EngineStatus
from textual.widgets import Static

KEY = "#8b93a7"
VALUE = "bold #e8ebf2"
FULL = "bold #e69f00"  # its CPU share is used up
DEAD = "bold #ff4d4d"
FULL_AT = 0.9  # of its share: the engine is CPU-bound here


def down_text(status: EngineStatus | None, restart_key: str) -> str:
    """One line when the engine is not live (empty when it is): what happened, what to press."""
    if status is None or status.state in ("live", "starting", "replay"):
        return ""
    if status.state == "exited":
        return f"process {status.detail or 'exited'} · press {restart_key} to restart it"
    return f"stalled: {status.detail} · press {restart_key} to restart it"


def process_text(status: EngineStatus | None, restart_key: str) -> Text:
    t = Text(no_wrap=True, overflow="ellipsis")
    if status is None:
        return t
    down = down_text(status, restart_key)
    if down:
        t.append(("✖ " if status.state == "exited" else "▲ ") + down, DEAD if status.state == "exited" else FULL)
        return t
    proc = status.process
    if status.state == "replay":
        t.append("recorded", KEY)
        if proc is not None:
            t.append(f" · pid {proc.pid} (then)", KEY)
        if status.placement:
            t.append(f" · {status.placement}", KEY)
        return t
    if proc is not None:
        t.append("pid ", KEY)
        t.append(str(proc.pid), VALUE)
        t.append(" · ", KEY)
    t.append(status.placement or "", VALUE)
    if status.shared_gil:
        t.append(" (in-process)", FULL)
    if proc is not None and proc.cpu_percent is not None and not status.shared_gil:
        full = proc.cpu_percent >= FULL_AT * 100 * min(1.0, status.cpu_share)
        t.append(" · cpu ", KEY)
        t.append(f"{proc.cpu_percent:.0f}%", FULL if full else VALUE)
        if full:
            t.append(" (share full)", FULL)
    if proc is not None and proc.rss_mb is not None:
        t.append(" · rss ", KEY)
        t.append(f"{proc.rss_mb:.0f} MB", VALUE)
    return t


class ProcessLine(Static):
    """Re-renders only when its text changes."""

    def __init__(self, *, classes: str | None = None) -> None:
        super().__init__("", classes=classes)
        self._last: str | None = None

    def show(self, status: EngineStatus | None, restart_key: str) -> None:
        text = process_text(status, restart_key)
        if text.markup != self._last:
            self._last = text.markup
            self.update(text, layout=False)  # always one line: no layout pass
