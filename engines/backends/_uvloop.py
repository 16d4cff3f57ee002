"""The uvloop engine: the asyncio engine, handler and all, on uvloop's event loop (libuv).

What most production asyncio servers run (``uvicorn --loop uvloop``). Only the loop differs:
the protocol, the tasks, the phases (READY when the loop reads a request, AWAITING at each
await, BLOCKED for a blocking call in ``async def``) and the offload mode are the asyncio
engine's own (:mod:`._asyncio`), so any difference on the picture is the loop's.
"""

from __future__ import annotations

import asyncio

import uvloop

from ._asyncio import AsyncioEngine


class UvloopEngine(AsyncioEngine):
    name = "uvloop"
    thread_name = "uvloop-engine"

    def _new_loop(self) -> asyncio.AbstractEventLoop:
        return uvloop.new_event_loop()
