"""An engine's numbers: throughput against its Little's-law bound, queue, workers, latency.

Everything comes from :class:`~syncviz.engines.stats.Counters`; the bound from
:func:`~syncviz.engines.settings.bound_rps`; the sparklines from :mod:`syncviz.tui.history`; the
call that held the loop or a worker lately from the engine's watchdog (:func:`blocked_text`), or
the loop's own work when it held the loop with no single call holding it (a saturated loop).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from rich.text import Text
from syncviz.engines.blocked import BlockedCall
from syncviz.engines.bottleneck import STARVED_WAIT
from syncviz.engines.counts import ServerSnapshot
from syncviz.engines.settings import fmt_rate
from syncviz.engines.stats import Counters
from syncviz.tui.history import sparkline
from syncviz.tui.phases import LOOKS, Phase
from textual.widgets import Static

KEY = "#8b93a7"
VALUE = "bold #e8ebf2"
RPS = "#009e73"
P99 = "#e69f00"
QUEUE_GLYPH = "■"


@dataclass
class CounterView:
    """What the counters widget needs besides the counters themselves."""

    counters: Counters | None
    bound: float | None
    workers: int  # lanes that can hold a request (pool threads; 1 loop or hub; +offload)
    worker_word: str  # "threads", "loop", "hub", "loop + 40 threads"
    has_lag: bool
    rps_history: list[float | None]
    p99_history: list[float | None]
    not_shown: int  # requests in flight without a row
    down: str = ""  # the engine's process exited or stalled: these are its last figures
    server: ServerSnapshot | None = None  # the server's own counts (every client, outside ones too)
    served_rps: float | None = None  # responses the server wrote per second (from ``server``)
    client_bound: bool = False  # the load process's CPU is full before the server's share is
    lane_labels: dict[int, str] = field(default_factory=dict)  # lane -> its name ("loop", "hub", "w3")
    offered: bool = False  # the open loop's arrivals bind: "of offered", the clients' measured send rate
    cpu_wait: float | None = None  # its process's threads' waits for a CPU, summed: % of a core (None: not measured)


def fmt_n(x: float | None) -> str:
    return "—" if x is None else f"{x:,.0f}"


def fmt_ms(x: float | None) -> str:
    if x is None:
        return "—"
    return f"{x:,.1f}" if x < 10 else f"{x:,.0f}"


ARROW = " ← "
_QUALIFIED = re.compile(r"^[\w.<>]+\.(?=[\w<>]+ \()")  # "BlockingWork._sleep (…)" -> "_sleep (…)"


def fit_where(where: str, room: int) -> str:
    """A blocked call's frames in ``room`` columns: outer frames dropped first (down to the library
    call and the innermost of ours), then class names, then the innermost frame alone; cut last."""
    parts = where.split(ARROW)
    short = [_QUALIFIED.sub("", p) for p in parts]
    least = min(2, len(parts)) if " (" not in parts[0] else 1  # a library call keeps our frame that made it
    tries = [ARROW.join(parts[:n]) for n in range(len(parts), least - 1, -1)]
    tries += [ARROW.join(short[:n]) for n in range(len(short), 0, -1)]
    for text in tries:
        if len(text) <= room:
            return text
    return tries[-1][: max(0, room - 1)] + "…"


def blocked_text(b: BlockedCall, label: str, loop: bool, width: int, cpu_wait: float | None = None) -> Text:
    """``loop blocked 50 ms in time.sleep ← _sleep (engines/work.py:136)``; a pool thread's without
    its duration (``w3 blocked in time.sleep ← …``): blocking is what its threads are for. A loop's
    own work is no blocked call: ``loop busy 34 ms, no single call held it`` (in the colour of ready),
    and when its process waited for a CPU (``cpu_wait``, :data:`~syncviz.engines.bottleneck.STARVED_WAIT`
    or more), how much of the time: ``· 74% waiting for CPU`` (the OS, not its code, held it)."""
    t = Text(no_wrap=True, overflow="ellipsis")
    if b.busy:
        color = LOOKS[Phase.READY].color
        t.append(f"{label} busy ", color)
        t.append(_took(b), f"bold {color}")
        t.append(f", {b.where}", KEY)
        if cpu_wait is not None and cpu_wait >= STARVED_WAIT:
            t.append(" · ", KEY)
            t.append(f"{min(cpu_wait, 100.0):.0f}%", f"bold {color}")
            t.append(" waiting for CPU", KEY)
        return t
    if loop:
        color = LOOKS[Phase.BLOCKED].color
        took = _took(b)
        head = f"{label} blocked {took}"
        t.append(f"{label} blocked ", color)
        t.append(took, f"bold {color}")
    else:
        head = f"{label} blocked"
        t.append(head, VALUE)
    t.append(" in ", KEY)
    t.append(fit_where(b.where, width - len(head) - 4), "#e8ebf2")
    return t


def _took(b: BlockedCall) -> str:
    return f"{fmt_n(b.duration_ns / 1e6)} ms" + (" so far" if b.ongoing else "")


def _kv(key: str, value: str, style: str = VALUE) -> Text:
    """``key value``, the key in the key's colour."""
    return Text.assemble((key + " ", KEY), (value, style))


def _flow(t: Text, pieces: list[Text], width: int) -> None:
    """Append ``pieces``, two spaces apart, starting a new line before one that would run past
    ``width`` (Textual would wrap its last word alone onto the next line: gevent's ``FULL``)."""
    used = 0
    for piece in pieces:
        if used and used + 2 + len(piece) > width:
            t.append("\n")
            used = 0
        elif used:
            t.append("  ")
            used += 2
        t.append_text(piece)
        used += len(piece)


def _flow_groups(t: Text, first: list[Text], second: list[Text], width: int, stacked: bool) -> None:
    """Two groups of pieces as one flowing line (:func:`_flow`), or, ``stacked``, the second on a
    line of its own; then the line's end."""
    if stacked:
        _flow(t, first, width)
        t.append("\n")
        _flow(t, second, width)
    else:
        _flow(t, first + second, width)
    t.append("\n")


def counter_text(v: CounterView, width: int, stacked: bool) -> Text:
    c = v.counters
    t = Text(no_wrap=True, overflow="ellipsis")

    def kv(key: str, value: str, style: str = VALUE, sep: str = "  ") -> None:
        t.append(key + " ", KEY)
        t.append(value, style)
        t.append(sep)

    if v.down:
        t.append(("▲ " if v.down.startswith("stalled") else "✖ ") + v.down, "bold #ff4d4d")
        t.append("\n")
        t.append("last figures before it went down:", KEY)
        t.append("\n")
    if c is None:
        t.append("waiting for the first requests…", KEY)
        return t
    kv("req/s", fmt_n(c.rps), f"bold {RPS}", " ")
    if v.client_bound:  # the load generator, not the server, is the limit: the figure is not the server's
        t.append("client-bound ", "bold #1b1e28 on #f0e442")
    # an open loop's arrivals bind: what the clients sent, measured (the model's in older recordings)
    measured = v.offered and c.sent_rps > 0
    bound = fmt_rate(c.sent_rps) if measured else "∞" if v.bound is None else fmt_rate(v.bound)
    kv("of offered" if v.offered else "of bound", bound, KEY, "  ")
    if stacked:
        t.append("\n")
    kv("done", fmt_n(c.completed))
    kv("failed", fmt_n(c.failed), "bold #ff4d4d" if c.failed else VALUE, "")
    t.append("\n")
    srv = v.server
    if srv is not None:
        served = [_kv("served/s", fmt_n(v.served_rps))]
        if c.outside:
            served.append(_kv("outside", fmt_n(c.outside)))
        failed = fmt_n(srv.failed) + (f" ({srv.timeouts:,} timeout)" if srv.timeouts else "")
        source = [_kv("srv failed", failed, "bold #ff4d4d" if srv.failed else VALUE)]
        if srv.backlog:  # the kernel's accept queue: connections the server has not accepted yet
            source.append(_kv("backlog", fmt_n(srv.backlog), f"bold {LOOKS[Phase.QUEUED].color}"))
        if srv.waiting:  # a pool thread's hand-off queue: connections no thread has read yet
            source.append(_kv("conns waiting", fmt_n(srv.waiting), f"bold {LOOKS[Phase.QUEUED].color}"))
        if srv.pool_size:
            full = srv.pool_used >= srv.pool_size
            pool = f"{srv.pool_used:,}/{srv.pool_size:,}" + (" FULL" if full else "")
            source.append(_kv("pool", pool, "bold #ff4d4d" if full else VALUE))
        _flow_groups(t, served, source, width, stacked)
    waits = [_kv("in flight", fmt_n(c.in_flight)), _kv("queued", fmt_n(c.queued), f"bold {LOOKS[Phase.QUEUED].color}")]
    if c.reading or v.server is not None:
        waits.append(_kv("reading", fmt_n(c.reading), f"bold {LOOKS[Phase.READING].color}"))
    if c.connecting:  # clients the server has not accepted yet: no request of theirs is in flight
        waits.append(_kv("connecting", fmt_n(c.connecting), f"bold {LOOKS[Phase.QUEUED].color}"))
    workers = [
        _kv("ready", fmt_n(c.by_phase.get("ready", 0)), f"bold {LOOKS[Phase.READY].color}"),
        _kv("busy", f"{c.busy}/{v.workers} {v.worker_word}"),
    ]
    _flow_groups(t, waits, workers, width, stacked)
    kv("p50", fmt_ms(c.p50_ms), VALUE, " ")
    kv("p95", fmt_ms(c.p95_ms), VALUE, " ")
    kv("p99", fmt_ms(c.p99_ms) + " ms", f"bold {P99}", "  ")
    if stacked:
        t.append("\n")
    lag = fmt_ms(c.lag_p99_ms) + " ms" if v.has_lag else "n/a (no loop)"
    kv("lag p99", lag, VALUE if v.has_lag else KEY, "")
    t.append("\n")
    b = c.blocked
    if b is not None:
        loop = c.has_loop and b.lane == 0
        label = v.lane_labels.get(b.lane) or ("loop" if loop else f"lane {b.lane}")
        t.append_text(blocked_text(b, label, loop, width, v.cpu_wait))
        t.append("\n")
    spark_w = max(8, width - 8)
    t.append("req/s ", KEY)
    t.append(sparkline(v.rps_history, spark_w), RPS)
    t.append("\n")
    t.append("p99   ", KEY)
    t.append(sparkline(v.p99_history, spark_w), P99)
    t.append("\n")
    t.append("queue ", KEY)
    room = max(4, width - 14)
    shown = min(c.queued, room)
    t.append(QUEUE_GLYPH * shown, LOOKS[Phase.QUEUED].color)
    if c.queued > shown:
        t.append(f" +{c.queued - shown:,}", KEY)
    elif c.queued == 0:
        t.append("empty", KEY)
    return t


class CountersView(Static):
    """Re-renders only when its text changes."""

    DEFAULT_CSS = """
    CountersView { height: auto; }
    """

    def __init__(self, *, id: str | None = None) -> None:
        super().__init__("", id=id)
        self._last: str | None = None
        self._lines = -1

    def show(self, view: CounterView, stacked: bool) -> None:
        text = counter_text(view, self.size.width or 60, stacked)
        key = text.markup
        if key != self._last:
            self._last = key
            lines = key.count("\n")
            self.update(text, layout=lines != self._lines)  # only a new height needs a layout pass
            self._lines = lines
