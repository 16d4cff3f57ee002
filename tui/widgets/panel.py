"""One engine's panel: its title and I/O line, its counters, its time axis."""

from __future__ import annotations

import time

from rich.text import Text
from syncviz.engines.bottleneck import client_bound
from syncviz.engines.counts import ServerSnapshot
from syncviz.engines.events import Phase
from syncviz.engines.registry import engine_spec
from syncviz.engines.served import ServedRate
from syncviz.engines.source import EngineStatus
from syncviz.tui.board import Board, EngineInfo
from syncviz.tui.inspect import Drawn
from syncviz.tui.widgets.counters import CountersView, CounterView
from syncviz.tui.widgets.process import ProcessLine, down_text
from syncviz.tui.widgets.timeline import GUTTER, TimelineView
from textual import events
from textual.app import ComposeResult
from textual.containers import Vertical
from textual.message import Message
from textual.widgets import Static


class EnginePanel(Vertical):
    """Draws what the :class:`Board` knows about one engine."""

    def __init__(self, engine: str) -> None:
        super().__init__(id=f"panel-{engine}", classes="engine-panel")
        self.engine = engine
        self._info: EngineInfo | None = None
        self.status: EngineStatus | None = None
        self.restart_key = "1"
        self.served = ServedRate()  # the server's own responses/s, outside clients included
        self._timeline: TimelineView | None = None
        self.drawn: Drawn | None = None  # what the last frame showed (tui/inspect.py reads it)

    def compose(self) -> ComposeResult:
        with Vertical(classes="side"):
            yield ProcessLine(classes="proc-line")
            yield Static("", classes="io-line")
            yield CountersView()
        yield TimelineView()

    def on_mount(self) -> None:
        if self._info is not None:  # set before the children existed: write the title again
            info, self._info = self._info, None
            self.set_info(info)

    def set_info(self, info: EngineInfo) -> None:
        if info == self._info:
            return
        self._info = info
        self._title()
        line = Text(no_wrap=True, overflow="ellipsis")
        line.append("handler ", "#8b93a7")
        line.append(f" {info.io_line} ", "bold #f0f0f0 on #2b3042")
        if info.mode != "native":
            line.append(f"  ({info.mode})", "#e69f00")
        for io_line in self.query(".io-line").results(Static):
            io_line.update(line)

    def set_status(self, status: EngineStatus | None, restart_key: str) -> None:
        """The process behind the panel: its line, and the title and border when it is down."""
        self.status, self.restart_key = status, restart_key
        self.served.update(status.server if status is not None else None)
        for line in self.query(ProcessLine):
            line.show(status, restart_key)
        state = status.state if status is not None else "starting"
        self.set_class(state == "exited", "-exited")
        self.set_class(state == "stalled", "-stalled")
        self._title()

    def _title(self) -> None:
        info = self._info
        if info is None:
            return
        title = f"[b]{info.name}[/b] · {info.model}"
        state = self.status.state if self.status is not None else ""
        if state == "exited":
            title += " · [b]✖ EXITED[/b]"
        elif state == "stalled":
            title += " · [b]▲ STALLED[/b]"
        if title != self.border_title:  # setting it repaints the whole panel
            self.border_title = title

    def draw_counters(
        self, board: Board, stacked: bool, past: tuple[ServerSnapshot | None, float | None] | None = None
    ) -> None:
        """``past``: a scrubbed moment's server counts and served/s (``None``: now's, from the status)."""
        info = self._info
        if info is None:
            return
        counters = board.counters.get(self.engine)
        rows = board.rows[self.engine]
        history = board.history
        view = CounterView(
            counters=counters,
            bound=info.bound,
            offered=info.offered,
            workers=len(info.lanes),
            worker_word=info.worker_word,
            has_lag=info.has_lag,
            rps_history=list(history.rps.get(self.engine, ())),
            p99_history=list(history.p99.get(self.engine, ())),
            not_shown=max(0, (counters.in_flight if counters else 0) - rows.shown_in_flight()),
            down=down_text(self.status, self.restart_key),
            server=past[0] if past is not None else self.status.server if self.status is not None else None,
            served_rps=past[1] if past is not None else self.served.rps(self._served_now(board)),
            client_bound=self._client_bound(),
            lane_labels=dict(info.lanes),
            cpu_wait=self.status.process.wait_percent if self.status is not None and self.status.process else None,
        )
        for counters_view in self.query(CountersView):  # none while mounting or shutting down
            counters_view.show(view, stacked)

    def _served_now(self, board: Board) -> int:
        """The moment ``served/s`` is taken at: now, or a replay's recorded time as played."""
        return board.now_ns if self.status is not None and self.status.state == "replay" else time.monotonic_ns()

    def _client_bound(self) -> bool:
        """The load generator is what limits this engine's figures (``engines/bottleneck.py`` decides)."""
        st = self.status
        load = self.app.health.load if getattr(self.app, "health", None) is not None else None
        if st is None or st.process is None or load is None:
            return False
        if load.cpu_percent is None or st.process.cpu_percent is None:
            return False
        return client_bound(load.cpu_percent, len(load.cpus) or 1, st.process.cpu_percent, st.cpu_share)

    def draw_timeline(self, board: Board, now_ns: int, edge: str = "now") -> bool:
        """Build this frame's lines; whether the screen had rendered the frame built before it."""
        info = self._info
        if info is None:
            return True
        view = self._timeline
        if view is None or not view.is_attached:
            views = self.query(TimelineView)
            if not views:  # a timer can fire while the panel mounts or the app shuts down
                return True
            view = self._timeline = views.first()  # found once, not every frame
        if view.size.height <= 0:
            return True
        waits_wanted = 2 if engine_spec(self.engine).has_loop else 1  # READY: waiting for the loop or hub
        shown, rows = view.plan(len(info.lanes), waits_wanted)
        board.set_rows(self.engine, rows)
        lanes = info.lanes[:shown]
        model = board.lanes[self.engine]
        frame = model.frame(now_ns, view.cols, [lane for lane, _ in lanes])
        scale = float(max(1, board.settings.clients))
        waits = [("queued", frame.queued, Phase.QUEUED, scale)]
        if waits_wanted == 2:
            waits.append(("ready", frame.ready, Phase.READY, scale))
        row_model = board.rows[self.engine]
        counters = board.counters.get(self.engine)
        in_flight = counters.in_flight if counters is not None else 0
        # The rows are drawn to the stream's watermark, the count is the load's own, a few ms later: a
        # request answered in between is still running on its row ("3 of 2" at low load). Of those
        # in flight at the count's moment, at most all have a row.
        with_row = min(row_model.shown_in_flight(), in_flight)
        header = f"requests · {with_row} of {in_flight:,} in flight have a row"
        view.draw(frame, lanes, len(info.lanes) - shown, waits, row_model, header, now_ns, edge)
        visible = [tuple(row) for row in row_model.rows[: row_model.visible]]  # what the rows showed (inspect)
        self.drawn = Drawn(
            self.engine, now_ns, frame.first_col, view.cols, frame.ns_per_col, view.targets, visible,
            stats=board.stats[self.engine], model=model, names=dict(info.lanes),
        )  # fmt: skip
        return view.was_taken

    def mark(self, y: int | None) -> None:
        """Mark the line the detail panel shows (``None``: none on this panel)."""
        if self._timeline is not None and self._timeline.cursor != y:
            self._timeline.set_cursor(y)

    def on_click(self, event: events.Click) -> None:
        """A click on a lane or a request row selects it (the app opens the detail panel)."""
        view, drawn = self._timeline, self.drawn
        at = event.get_content_offset(view) if view is not None else None
        if at is None or drawn is None:
            return
        col = at.x - GUTTER
        t_ns = None if col < 0 else (drawn.first_col + col) * drawn.ns + drawn.ns // 2
        self.post_message(self.Picked(drawn, at.y, t_ns))

    class Picked(Message):
        """Line ``y`` of the panel's time axis was clicked, at time ``t_ns`` (``None``: in the gutter)."""

        def __init__(self, drawn: Drawn, y: int, t_ns: int | None) -> None:
            super().__init__()
            self.drawn, self.y, self.t_ns = drawn, y, t_ns
