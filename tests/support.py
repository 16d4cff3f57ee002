"""Test helpers: a tiny blocking HTTP client, resource probes, and the command as a user runs it."""

from __future__ import annotations

import contextlib
import gc
import os
import random
import socket
import sys
import threading
import time

SYNCVIZ = [sys.executable, "-m", "syncviz.tui.cli"]  # the ``syncviz`` command, in this interpreter


def one_line_error(err: str) -> str:
    """``err`` is one ``syncviz: ...`` line and no traceback; that line."""
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("syncviz: ") and "Traceback" not in err, err
    return lines[0]


def connect(port: int, timeout: float = 5.0) -> socket.socket:
    sock = socket.create_connection(("127.0.0.1", port), timeout=timeout)
    sock.settimeout(timeout)
    return sock


_leftover: dict[int, bytes] = {}  # bytes read past a response, per socket (pipelining)


def read_response(sock: socket.socket) -> tuple[int, dict[str, str], bytes]:
    """One whole response (fixed length or chunked): status, headers, body."""
    key = id(sock)
    buf = _leftover.pop(key, b"")

    def more() -> bytes:
        data = sock.recv(65536)
        if not data:
            raise ConnectionError("closed mid-response")
        return data

    while b"\r\n\r\n" not in buf:
        buf += more()
    head, _, rest = buf.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    status = int(lines[0].split(" ")[1])
    headers = {k.lower(): v.strip() for k, _, v in (line.partition(":") for line in lines[1:])}
    body = b""
    if headers.get("transfer-encoding") == "chunked":
        while True:
            while b"\r\n" not in rest:
                rest += more()
            size_line, _, rest = rest.partition(b"\r\n")
            size = int(size_line, 16)
            while len(rest) < size + 2:
                rest += more()
            body, rest = body + rest[:size], rest[size + 2 :]
            if size == 0:
                break
    else:
        length = int(headers.get("content-length", "0"))
        while len(rest) < length:
            rest += more()
        body, rest = rest[:length], rest[length:]
    if rest:
        _leftover[key] = rest
    return status, headers, body


def get(port: int, path: str = "/", extra: bytes = b"") -> tuple[int, dict[str, str], bytes]:
    with connect(port) as sock:
        sock.sendall(b"GET %s HTTP/1.1\r\nHost: t\r\n%s\r\n" % (path.encode(), extra))
        return read_response(sock)


def open_fds() -> int:
    return len(os.listdir("/proc/self/fd"))


def fd_targets() -> set[tuple[int, str]]:
    """This process's open descriptors as ``(fd, what it is)`` (``socket:[inode]``, a path, ...)."""
    out = set()
    for name in os.listdir("/proc/self/fd"):
        with contextlib.suppress(OSError):  # closed meanwhile (the listing's own descriptor among them)
            out.add((int(name), os.readlink(f"/proc/self/fd/{name}")))
    return out


def fds_left_since(before: set[tuple[int, str]]) -> set[tuple[int, str]]:
    """Descriptors open now that were not open at ``before``, after a garbage collection (a closed
    engine's objects may wait for one). One closed meanwhile by an earlier test's garbage is no leak."""
    gc.collect()
    return fd_targets() - before


def wait_for(predicate, timeout: float = 3.0) -> bool:
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if predicate():
            return True
        time.sleep(0.02)
    return predicate()


def new_threads(before: set[threading.Thread]) -> list[str]:
    """Threads alive now that were not at ``before`` (one of an earlier test's that ends meanwhile
    does not count: a comparison of counts would wait for it)."""
    return sorted(t.name for t in threading.enumerate() if t not in before and t.is_alive())


def thread_names() -> list[str]:
    return sorted(t.name for t in threading.enumerate())


async def laid_out(pilot, rounds: int = 100) -> None:
    """Pause until the app's layout has settled: every widget's region the same two looks in a row.
    A loaded machine lays a screen out late, and the first frame of a replay sizes the request rows
    from it (a frame drawn early had 16 rows where it has 18)."""
    last = None
    for _ in range(rounds):
        await pilot.pause(0.02)
        regions = [(w, w.region) for w in pilot.app.screen.walk_children()]
        if regions == last:
            return
        last = regions


def _ephemeral_low() -> int:
    try:
        with open("/proc/sys/net/ipv4/ip_local_port_range") as f:
            return int(f.read().split()[0])
    except (OSError, ValueError, IndexError):
        return 32768  # Linux's default


def free_ports(n: int = 1) -> int:
    """A first port P with P .. P+n-1 all free now, below the kernel's ephemeral range: a port the
    kernel chose (``bind(0)``, then closed) is handed out again to the tests' own clients, run side
    by side on xdist workers (a load generator's connections take thousands), and a server told to
    use it found it taken (test_serve, once in ~10 runs)."""
    high = _ephemeral_low() - n
    for _ in range(200):
        base = random.randrange(max(1024, high - 12_000), high)
        socks = []
        try:
            for port in range(base, base + n):
                s = socket.socket()
                socks.append(s)
                s.bind(("127.0.0.1", port))
        except OSError:
            continue
        finally:
            for s in socks:
                s.close()
        return base
    raise RuntimeError(f"no {n} free ports in a row below {high + n}")
