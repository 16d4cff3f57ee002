"""The load process's role in :mod:`~syncviz.engines.proc` (split from it): the load generator, its
slow clients and the upstream, outside every server's process.

Imported by :func:`~syncviz.engines.proc.child_main` only when a process is told to be the load:
an engine process never imports the load generator's modules (asyncio among them, ~35 ms of each
threaded, gevent or prefork engine process's start).
"""

from __future__ import annotations

import os
from typing import Any, BinaryIO

from .digest_client import ClientDigest
from .digester import View
from .events import ENGINE_IDS, Phase
from .host import Clients
from .loadgen import LoadGen
from .proc import _Role, _settings
from .request import EXTERNAL_IDS_START
from .slowclients import SlowClients
from .upstream import Upstream
from .wire import batch_to_wire


class LoadRole(Clients, _Role):
    """The load generator, its slow clients and the upstream. With ``stream: digest`` what its
    clients saw is digested here (:class:`~syncviz.engines.digest_client.ClientDigest`, one per engine)."""

    def __init__(self, out: BinaryIO, start: dict[str, Any]) -> None:
        super().__init__(out, bool(start.get("record", True)))
        self.view = View(start)
        self.digests: dict[int, ClientDigest] = {}
        self.upstream = Upstream()
        port = self.upstream.start()
        self.send("started", {"upstream_port": port, "pid": os.getpid(), "run": 0})

    def command(self, kind: str, payload: Any) -> None:
        if kind == "targets":
            self._halt()
            self.run = int(payload["run"])
            ports = {ENGINE_IDS[name]: int(port) for name, port in payload["ports"].items()}
            if self.view.digest:
                self.digests = {e: ClientDigest(self.view.ns, self.view.window_s) for e in ports}
            self.loadgen = LoadGen(self.recorder, ports, _settings(payload))
            self.loadgen.start()
            self.slowclients = SlowClients(ports, _settings(payload)).start()
        elif kind == "view":
            self.view.zoom(payload)
            for digest in self.digests.values():
                digest.set_zoom(self.view.ns)
        elif kind == "halt":
            self._halt()
        elif kind == "apply":
            self.apply_clients(_settings(payload))

    def drain(self) -> dict[str, Any]:
        batch = self.recorder.drain()
        if self.digests:
            digests = self.digests
            for t, e, rid, _lane, phase in batch.transitions:
                d = digests.get(e)
                if d is not None and phase == Phase.QUEUED and rid < EXTERNAL_IDS_START:
                    d.sent(t, rid)
            for t, e, rid, lat, ok in batch.latencies:
                d = digests.get(e)
                if d is not None:
                    d.answered(t, rid, lat, ok)
            due = self.view.counters_due(batch.t_ns)
            if due and self.loadgen is not None:
                for e, n in self.loadgen.connecting().items():
                    if e in digests:
                        digests[e].connecting = n
            batch.transitions, batch.latencies = [], []
            batch.digests = [(e, {"client": d.take(batch.t_ns, due)}) for e, d in digests.items()]
        return batch_to_wire(batch, self.run)

    def _halt(self) -> None:
        if self.stop_clients():
            self.flush()
        self.recorder.clear()

    def close(self) -> None:
        self._halt()
        self.upstream.stop()
