"""Perfetto / Chrome trace export: the event stream as Chrome Trace Event JSON.

What :func:`build_trace` returns (and :func:`write_trace` writes, event by event) opens in
ui.perfetto.dev and chrome://tracing:

* one process per engine (``process_name`` metadata) and in it one thread per worker lane
  (``thread_name``): the pool threads ``w0``..., the ``loop``, the ``hub``, the offload threads
  ``t1``...;
* on a worker's thread, one complete slice (``X``, category ``worker``) for each stretch a request
  held that worker (running, blocked, ready on a pool thread, reading on a pool thread: the one
  rule of :func:`~syncviz.engines.digest_record.segment_codes`), named after the request, with one
  nested ``X`` per phase inside it. Requests interleave on a loop, so a thread carries only
  ``X`` slices, never ``B``/``E``, and never two that overlap (a slice recorded a few
  microseconds early starts where the one before it ends: ``otherData.clipped`` counts them);
* each request as an async slice (``b``/``e``, category ``request``) from its first transition
  to its last, with its phases as async slices nested in it (same id). The id is
  ``"<engine>:<request id>"``: Perfetto scopes a plain ``id`` to the whole trace, and every
  engine numbers its requests from 1, so a bare request id would merge three requests;
* counters per engine (``C``) every 100 ms: requests in flight, queued, and done per second (over
  the 100 ms before); every loop-lag sample of the loop engines, in ms; and, where the stream
  carries the servers' own counts, ``connections``: the kernel's accept backlog, connections
  waiting for a worker, connections reading, at each of their samples;
* args on every slice: the request id, the phase, the client (``built-in``, ``slow`` or
  ``outside``: ids from :data:`~syncviz.engines.request.EXTERNAL_IDS_START` come from outside
  clients) and, on a request, its result, its workers and the latency its client measured.

A provisional reading id handed over to a real one (``HANDED_OVER``) is dropped; a request that
had not finished when the stream ends is closed there (``result: unfinished``). Times are
microseconds since the first record (``otherData.t0_monotonic_ns`` says when, CLOCK_MONOTONIC),
each written so that reading it as a decimal or as a double gives back the same nanosecond.
Pure functions of the batches: no engine is run here.
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any, TextIO

from .digest_record import WAITQ, segment_codes
from .events import ENGINES, PHASE_NAMES, Batch, Phase
from .registry import engine_spec
from .slowclients import client_of
from .trace_collect import Block, TraceCollector, collect
from .trace_spans import Hold, Segment, assign_blocks, clip_track, holds_of, phase_spans, request_segments

REQUEST_CAT = "request"
WORKER_CAT = "worker"
COUNTER_EVERY_NS = 100_000_000
TID_STRIDE = 100_000  # a lane's thread id: pid * TID_STRIDE + 1 + lane (pools hold at most 1,000)
DISPLAY_TIME_UNIT = "ms"

_DONE, _QUEUED = int(Phase.DONE), int(Phase.QUEUED)


def request_label(rid: int) -> str:
    """A request's short name on a worker's thread: ``#17``, ``slow 3``, ``outside 2``."""
    kind, n = client_of(rid)
    return f"#{n}" if kind == "built-in" else f"{kind} {n}"


def lane_name(engine: str, lane: int) -> str:
    """A worker lane's thread name: ``w0``... (pool threads), ``loop`` / ``hub`` (lane 0), ``t1``... (offload)."""
    spec = engine_spec(engine)
    if not spec.has_loop:
        return f"w{lane}"
    return spec.worker_word("native") if lane == 0 else f"t{lane}"


def us(ns: int) -> int | float:
    """``ns`` nanoseconds as microseconds, exact both as a decimal and as a double times 1000, truncated."""
    if ns % 1000 == 0:
        return ns // 1000
    x = ns / 1000
    if math.floor(x * 1000.0) != ns:  # e.g. 0.001 * 1000.0 < 1 for some values: nudge by a quarter ns
        x = (ns + 0.25) / 1000
    return x


def blocked_args(calls: list[Block]) -> list[dict[str, Any]]:
    """``blocked_in`` args: each call that held the worker, and for how long."""
    return [{"where": where, "ms": round((b1 - b0) / 1e6, 3)} for b0, b1, where in calls]


@dataclass
class TraceSummary:
    """What an export holds, for the command's one line and for ``otherData``."""

    engines: list[str] = field(default_factory=list)
    requests: int = 0
    unfinished: int = 0
    worker_slices: int = 0
    request_slices: int = 0  # async slices: requests and their phases
    counters: int = 0
    events: int = 0
    clipped: int = 0
    blocks: int = 0  # watchdog calls attached to a worker's slice
    blocks_unattached: int = 0

    @property
    def slices(self) -> int:
        return self.worker_slices + self.request_slices


class TraceExport:
    """The trace events of one collected stream; :meth:`events` yields them (once), then ``summary`` holds."""

    def __init__(self, col: TraceCollector, every_ns: int = COUNTER_EVERY_NS) -> None:
        self.col = col
        self.every_ns = every_ns
        self.t0 = col.t_min if col.t_min is not None else 0
        self.t_end = max(col.t_max, self.t0)
        self.engine_ids = col.engines()
        self.summary = TraceSummary(engines=[ENGINES[e] for e in self.engine_ids])

    # -- ids and times ---------------------------------------------------------------
    @staticmethod
    def pid(e: int) -> int:
        return e + 1

    def tid(self, e: int, lane: int) -> int:
        return self.pid(e) * TID_STRIDE + 1 + lane

    def ts(self, t: int) -> int | float:
        return us(t - self.t0)

    # -- the events ------------------------------------------------------------------
    def events(self) -> Iterator[dict[str, Any]]:
        """Every event: metadata, then each request's async slices, the workers' slices, the counters."""
        col, summary = self.col, self.summary
        nsamples = (self.t_end - self.t0) // self.every_ns + 2
        inflight = {e: [0] * (nsamples + 1) for e in self.engine_ids}
        queued = {e: [0] * (nsamples + 1) for e in self.engine_ids}
        done = {e: [0] * (nsamples + 1) for e in self.engine_ids}
        requests: list[tuple[int, int, list[Segment], int, int | None, list[int]]] = []
        tracks: dict[tuple[int, int], list[Hold]] = {}
        for (e, rid), steps in col.steps.items():
            if e not in inflight:
                continue
            made = request_segments(steps, self.t_end)
            if made is None or not made[0]:
                continue
            segs, end, result = made
            mine = holds_of(segs, engine_spec(ENGINES[e]).has_loop)
            for lane, t0, t1, children in mine:
                tracks.setdefault((e, lane), []).append((t0, t1, rid, tuple(children), len(requests)))
            requests.append((e, rid, segs, end, result, [lane for lane, *_ in mine]))
            self._count(inflight[e], segs[0][0], end if result is not None else None)
            last = len(segs) - 1
            for i, (t0, t1, phase, _lane) in enumerate(segs):
                if phase == _QUEUED:  # an unfinished request's last phase goes on past the end
                    self._count(queued[e], t0, None if result is None and i == last else t1)
            if result == _DONE:
                done[e][self._sample_at_or_after(end)] += 1
        # each worker's slices in time order, then the watchdog's calls on the slices that held them
        blocks = col.blocks_by_lane()
        kept: dict[tuple[int, int], list[Hold]] = {}
        held_by: dict[tuple[int, int, int], list[Block]] = {}  # (engine, lane, hold index) -> calls
        of_request: dict[int, list[Block]] = {}
        for key in sorted(tracks):
            kept[key], clipped = clip_track(tracks.pop(key))
            summary.clipped += clipped
            calls, lost = assign_blocks(kept[key], blocks.pop(key, []))
            summary.blocks_unattached += lost
            for i, mine_calls in calls.items():
                held_by[(*key, i)] = mine_calls
                of_request.setdefault(kept[key][i][4], []).extend(mine_calls)
                summary.blocks += len(mine_calls)
        summary.blocks_unattached += sum(len(b) for b in blocks.values())  # on lanes no request held
        yield from self._metadata()
        for i, (e, rid, segs, end, result, lanes) in enumerate(requests):
            summary.requests += 1
            summary.unfinished += result is None
            yield from self._request(e, rid, segs, end, result, lanes, of_request.get(i, []))
        del requests
        for (e, lane), track in kept.items():
            yield from self._worker(e, lane, track, held_by)
        for e in self.engine_ids:
            yield from self._counters(e, inflight[e], queued[e], done[e])

    def _metadata(self) -> Iterator[dict[str, Any]]:
        col = self.col
        pids = col.info.get("pids") or {}
        lanes: dict[int, set[int]] = {e: set() for e in self.engine_ids}
        codes = {e: segment_codes(engine_spec(ENGINES[e]).has_loop) for e in self.engine_ids}
        for (e, _rid), steps in col.steps.items():
            if e in lanes:
                _no_lane, loop, on_lane = codes[e]
                for _t, phase, lane in steps:
                    if lane >= 0 and 0 <= (loop[phase] if lane == 0 else on_lane[phase]) < WAITQ:
                        lanes[e].add(lane)
        for e in self.engine_ids:
            name, pid = ENGINES[e], self.pid(e)
            yield _meta("process_name", pid, pid, name=name)
            yield _meta("process_sort_index", pid, pid, sort_index=e)
            real = pids.get(name)
            if isinstance(real, int):
                yield _meta("process_labels", pid, pid, labels=f"pid {real}")
            yield _meta("thread_name", pid, pid, name="requests")
            yield _meta("thread_sort_index", pid, pid, sort_index=-1)
            for lane in sorted(lanes[e]):
                tid = self.tid(e, lane)
                yield _meta("thread_name", pid, tid, name=lane_name(name, lane))
                yield _meta("thread_sort_index", pid, tid, sort_index=lane)

    def _request(
        self, e: int, rid: int, segs: list[Segment], end: int, result: int | None, lanes: list[int], calls: list[Block]
    ) -> Iterator[dict[str, Any]]:
        """One request: its async slice and its phases nested in it."""
        engine, pid = ENGINES[e], self.pid(e)
        ident = f"{engine}:{rid}"
        client = client_of(rid)[0]
        args: dict[str, Any] = {
            "rid": rid,
            "request": request_label(rid),
            "client": client,
            "outside": client == "outside",
            "result": PHASE_NAMES[result] if result is not None else "unfinished",
        }
        workers = list(dict.fromkeys(lane_name(engine, lane) for lane in lanes))
        if workers:
            args["workers"] = workers
        measured = self.col.latency.get((e, rid))
        if measured is not None:
            args["latency_ms"] = round(measured[0] / 1e6, 6)
        if calls:
            args["blocked_in"] = blocked_args(calls)
        base = {"cat": REQUEST_CAT, "id": ident, "pid": pid, "tid": pid}
        start = segs[0][0]
        yield {"ph": "b", "name": "request", "ts": self.ts(start), **base, "args": args}
        spans = phase_spans(segs)
        for t0, t1, phase, lane in spans:
            name = PHASE_NAMES[phase]
            pargs: dict[str, Any] = {"rid": rid, "phase": name, "outside": args["outside"]}
            if lane >= 0:
                pargs["worker"] = lane_name(engine, lane)
            yield {"ph": "b", "name": name, "ts": self.ts(t0), **base, "args": pargs}
            yield {"ph": "e", "name": name, "ts": self.ts(t1), **base}
        yield {"ph": "e", "name": "request", "ts": self.ts(max(end, start)), **base}
        self.summary.request_slices += 1 + len(spans)

    def _worker(
        self, e: int, lane: int, kept: list[Hold], held_by: dict[tuple[int, int, int], list[Block]]
    ) -> Iterator[dict[str, Any]]:
        """One worker's thread: a slice per request it held, its phases nested."""
        pid, tid = self.pid(e), self.tid(e, lane)
        for i, (t0, t1, rid, children, _req) in enumerate(kept):
            client = client_of(rid)[0]
            outside = client == "outside"
            phases = list(dict.fromkeys(PHASE_NAMES[ph] for _c0, _c1, ph in children))
            args: dict[str, Any] = {
                "rid": rid,
                "request": request_label(rid),
                "client": client,
                "outside": outside,
                "phases": phases,
            }
            calls = held_by.get((e, lane, i))
            if calls:
                args["blocked_in"] = blocked_args(calls)
            yield {
                "ph": "X",
                "cat": WORKER_CAT,
                "name": request_label(rid),
                "pid": pid,
                "tid": tid,
                "ts": self.ts(t0),
                "dur": us(t1 - t0),
                "args": args,
            }
            for c0, c1, phase in children:
                if c1 <= c0:
                    continue
                name = PHASE_NAMES[phase]
                yield {
                    "ph": "X",
                    "cat": WORKER_CAT,
                    "name": name,
                    "pid": pid,
                    "tid": tid,
                    "ts": self.ts(c0),
                    "dur": us(c1 - c0),
                    "args": {"rid": rid, "phase": name, "outside": outside},
                }
                self.summary.worker_slices += 1
            self.summary.worker_slices += 1

    # -- counters --------------------------------------------------------------------
    def _sample_at_or_after(self, t: int) -> int:
        """The index of the first counter sample at or after ``t``."""
        return max(0, -((self.t0 - t) // self.every_ns))

    def _count(self, diff: list[int], t0: int, t1: int | None) -> None:
        """Count [t0, t1) in every sample it covers (``t1`` None: to the end)."""
        lo = self._sample_at_or_after(t0)
        hi = len(diff) - 1 if t1 is None else min(len(diff) - 1, self._sample_at_or_after(t1))
        if hi > lo:
            diff[lo] += 1
            diff[hi] -= 1

    def _counters(self, e: int, inflight: list[int], queued: list[int], done: list[int]) -> Iterator[dict[str, Any]]:
        pid = self.pid(e)
        n_in = n_q = 0
        per_s = 1e9 / self.every_ns
        last = self._sample_at_or_after(self.t_end)
        for k in range(last + 1):
            n_in += inflight[k]
            n_q += queued[k]
            ts = us(k * self.every_ns)
            yield {"ph": "C", "name": "in flight", "pid": pid, "tid": pid, "ts": ts, "args": {"requests": n_in}}
            yield {"ph": "C", "name": "queued", "pid": pid, "tid": pid, "ts": ts, "args": {"requests": n_q}}
            if k:
                rate = round(done[k] * per_s, 3)
                yield {"ph": "C", "name": "req/s", "pid": pid, "tid": pid, "ts": ts, "args": {"done": rate}}
        self.summary.counters += 3 * (last + 1) - 1
        for t, se, snap in self.col.servers:  # where connections wait: the kernel's backlog, a worker
            if se == e and t >= self.t0:
                self.summary.counters += 1
                args = {key: snap.get(key, 0) for key in ("backlog", "waiting", "reading")}
                yield {"ph": "C", "name": "connections", "pid": pid, "tid": pid, "ts": self.ts(t), "args": args}
        if engine_spec(ENGINES[e]).has_loop:
            for t, le, lag in self.col.lags:
                if le == e:
                    self.summary.counters += 1
                    yield {
                        "ph": "C",
                        "name": "loop lag",
                        "pid": pid,
                        "tid": pid,
                        "ts": self.ts(t),
                        "args": {"ms": round(lag / 1e6, 6)},
                    }

    def other_data(self) -> dict[str, Any]:
        """``otherData``: where the trace came from and what it holds (read after :meth:`events`)."""
        info, s = self.col.info, self.summary
        return {
            "generator": "syncviz trace",
            "scenario": info.get("scenario"),
            "settings": info.get("settings"),
            "modes": info.get("modes"),
            "t0_monotonic_ns": self.t0,
            "engines": s.engines,
            "requests": s.requests,
            "unfinished": s.unfinished,
            "slices": s.slices,
            "clipped": s.clipped,
            "blocks": s.blocks,
            "blocks_unattached": s.blocks_unattached,
            "dropped_drains": self.col.dropped,
            "handed_over": self.col.handed,
        }


def _meta(kind: str, pid: int, tid: int, **args: Any) -> dict[str, Any]:
    return {"ph": "M", "name": kind, "pid": pid, "tid": tid, "args": args}


def build_trace(batches: Iterable[Batch] | TraceCollector) -> dict[str, Any]:
    """The Chrome Trace Event JSON object of these batches (``{"traceEvents": [...], ...}``)."""
    col = batches if isinstance(batches, TraceCollector) else collect(batches)
    export = TraceExport(col)
    events = list(export.events())
    export.summary.events = len(events)
    return {"traceEvents": events, "displayTimeUnit": DISPLAY_TIME_UNIT, "otherData": export.other_data()}


def write_trace(fp: TextIO, batches: Iterable[Batch] | TraceCollector, chunk: int = 2000) -> TraceSummary:
    """Write the same object as :func:`build_trace` to ``fp``, event by event (a long recording
    never holds all its events in memory at once); returns what it holds."""
    col = batches if isinstance(batches, TraceCollector) else collect(batches)
    export = TraceExport(col)
    dumps = json.JSONEncoder(separators=(",", ":"), ensure_ascii=False).encode
    fp.write('{"traceEvents":[\n')
    pending: list[str] = []
    written = 0
    for event in export.events():
        pending.append(dumps(event))
        if len(pending) >= chunk:
            fp.write((",\n" if written else "") + ",\n".join(pending))
            written += len(pending)
            pending = []
    if pending:
        fp.write((",\n" if written else "") + ",\n".join(pending))
        written += len(pending)
    other = json.dumps(export.other_data(), separators=(",", ":"), default=str)
    fp.write(f'\n],"displayTimeUnit":"{DISPLAY_TIME_UNIT}","otherData":{other}}}\n')
    export.summary.events = written
    return export.summary
