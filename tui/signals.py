"""SIGTERM, SIGINT and SIGHUP make the app leave the way ``q`` does, whenever they arrive.

Exit status after a signal is ``128 + signum`` (the shell's convention: 143 for SIGTERM,
130 for SIGINT, 129 for SIGHUP); ``q`` and ``ctrl+c`` as a key exit 0.

Two layers:

* While the app runs, :func:`install` (from the app's ``on_mount``) puts handlers on the
  running asyncio loop that call ``app.exit``. Textual then restores the terminal (leaves
  the alternate screen, stops mouse tracking, turns echo and canonical mode back on) and
  the caller closes the event source. :func:`uninstall` (``on_unmount``) puts back the
  handlers that were there before.
* Around the whole launch, :class:`LaunchGuard` covers the rest. A signal before the app is
  mounted (the engine process still starting) is remembered: the launch closes the source
  and never opens the app, or :func:`install` exits the app as soon as it mounts. A signal
  after the app has gone is remembered too, so closing the source (the engine process, its
  threads and ports) is never cut short. Only a second signal before the app has mounted
  raises :class:`SignalExit` at once (a way out of a stuck start).

Job control (:func:`_guard_job_control`): Textual's driver answers every SIGCONT by starting
its terminal mode again, which saves the terminal's attributes afresh. A SIGCONT the app had not
stopped for (``timeout`` sends one right after its SIGTERM; ``kill -CONT``) made it save raw mode
as the mode to restore, and the app left the terminal raw (no echo) on exit. Only a SIGCONT after
the driver's own SIGTSTP (ctrl+z) reaches it; any other repaints the app, as a resume does; once
the app unmounts neither signal touches the terminal.
"""

from __future__ import annotations

import contextlib
import os
import signal
import threading
import time
import weakref
from collections.abc import Callable, Iterator
from types import FrameType
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import asyncio

    from textual.app import App

EXIT_SIGNALS: tuple[signal.Signals, ...] = (signal.SIGTERM, signal.SIGINT, signal.SIGHUP)

_Handler = Callable[[int, FrameType | None], Any] | int | None
_previous: weakref.WeakKeyDictionary[App[Any], dict[signal.Signals, _Handler]] = weakref.WeakKeyDictionary()
_guard: LaunchGuard | None = None


def exit_status(signum: int) -> int:
    """The process's exit status after this signal: 128 + its number."""
    return 128 + signum


class SignalExit(SystemExit):
    """A signal while nothing could exit cleanly yet; exits with :func:`exit_status` (no traceback)."""

    def __init__(self, signum: int) -> None:
        super().__init__(exit_status(signum))
        self.signum = signum


class Interrupted(KeyboardInterrupt):
    """SIGTERM or SIGHUP during a headless command: it unwinds as ctrl+c does (every ``with`` and
    ``finally`` closes what it started: processes, ports, a half-written file), then exits
    with :func:`exit_status`."""

    def __init__(self, signum: int) -> None:
        super().__init__()
        self.signum = signum


@contextlib.contextmanager
def interrupt_on_signals() -> Iterator[None]:
    """Around a headless command (bench, record, trace, claims, serve): SIGTERM and SIGHUP raise
    :class:`Interrupted` where SIGINT raises ``KeyboardInterrupt``; they killed the process
    before, leaving its partial file and its engine processes for a while. Only the first
    raises: a second one arriving while the first unwinds is dropped, not cutting the cleanup short."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    raised = False

    def on_signal(signum: int, _frame: FrameType | None) -> None:
        nonlocal raised
        if not raised:
            raised = True
            raise Interrupted(signum)

    saved = {sig: signal.signal(sig, on_signal) for sig in (signal.SIGTERM, signal.SIGHUP)}
    try:
        yield
    finally:
        for sig, handler in saved.items():
            signal.signal(sig, handler if handler is not None else signal.SIG_DFL)


class LaunchGuard:
    """``with LaunchGuard() as guard:`` around starting the source, running the app and closing it.

    ``guard.signum`` is the first exit signal that arrived (``None``: none did), and
    ``guard.status`` its exit status. Outside the app's run the handlers only remember the
    signal (a second one before the app mounted raises :class:`SignalExit`); the launch checks
    ``guard.status`` and exits the slow way, with everything closed.
    """

    def __init__(self) -> None:
        self.signum: int | None = None
        self.app_seen = False  # an app mounted under this guard: never raise after that
        self.on_stuck: Callable[[], None] | None = None  # closes the source if leaving hangs
        self.finished = False  # the launch left its ``with`` block
        self._saved: dict[signal.Signals, _Handler] = {}
        self._outer: LaunchGuard | None = None

    @property
    def status(self) -> int | None:
        return None if self.signum is None else exit_status(self.signum)

    def __enter__(self) -> LaunchGuard:
        global _guard
        if threading.current_thread() is threading.main_thread():
            for sig in EXIT_SIGNALS:
                self._saved[sig] = signal.signal(sig, self._on_signal)
        self._outer, _guard = _guard, self
        return self

    def __exit__(self, *exc: object) -> None:
        global _guard
        self.finished = True
        _guard = self._outer
        for sig, handler in self._saved.items():
            signal.signal(sig, handler if handler is not None else signal.SIG_DFL)
        self._saved.clear()

    def note(self, signum: int) -> None:
        if self.signum is None:
            self.signum = signum

    def _on_signal(self, signum: int, frame: FrameType | None) -> None:
        first = self.signum is None
        self.note(signum)
        if first or self.app_seen:
            return  # install() exits the app as it mounts, or the launch skips it or is finishing
        raise SignalExit(signum)  # asked twice before any app mounted: go now


def _running_loop() -> asyncio.AbstractEventLoop | None:
    with contextlib.suppress(RuntimeError):
        import asyncio  # here: the headless commands import this module and never need it

        return asyncio.get_running_loop()
    return None


def _exit_app(app: App[Any], signum: int) -> None:
    if _guard is not None:
        _guard.note(signum)
    status = exit_status(signum)
    _start_watchdog(status)
    app.exit(status, return_code=status)


EXIT_GRACE_S = 5.0
"""After an exit signal, how long the app may take to leave before the watchdog ends it."""


def _start_watchdog(status: int) -> None:
    """A way out when leaving hangs: after SIGHUP the terminal is gone and Textual's writer can
    block forever on it. The watchdog closes the source (no engine left behind) and exits."""
    guard = _guard
    if guard is None:  # not a real launch (an app under test): nothing to guard
        return
    cleanup = guard.on_stuck

    def run() -> None:
        time.sleep(EXIT_GRACE_S)
        if guard.finished:  # the launch got out by itself
            return
        if cleanup is not None:
            with contextlib.suppress(Exception):
                cleanup()
        os._exit(status)

    threading.Thread(target=run, name="exit-watchdog", daemon=True).start()


def install(app: App[Any]) -> None:
    """Exit signals call ``app.exit(128 + signum)`` from now on; call from the app's ``on_mount``.

    A signal that reached the launch guard before the app mounted exits the app at once.
    Does nothing off the main thread or without a running loop that supports signals.
    """
    loop = _running_loop()
    if loop is None or threading.current_thread() is not threading.main_thread() or app in _previous:
        return
    previous = {sig: signal.getsignal(sig) for sig in EXIT_SIGNALS}
    try:
        for sig in EXIT_SIGNALS:
            loop.add_signal_handler(sig, _exit_app, app, sig)
    except (NotImplementedError, RuntimeError, ValueError):
        _restore(loop, previous)
        return
    _previous[app] = previous
    _guard_job_control(app, loop)
    if _guard is not None:
        _guard.app_seen = True
        if _guard.signum is not None:
            _exit_app(app, _guard.signum)


def uninstall(app: App[Any]) -> None:
    """Put back the handlers :func:`install` replaced; call from the app's ``on_unmount``."""
    previous = _previous.pop(app, None)
    loop = _running_loop()
    if previous is not None and loop is not None:
        _restore(loop, previous)
        for sig in JOB_SIGNALS:  # the terminal is being given back: a late SIGCONT must not take it again
            signal.signal(sig, signal.SIG_DFL)


JOB_SIGNALS = (signal.SIGTSTP, signal.SIGCONT)


def _guard_job_control(app: App[Any], loop: asyncio.AbstractEventLoop) -> None:
    """Pass SIGCONT to Textual's driver only after its own SIGTSTP; any other repaints (see the module)."""
    tstp, cont = (signal.getsignal(sig) for sig in JOB_SIGNALS)
    if not callable(tstp) or not callable(cont):  # not Textual's Linux driver (a headless test app)
        return
    stopped = threading.Event()  # the driver suspended the app (ctrl+z): its SIGCONT is a resume

    def on_tstp(signum: int, frame: FrameType | None) -> None:
        stopped.set()
        tstp(signum, frame)

    def on_cont(signum: int, frame: FrameType | None) -> None:
        if stopped.is_set():
            stopped.clear()
            cont(signum, frame)
        else:  # stopped from outside (SIGSTOP) or not at all: the terminal's mode is still the app's
            loop.call_soon_threadsafe(app.app_resume_signal.publish, app)

    signal.signal(signal.SIGTSTP, on_tstp)
    signal.signal(signal.SIGCONT, on_cont)


def _restore(loop: asyncio.AbstractEventLoop, previous: dict[signal.Signals, _Handler]) -> None:
    # remove_signal_handler leaves SIG_DFL behind, so the old handler goes back after it
    for sig, handler in previous.items():
        loop.remove_signal_handler(sig)
        signal.signal(sig, handler if handler is not None else signal.SIG_DFL)


__all__ = ["EXIT_SIGNALS", "LaunchGuard", "SignalExit", "exit_status", "install", "uninstall"]
