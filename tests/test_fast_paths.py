"""The engines' fast paths serve and record exactly what their general paths do.

The asyncio engine serves its commonest request (the handler's own path, a plan of one write)
without a coroutine (``AsyncioEngine._served_at_once``), the gevent engine without the general
plan runner when one non-blocking send takes the answer whole (``GeventEngine._sent_at_once``),
each recording RUNNING and DONE in one call; the asyncio and gevent engines count the
requests they serve DONE without the counts' lock (``LoopEngine.server_snapshot`` adds them in), and
so does threaded, per lane (``ThreadedEngine._tally_ok``), which prefork's workers, built on it,
send through their pipe instead.
A scripted conversation, one request at a time, must give the same answers, the same records
(ids, lanes, phases, sizes) and the same counters with the fast path as without it.
"""

from __future__ import annotations

import socket

import pytest
from support import connect, wait_for
from syncviz.engines.backends._asyncio import AsyncioEngine
from syncviz.engines.base import engine_class
from syncviz.engines.events import Phase, Recorder
from syncviz.engines.http import EXTERNAL_IDS_START
from syncviz.engines.settings import Settings

SCRIPT = (
    b"GET / HTTP/1.1\r\nHost: t\r\n\r\n",
    b"HEAD / HTTP/1.1\r\nHost: t\r\n\r\n",
    b"GET /health HTTP/1.1\r\nHost: t\r\n\r\n",
    b"GET /nope HTTP/1.1\r\nHost: t\r\n\r\n",
    b"DELETE / HTTP/1.1\r\nHost: t\r\n\r\n",
    b"POST /work HTTP/1.1\r\nHost: t\r\nContent-Length: 5\r\n\r\nhello",
    b"GET /boom HTTP/1.1\r\nHost: t\r\n\r\n",
    b"GET /?q=1 HTTP/1.1\r\nHost: t\r\nX-Req-Id: 77\r\nX-Sent-Ns: 1\r\n\r\n",
    b"GET /work HTTP/1.1\r\nHost: t\r\n\r\n",
    b"GET / HTTP/1.0\r\nHost: t\r\n\r\n",  # the last: the server closes after it
)


def _answer(sock: socket.socket, head_only: bool) -> bytes:
    data = b""
    while b"\r\n\r\n" not in data:
        data += sock.recv(65536)
    head = data[: data.index(b"\r\n\r\n") + 4]
    length = 0 if head_only else int(head.lower().split(b"content-length: ")[1].split(b"\r\n")[0])
    while len(data) < len(head) + length:
        data += sock.recv(65536)
    return data


def _converse(name: str) -> tuple[list[bytes], list[tuple], list[tuple], tuple[int, int]]:
    """The answers, transitions and sizes (times left out, outside ids as their order) and (served, failed)."""
    recorder = Recorder()
    engine = engine_class(name)(recorder, Settings(io_ms=0, cpu_ms=0), "native", None)
    engine.start()
    try:
        answers = []
        with connect(engine.port) as sock:
            for request in SCRIPT:
                sock.sendall(request)
                answers.append(_answer(sock, request.startswith(b"HEAD")))
        assert wait_for(lambda: engine.server_snapshot(0).served == len(SCRIPT))
        snap = engine.server_snapshot(0)
    finally:
        engine.stop()
    batch = recorder.drain()
    ids: dict[int, int] = {}

    def rid(r: int) -> int:
        return r if r < EXTERNAL_IDS_START else -ids.setdefault(r, len(ids) + 1)

    transitions = [(rid(r), lane, phase) for _t, _e, r, lane, phase in batch.transitions]
    sizes = [(rid(r), b_in, b_out) for _t, _e, r, b_in, b_out in batch.sizes]
    return answers, transitions, sizes, (snap.served, snap.failed)


def _fast_and_slow(
    monkeypatch: pytest.MonkeyPatch, name: str, cls: type, method: str, declined: object
) -> tuple[list[object], tuple, tuple]:
    """What ``cls.method`` (a fast path) answered each request, then the conversation with it and
    without it (the method made to decline every request: ``declined``)."""
    taken: list[object] = []
    at_once = getattr(cls, method)

    def counting(self: object, *args: object) -> object:
        done = at_once(self, *args)
        taken.append(done)
        return done

    monkeypatch.setattr(cls, method, counting)
    fast = _converse(name)
    monkeypatch.setattr(cls, method, lambda *_: declined)
    slow = _converse(name)
    return taken, fast, slow


def test_asyncio_serves_and_records_the_same_at_once_as_through_its_coroutine(monkeypatch: pytest.MonkeyPatch) -> None:
    taken, fast, slow = _fast_and_slow(monkeypatch, "asyncio", AsyncioEngine, "_served_at_once", 0)
    assert sum(map(bool, taken)) == 6 and len(taken) == len(SCRIPT)  # GET /, HEAD, POST /work, /?q=1, /work, 1.0 GET
    assert fast == slow
    assert fast[3] == (len(SCRIPT), 3)  # failed: the 404, the 405 and /boom's 500


def test_gevent_serves_and_records_the_same_at_once_as_through_serve_sync(monkeypatch: pytest.MonkeyPatch) -> None:
    from syncviz.engines.backends._gevent import GeventEngine

    taken, fast, slow = _fast_and_slow(monkeypatch, "gevent", GeventEngine, "_sent_at_once", None)
    assert taken.count(True) == 6 and len(taken) == len(SCRIPT)  # as asyncio's: the handler's one write

    def path(run: tuple) -> tuple:
        """READY (it waited for the hub's poll; a send that lost the CPU, then RUNNING again) is the
        scheduler's, not the path's: left out, and a repeated RUNNING with it."""
        kept = [tr for tr in run[1] if tr[2] != Phase.READY]
        return run[0], [tr for i, tr in enumerate(kept) if i == 0 or tr != kept[i - 1]], run[2], run[3]

    assert path(fast) == path(slow)
    assert fast[3] == (len(SCRIPT), 3)


@pytest.mark.parametrize("name", ["asyncio", "gevent", "threaded", "prefork"])
def test_an_engine_counts_every_answer_once(name: str) -> None:
    answers, transitions, sizes, (served, failed) = _converse(name)
    assert len(answers) == served == len(SCRIPT)
    assert failed == sum(a.split(b" ")[1] >= b"400" for a in answers)
    assert len(sizes) == len(SCRIPT) and len(transitions) >= 2 * len(SCRIPT)  # RUNNING and an end each
