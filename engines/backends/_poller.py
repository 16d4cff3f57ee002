"""The threaded engine's readiness: parked connections armed for one readable event each.

Its selector thread parks idle keep-alive connections and hands a readable one to the pool for
one request; the pool gives it back to be parked again. :class:`Poller` is that arm-once cycle,
on epoll's ``EPOLLONESHOT`` where there is epoll (Linux), else on :mod:`selectors`.
"""

from __future__ import annotations

import contextlib
import select
import selectors
import socket
from typing import Protocol


class Conn(Protocol):
    """What the poller needs of a connection: its socket."""

    sock: socket.socket


class Poller:
    """The selector thread's readiness: parked connections armed for one readable event each.

    With epoll (Linux) a connection is registered once, ``EPOLLONESHOT``: readiness disarms it and
    parking it again re-arms it (one ``epoll_ctl``, where a selector unregisters and registers again:
    two, and a ``SelectorKey`` each). Elsewhere :mod:`selectors` does the same with both calls.
    """

    def __init__(self) -> None:
        epoll = getattr(select, "epoll", None)
        self._ep = epoll() if epoll is not None else None
        self._sel = selectors.DefaultSelector() if self._ep is None else None
        self._by_fd: dict[int, object] = {}  # epoll: descriptor -> its connection or socket

    def watch(self, sock: socket.socket) -> None:
        """Report ``sock`` (a listener, a wake-up socket) whenever it is readable."""
        if self._ep is not None:
            self._by_fd[sock.fileno()] = sock
            self._ep.register(sock.fileno(), select.EPOLLIN)
        else:
            self._sel.register(sock, selectors.EVENT_READ, sock)  # type: ignore[union-attr]

    def arm(self, conn: Conn) -> None:
        """Report ``conn`` once, the next time it is readable (OSError, ValueError: it is closed)."""
        if self._ep is None:
            self._sel.register(conn.sock, selectors.EVENT_READ, conn)  # type: ignore[union-attr]
            return
        fd = conn.sock.fileno()
        if fd < 0:
            raise ValueError("closed")
        if self._by_fd.get(fd) is conn:
            self._ep.modify(fd, select.EPOLLIN | select.EPOLLONESHOT)
        else:
            self._by_fd[fd] = conn
            try:
                self._ep.register(fd, select.EPOLLIN | select.EPOLLONESHOT)
            except FileExistsError:  # a descriptor closed without forget(): its number's old entry
                self._ep.modify(fd, select.EPOLLIN | select.EPOLLONESHOT)

    def forget(self, conn: Conn) -> None:
        """``conn`` is about to close (any thread): no more events of it."""
        if self._ep is None:
            with contextlib.suppress(KeyError, ValueError, OSError):
                self._sel.unregister(conn.sock)  # type: ignore[union-attr]
            return
        fd = conn.sock.fileno()
        if fd >= 0 and self._by_fd.get(fd) is conn:
            del self._by_fd[fd]
            with contextlib.suppress(OSError, ValueError):  # ValueError: the selector thread closed the epoll
                self._ep.unregister(fd)

    def poll(self, timeout: float) -> list:
        """What is readable: watched sockets and armed connections (disarmed by this)."""
        if self._ep is None:
            ready = self._sel.select(timeout)  # type: ignore[union-attr]
            for key, _ in ready:
                if key.data is not key.fileobj:  # a connection: disarmed until it is armed again
                    self._sel.unregister(key.fileobj)  # type: ignore[union-attr]
            return [key.data for key, _ in ready]
        by_fd = self._by_fd
        return [by_fd[fd] for fd, _ in self._ep.poll(timeout) if fd in by_fd]

    def close(self) -> None:
        if self._ep is not None:
            self._ep.close()
        else:
            self._sel.close()  # type: ignore[union-attr]
