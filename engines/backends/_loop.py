"""What the asyncio and gevent engines share: one loop (or hub) thread, its lag ticker, start and stop.

Both run every request on one thread (lane 0) that waits in its own way (awaiting or
yielding), with the stdlib's blocking calls at hand for the "mistake" scenarios. They
differ only in how that thread serves (``_run``) and how another thread asks it to shut
down (``_request_stop``).
"""

from __future__ import annotations

import threading
from abc import abstractmethod
from collections.abc import Iterator
from typing import ClassVar

from ..base import STOP_TIMEOUT_S, Engine, EngineError, join_threads, listen
from ..counts import KEEPALIVE_IDLE_S, ServerSnapshot
from ..events import now_ns
from ..watchdog import LoopWatchdog
from ..work import BlockingWork, Work

LAG_TICK_S = 0.010  # the loop/hub ticker's period; its lateness is the loop lag
START_TIMEOUT_S = 5.0


class LoopEngine(Engine):
    """An engine whose one loop thread runs every request: asyncio's event loop, gevent's hub.

    Subclasses set ``native_work`` (how the handler waits natively) and ``thread_name``, and
    implement ``_run`` (serve in the loop thread, setting ``self._ready`` once serving) and
    ``_request_stop``.
    """

    native_work: ClassVar[type[Work]]
    thread_name: ClassVar[str]
    keepalive_idle_s: ClassVar[float] = KEEPALIVE_IDLE_S  # an idle keep-alive connection closes after this
    _tick_due = 0  # when the ticker is due to run again (0: not ticking yet)

    def start(self) -> int:
        self._lsock = listen(self.host, self.port)
        self.counts.listener = self._lsock  # its accept queue: counts.accept_queue
        self.port = self._lsock.getsockname()[1]
        self.counts.workers = 1  # the loop or hub
        self._served_ok = 0  # requests served DONE counted by the loop thread alone, without the counts' lock
        self._served_folded = 0  # of which already added to self.counts (by server_snapshot)
        self._fold_lock = threading.Lock()
        self.new_id = self._external_ids.__next__  # provisional_id without its lock: one thread takes ids
        self.native = self.native_work(self.recorder, self.engine_id, self.upstream_port)
        self.blocking = BlockingWork(self.recorder, self.engine_id, self.upstream_port)
        self._ready = threading.Event()
        self._error: BaseException | None = None
        self._thread = threading.Thread(target=self._run, name=self.thread_name, daemon=True)
        self._thread.start()
        self._ready.wait(START_TIMEOUT_S)
        if self._error is not None:
            raise EngineError(f"{self.name} engine failed to start: {self._error}")
        self._start_watchdog(
            LoopWatchdog(self._thread, lambda: self._tick_due, int(LAG_TICK_S * 1e9), self._free_since_ns)
        )
        return self.port

    def server_snapshot(self, t_ns: int) -> ServerSnapshot:
        """The source counters now, the loop's own count of requests served (``_served_ok``) added in."""
        with self._fold_lock:
            n = self._served_ok  # one int read: only the loop thread writes it
            if n != self._served_folded:
                self.counts.add(served=n - self._served_folded)
                self._served_folded = n
        return self.counts.snapshot(t_ns)

    @abstractmethod
    def _run(self) -> None:
        """The loop thread: serve until stopped; set ``self._ready`` once serving (or ``_error``)."""

    # -- the lag ticker ------------------------------------------------------------------
    def _ticks(self) -> Iterator[float]:
        """The ticker's body, driven by the loop: sleep each yielded period its own way.

        How late each sleep wakes up is the loop lag; ``_tick_due`` lets :meth:`overdue_ns`
        see a stall before it ends.
        """
        lag, engine = self.recorder.lag, self.engine_id
        period = int(LAG_TICK_S * 1e9)
        while True:
            t0 = now_ns()
            self._tick_due = t0 + period
            yield LAG_TICK_S
            t1 = now_ns()
            if self.recorder.enabled:
                lag((t1, engine, max(0, t1 - t0 - period)))

    def overdue_ns(self, now: int) -> int:
        return max(0, now - self._tick_due) if self._tick_due else 0

    def _free_since_ns(self) -> int:
        """The latest moment the loop was seen free besides its ticker's runs: the gevent hub's last
        poll (``_t_poll``, kept by engines/backends/_gevent.py); 0 when the engine keeps none."""
        return getattr(self, "_t_poll", 0)

    # -- stop ----------------------------------------------------------------------------
    def stop(self, timeout: float = STOP_TIMEOUT_S) -> None:
        self._stop_watchdog(now_ns() + int(timeout * 1e9))  # first: a loop ending is not a loop held
        thread = getattr(self, "_thread", None)
        if thread is None or not thread.is_alive():
            return
        deadline = now_ns() + int(timeout * 1e9)
        self.native.stopping = self.blocking.stopping = True  # CPU steps and waits in progress end now
        self.blocking.abort()  # so does a blocking call parked on the upstream
        self._request_stop()
        join_threads(self.name, [thread], deadline)
        join_threads(self.name, self._helper_threads(), deadline)
        self._lsock.close()

    @abstractmethod
    def _request_stop(self) -> None:
        """From another thread: ask the loop to close its sockets and return from ``_run``."""

    def _helper_threads(self) -> list[threading.Thread]:
        """Threads besides the loop's to join once it has ended (asyncio's offload workers)."""
        return []
