"""The detail panel: a selected request (its phases, workers, latency, bytes) or worker lane.

The content comes from :mod:`syncviz.tui.inspect` (measured data only); this module lays it
out. Bytes in and out are the server's count (the request as it arrived, the response as
written); ``n/a`` where it has none; a watchdog's blocked call is written as the
counters write it (:func:`~syncviz.tui.widgets.counters.blocked_text`).
"""

from __future__ import annotations

from rich.console import Group, RenderableType
from rich.table import Table
from rich.text import Text
from syncviz.engines.blocked import BlockedCall
from syncviz.tui.inspect import ROW_NOTE, Detail, LaneDetail, RequestDetail
from syncviz.tui.phases import LOOKS, Phase
from syncviz.tui.widgets.bars import MINUS
from syncviz.tui.widgets.counters import KEY, VALUE, blocked_text, fmt_ms
from textual.app import ComposeResult
from textual.containers import Vertical
from textual.widgets import Static

WIDTH = 52  # the panel's content columns (56 in app.tcss, less border and padding)
MAX_SERVED = 60  # a lane's requests written out at most (the rest are counted)


def fmt_dur(ns: int) -> str:
    """``48 µs``, ``3.2 ms``, ``101 ms``, ``2.31 s``."""
    if ns < 1_000_000:
        return f"{ns / 1e3:.0f} µs"
    if ns < 10_000_000_000:
        return f"{fmt_ms(ns / 1e6)} ms"
    return f"{ns / 1e9:.2f} s"


def ago(t_ns: int, now_ns: int) -> str:
    """How long before the picture's right edge (``now``), in seconds."""
    return f"{MINUS}{(now_ns - t_ns) / 1e9:.3f} s"


def _kv(grid: Table, key: str, value: str | Text) -> None:
    grid.add_row(Text(key, KEY), value if isinstance(value, Text) else Text(value, VALUE))


def _bytes(n: int | None) -> str:
    return "n/a" if n is None else f"{n:,} B"


def _blocked(call: BlockedCall, worker: str) -> Text:
    """The counters' blocked-call line, given two lines of the panel (it wraps): more of its frames fit."""
    text = blocked_text(call, worker, worker in ("loop", "hub"), 2 * WIDTH)
    text.no_wrap, text.overflow = False, "fold"
    return text


def request_view(d: RequestDetail) -> RenderableType:
    head = Table.grid(padding=(0, 1))
    head.add_column(no_wrap=True)
    head.add_column()
    _kv(head, "engine", d.engine)
    _kv(head, "client", d.client)
    _kv(head, "held by", ", ".join(d.workers) or "no worker yet")
    _kv(head, "sent", f"{ago(d.start_ns, d.now_ns)} (before now, the right edge)")
    flying = d.outcome == "in flight"
    span = "  since it was sent" if flying else "  sent → response written"
    _kv(head, "latency", Text.assemble((fmt_dur(d.latency_ns), VALUE), (span, KEY)))
    if d.bytes_in is None and d.bytes_out is None:
        if not d.sized_source:
            why = "  in and out: not measured by this source"
        else:
            why = "  not finished yet" if flying else "  in and out: not measured for this request"
        _kv(head, "bytes", Text.assemble(("n/a", VALUE), (why, KEY)))
    else:
        _kv(head, "bytes", f"in {_bytes(d.bytes_in)} · out {_bytes(d.bytes_out)}")
    phases = Table.grid(padding=(0, 1))
    for justify in ("left", "right", "right", "left"):
        phases.add_column(justify=justify, no_wrap=True)  # type: ignore[arg-type]
    phases.add_row(Text("phase", KEY), Text("at", KEY), Text("for", KEY), Text("worker", KEY))
    for span in d.phases:
        look = LOOKS[span.phase]
        took = "" if span.duration_ns is None else fmt_dur(span.duration_ns) + ("…" if span.ongoing else "")
        phases.add_row(
            Text(f"{look.glyph} {look.name}", look.color),
            Text(f"+{(span.start_ns - d.start_ns) / 1e6:,.1f} ms", VALUE),
            Text(took, VALUE),
            Text(span.worker, VALUE),
        )
    parts: list[RenderableType] = [head, Text(""), phases]
    if d.blocked:
        parts.append(Text(""))
        for worker, call in d.blocked:
            parts.append(_blocked(call, worker))
    return Group(*parts)


def lane_view(d: LaneDetail) -> RenderableType:
    head = Table.grid(padding=(0, 1))
    head.add_column(no_wrap=True)
    head.add_column()
    _kv(head, "engine", d.engine)
    _kv(head, "window", f"the last {fmt_dur(d.window_ns)} (as drawn)")
    if d.busy is None:
        _kv(head, "busy", Text("n/a (the picture no longer holds that window)", KEY))
    else:
        held = sum(d.busy.values())
        _kv(head, "busy", Text.assemble((f"{held / d.window_ns:.0%}", VALUE), ("  of the window, every request", KEY)))
        for slot, ns in d.busy.items():
            if ns:
                _kv(head, "", Text.assemble((f"{ns / d.window_ns:.0%} ", VALUE), (slot, KEY)))
    parts: list[RenderableType] = [head]
    if d.blocked:  # the watchdog's calls on this lane in the window: how many, and the latest
        parts.append(Text(f"{len(d.blocked):,} blocked call(s) seen in the window; the latest:", KEY))
        parts.append(_blocked(d.blocked[-1], d.name))
    parts.append(Text(""))
    note = f"served {len(d.served):,}, of the {ROW_NOTE}"
    if d.partial:
        note += "; the oldest are no longer kept"
    parts.append(Text(note, KEY))
    served = Table.grid(padding=(0, 1))
    for justify in ("left", "right", "right", "right"):
        served.add_column(justify=justify, no_wrap=True)  # type: ignore[arg-type]
    served.add_row(Text("request", KEY), Text("from", KEY), Text("held", KEY), Text("latency", KEY))
    shown = d.served[-MAX_SERVED:]
    for s in reversed(shown):  # the newest first
        latency = fmt_dur(s.latency_ns) + ("" if s.done else " so far")
        served.add_row(Text(s.label, VALUE), ago(s.start_ns, d.now_ns), fmt_dur(s.held_ns), latency)
    if len(d.served) > len(shown):
        served.add_row(Text(f"… {len(d.served) - len(shown):,} earlier", KEY), "", "", "")
    parts.append(served)
    return Group(*parts)


def title_of(d: Detail) -> str:
    if isinstance(d, RequestDetail):
        return f"request {d.label} · {d.outcome}"
    return f"worker lane {d.name}"


class DetailPanel(Vertical):
    """Docked beside the panels while something is selected (``-open``); ``escape`` closes it."""

    def compose(self) -> ComposeResult:
        yield Static("", id="detail-text")

    def show(self, detail: Detail | None) -> None:
        self.set_class(detail is not None, "-open")
        if detail is None:
            return
        self.border_title = title_of(detail)
        self.border_subtitle = "↑↓ [ ] move · esc closes"
        view = request_view(detail) if isinstance(detail, RequestDetail) else lane_view(detail)
        self.query_one("#detail-text", Static).update(view)


__all__ = ["DetailPanel", "Phase", "fmt_dur"]
