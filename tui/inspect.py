"""Inspect: what the detail panel says about a selected request row or worker lane (no widgets).

Each panel records what its last frame drew (:class:`Drawn`: the window, which line is which
lane or row, the requests each row held). :class:`Inspector` moves a cursor over those lines
(keys, clicks) and turns the selection into the detail's content, from the board's measured
data only:

* a request (:class:`RequestDetail`): its id, engine, client, the workers that held it, each
  phase with its start and duration, its latency, its bytes in and out (the server's size
  record, :attr:`~syncviz.engines.stats.EngineStats.sizes`; ``None`` where there is none: in
  flight, a recording made before them, a pipelined request whose read it shared), and the
  watchdog's record of any call that held one of its workers while it did;
* a worker lane (:class:`LaneDetail`): over the visible window, its busy share by holding phase
  (from the picture, which counts every request) and the requests it served among those the
  stream carries in full (the rows' sample, :data:`~syncviz.engines.digest.ROW_RATE` a second).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

from syncviz.engines.blocked import BlockedCall
from syncviz.engines.digest import ROW_RATE
from syncviz.engines.digest_record import KEEP_COLS
from syncviz.engines.events import TERMINAL, Phase
from syncviz.engines.picture import RequestTrack
from syncviz.engines.slowclients import client_of
from syncviz.engines.stats import EngineStats
from syncviz.tui.lanes import LaneModel
from syncviz.tui.rows import rid_label

Kind = Literal["lane", "row"]
Target = tuple[Kind, int]
"""A line of a panel's time axis that can be selected: ``("lane", lane)`` or ``("row", index)``."""

CLIENTS = {
    "built-in": "built-in load generator",
    "slow": "built-in slow client",
    "outside": "outside client (no X-Req-Id)",
}
HOLD_SLOTS = ("running", "blocked", "ready (GIL)", "reading")  # a lane's per-column slots (digest_record.SLOT)


@dataclass
class Drawn:
    """What one panel's time axis showed in its last frame."""

    engine: str
    now_ns: int
    first_col: int
    cols: int
    ns: int
    targets: list[Target | None]  # per line, top down (None: the ruler, waits, headers)
    rows: list[tuple[RequestTrack, ...]]  # per visible request row, its requests then
    stats: EngineStats  # the board's drawn (the live one, or a scrubbed moment's)
    model: LaneModel
    names: dict[int, str]  # lane -> its label ("w3", "loop", "hub")

    @property
    def start_ns(self) -> int:
        return self.first_col * self.ns


@dataclass
class Selection:
    engine: str
    target: Target
    rid: int | None = None  # a row's request (a row hosts one request after another)


@dataclass(frozen=True)
class PhaseSpan:
    phase: Phase
    start_ns: int
    duration_ns: int | None  # None: terminal, or still in this phase (then ``ongoing``)
    worker: str  # the lane holding it then ("" when no worker holds it)
    ongoing: bool = False


@dataclass
class RequestDetail:
    engine: str
    rid: int
    label: str
    client: str
    outcome: str  # "done", "failed", "in flight"
    start_ns: int
    latency_ns: int  # first transition (the client's send) to the last (or to now, in flight)
    now_ns: int
    phases: list[PhaseSpan]
    workers: list[str]
    blocked: list[tuple[str, BlockedCall]]  # (worker, call) the watchdog saw holding its worker
    bytes_in: int | None = None
    bytes_out: int | None = None
    sized_source: bool = False  # the source carries size records at all (recordings made before them do not)


@dataclass(frozen=True)
class Served:
    rid: int
    label: str
    start_ns: int  # its first moment on the lane in the window
    held_ns: int  # how long it held the lane in the window
    latency_ns: int
    done: bool


@dataclass
class LaneDetail:
    engine: str
    lane: int
    name: str
    start_ns: int
    now_ns: int
    busy: dict[str, int] | None  # ns per holding slot in the window (None: the picture has dropped it)
    served: list[Served] = field(default_factory=list)
    blocked: list[BlockedCall] = field(default_factory=list)
    partial: bool = False  # the requests kept no longer reach back to the window's start

    @property
    def window_ns(self) -> int:
        return max(1, self.now_ns - self.start_ns)


Detail = RequestDetail | LaneDetail


def lane_name(names: dict[int, str], lane: int) -> str:
    return names.get(lane, f"lane {lane}")


def request_detail(stats: EngineStats, track: RequestTrack, names: dict[int, str], now_ns: int) -> RequestDetail:
    """Everything measured about one request (``names``: lane -> its label)."""
    steps = [s for s in track.steps if s[0] <= now_ns]
    phases: list[PhaseSpan] = []
    for t, phase, lane in steps:
        worker = lane_name(names, lane) if stats.holds_worker(phase, lane) else ""
        if phases and phases[-1].phase == phase and phases[-1].worker == worker and phase not in TERMINAL:
            continue  # the same phase recorded again (QUEUED by the client, then by the server)
        phases.append(PhaseSpan(Phase(phase), t, None, worker))
    ends = [p.start_ns for p in phases[1:]]
    done = bool(steps) and steps[-1][1] in TERMINAL
    for i, span in enumerate(phases):
        if span.phase in TERMINAL:
            continue
        if i < len(ends):
            phases[i] = PhaseSpan(span.phase, span.start_ns, ends[i] - span.start_ns, span.worker)
        else:
            phases[i] = PhaseSpan(span.phase, span.start_ns, now_ns - span.start_ns, span.worker, ongoing=True)
    start = steps[0][0] if steps else track.start_ns
    end = steps[-1][0] if done else now_ns
    kind, _ = client_of(track.rid)
    workers = list(dict.fromkeys(p.worker for p in phases if p.worker))
    bytes_in, bytes_out = stats.sizes.get(track.rid, (-1, -1)) if done else (-1, -1)
    return RequestDetail(
        engine=stats.engine,
        rid=track.rid,
        label=rid_label(track.rid),
        client=CLIENTS.get(kind, kind),
        outcome=Phase(steps[-1][1]).name.lower() if done else "in flight",
        start_ns=start,
        latency_ns=end - start,
        now_ns=now_ns,
        phases=phases,
        workers=workers,
        blocked=[(lane_name(names, b.lane), b) for b in _blocks_of(stats, track, end)],
        bytes_in=bytes_in if bytes_in >= 0 else None,
        bytes_out=bytes_out if bytes_out >= 0 else None,
        sized_source=bool(stats.sizes),
    )


def _held(stats: EngineStats, track: RequestTrack, end_ns: int, lane: int | None = None) -> list[tuple[int, int, int]]:
    """(lane, t0, t1) of each stretch the request held a worker (on ``lane`` only, if given)."""
    out: list[tuple[int, int, int]] = []
    steps = track.steps
    for i, (t0, phase, ln) in enumerate(steps):
        t1 = steps[i + 1][0] if i + 1 < len(steps) else end_ns
        if t1 <= t0 or not stats.holds_worker(phase, ln) or (lane is not None and ln != lane):
            continue
        if out and out[-1][0] == ln and out[-1][2] == t0:
            out[-1] = (ln, out[-1][1], t1)
        else:
            out.append((ln, t0, t1))
    return out


def _all_blocks(stats: EngineStats) -> list[BlockedCall]:
    """The watchdog's calls the stats keep: the finished ones and each lane's latest (maybe ongoing)."""
    seen = {(b.t_start_ns, b.lane) for b in stats.blocks}
    latest = [b for b in stats.blocked_lanes.values() if (b.t_start_ns, b.lane) not in seen]
    return sorted([*stats.blocks, *latest], key=lambda b: (b.t_start_ns, b.lane))


def _blocks_of(stats: EngineStats, track: RequestTrack, end_ns: int) -> list[BlockedCall]:
    """The watchdog's calls that held a worker while this request held it (for most of the call)."""
    held = _held(stats, track, end_ns)

    def overlap(b: BlockedCall) -> int:
        return sum(max(0, min(t1, b.end_ns) - max(t0, b.t_start_ns)) for lane, t0, t1 in held if lane == b.lane)

    return [b for b in _all_blocks(stats) if 2 * overlap(b) > b.duration_ns]


def lane_detail(stats: EngineStats, model: LaneModel, drawn: Drawn, lane: int, names: dict[int, str]) -> LaneDetail:
    """What ``lane`` did over the window ``drawn`` showed."""
    now, start = drawn.now_ns, drawn.start_ns
    out = LaneDetail(stats.engine, lane, lane_name(names, lane), start, now, None)
    pic = stats.picture
    if pic.ns == drawn.ns and drawn.first_col >= pic.now // pic.ns - KEEP_COLS:
        frame = model.frame(now, drawn.cols, [lane])
        busy = [0, 0, 0, 0]
        for c, cell in enumerate(frame.hold[lane], frame.first_col):
            room = min(pic.ns, now - c * pic.ns)  # a column holds no more than its width, the last up to now
            scale = min(1.0, max(0, room) / max(1, sum(cell)))
            for i, v in enumerate(cell):
                busy[i] += int(v * scale)
        out.busy = dict(zip(HOLD_SLOTS, busy, strict=True))
    tracks = [*stats.recent, *stats.inflight.values()]
    for track in tracks:
        end = track.end_ns if track.phase in TERMINAL else now
        if track.start_ns > now or end < start:
            continue
        spans = [(max(t0, start), min(t1, now)) for _, t0, t1 in _held(stats, track, end, lane)]
        spans = [(a, b) for a, b in spans if b > a]
        if spans:
            done = track.phase in TERMINAL and end <= now
            latency = (end if done else now) - track.start_ns
            held = sum(b - a for a, b in spans)
            out.served.append(Served(track.rid, rid_label(track.rid), spans[0][0], held, latency, done))
    out.served.sort(key=lambda s: s.start_ns)
    recent = stats.recent
    out.partial = len(recent) == recent.maxlen and bool(recent) and recent[0].end_ns > start
    out.blocked = [b for b in _all_blocks(stats) if b.lane == lane and b.t_start_ns < now and b.end_ns > start]
    return out


ROW_NOTE = f"requests carried in full (the rows' sample: up to {ROW_RATE} a second)"


def request_at(drawn: Drawn, row: int, t_ns: int | None = None) -> RequestTrack | None:
    """The request row ``row`` showed at ``t_ns`` (or the nearest to it); ``None``: its newest."""
    if not 0 <= row < len(drawn.rows):
        return None
    now = drawn.now_ns
    shown = [t for t in drawn.rows[row] if t.start_ns <= now]
    if not shown:
        return None
    if t_ns is None:
        return shown[-1]

    def distance(track: RequestTrack) -> int:
        t0 = track.start_ns
        t1 = track.end_ns if track.phase in TERMINAL else now
        return 0 if t0 <= t_ns <= t1 else min(abs(t_ns - t0), abs(t_ns - t1))

    return min(shown, key=distance)


class Inspector:
    """The cursor over the panels' lanes and rows, and what the detail panel shows for it."""

    def __init__(self) -> None:
        self.selection: Selection | None = None

    def _pick(self, drawn: Drawn, target: Target, t_ns: int | None = None) -> Selection | None:
        kind, index = target
        if kind == "lane":
            return Selection(drawn.engine, target)
        track = request_at(drawn, index, t_ns)
        return Selection(drawn.engine, target, track.rid) if track is not None else None

    def move(self, drawn: dict[str, Drawn], step: int) -> Selection | None:
        """The next (``step`` 1) or previous (-1) selectable line of the current panel that shows something."""
        sel = self.selection
        engine = sel.engine if sel is not None and sel.engine in drawn else next(iter(drawn), None)
        if engine is None:
            return None
        d = drawn[engine]
        lines = [t for t in d.targets if t is not None]
        if not lines:
            return None
        at = lines.index(sel.target) if sel is not None and sel.target in lines else (-1 if step > 0 else len(lines))
        i = at + step
        while 0 <= i < len(lines):
            picked = self._pick(d, lines[i])
            if picked is not None:
                self.selection = picked
                return picked
            i += step
        return self.selection

    def panel(self, drawn: dict[str, Drawn], step: int) -> Selection | None:
        """The same line (or the nearest that shows something) on the next or previous panel."""
        engines = list(drawn)
        if not engines:
            return None
        sel = self.selection
        i = engines.index(sel.engine) if sel is not None and sel.engine in engines else -step
        d = drawn[engines[(i + step) % len(engines)]]
        lines = [t for t in d.targets if t is not None]
        if sel is not None and sel.target in lines:
            at = lines.index(sel.target)
            for j in sorted(range(len(lines)), key=lambda j: abs(j - at)):
                picked = self._pick(d, lines[j])
                if picked is not None:
                    self.selection = picked
                    return picked
        self.selection = None
        return self.move(drawn, 1) if lines else sel

    def click(self, drawn: Drawn, y: int, t_ns: int | None) -> Selection | None:
        """The line ``y`` of ``drawn`` at time ``t_ns`` (``None``: the gutter, the row's newest request)."""
        if not 0 <= y < len(drawn.targets) or drawn.targets[y] is None:
            return None
        target = drawn.targets[y]
        assert target is not None
        picked = self._pick(drawn, target, t_ns)
        if picked is not None:
            self.selection = picked
        return picked

    def close(self) -> None:
        self.selection = None

    def content(self, drawn: dict[str, Drawn]) -> Detail | None:
        """The detail of the selection, from the frame its panel drew last."""
        sel = self.selection
        d = drawn.get(sel.engine) if sel is not None else None
        if sel is None or d is None:
            return None
        stats, names, (kind, index) = d.stats, d.names, sel.target
        if kind == "lane":
            return lane_detail(stats, d.model, d, index, names)
        track = self._follow(d, sel)
        if track is None:  # no longer on a row drawn (scrubbed, zoomed): the stats may still hold it
            track = stats.inflight.get(sel.rid or -1) or next((t for t in stats.recent if t.rid == sel.rid), None)
        return request_detail(stats, track, names, d.now_ns) if track is not None else None

    @staticmethod
    def _follow(d: Drawn, sel: Selection) -> RequestTrack | None:
        """The selected request on the rows ``d`` drew (the selection moves to its row), if there."""
        for i, row in enumerate(d.rows):
            for track in row:
                if track.rid == sel.rid and track.start_ns <= d.now_ns:
                    sel.target = ("row", i)
                    return track
        return None

    def line(self, drawn: Drawn) -> int | None:
        """The line of ``drawn`` the cursor is on (``None``: another panel, or none)."""
        sel = self.selection
        if sel is None or sel.engine != drawn.engine or sel.target not in drawn.targets:
            return None
        kind, index = sel.target
        if kind == "row" and all(t.rid != sel.rid for t in drawn.rows[index]):
            return None  # its request is not on the rows drawn
        return drawn.targets.index(sel.target)
