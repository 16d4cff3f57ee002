"""Recordings: a plain, versioned, checked format; nothing in a file can run code, crash a reader
or pass for a whole recording when it is cut short; record --json and replay --summary agree."""

from __future__ import annotations

import ast
import gzip
import json
import os
import pickle
import random
import subprocess
import sys
import time
from pathlib import Path

import pytest
from support import SYNCVIZ, one_line_error
from syncviz.engines.counts import ServerSnapshot
from syncviz.engines.digest import ServerDigest
from syncviz.engines.digest_client import ClientDigest
from syncviz.engines.events import ENGINES, Batch, Phase
from syncviz.engines.recording import (
    FORMAT,
    VERSION,
    RecordingError,
    Replay,
    read_recording,
    write_recording,
)
from syncviz.engines.recording_reader import RecordingReader
from syncviz.engines.recording_summary import Summary, summarize
from syncviz.tui.board import Board
from syncviz.tui.cli import main

DATA = Path(__file__).parent / "data"
ROOT = Path(__file__).parent.parent
HEAD = b'{"format": "syncviz-recording", "version": 2, "info": {}}\n'


def syncviz(*args: str, timeout: float = 60) -> subprocess.CompletedProcess:
    return subprocess.run([*SYNCVIZ, *args], capture_output=True, text=True, timeout=timeout)


def run_main(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    code = main(list(args))
    out, err = capsys.readouterr()
    return code, out, err


@pytest.fixture(scope="module")
def committed() -> tuple[dict, list[Batch]]:
    return read_recording(DATA / "io-bound.rec.gz")


@pytest.fixture
def small(tmp_path: Path, committed: tuple[dict, list[Batch]]) -> Path:
    """The first half second of the committed io-bound recording."""
    info, batches = committed
    path = tmp_path / "small.rec.gz"
    write_recording(path, info, batches[:15], seconds=0.5)
    return path


@pytest.fixture
def tiny(tmp_path: Path, committed: tuple[dict, list[Batch]]) -> Path:
    """The first five batches (every kind of record is in them): what the corruption tests read 300 times."""
    info, batches = committed
    path = tmp_path / "tiny.rec.gz"
    write_recording(path, info, batches[:5], seconds=0.2)
    return path


# -- the format --------------------------------------------------------------------------------


def test_a_recording_is_gzip_json_lines_with_a_versioned_header(small: Path) -> None:
    lines = gzip.decompress(small.read_bytes()).splitlines()
    header = json.loads(lines[0])
    assert header["format"] == FORMAT == "syncviz-recording" and header["version"] == VERSION == 2
    assert header["settings"] == header["info"]["settings"] and header["seconds"] == 0.5
    assert time.strptime(header["created"], "%Y-%m-%dT%H:%M:%SZ")
    assert json.loads(lines[-1]) == {"end": True, "batches": 15} and len(lines) == 17


def as_json(value: object) -> object:
    """``value`` as JSON reads it back (tuples as lists)."""
    return json.loads(json.dumps(value))


def test_round_trip_keeps_every_record(tmp_path: Path) -> None:
    server, client = ServerDigest(True, 10_000_000), ClientDigest(10_000_000)
    server.transition(1_000, 7, 0, Phase.RUNNING)
    client.sent(900, 7)
    batches = [
        Batch(
            transitions=[(1_000, 0, 7, 3, 1), (2_000, 0, 7, -1, 6), (2_500, 2, 1 << 40, -2, 8)],
            latencies=[(2_000, 0, 7, 1_500, True), (2_100, 1, -111, 0, False)],
            lags=[(3_000, 1, 42)],
            t_ns=3_000,
            dropped=1,
            info={"scenario": "io-bound", "run": 2},
            blocks=[(1_100, 50_000_000, 1, 0, False, "time.sleep ← handler (engines/work.py:136)")],
        ),
        Batch(
            t_ns=4_000, digests=[(1, {"server": server.take(5_000, True)}), (1, {"client": client.take(5_000, True)})]
        ),
        Batch(t_ns=5_000),
    ]
    info = {"scenario": "io-bound", "engines": ["threaded", "asyncio", "gevent"], "run": 1, "load": True}
    path = tmp_path / "rt.rec.gz"
    assert write_recording(path, info, batches) == 3
    got_info, got = read_recording(path)
    assert got_info == info
    for want, have in zip(batches, got, strict=True):
        assert (have.transitions, have.latencies, have.lags) == (want.transitions, want.latencies, want.lags)
        assert (have.t_ns, have.dropped, have.info) == (want.t_ns, want.dropped, want.info)
        assert as_json(have.digests) == as_json(want.digests)  # the picture's rows come back as tuples
        assert have.blocks == want.blocks
    assert got[0].latencies[0][4] is True and got[0].latencies[1][4] is False


def test_the_committed_recordings_are_in_the_format_and_small() -> None:
    for name in ("io-bound", "blocking-call"):
        path = DATA / f"{name}.rec.gz"
        assert path.stat().st_size < 400_000
        with RecordingReader(path) as reader:
            assert reader.info["scenario"] == name and reader.info["settings"]["clients"] == 20
            assert sum(len(b.transitions) for b in reader) > 1000


def test_nothing_that_reads_a_recording_imports_pickle() -> None:
    for rel in (
        "engines/recording.py",
        "engines/recording_format.py",
        "engines/recording_reader.py",
        "engines/recording_summary.py",
        "engines/replay.py",
        "engines/wire.py",
        "tui/cli.py",
        "tui/launch.py",
    ):
        tree = ast.parse((ROOT / rel).read_text())
        names = {a.name for n in ast.walk(tree) if isinstance(n, ast.Import) for a in n.names}
        names |= {n.module or "" for n in ast.walk(tree) if isinstance(n, ast.ImportFrom)}
        assert not names & {"pickle", "cPickle", "_pickle", "marshal", "shelve", "dill"}, rel


# -- hostile and foreign files -----------------------------------------------------------------


class _Touch:
    """A pickle that runs ``touch`` when loaded."""

    def __init__(self, target: Path) -> None:
        self.target = target

    def __reduce__(self) -> tuple:
        return (os.system, (f"touch {self.target}",))


def test_a_crafted_pickle_is_refused_and_never_run(tmp_path: Path) -> None:
    marker = tmp_path / "pwned"
    evil = tmp_path / "evil.rec.gz"
    evil.write_bytes(gzip.compress(pickle.dumps(_Touch(marker))))
    with pytest.raises(RecordingError, match="pickle") as caught:
        Replay.from_file(evil)
    assert "\n" not in str(caught.value)
    for args in (["--replay", str(evil)], ["replay", str(evil)], ["replay", str(evil), "--summary", "--json"]):
        proc = syncviz(*args)
        assert proc.returncode == 2, (args, proc.stderr)
        assert "pickle" in one_line_error(proc.stderr) and proc.stdout == ""
    assert not marker.exists()


def _gz(data: bytes) -> bytes:
    """gzip with a fixed mtime: the same bytes (and test ids) in every process."""
    return gzip.compress(data, mtime=0)


def _old_recording() -> bytes:
    """What syncviz 0.1 wrote: a gzip'd stream of pickles (a dict header, then batches)."""
    return _gz(pickle.dumps({"version": 1, "info": {}}, protocol=4) + pickle.dumps([1, 2], protocol=4))


@pytest.mark.parametrize(
    ("content", "words"),
    [
        (b"", "is empty"),
        (b"hello, I am a text file\n", "not gzip-compressed"),
        (pickle.dumps({"version": 1}), "a pickle, which syncviz never loads"),
        (_old_recording(), "old-format (pickle, version 1) recording"),
        (_gz(b"just text\n"), "not a syncviz-recording header"),
        (_gz(b'{"format": "other", "version": 2}\n'), "no syncviz-recording header"),
        (_gz(b'{"format": "syncviz-recording", "version": 3, "info": {}}\n'), "format version 3"),
        (_gz(b'{"format": "syncviz-recording", "version": 2, "info": {"engines": ["x"]}}\n'), "header"),
        (_gz(b"[" * 100_000), "not a syncviz-recording header"),
        (_gz(HEAD + b"[" * 100_000 + b"\n"), "JSON"),
        (_gz(HEAD + b'{"end": true, "batches": 0}\n'), None),
        (_gz(HEAD + b'{"end": true, "batches": 1}\n'), "end"),
        (b"\x1f", "truncated (0 batches read)"),
        (_gz(HEAD)[:-8], "truncated"),
    ],
)
def test_foreign_and_old_files_are_one_line_and_exit_2(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], content: bytes, words: str | None
) -> None:
    path = tmp_path / "f.rec.gz"
    path.write_bytes(content)
    code, out, err = run_main(capsys, "replay", str(path), "--summary", "--json")
    if words is None:  # an empty but whole recording
        assert code == 0 and json.loads(out)["engines"]["gevent"] == {"completed": 0, "p50_ms": None, "p99_ms": None}
        return
    assert code == 2 and out == ""
    assert words in one_line_error(err)


def _batch_line(**fields: object) -> bytes:
    record = {"v": 1, "run": 1, "t": 10, "dropped": 0, "tr": [], "lat": [], "lag": [], **fields}
    return json.dumps(record).encode() + b"\n"


@pytest.mark.parametrize(
    "fields",
    [
        {"tr": [1, len(ENGINES), 5, 0, 1]},  # an engine id past the last of ENGINES
        {"tr": [1, -1, 5, 0, 1]},  # engine -1
        {"tr": [1, 0, 5, 0, 9]},  # phase 9
        {"tr": [-1, 0, 5, 0, 1]},  # time before zero
        {"tr": [1, 0, 5, -3, 1]},  # lane -3
        {"tr": [1 << 63, 0, 5, 0, 1]},  # past int64
        {"lat": [1, 0, 5, 10, 2]},  # ok is 2
        {"lag": [1, 7, 5]},
        {"tr": [1, 0, 5, 0, True]},
        {"lat": [1.5, 0, 5, 10, 1]},
        {"tr": [1, 0, 5, 0]},  # not a multiple of five
        {"t": -5},
        {"info": {"settings": {"clients": -1}}},
        {"info": {"settings": {"bogus": 1}}},
        {"info": {"modes": {"asyncio": "sideways"}}},
        {"info": {"scenario": "no-such"}},
        {"info": {"cpu_share": {"gevent": 0}}},
        {"info": {"cpus": {"prefork": []}}},
        {"info": {"cpus": {"prefork": [-1]}}},
        {"dg": [[0, {"server": {"ns": 0, "now": 0}}]]},
        {"v": 9},
    ],
)
def test_a_batch_out_of_range_is_corrupt(tmp_path: Path, capsys: pytest.CaptureFixture[str], fields: dict) -> None:
    path = tmp_path / "bad.rec.gz"
    path.write_bytes(gzip.compress(HEAD + _batch_line() + _batch_line(**fields) + b'{"end": true, "batches": 2}\n'))
    code, _, err = run_main(capsys, "replay", str(path), "--summary", "--json")
    assert code == 2 and "is corrupt after 1 batches: batch 2" in one_line_error(err)


def test_300_one_byte_corruptions_exit_0_or_2_never_a_traceback(tiny: Path, capsys: pytest.CaptureFixture[str]) -> None:
    data = tiny.read_bytes()
    rng = random.Random(1234)
    bad = tiny.with_name("bad.rec.gz")
    codes = {0: 0, 2: 0}
    for _ in range(300):
        at = rng.randrange(len(data))
        corrupt = bytearray(data)
        corrupt[at] = (corrupt[at] + rng.randrange(1, 256)) % 256
        bad.write_bytes(bytes(corrupt))
        code, out, err = run_main(capsys, "replay", str(bad), "--summary", "--json")
        assert code in (0, 2), (at, err)
        codes[code] += 1
        if code == 0:
            assert set(json.loads(out)["engines"]) == {"threaded", "asyncio", "gevent"} and err == ""
        else:
            one_line_error(err)
            assert out == ""
    assert codes[2] > 250  # the gzip CRC catches nearly every flipped byte of the compressed stream


def test_300_one_byte_corruptions_of_the_content_never_crash_a_reader(
    tiny: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """The same inside the gzip (re-compressed, so its CRC holds): the checks of each field, not
    the CRC, stop them; what still parses also plays through the app's board."""
    text = gzip.decompress(tiny.read_bytes())
    rng = random.Random(99)
    bad = tiny.with_name("bad.rec.gz")
    parsed = 0
    for _ in range(300):
        at = rng.randrange(len(text))
        corrupt = bytearray(text)
        corrupt[at] = rng.choice(b'0123456789-,[]{}":.etx \n\x00\xff')
        bad.write_bytes(gzip.compress(bytes(corrupt), compresslevel=1))
        code, _, err = run_main(capsys, "replay", str(bad), "--summary", "--json")
        assert code in (0, 2), (at, err)
        if code == 2:
            one_line_error(err)
            continue
        parsed += 1
        if parsed <= 20:  # a few all the way through the picture's model too
            replay = Replay.from_file(bad)
            board = Board(replay.info)
            while not replay.finished:
                board.feed(replay.drain())
            assert set(board.refresh_counters()) == {"threaded", "asyncio", "gevent"}
            assert [board.engine_info(name).name for name in board.engines] == board.engines
    assert parsed > 30


def test_a_recording_cut_in_half_says_it_is_truncated(small: Path, capsys: pytest.CaptureFixture[str]) -> None:
    half = small.with_name("half.rec.gz")
    half.write_bytes(small.read_bytes()[: small.stat().st_size // 2])
    code, _, err = run_main(capsys, "replay", str(half), "--summary", "--json")
    assert code == 2
    line = one_line_error(err)
    assert f"recording {half} is truncated (" in line and " batches read)" in line
    with pytest.raises(RecordingError, match="truncated"):
        Replay.from_file(half)


def test_a_recording_cut_inside_a_record_or_before_its_end_says_truncated(
    small: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    text = gzip.decompress(small.read_bytes())
    lines = text.splitlines(keepends=True)
    cut = small.with_name("cut.rec.gz")
    for content, read in ((b"".join(lines[:6]) + lines[6][:40], 5), (b"".join(lines[:-1]), 15)):
        cut.write_bytes(gzip.compress(content))  # a whole gzip of a partial recording
        code, _, err = run_main(capsys, "replay", str(cut), "--summary")
        assert code == 2 and f"is truncated ({read} batches read)" in one_line_error(err)


# -- the commands ------------------------------------------------------------------------------


def test_summary_is_headless_and_agrees_with_the_batches(small: Path, committed: tuple[dict, list[Batch]]) -> None:
    code = (
        "import sys; from syncviz.tui.cli import main; rc = main(['replay', sys.argv[1], '--summary', '--json']);"
        "assert not [m for m in sys.modules if m.startswith(('textual', 'syncviz.tui.app'))], 'imported textual';"
        "sys.exit(rc)"
    )
    proc = subprocess.run([sys.executable, "-c", code, str(small)], capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    live = Summary()
    for batch in committed[1][:15]:
        live.add(batch)
    assert json.loads(proc.stdout) == live.result() == summarize(small)


@pytest.mark.parametrize("where", ["/nonexistent/dir/r.rec.gz", "{tmp}", "/proc/version"])
def test_record_to_an_unwritable_path_fails_at_once(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], where: str
) -> None:
    t0 = time.monotonic()
    code, out, err = run_main(capsys, "record", "--seconds", "1", "--out", where.format(tmp=tmp_path))
    assert code == 2 and "cannot write recording" in one_line_error(err) and out == ""
    assert time.monotonic() - t0 < 1.0  # before any engine started
    assert list(tmp_path.iterdir()) == []


def test_record_takes_one_file(capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = run_main(capsys, "record", "a.rec.gz", "--out", "b.rec.gz")
    assert code == 2 and "two files" in one_line_error(err)
    code, _, err = run_main(capsys, "record", "--seconds", "1")
    assert code == 2 and "--out FILE" in one_line_error(err)
    code, _, err = run_main(capsys, "replay", "x.rec.gz", "--json")
    assert code == 2 and "--json goes with --summary" in one_line_error(err)


def test_record_json_and_replay_summary_agree(tmp_path: Path) -> None:
    """Live: a short recording's summary, printed by record --json, is the file's (run under the bench lock)."""
    path = tmp_path / "live.rec.gz"
    args = ["--scenario", "io-bound", "--seconds", "1.5", "--clients", "10", "--out", str(path), "--json"]
    rec = syncviz("record", *args)
    assert rec.returncode == 0, rec.stderr
    assert f"to {path}" in rec.stderr and path.exists() and not list(tmp_path.glob(".*partial"))
    live = json.loads(rec.stdout)
    back = summarize(path)
    assert set(live["engines"]) == {"threaded", "asyncio", "gevent"}
    for name, row in live["engines"].items():
        assert row["completed"] > 20 and isinstance(row["p50_ms"], float) and isinstance(row["p99_ms"], float)
        assert abs(back["engines"][name]["completed"] - row["completed"]) <= 0.01 * row["completed"]
        assert back["engines"][name]["p50_ms"] == pytest.approx(row["p50_ms"], rel=0.01)
    replay = Replay.from_file(path)  # the servers' own counts were recorded: a replay's panels show them
    while not replay.finished:
        replay.drain()
    servers = {name: st.server for name, st in replay.status().engines.items()}
    assert set(servers) == {"threaded", "asyncio", "gevent"}
    assert all(s is not None and s.served >= live["engines"][name]["completed"] * 0.9 for name, s in servers.items())


INFO = {"scenario": "io-bound", "engines": ["threaded", "asyncio", "gevent"], "run": 1, "load": True}


def test_the_servers_counts_go_through_a_recording_and_a_replay_says_them(tmp_path: Path) -> None:
    snap = {"t_ns": 5, "served": 120, "failed": 1, "timeouts": 0, "reading": 2, "workers": 8}
    snap |= {"pool_used": 0, "pool_size": 0, "waiting": 92, "backlog": 3}
    path = tmp_path / "s.rec"
    batches = [Batch(t_ns=5), Batch(t_ns=6, servers={"threaded": snap})]  # none yet, then the server's counts
    write_recording(path, INFO, batches, seconds=1.0)
    replay = Replay.from_file(path)
    replay.drain()
    assert replay.status().engines["threaded"].server is None
    replay.drain()
    assert replay.status().engines["threaded"].server == ServerSnapshot.from_dict(snap)
    replay.restart()
    assert replay.status().engines["threaded"].server is None  # played again from the start


@pytest.mark.parametrize(
    "srvs",
    [[1, 2], {"nginx": {}}, {"threaded": {"served": -1}}, {"threaded": {"served": "1"}}, {"threaded": {"x": 1}}],
)
def test_bad_server_counts_in_a_recording_are_one_line(tmp_path: Path, srvs: object) -> None:
    path = tmp_path / "bad.rec"
    write_recording(path, INFO, [Batch(t_ns=5)], seconds=1.0)
    lines = gzip.decompress(path.read_bytes()).splitlines()
    record = json.loads(lines[1])
    record["srvs"] = srvs
    lines[1] = json.dumps(record).encode()
    path.write_bytes(gzip.compress(b"\n".join(lines) + b"\n"))
    with pytest.raises(RecordingError) as caught:
        Replay.from_file(path)
    assert "\n" not in str(caught.value) and "srvs" in str(caught.value)


def test_a_digest_recording_summarises_its_counts_and_says_the_percentiles_are_n_a() -> None:
    from syncviz.engines.recording_summary import Summary

    summary = Summary(["threaded", "asyncio"])
    for t, done in ((1, 100), (2, 250), (3, 400)):  # what the app's load process says, cumulative
        summary.add(Batch(t_ns=t, digests=[(1, {"client": {"completed": done}}), (0, {"client": {"completed": t}})]))
    result = summary.result()
    assert result["engines"]["asyncio"] == {"completed": 300, "p50_ms": None, "p99_ms": None}
    assert result["engines"]["threaded"]["completed"] == 2
    assert "n/a" in result["note"]
