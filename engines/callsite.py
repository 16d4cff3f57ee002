"""Naming the call a thread is held in, from its stack: the library call, then the project's frames.

:func:`describe` (and :func:`safe_describe`, which never raises) turns a sampled stack's innermost
frame into one line, the innermost frames of the call: the library call first, then up to
:data:`PROJECT_FRAMES` of the project's own frames (file:line relative to the package)::

    time.sleep ← BlockingWork._sleep (engines/work.py:136) ← Work.io (engines/work.py:99)

It names the held call from the code alone, never by guessing: when the innermost Python frame is
the project's, the call on its current instruction (its source expression, resolved through the
frame's names by :func:`static_attr`, which runs no code); when it cannot tell, only the function
and line. :func:`holding_call` tells one held call from the next: its frames, the project's
innermost outward, or ``None`` when no call of the project holds a loop thread: it is in the loop's own
work (asyncio's ``_run_once`` and selector, gevent's ``Hub.run``, their library callbacks, the
engine's frame that runs the loop). The watchdogs (:mod:`~syncviz.engines.watchdog`) sample the
stacks and call these.
"""

from __future__ import annotations

import ast
import dis
import linecache
import os
import threading
import types
from collections.abc import Mapping
from types import CodeType, FrameType
from typing import Any

PROJECT_FRAMES = 3  # the project's own frames kept in ``where``
MAX_DEPTH = 64  # frames walked at most
MAX_WHERE = 240  # characters
ARROW = " ← "

_PACKAGE = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))  # holds engines/ and tui/
_PROJECT_DIRS = tuple(os.path.join(_PACKAGE, d) + os.sep for d in ("engines", "tui"))
_CACHE_MAX = 4096

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


def describe(top: FrameType, computing: bool = False) -> str:
    """The held call, innermost first: the library call, then up to :data:`PROJECT_FRAMES` of the
    project's own frames (consecutive ones, each ``Class.function (path:line)``).

    ``computing``: the thread was measured running Python code, not waiting in a call (its CPU
    clock went on; see :class:`~syncviz.engines.watchdog.LoopWatchdog`). Then the call on the
    innermost frame's instruction is not named: a sampler sees a computing thread where it gave up
    the GIL, at the call it has just made (``time.thread_time_ns`` in a CPU loop), which is not
    what holds the thread; the frames are.

    Cached by the frames' code and instruction and the called object's base (``self``), so a pool
    parked in the same call thousands of times a second names it once.
    """
    frames, first = _chain(top)
    names = _callee(frames[0]) if first == 0 and not computing else None
    base = _base(frames[0], names[0]) if names else _MISSING
    key = (tuple((id(fr.f_code), fr.f_lasti) for fr in frames), id(base), computing)
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


def safe_describe(top: FrameType, computing: bool = False) -> str:
    """:func:`describe`, or the function and line when naming fails (a frame it cannot read)."""
    try:
        return describe(top, computing)
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


_THREAD_BASE = threading.__file__  # the frames a thread starts in, below its target (Thread.run, _bootstrap)


def holding_call(top: FrameType) -> tuple[FrameType, ...] | None:
    """The call of the project holding a loop thread: its frames, the project's innermost outward.

    ``None`` when the thread is in its loop's own work: no frame of the project on the stack (the
    gevent hub's own greenlet), or only the one the thread was started in (the engine's ``_run``,
    running the loop: asyncio's ``_run_once``, the selector and library callbacks are above it). A
    handler's frames sit above a library frame (asyncio's ``Handle._run``, a greenlet's ``run``) or
    above another project frame (uvloop calls them from C, straight from ``_run``).

    Frame objects persist while their call runs: the same tuple (element by element, ``is``) at two
    samples is the same call, still running. A coroutine's frame persists across its awaits too, but
    the loop resumes it from a new frame each time (``Handle._run``), so the tuple tells them apart.
    """
    frames: list[FrameType] = []
    f: FrameType | None = top
    while f is not None and len(frames) < MAX_DEPTH:
        frames.append(f)
        f = f.f_back
    inner = next((i for i, fr in enumerate(frames) if project_path(fr.f_code.co_filename)), None)
    if inner is None:
        return None
    if f is None and all(fr.f_code.co_filename == _THREAD_BASE for fr in frames[inner + 1 :]):
        return None  # the thread's own target: the loop's frames (if any) are all above it
    return tuple(frames[inner:])
