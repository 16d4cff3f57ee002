"""The smallest server of syncviz's gevent model: a :class:`gevent.server.StreamServer`, one
greenlet per connection from a pool of 1,000 (syncviz's gevent engine's pool). gevent and the
standard library only."""

from __future__ import annotations

import socket

from common import BACKLOG, RESPONSE, exit_on_signals, parse_args, ready, split_requests
from gevent.server import StreamServer

GREENLETS = 1000


def handle(sock: socket.socket, _addr: object) -> None:
    buf = b""
    while True:
        try:
            data = sock.recv(65536)
        except OSError:
            return
        if not data:
            return
        n, buf = split_requests(buf + data)
        if n:
            sock.sendall(RESPONSE * n)


def main() -> None:
    args = parse_args(__doc__.splitlines()[0])
    exit_on_signals()
    server = StreamServer(("127.0.0.1", args.port), handle, spawn=GREENLETS, backlog=BACKLOG)
    server.start()
    ready(server.server_port)
    server.serve_forever()


if __name__ == "__main__":
    main()
