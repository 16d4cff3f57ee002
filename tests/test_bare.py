"""The bare servers of benchmarks/bare/: each answers syncviz's bytes, pipelined and split requests too."""

from __future__ import annotations

import runpy
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from syncviz.engines.handler import HELLO
from syncviz.engines.http import response

BARE = Path(__file__).resolve().parent.parent / "benchmarks" / "bare"
REQUEST = b"GET / HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n"
ANSWER = response(200, HELLO, keep_alive=True)  # what syncviz's engines answer at zero latency


@pytest.fixture(params=["threaded.py", "asyncio_server.py", "gevent_server.py"])
def port(request: pytest.FixtureRequest) -> Iterator[int]:
    proc = subprocess.Popen([sys.executable, str(BARE / request.param)], stdout=subprocess.PIPE, text=True)
    try:
        line = proc.stdout.readline()  # type: ignore[union-attr]
        assert line.startswith("ready "), line
        yield int(line.split()[1])
    finally:
        proc.terminate()
        proc.wait(10)


def read(sock: socket.socket, n: int) -> bytes:
    """Exactly ``n`` bytes (the answers are fixed-length)."""
    data = b""
    while len(data) < n:
        chunk = sock.recv(65536)
        assert chunk, f"closed after {data!r}"
        data += chunk
    return data


def test_the_answer_is_syncviz_s_own_bytes(port: int) -> None:
    assert runpy.run_path(str(BARE / "common.py"))["RESPONSE"] == ANSWER
    with socket.create_connection(("127.0.0.1", port), timeout=5) as sock:
        sock.sendall(REQUEST)
        assert read(sock, len(ANSWER)) == ANSWER


def test_pipelined_and_split_requests_are_answered_in_order(port: int) -> None:
    with socket.create_connection(("127.0.0.1", port), timeout=5) as sock:
        sock.sendall(REQUEST * 3)  # pipelined: three answers
        assert read(sock, 3 * len(ANSWER)) == ANSWER * 3
        sock.sendall(REQUEST[:10])  # one request in two pieces: one answer, once whole
        time.sleep(0.05)
        sock.sendall(REQUEST[10:])
        assert read(sock, len(ANSWER)) == ANSWER


def test_a_client_that_leaves_does_not_stop_the_server(port: int) -> None:
    with socket.create_connection(("127.0.0.1", port), timeout=5) as sock:
        sock.sendall(REQUEST[:10])  # gone mid-request
    with socket.create_connection(("127.0.0.1", port), timeout=5) as sock:
        sock.sendall(REQUEST)
        assert read(sock, len(ANSWER)) == ANSWER
