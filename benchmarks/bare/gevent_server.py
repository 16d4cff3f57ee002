"""The smallest server of syncviz's gevent model: one hub, one greenlet per connection.

A :class:`gevent.server.StreamServer` spawns each connection's greenlet from a pool of 1,000
(syncviz's gevent engine's pool), with no monkey patching. The greenlet loops on gevent's
cooperative ``recv`` (yielding to the hub while it waits) and ``sendall``s the answers to the
requests each read completed. gevent and the standard library only.

What it does not do (syncviz's engine does): parse with httptools (requests are framed by their
blank line, see :func:`~common.split_requests`), route, bound heads and bodies, time reads out or
close idle connections (no timeout on ``recv``: no timer per read), run the hub in a thread of
its own, record anything, or count what it served.
"""

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
