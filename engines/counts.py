"""What a server counts at the source: requests served, failures, timeouts, connections reading,
waiting for a worker, and in the kernel's accept queue.

Each engine owns one :class:`ServerCounts` and updates it where the events happen (O(1) per
event, no scan). It counts *every* client, the built-in load generator and outside ones
(curl, wrk, a browser) alike, so ``served`` is the server's own throughput, beside the load
generator's client-side req/s. The engine process sends :meth:`ServerCounts.snapshot` with
every batch (the ``srv`` field of a wire batch); the parent keeps the latest per engine.
"""

from __future__ import annotations

import socket
import struct
import threading
from dataclasses import dataclass, fields

KEEPALIVE_IDLE_S = 5.0
"""An idle keep-alive connection (no byte of a next request) is closed after this (uvicorn's default).
Idle means no byte in the kernel either (:func:`has_bytes`): a loop or hub blocked for longer than
this has not read requests that have arrived, and closing those connections failed their clients."""

try:
    from fcntl import ioctl
    from termios import FIONREAD
except ImportError:  # not POSIX: every connection past its idle time is taken as idle
    ioctl = None  # type: ignore[assignment]
    FIONREAD = 0
_NREAD = struct.Struct("i")


def has_bytes(fileno: int) -> bool:
    """Whether bytes a client sent (not only its close) wait in the kernel to be read from
    ``fileno``: ``FIONREAD``, without reading them. False when it cannot tell (closed, not POSIX)."""
    if ioctl is None or fileno < 0:
        return False
    try:
        return _NREAD.unpack(ioctl(fileno, FIONREAD, b"\0\0\0\0"))[0] > 0
    except OSError:
        return False


@dataclass
class ServerSnapshot:
    """One engine's source counters at one moment (plain ints: what crosses the pipe)."""

    t_ns: int = 0  # when it was taken (monotonic)
    served: int = 0  # responses written, since start (any status, any client)
    failed: int = 0  # requests answered 4xx/5xx or dropped, since start (timeouts included)
    timeouts: int = 0  # of which: the client did not send its request in time (408)
    reading: int = 0  # now: connections with part of a request received and the rest awaited
    workers: int = 0  # now: the workers the engine has (pool threads; 1 for a loop or hub)
    pool_used: int = 0  # now: greenlets of gevent's pool in use (0 where there is no such pool)
    pool_size: int = 0  # gevent's pool size (0 where there is no such pool)
    waiting: int = 0  # now: connections with bytes to read no worker has taken (threaded's hand-off queue, prefork's)
    backlog: int = 0  # now: connections the kernel completed that the server has not accepted (accept_queue)

    def as_dict(self) -> dict[str, int]:
        return dict(self.__dict__)  # its fields, flat ints (dataclasses.asdict took 30x as long: every drain's)

    @classmethod
    def from_dict(cls, d: object) -> ServerSnapshot:
        """Validated: every field a non-negative int; raises ValueError otherwise."""
        if not isinstance(d, dict):
            raise ValueError("server counts are not a record")
        names = {f.name for f in fields(cls)}
        out = {}
        for k, v in d.items():
            if k not in names or type(v) is not int or v < 0:
                raise ValueError(f"bad server count {k!r}")
            out[k] = v
        return cls(**out)


class ServerCounts:
    """Counters one engine updates from any of its threads (one small lock; never on a wait)."""

    def __init__(self, workers: int = 1, pool_size: int = 0) -> None:
        self._lock = threading.Lock()
        self.served = 0
        self.failed = 0
        self.timeouts = 0
        self.reading = 0
        self.workers = workers
        self.pool_size = pool_size
        self.pool_used = 0
        self.waiting = 0
        self.listener: socket.socket | None = None  # the listening socket, whose accept queue is read

    def add(self, served: int = 0, failed: int = 0, timeouts: int = 0, reading: int = 0) -> None:
        with self._lock:
            self.served += served
            self.failed += failed
            self.timeouts += timeouts
            self.reading += reading

    def snapshot(self, t_ns: int) -> ServerSnapshot:
        backlog = accept_queue(self.listener)
        with self._lock:
            return ServerSnapshot(
                t_ns,
                self.served,
                self.failed,
                self.timeouts,
                max(0, self.reading),
                self.workers,
                self.pool_used,
                self.pool_size,
                self.waiting,
                backlog,
            )


_TCP_INFO = getattr(socket, "TCP_INFO", None)
_UNACKED = struct.Struct("I")  # struct tcp_info's tcpi_unacked, at byte 24 (after 8 bytes of u8 and 4 u32)


def accept_queue(sock: socket.socket | None) -> int:
    """Connections the kernel has completed on the listening ``sock`` that the server has not
    accepted yet: Linux's ``TCP_INFO`` of a listener says it in ``tcpi_unacked`` (what ``ss -lnt``
    shows as Recv-Q). A server that stops accepting (gevent's pool full) leaves clients there,
    connected, their requests sent, read by no one; 0 where it cannot tell (not Linux, closed)."""
    if sock is None or _TCP_INFO is None:
        return 0
    try:
        info = sock.getsockopt(socket.IPPROTO_TCP, _TCP_INFO, 32)
    except OSError:
        return 0
    return _UNACKED.unpack_from(info, 24)[0] if len(info) >= 28 else 0
