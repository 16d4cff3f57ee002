"""What held the loop: a watchdog thread that looks at a held thread's stack and names the call.

gevent's monitor thread (``max_blocking_time``) and asyncio's debug mode (``slow_callback_duration``)
say *which call* held a loop, in a log. Here a watchdog thread lives beside each engine and puts
it on the event stream, as the innermost frames of the call: the library call first, then the
project's own frames (file:line relative to the package)::

    time.sleep ← BlockingWork._sleep (engines/work.py:136) ← Work.io (engines/work.py:99)

It costs a healthy engine nothing. :class:`LoopWatchdog` only reads when the loop's lag ticker
is next due and sleeps until that moment plus :data:`BLOCK_THRESHOLD_NS`; a loop that has not
run its ticker by then is held, and only then is its stack sampled (``sys._current_frames()``),
every :data:`LOOP_SAMPLE_S`, until the ticker runs again. Each call seen holding the loop for at
least the threshold is one record; back-to-back calls (two requests' sleeps) are told apart by
their frames. :class:`WorkerWatchdog` looks at a pool's threads every :data:`WORKER_SAMPLE_S` and
reports those parked in a blocking wait (a frame of ``Work.io`` on the stack: phase ``blocked``),
one wait per thread every :data:`WORKER_REPORT_NS` at most: a pool blocks all the time, thousands of
waits a second, and each thread's latest is what the picture needs. A large pool is looked at
:data:`LANES_PER_LOOK` threads at a time, resting :data:`POOL_REST_S` between two windows
(``sys._current_frames()`` costs in proportion to the process's threads: 50 a second cost 2% of a
core with 200 busy threads, where a thread that only wakes up costs 0.3%), so in such a pool a
reported wait's end is known to the rest's length.

A record is ``(t_start_ns, duration_ns, lane, ongoing, where)``. Times are estimates bounded by
what was seen: a loop's first held call is dated from the latest moment the loop was seen free
(the ticker's last run, or the gevent hub's last poll), so it may read up to one ticker period
long; calls after it, and worker waits, from the midpoint between the samples that saw the
change (a few ms). A call still holding its thread is reported ``ongoing``, with its duration
so far (to the last look that saw it), at every :meth:`~Watchdog.take`.

:func:`describe` names the held call from the code alone, never by guessing: when the innermost
Python frame is the project's, the call on its current instruction (its source expression,
resolved through the frame's names by :func:`static_attr`, which runs no code);
when it cannot tell, only the function and line.
"""

from __future__ import annotations

import ast
import contextlib
import dis
import gc
import linecache
import os
import sys
import threading
import types
from collections import deque
from collections.abc import Callable, Iterable, Mapping
from types import CodeType, FrameType
from typing import Any

from .events import now_ns

BLOCK_THRESHOLD_NS = 20_000_000
"""A loop held longer than this is reported (20 ms: two of the lag ticker's periods). The anchors,
gevent's ``max_blocking_time`` and asyncio's ``slow_callback_duration``, default to 100 ms; a
lower bar catches the 50 ms ``time.sleep`` of the ``blocking-call`` scenario."""
LOOP_SAMPLE_S = 0.002  # how often a held loop's stack is sampled
WORKER_SAMPLE_S = 0.020  # how often a pool's threads are looked at
WORKER_REPORT_NS = 500_000_000  # a pool thread's waits are reported (named, sent) at most this often each
LANES_PER_LOOK = 32  # pool threads looked at per sample (a window moving through a large pool)
POOL_REST_S = 0.1  # a pool larger than that rests between two windows: sampling a stack is O(threads)
IDLE_CHECK_S = 0.1  # the longest sleep between two looks at a loop that is not ticking yet
PROJECT_FRAMES = 3  # the project's own frames kept in ``where``
MAX_DEPTH = 64  # frames walked at most
WAIT_DEPTH = 6  # how far up a worker's stack its wait frame is looked for
MAX_WHERE = 240  # characters
MAX_KEPT = 64  # finished records kept between two takes (the oldest go first)
MAX_TAKE = 8  # records per take from a pool (the latest per thread, newest first kept)
ARROW = " ← "

Found = tuple[int, int, int, bool, str]
"""``(t_start_ns, duration_ns, lane, ongoing, where)``."""

_PACKAGE = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))  # holds engines/ and tui/
_PROJECT_DIRS = tuple(os.path.join(_PACKAGE, d) + os.sep for d in ("engines", "tui"))
_CACHE_MAX = 4096


def current_frames() -> dict[int, FrameType]:
    """``sys._current_frames()`` with the collector off meanwhile (when it was on).

    On CPython before 3.11.9 the call can deadlock the process: it holds the runtime's thread list
    lock while it allocates, a collection run there may switch threads, and every other thread then
    waits for the GIL its holder never gives back (CPython gh-106883, fixed upstream the same way).
    Seen once here: a pytest process with the threaded engine's watchdog, stuck for 19 minutes.
    """
    if not gc.isenabled():
        return sys._current_frames()
    gc.disable()
    try:
        return sys._current_frames()
    finally:
        gc.enable()


# -- naming a stack --------------------------------------------------------------------------
_paths: dict[str, str | None] = {}


def project_path(filename: str) -> str | None:
    """``engines/work.py`` for a file of this project, ``None`` for any other."""
    try:
        return _paths[filename]
    except KeyError:
        pass
    rel = os.path.relpath(filename, _PACKAGE).replace(os.sep, "/") if filename.startswith(_PROJECT_DIRS) else None
    if len(_paths) > _CACHE_MAX:
        _paths.clear()
    _paths[filename] = rel
    return rel


def _qualname(code: CodeType) -> str:
    return getattr(code, "co_qualname", code.co_name)  # co_qualname: Python 3.11+


def _site(frame: FrameType, path: str) -> str:
    return f"{_qualname(frame.f_code)} ({path}:{frame.f_lineno})"


def _chain(top: FrameType) -> tuple[list[FrameType], int | None]:
    """The frames a description uses, innermost first, and the index of the project's first one.

    Up to and including the last of the (at most :data:`PROJECT_FRAMES`) consecutive project
    frames; the innermost two when no frame is the project's.
    """
    frames: list[FrameType] = []
    first: int | None = None
    f: FrameType | None = top
    while f is not None and len(frames) < MAX_DEPTH:
        if project_path(f.f_code.co_filename):
            if first is None:
                first = len(frames)
            if len(frames) - first >= PROJECT_FRAMES:
                break
        elif first is not None:
            break
        frames.append(f)
        f = f.f_back
    return (frames, first) if first is not None else (frames[:2], None)


_wheres: dict[tuple, tuple[tuple[CodeType, ...], Any, str]] = {}


def describe(top: FrameType) -> str:
    """The held call, innermost first: the library call, then up to :data:`PROJECT_FRAMES` of the
    project's own frames (consecutive ones, each ``Class.function (path:line)``).

    Cached by the frames' code and instruction and the called object's base (``self``), so a pool
    parked in the same call thousands of times a second names it once.
    """
    frames, first = _chain(top)
    names = _callee(frames[0]) if first == 0 else None
    base = _base(frames[0], names[0]) if names else _MISSING
    key = (tuple((id(fr.f_code), fr.f_lasti) for fr in frames), id(base))
    hit = _wheres.get(key)
    if hit is not None and hit[1] is base and all(c is fr.f_code for c, fr in zip(hit[0], frames, strict=True)):
        return hit[2]
    if first is None:  # no frame of ours: the innermost ones as they are
        where = ARROW.join(_site(fr, os.path.basename(fr.f_code.co_filename)) for fr in frames)
    else:
        parts = []
        if first > 0:  # our code called into a library's Python code: name the function it called
            lib = frames[first - 1]
            parts.append(f"{lib.f_globals.get('__name__', '?')}.{_qualname(lib.f_code)}")
        elif names and base is not _MISSING:
            call = _resolve(base, names[1:])
            if call:
                parts.append(call)
        parts += [_site(fr, project_path(fr.f_code.co_filename) or "?") for fr in frames[first:]]
        where = ARROW.join(parts)
    where = where[:MAX_WHERE]
    if len(_wheres) > _CACHE_MAX:
        _wheres.clear()
    _wheres[key] = (tuple(fr.f_code for fr in frames), base, where)
    return where


def safe_describe(top: FrameType) -> str:
    """:func:`describe`, or the function and line when naming fails (a frame it cannot read)."""
    try:
        return describe(top)
    except Exception:
        return f"{_qualname(top.f_code)} ({os.path.basename(top.f_code.co_filename)}:{top.f_lineno})"


def held_call(frame: FrameType) -> str | None:
    """The function ``frame`` is calling right now (``time.sleep``), named from its code; ``None``
    when it is not in a call, or the call cannot be told from the source."""
    names = _callee(frame)
    if not names:
        return None
    base = _base(frame, names[0])
    return None if base is _MISSING else _resolve(base, names[1:])


def _base(frame: FrameType, name: str) -> Any:
    """What ``name`` means in ``frame``: a local (read from a snapshot of its locals), a global, a builtin."""
    code = frame.f_code
    if name in code.co_varnames or name in code.co_cellvars or name in code.co_freevars:
        scope: Mapping[str, Any] = frame.f_locals
    elif name in frame.f_globals:
        scope = frame.f_globals
    else:
        scope = frame.f_builtins
    return scope.get(name, _MISSING)


def _resolve(obj: Any, attrs: list[str]) -> str | None:
    owner = None
    for attr in attrs:
        value = static_attr(obj, attr)
        if value is _MISSING:
            return None
        owner, obj = obj, value
    return _callable_name(obj, owner)


_MISSING = object()


def static_attr(obj: Any, name: str) -> Any:
    """``obj.name`` as stored, running none of its code (no property, no ``__getattr__``), like
    :func:`inspect.getattr_static` but cheap: a module's or class's own dicts, else a data
    descriptor of the type (a slot's value; anything else is not read), the instance's dict, the
    type's attribute. :data:`_MISSING` when it cannot tell."""
    if isinstance(obj, types.ModuleType):
        return obj.__dict__.get(name, _MISSING)
    if isinstance(obj, type):
        for klass in obj.__mro__:
            if name in klass.__dict__:
                return klass.__dict__[name]
        return _MISSING
    found = _MISSING
    for klass in type(obj).__mro__:
        if name in klass.__dict__:
            found = klass.__dict__[name]
            break
    if isinstance(found, types.MemberDescriptorType):  # a __slots__ entry: read it in C
        try:
            return found.__get__(obj, type(obj))
        except AttributeError:
            return _MISSING
    if found is not _MISSING and (hasattr(type(found), "__set__") or hasattr(type(found), "__delete__")):
        return _MISSING  # a property or other data descriptor: reading it would run code
    try:
        own = object.__getattribute__(obj, "__dict__")
    except AttributeError:
        own = None
    if isinstance(own, dict) and name in own:
        return own[name]
    return found


def _callable_name(value: Any, owner: Any) -> str | None:
    if isinstance(value, (staticmethod, classmethod)):
        value = value.__func__
    if isinstance(value, types.BuiltinFunctionType):  # a C function, or a C method bound to its object
        bound = value.__self__
        if bound is None or isinstance(bound, types.ModuleType):
            module = value.__module__ or getattr(bound, "__name__", None)
            return value.__name__ if module in (None, "builtins") else f"{module}.{value.__name__}"
        return f"{_type_name(bound if isinstance(bound, type) else type(bound))}.{value.__name__}"
    if isinstance(value, (types.MethodDescriptorType, types.WrapperDescriptorType, types.ClassMethodDescriptorType)):
        cls = owner if isinstance(owner, type) else type(owner)
        return f"{_type_name(cls)}.{value.__name__}"
    if isinstance(value, types.MethodType):
        value = value.__func__
    if isinstance(value, types.FunctionType):
        return f"{value.__module__}.{value.__qualname__}"
    if isinstance(value, type):
        return _type_name(value)
    return None


def _type_name(cls: type) -> str:
    return cls.__qualname__ if cls.__module__ == "builtins" else f"{cls.__module__}.{cls.__qualname__}"


_instructions: dict[int, tuple[CodeType, dict[int, dis.Instruction]]] = {}
_callees: dict[tuple[int, int], tuple[CodeType, list[str] | None]] = {}


def _callee(frame: FrameType) -> list[str] | None:
    """The dotted name the frame's current instruction calls (``["self", "sleep"]``), cached."""
    code, lasti = frame.f_code, frame.f_lasti
    key = (id(code), lasti)  # a code object's own hash is computed afresh each time: ids, checked
    hit = _callees.get(key)
    if hit is not None and hit[0] is code:
        return hit[1]
    try:
        names = _parse_callee(code, lasti, frame.f_lineno)
    except (SyntaxError, ValueError, UnicodeDecodeError):
        names = None
    if len(_callees) > _CACHE_MAX:
        _callees.clear()
    _callees[key] = (code, names)
    return names


def _parse_callee(code: CodeType, lasti: int, lineno: int | None) -> list[str] | None:
    hit = _instructions.get(id(code))
    if hit is not None and hit[0] is code:
        by_offset = hit[1]
    else:
        if len(_instructions) > 256:
            _instructions.clear()
        by_offset = {ins.offset: ins for ins in dis.get_instructions(code)}
        _instructions[id(code)] = (code, by_offset)
    ins = by_offset.get(lasti)
    # A warmed-up call of a C function runs inside its PRECALL (3.11's specialized forms): the same span.
    if ins is None or not ins.opname.startswith(("CALL", "PRECALL")) or ins.opname.startswith("CALL_INTRINSIC"):
        return None
    pos = getattr(ins, "positions", None)  # Python 3.11+: the call expression's span
    if pos is not None and None not in (pos.lineno, pos.end_lineno, pos.col_offset, pos.end_col_offset):
        lines = [linecache.getline(code.co_filename, n).encode() for n in range(pos.lineno, pos.end_lineno + 1)]
        if len(lines) == 1:
            segment = lines[0][pos.col_offset : pos.end_col_offset]
        else:
            segment = lines[0][pos.col_offset :] + b"".join(lines[1:-1]) + lines[-1][: pos.end_col_offset]
        node = ast.parse(b"(" + segment + b")", mode="eval").body
        calls = [node] if isinstance(node, ast.Call) else []
    elif lineno:  # older Pythons: the line's one call, if it has exactly one
        tree = ast.parse(linecache.getline(code.co_filename, lineno).strip())
        calls = [n for n in ast.walk(tree) if isinstance(n, ast.Call)]
    else:
        return None
    return _dotted(calls[0].func) if len(calls) == 1 else None


def _dotted(node: ast.expr) -> list[str] | None:
    if isinstance(node, ast.Name):
        return [node.id]
    if isinstance(node, ast.Attribute):
        head = _dotted(node.value)
        return None if head is None else [*head, node.attr]
    return None


def _holder(top: FrameType) -> FrameType:
    """The innermost frame of the project's own code (the call that holds the thread), else ``top``."""
    f: FrameType | None = top
    for _ in range(MAX_DEPTH):
        if f is None:
            break
        if project_path(f.f_code.co_filename):
            return f
        f = f.f_back
    return top


# -- the watchdogs ---------------------------------------------------------------------------
class _Found:
    """Calls found so far: finished ones (bounded) and those still holding their thread.

    The watchdog thread writes, the draining thread takes; every step is one GIL-atomic
    operation, and a call leaves ``ongoing`` before it enters ``done``.
    """

    def __init__(self, latest_per_lane: bool) -> None:
        self.done: deque[Found] = deque(maxlen=MAX_KEPT)
        self.ongoing: dict[int, tuple[int, str, int]] = {}  # lane -> (t_start_ns, where, last seen holding)
        self.latest_per_lane = latest_per_lane

    def finish(self, lane: int, start: int, end: int, where: str | None, threshold: int) -> None:
        self.ongoing.pop(lane, None)
        if where is not None and end - start >= threshold:
            self.done.append((start, end - start, lane, False, where))

    def take(self, now: int) -> list[Found]:
        done = self.done
        out = [done.popleft() for _ in range(len(done))]
        # An ongoing call's duration so far is up to the last look that saw it: what is known.
        ongoing = list(self.ongoing.items())
        out += [(t, max(0, min(seen, now) - t), lane, True, where) for lane, (t, where, seen) in ongoing]
        if self.latest_per_lane and out:
            latest: dict[int, Found] = {}
            for rec in out:  # ongoing ones come last: they win over a finished one of the same start
                prev = latest.get(rec[2])
                if prev is None or rec[0] >= prev[0]:
                    latest[rec[2]] = rec
            out = sorted(latest.values())[-MAX_TAKE:]
        return out


class Watchdog:
    """A daemon thread looking at other threads' stacks; :meth:`take` returns what it found.

    It never keeps the process alive (daemon) nor raises: a failure ends its looking, quietly.
    The engine that starts it stops and joins it (:meth:`stop`, then ``thread.join``).
    """

    def __init__(self, name: str, threshold_ns: int, latest_per_lane: bool) -> None:
        self.threshold_ns = threshold_ns
        self.found = _Found(latest_per_lane)
        self._stopping = threading.Event()
        self.thread = threading.Thread(target=self._main, name=name, daemon=True)

    def start(self) -> Watchdog:
        self.thread.start()
        return self

    def stop(self) -> None:
        self._stopping.set()

    def take(self, now: int) -> list[Found]:
        """Calls finished since the last take, and those still going on (their duration so far)."""
        return self.found.take(now)

    def _main(self) -> None:
        with contextlib.suppress(Exception):  # never a traceback, never the engine's problem: it stops looking
            self._watch()

    def _watch(self) -> None:
        raise NotImplementedError


class LoopWatchdog(Watchdog):
    """Watches one loop (or hub) thread through its lag ticker's due time (``due()``, 0: not yet).

    ``free_since()``, when given, is the latest moment the loop is known to have been free (a hub's
    last poll), a closer start for a stall's first call than the ticker's last run.
    """

    def __init__(
        self,
        thread: threading.Thread,
        due: Callable[[], int],
        period_ns: int,
        free_since: Callable[[], int] | None = None,
        lane: int = 0,
        threshold_ns: int = BLOCK_THRESHOLD_NS,
        sample_s: float = LOOP_SAMPLE_S,
    ) -> None:
        super().__init__(f"{thread.name}-watchdog", threshold_ns, latest_per_lane=False)
        self._loop_thread = thread
        self._due = due
        self._free_since = free_since
        self.period_ns = period_ns
        self.lane = lane
        self.sample_s = sample_s

    def _watch(self) -> None:
        wait, due_of = self._stopping.wait, self._due
        while not self._stopping.is_set():
            due = due_of()
            if not due:
                wait(IDLE_CHECK_S)
                continue
            late = due + self.threshold_ns - now_ns()
            if late > 0:  # healthy so far: look again when it would be late
                wait(min(IDLE_CHECK_S, late / 1e9))
                continue
            self._held(due)

    def _held(self, due: int) -> None:
        """Sample the held loop until its ticker runs again; one record per call that held it."""
        ident, lane, period, threshold = self._loop_thread.ident, self.lane, self.period_ns, self.threshold_ns
        found = self.found
        key: FrameType | None = None
        start = due - period  # the ticker's last run: the latest moment the loop was seen free
        if self._free_since is not None:
            start = max(start, min(self._free_since(), now_ns()))
        last = start
        where: str | None = None
        while True:
            top = current_frames().get(ident)  # type: ignore[arg-type]
            now, again = now_ns(), self._due()
            if again != due or top is None or self._stopping.is_set():
                end = max(last, min(now, again - period)) if again != due else now  # the ticker's new run
                found.finish(lane, start, end, where, threshold)
                return
            holder = _holder(top)
            if holder is not key:  # another call holds it now: the one before ended between two looks
                if key is not None:
                    switch = (last + now) // 2
                    found.finish(lane, start, switch, where, threshold)
                    start = switch
                key, where = holder, None
            if where is None and now - start >= threshold:
                where = safe_describe(top)
            if where is not None:
                found.ongoing[lane] = (start, where, now)
            last = now
            top = holder = None  # type: ignore[assignment]
            self._stopping.wait(self.sample_s)


class _Wait:
    __slots__ = ("named", "seen", "start", "top", "where")

    def __init__(self, top: FrameType, start: int, seen: int) -> None:
        self.top = top
        self.start = start
        self.seen = seen
        self.where: str | None = None
        self.named = False  # looked at once it passed the threshold (named, or skipped: reported lately)


class WorkerWatchdog(Watchdog):
    """Watches a pool's threads (``workers()``: lane -> thread) for waits longer than the threshold.

    A thread is waiting when a frame of ``wait_codes`` (``Work.io``: the phase ``blocked``) is on
    its stack; it is the same wait while its innermost frame stays the same (one call of it).
    """

    def __init__(
        self,
        name: str,
        workers: Callable[[], Mapping[int, threading.Thread]],
        wait_codes: Iterable[CodeType],
        threshold_ns: int = BLOCK_THRESHOLD_NS,
        sample_s: float = WORKER_SAMPLE_S,
    ) -> None:
        super().__init__(f"{name}-watchdog", threshold_ns, latest_per_lane=True)
        self._workers = workers
        self._wait_codes = {id(c): c for c in wait_codes}  # by id: a code object's hash is not cached
        self.sample_s = sample_s

    def _watch(self) -> None:
        waits: dict[int, _Wait] = {}
        reported: dict[int, int] = {}  # lane -> when its last reported wait began
        found, threshold = self.found, self.threshold_ns
        half = int(self.sample_s * 1e9) // 2
        order: list[int] = []
        pos = looks = 0
        rest = 0.0
        while not self._stopping.wait(self.sample_s + rest):
            pool = dict(self._workers())
            if len(order) != len(pool):
                order, pos = sorted(pool), 0
            # A window of the pool, looked at twice (a wait seen twice is longer than the threshold),
            # then the next one; and every thread whose wait is being reported, until it ends.
            n = len(order)
            look = {order[(pos + i) % n] for i in range(min(n, LANES_PER_LOOK))}
            looks += 1
            rest = 0.0
            if looks == 2:
                looks, pos = 0, (pos + LANES_PER_LOOK) % max(1, n)
                rest = POOL_REST_S if n > LANES_PER_LOOK else 0.0
            look.update(lane for lane, w in waits.items() if w.where is not None)
            frames = current_frames()
            now = now_ns()
            for lane in look:
                thread = pool.get(lane)
                top = frames.get(thread.ident) if thread is not None else None  # type: ignore[arg-type]
                w = waits.get(lane)
                if w is not None:
                    if top is w.top:  # still the same wait (the same call: a sleep's slices are one wait)
                        w.seen = now
                        if not w.named and now - w.start >= threshold:
                            w.named = True
                            if now - reported.get(lane, -WORKER_REPORT_NS) >= WORKER_REPORT_NS:
                                reported[lane] = now
                                w.where = safe_describe(top)
                        if w.where is not None:
                            found.ongoing[lane] = (w.start, w.where, now)
                        continue
                    del waits[lane]
                    found.finish(lane, w.start, (w.seen + now) // 2, w.where, threshold)
                if top is not None and self._waiting(top):
                    waits[lane] = _Wait(top, now - half, now)
            for lane in waits.keys() - look:  # out of the window, not reported: forgotten
                del waits[lane]
            del frames, pool

    def _waiting(self, top: FrameType) -> bool:
        f: FrameType | None = top
        codes = self._wait_codes
        for _ in range(WAIT_DEPTH):
            if f is None:
                return False
            code = f.f_code
            if codes.get(id(code)) is code:
                return True
            f = f.f_back
        return False
