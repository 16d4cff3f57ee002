"""Output a user directs: a named file is written whole and never replaces a device, a FIFO or a
link; stdout that cannot be written is one line (exit 1), a reader that left is a clean exit."""

from __future__ import annotations

import errno
import gzip
import os
import stat
import subprocess
import threading
from pathlib import Path

import pytest
from support import SYNCVIZ, one_line_error
from syncviz.engines.output import GuardedStdout, OutputFile, StdoutError
from syncviz.engines.recording import RecordingWriter, read_recording
from syncviz.engines.recording_format import RecordingError

DATA = Path(__file__).parent / "data"
FULL = Path("/dev/full")  # every write fails with ENOSPC (Linux)
needs_full = pytest.mark.skipif(not FULL.exists(), reason="no /dev/full here")


def test_a_regular_file_appears_only_once_committed(tmp_path: Path) -> None:
    out = tmp_path / "a.json"
    out.write_text("older")
    f = OutputFile(out, text=True)
    f.stream.write("newer")
    assert out.read_text() == "older"  # nothing half written at the name meanwhile
    f.commit()
    f.discard()  # after a commit: nothing more happens
    assert out.read_text() == "newer" and sorted(p.name for p in tmp_path.iterdir()) == ["a.json"]
    g = OutputFile(out, text=True)
    g.stream.write("abandoned")
    g.discard()
    assert out.read_text() == "newer" and sorted(p.name for p in tmp_path.iterdir()) == ["a.json"]


def test_a_link_stays_a_link_and_its_target_gets_the_file(tmp_path: Path) -> None:
    target, link = tmp_path / "target.json", tmp_path / "link.json"
    link.symlink_to(target)
    f = OutputFile(link, text=True)
    f.stream.write("{}")
    f.commit()
    assert link.is_symlink() and target.read_text() == "{}"


def test_a_fifo_is_written_in_place_and_stays_a_fifo(tmp_path: Path) -> None:
    """``record --out`` a named pipe (or ``/dev/stdout``): the bytes go through it, nothing replaces it."""
    fifo = tmp_path / "pipe.rec"
    os.mkfifo(fifo)
    got: list[bytes] = []
    reader = threading.Thread(target=lambda: got.append(fifo.read_bytes()), daemon=True)
    reader.start()
    info, batches = read_recording(DATA / "io-bound.rec.gz")
    with RecordingWriter(fifo) as writer:
        writer.start(info)
        for batch in batches[:5]:
            writer.write(batch)
        assert writer.finish() == 5
    reader.join(10)
    assert stat.S_ISFIFO(fifo.stat().st_mode)  # still the pipe, not a file moved over it
    assert gzip.decompress(got[0]).startswith(b"{")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["pipe.rec"]


def test_a_directory_or_a_read_only_file_is_refused_before_anything_is_written(tmp_path: Path) -> None:
    with pytest.raises(IsADirectoryError):
        OutputFile(tmp_path)
    if os.geteuid() != 0:  # root may write anything
        ro = tmp_path / "ro.rec"
        ro.write_bytes(b"")
        ro.chmod(0o444)
        with pytest.raises(PermissionError):
            OutputFile(ro)
    with pytest.raises(RecordingError, match="it is a directory"):
        RecordingWriter(tmp_path)


@needs_full
def test_a_recording_to_a_full_device_is_one_line_and_the_device_stays() -> None:
    info, batches = read_recording(DATA / "io-bound.rec.gz")
    writer = RecordingWriter(FULL)
    with pytest.raises(RecordingError, match="No space left on device"), writer:
        writer.start(info)
        for batch in batches:
            writer.write(batch)
        writer.finish()
    assert stat.S_ISCHR(FULL.stat().st_mode)


@needs_full
def test_a_trace_to_a_full_device_is_one_line_exit_2_and_the_device_stays() -> None:
    proc = subprocess.run(
        [*SYNCVIZ, "trace", "--from", str(DATA / "io-bound.rec.gz"), "--out", str(FULL)],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert proc.returncode == 2 and "No space left on device" in one_line_error(proc.stderr)
    assert stat.S_ISCHR(FULL.stat().st_mode)


@needs_full
@pytest.mark.parametrize(
    "args",
    [
        ["scenarios"],
        ["--help"],
        ["replay", str(DATA / "io-bound.rec.gz"), "--summary", "--json"],
        ["trace", "--from", str(DATA / "io-bound.rec.gz"), "--out", os.devnull],
    ],
)
def test_stdout_that_cannot_be_written_is_one_line_and_exit_1(args: list[str]) -> None:
    with FULL.open("w") as full:
        proc = subprocess.run([*SYNCVIZ, *args], stdout=full, stderr=subprocess.PIPE, text=True, timeout=60)
    assert proc.returncode == 1
    assert one_line_error(proc.stderr) == "syncviz: error: cannot write the output: No space left on device"


def test_a_reader_that_left_is_a_stdout_error_the_cli_can_tell_apart() -> None:
    r, w = os.pipe()
    os.close(r)
    with os.fdopen(w, "w") as stream:
        guarded = GuardedStdout(stream)
        guarded.write("x" * 100)  # buffered
        with pytest.raises(StdoutError) as caught:
            guarded.flush()
        assert caught.value.errno == errno.EPIPE
        assert guarded.fileno() == stream.fileno()  # the rest is the stream's
        with pytest.raises(OSError):  # the buffer is still there: let the close fail here
            stream.close()
