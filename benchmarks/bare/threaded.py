"""The smallest server of syncviz's threaded model: a selector thread and a fixed pool of threads.

Like syncviz's threaded engine (gunicorn gthread's shape), one selector thread accepts and parks
idle keep-alive connections; a readable one goes to one of :data:`~common.POOL` worker threads
for the requests it holds (one blocking ``recv``, one ``sendall`` of their answers), then back to
the selector through a queue and a wake-up byte on a pipe. Standard library only.

What it does not do (syncviz's engine does): parse with httptools (requests are framed by their
blank line, see :func:`~common.split_requests`), route, bound heads and bodies, wait for the rest
of a request that came in pieces under a deadline, close idle connections, resize the pool, set
``TCP_NODELAY``, record anything, or count what it served.
"""

from __future__ import annotations

import os
import queue
import selectors
import socket
import threading

from common import BACKLOG, POOL, RESPONSE, exit_on_signals, parse_args, ready, split_requests


class Server:
    def __init__(self, port: int, signals: int) -> None:
        self.lsock = socket.create_server(("127.0.0.1", port), backlog=BACKLOG)
        self.lsock.setblocking(False)
        self.sel = selectors.DefaultSelector()
        self.jobs: queue.SimpleQueue[socket.socket] = queue.SimpleQueue()
        self.back: queue.SimpleQueue[socket.socket] = queue.SimpleQueue()
        self.wake_r, self.wake_w = os.pipe()
        self.bufs: dict[socket.socket, bytes] = {}
        self.sel.register(self.lsock, selectors.EVENT_READ)
        self.sel.register(self.wake_r, selectors.EVENT_READ)
        self.sel.register(signals, selectors.EVENT_READ)  # wakes select() for the signal handler

    def select_loop(self) -> None:
        while True:
            for key, _ in self.sel.select():
                if key.fileobj is self.lsock:
                    self.accept()
                elif key.fileobj == self.wake_r:
                    os.read(self.wake_r, 4096)
                    while not self.back.empty():
                        self.sel.register(self.back.get(), selectors.EVENT_READ)
                elif not isinstance(key.fileobj, socket.socket):
                    os.read(key.fd, 4096)  # a signal: its handler runs now, in this thread
                else:
                    sock = key.fileobj
                    self.sel.unregister(sock)
                    self.jobs.put(sock)  # type: ignore[arg-type]

    def accept(self) -> None:
        while True:
            try:
                sock, _ = self.lsock.accept()
            except BlockingIOError:
                return
            sock.setblocking(True)
            self.bufs[sock] = b""
            self.sel.register(sock, selectors.EVENT_READ)

    def worker(self) -> None:
        while True:
            sock = self.jobs.get()
            try:
                data = sock.recv(65536)
            except OSError:
                data = b""
            if not data:
                del self.bufs[sock]
                sock.close()
                continue
            n, self.bufs[sock] = split_requests(self.bufs[sock] + data)
            if n:
                sock.sendall(RESPONSE * n)
            self.back.put(sock)
            os.write(self.wake_w, b"x")


def main() -> None:
    args = parse_args(__doc__.splitlines()[0])
    server = Server(args.port, exit_on_signals())
    for _ in range(POOL):
        threading.Thread(target=server.worker, daemon=True).start()
    ready(server.lsock.getsockname()[1])
    server.select_loop()


if __name__ == "__main__":
    main()
