"""The smallest server of syncviz's asyncio model: one event loop, one task per connection.

Like syncviz's asyncio engine (uvicorn + FastAPI's shape): an :class:`asyncio.Protocol` frames
the bytes the loop reads into requests and queues them; the connection's task awaits each
request in turn, awaits an ``async def`` handler for it and writes the handler's response.
Standard library only.

What it does not do (syncviz's engine does): parse with httptools (requests are framed by their
blank line, see :func:`~common.split_requests`), route, bound heads and bodies, time reads out,
close idle connections, pause reading behind a long pipeline, wait for a slow reader to drain,
record anything, or count what it served.
"""

from __future__ import annotations

import asyncio
from collections import deque

from common import BACKLOG, HEAD_END, RESPONSE, exit_on_signals, parse_args, ready


class Conn(asyncio.Protocol):
    """Frames a connection's bytes into requests for its task; wakes the task when one is complete."""

    def __init__(self) -> None:
        self.buf = b""
        self.requests: deque[bytes] = deque()
        self.closed = False
        self.waiter: asyncio.Future[None] | None = None
        self.transport: asyncio.Transport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]
        asyncio.get_running_loop().create_task(serve_conn(self))

    def data_received(self, data: bytes) -> None:
        *heads, self.buf = (self.buf + data).split(HEAD_END)
        if heads:
            self.requests.extend(heads)
            self.wake()

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        self.wake()

    def wake(self) -> None:
        if self.waiter is not None and not self.waiter.done():
            self.waiter.set_result(None)

    async def next_request(self) -> bytes | None:
        """The next complete request's head, or None once the client has gone."""
        while not self.requests:
            if self.closed:
                return None
            self.waiter = asyncio.get_running_loop().create_future()
            await self.waiter
        return self.requests.popleft()


async def handler(_request: bytes) -> bytes:
    """The endpoint: an ``async def`` that answers at once."""
    return RESPONSE


async def serve_conn(conn: Conn) -> None:
    """The connection's task: await a request, await its handler, write the answer; repeat."""
    transport = conn.transport
    assert transport is not None
    while (request := await conn.next_request()) is not None:
        transport.write(await handler(request))
    transport.close()


async def serve(port: int) -> None:
    loop = asyncio.get_running_loop()
    server = await loop.create_server(Conn, "127.0.0.1", port, backlog=BACKLOG)
    ready(server.sockets[0].getsockname()[1])
    async with server:
        await server.serve_forever()


def main() -> None:
    args = parse_args(__doc__.splitlines()[0])
    exit_on_signals()
    asyncio.run(serve(args.port))


if __name__ == "__main__":
    main()
