"""A request's steps as a trace draws them, and each worker's track: pure functions.

:func:`request_segments` puts one request's steps in time order and cuts them into segments;
:func:`holds_of` finds the stretches it held one worker (the one rule of
:func:`~syncviz.engines.digest_record.segment_codes`) and :func:`phase_spans` merges its phases;
:func:`clip_track` keeps a worker's holds from overlapping and :func:`assign_blocks` puts the
watchdog's calls on the holds they fell in.
"""

from __future__ import annotations

import bisect

from .digest_record import WAITQ, segment_codes
from .events import TERMINAL
from .trace_collect import Block, Step

Segment = tuple[int, int, int, int]  # (t0, t1, phase, lane)
Hold = tuple[int, int, int, tuple[tuple[int, int, int], ...], int]
"""A stretch a request held one worker: ``(t0, t1, rid, ((c0, c1, phase), ...), request index)``."""


def _time(step: Step | Hold) -> int:
    return step[0]


def request_segments(steps: list[Step], t_end: int) -> tuple[list[Segment], int, int | None] | None:
    """``(segments, end, terminal phase or None)`` of one request, or None if we saw only its end.

    Steps are put in time order (stable: two steps at one instant keep their order); those after
    the first terminal one are ignored; an unfinished request ends at ``t_end``.
    """
    ordered = sorted(steps, key=_time)
    if ordered[0][1] in TERMINAL:
        return None  # it began before we listened
    segs: list[Segment] = []
    last = len(ordered) - 1
    for i, (t, phase, lane) in enumerate(ordered):
        if phase in TERMINAL:
            return segs, t, phase
        t1 = ordered[i + 1][0] if i < last else max(t, t_end)
        segs.append((t, t1, phase, lane))
    return segs, max(ordered[-1][0], t_end), None


def holds_of(segs: list[Segment], has_loop: bool) -> list[tuple[int, int, int, list[tuple[int, int, int]]]]:
    """``(lane, t0, t1, [(c0, c1, phase)...])`` of each stretch the request held one worker."""
    no_lane, loop, on_lane = segment_codes(has_loop)
    out: list[tuple[int, int, int, list[tuple[int, int, int]]]] = []
    current: tuple[int, int, int, list[tuple[int, int, int]]] | None = None
    for t0, t1, phase, lane in segs:
        code = no_lane[phase] if lane < 0 else loop[phase] if lane == 0 else on_lane[phase]
        if not 0 <= code < WAITQ:  # not holding a worker: queued, awaiting, yielded, ready on a loop
            if current is not None:
                out.append(current)
                current = None
            continue
        if current is not None and current[0] == lane and current[2] == t0:
            current = (lane, current[1], t1, current[3])
        else:
            if current is not None:
                out.append(current)
            current = (lane, t0, t1, [])
        if t1 > t0:
            current[3].append((t0, t1, phase))
    if current is not None:
        out.append(current)
    return [h for h in out if h[2] > h[1]]


def phase_spans(segs: list[Segment]) -> list[Segment]:
    """The segments with consecutive ones of one phase on one lane merged, zero-length ones left out."""
    out: list[Segment] = []
    for t0, t1, phase, lane in segs:
        if out and out[-1][2] == phase and out[-1][3] == lane and out[-1][1] == t0:
            out[-1] = (out[-1][0], t1, phase, lane)
        elif t1 > t0:
            out.append((t0, t1, phase, lane))
    return out


def clip_track(holds: list[Hold]) -> tuple[list[Hold], int]:
    """One worker's holds in time order, none overlapping the one before; and how many were clipped."""
    holds = sorted(holds, key=_time)
    out: list[Hold] = []
    clipped = 0
    end = None
    for t0, t1, rid, children, req in holds:
        if end is not None and t0 < end:
            clipped += 1
            if t1 <= end:
                continue
            t0 = end
            children = tuple((max(c0, t0), c1, ph) for c0, c1, ph in children if c1 > t0)
        out.append((t0, t1, rid, children, req))
        end = t1
    return out, clipped


def assign_blocks(track: list[Hold], blocks: list[Block]) -> tuple[dict[int, list[Block]], int]:
    """Each call of ``blocks`` to the hold of ``track`` (in time order, none overlapping) it overlaps
    most (a held loop's first call is dated from the loop's last tick, so it may reach back into the
    request before): hold index -> its calls; and how many calls overlap no hold."""
    starts = [h[0] for h in track]
    out: dict[int, list[Block]] = {}
    lost = 0
    for b0, b1, where in blocks:
        best, most = -1, 0
        i = bisect.bisect_left(starts, max(b1, b0 + 1)) - 1  # the last hold starting before the call ends
        while i >= 0 and track[i][1] > b0:
            overlap = min(track[i][1], b1) - max(track[i][0], b0)
            if overlap > most or (best < 0 and b1 == b0):
                best, most = i, overlap
            i -= 1
        if best < 0:
            lost += 1
        else:
            out.setdefault(best, []).append((b0, b1, where))
    return out, lost
