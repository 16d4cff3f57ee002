"""The smallest server of syncviz's asyncio model: one event loop, an :class:`asyncio.Protocol`
per connection. Standard library only."""

from __future__ import annotations

import asyncio

from common import BACKLOG, RESPONSE, exit_on_signals, parse_args, ready, split_requests


class Http(asyncio.Protocol):
    def __init__(self) -> None:
        self.buf = b""
        self.transport: asyncio.Transport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def data_received(self, data: bytes) -> None:
        n, self.buf = split_requests(self.buf + data)
        if n and self.transport is not None:
            self.transport.write(RESPONSE * n)


async def serve(port: int) -> None:
    loop = asyncio.get_running_loop()
    server = await loop.create_server(Http, "127.0.0.1", port, backlog=BACKLOG)
    ready(server.sockets[0].getsockname()[1])
    async with server:
        await server.serve_forever()


def main() -> None:
    args = parse_args(__doc__.splitlines()[0])
    exit_on_signals()
    asyncio.run(serve(args.port))


if __name__ == "__main__":
    main()
