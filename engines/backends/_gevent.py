"""The gevent engine: one hub in its own thread, one greenlet per connection.

Like ``gunicorn -k gevent``, but with no monkey patching: the handler uses gevent's own
``sleep`` and sockets, so its waits switch to the hub (YIELDED). In the ``blocking`` mode it
gets the stdlib versions instead, which never yield: the whole hub is BLOCKED.

The hub is this thread's own (``gevent.get_hub()`` inside it); it is stopped from outside
through ``hub.loop.run_callback_threadsafe`` and destroyed when ``serve_forever`` returns.
"""

from __future__ import annotations

import contextlib

import gevent
import gevent.pool
import gevent.server
import gevent.socket

from ..events import Phase, now_ns
from ..http import BAD_REQUEST, BadRequest, parse_request
from ..registry import GEVENT_POOL
from ..work import BlockingWork, serve_sync
from ._loop import LoopEngine

HUB = 0  # the lane of the hub's thread
READ_TIMEOUT_S = 60.0


class GeventWork(BlockingWork):
    """Cooperative: ``gevent.sleep`` and gevent sockets switch to the hub while waiting."""

    WAIT_PHASE = Phase.YIELDED
    sockets = gevent.socket
    sleep = staticmethod(gevent.sleep)


class GeventEngine(LoopEngine):
    name = "gevent"
    native_work = GeventWork
    thread_name = "gevent-hub"

    def _run(self) -> None:
        hub = gevent.get_hub()  # this thread's own hub and loop
        self._hub = hub
        try:
            listener = gevent.socket.socket(fileno=self._lsock.detach())
            self._pool = gevent.pool.Pool(GEVENT_POOL)
            self._server = gevent.server.StreamServer(listener, self._handle, spawn=self._pool)
            self._server.start()
            self._ticker = gevent.spawn(self._tick)
            # A high-priority check watcher runs right after each poll, before the I/O
            # callbacks that switch into the woken greenlets: its time is when they turned READY.
            self._t_poll, self._polls = now_ns(), 0
            self._poll_watcher = hub.loop.check()
            self._poll_watcher.priority = 2
            self._poll_watcher.start(self._polled)
            self._ready.set()
            self._server.serve_forever()
        except BaseException as exc:  # reported by start(); never a traceback on the terminal
            self._error = exc
            self._ready.set()
        finally:
            if getattr(self, "_poll_watcher", None) is not None:
                self._poll_watcher.stop()
                self._poll_watcher.close()
            self.native.close()
            self.blocking.close()
            hub.destroy(destroy_loop=True)

    def _tick(self) -> None:
        for period in self._ticks():
            gevent.sleep(period)

    def _polled(self) -> None:
        self._t_poll = now_ns()
        self._polls += 1

    def _handle(self, sock: gevent.socket.socket, _address: object) -> None:
        sock.settimeout(READ_TIMEOUT_S)
        buf = bytearray()
        try:
            while True:
                req, used = parse_request(buf)
                polls = self._polls
                while req is None:
                    data = sock.recv(65536)
                    if not data:
                        return
                    buf += data
                    req, used = parse_request(buf)
                del buf[:used]
                rid = self.request_id(req)
                work = self.native if self.mode == "native" else self.blocking
                if polls != self._polls:  # it waited for the hub: READY since the poll that woke it
                    work.emit_at(self._t_poll, rid, HUB, Phase.READY)
                work.emit(rid, HUB, Phase.RUNNING)
                serve_sync(req, rid, HUB, work, self.settings, sock.sendall)
                if not req.keep_alive:
                    return
        except BadRequest:
            with contextlib.suppress(OSError):
                sock.sendall(BAD_REQUEST)
        except OSError:
            pass
        finally:
            sock.close()

    def _request_stop(self) -> None:
        def stop_in_hub() -> None:
            gevent.spawn(self._shutdown)

        self._hub.loop.run_callback_threadsafe(stop_in_hub)

    def _shutdown(self) -> None:
        """Runs in the hub: close the listener, kill idle keep-alive handlers, then stop."""
        self._server.close()
        self._ticker.kill(block=False)
        self._pool.kill(block=True, timeout=1)
        self._server.stop(timeout=0)
