"""Where the output a user directs goes: files named for it (recordings, traces) and stdout.

Files are written whole, or not at all. A new or regular file is written beside itself under a
hidden name and moved into place once complete (:meth:`OutputFile.commit`), so a run that fails
leaves no half file and never overwrites an older one with one. A symbolic link is followed: its
target gets the file, the link stays. A path that exists but is not a regular file (``/dev/null``,
``/dev/stdout``, a FIFO) is written in place: moving a file over it would replace the device itself
(as root, ``/dev/full`` became a plain file). Opening is the check that the path can be written,
before anything is recorded.

Stdout: :class:`GuardedStdout` turns a failed write into :class:`StdoutError`, so a command can
tell its own output failing from any other :class:`OSError`. A reader that left (``| head``,
:data:`READER_GONE`) ends a command cleanly; a full disk (``> /dev/full``) is one line and exit 1.
"""

from __future__ import annotations

import contextlib
import errno
import os
import stat
import sys
from pathlib import Path
from typing import IO, Any, TextIO

READER_GONE = frozenset({errno.EPIPE, errno.EIO})  # stdout's reader left (| head) or its terminal hung up


class OutputFile:
    """``OutputFile(path)``: write to :attr:`stream`, then :meth:`commit` (or :meth:`discard`).

    Opening raises :class:`OSError` (its ``strerror`` says why in a few words) when ``path`` is a
    directory, a file this user may not write, or in a directory where no file can be made.
    """

    def __init__(self, path: str | Path, text: bool = False) -> None:
        self.path = Path(path)
        mode = _mode(self.path)
        if mode is not None and stat.S_ISDIR(mode):
            raise IsADirectoryError(errno.EISDIR, "it is a directory")
        if mode is not None and not os.access(self.path, os.W_OK):
            raise PermissionError(errno.EACCES, "permission denied")
        self.in_place = mode is not None and not stat.S_ISREG(mode)
        if self.in_place:
            self._target = self._written = self.path
        else:
            self._target = Path(os.path.realpath(self.path))
            self._written = self._target.with_name(f".{self._target.name}.{os.getpid()}.partial")
        kwargs: dict[str, Any] = {"encoding": "utf-8"} if text else {}
        self.stream: IO[Any] = open(self._written, "w" if text else "wb", **kwargs)  # noqa: SIM115 (commit/discard)
        self._open = True

    def commit(self) -> None:
        """Close and put the file in place; :class:`OSError` if the last bytes could not be written."""
        self._open = False
        self.stream.close()
        if not self.in_place:
            os.replace(self._written, self._target)

    def discard(self) -> None:
        """Close and remove what was written (a device or pipe is only closed)."""
        if self._open:
            self._open = False
            with contextlib.suppress(OSError):
                self.stream.close()
        if not self.in_place:
            self._written.unlink(missing_ok=True)


def _mode(path: Path) -> int | None:
    """``path``'s file type and mode, its link followed; ``None`` when nothing is there yet."""
    try:
        return os.stat(path).st_mode
    except (FileNotFoundError, NotADirectoryError):
        return None


class StdoutError(OSError):
    """Writing stdout failed: its reader left (``errno`` in :data:`READER_GONE`) or the disk is full."""


class GuardedStdout:
    """``sys.stdout`` whose failed writes and flushes raise :class:`StdoutError`; the rest is the stream's."""

    def __init__(self, stream: TextIO) -> None:
        self.stream = stream

    def write(self, text: str) -> int:
        try:
            return self.stream.write(text)
        except OSError as exc:
            raise StdoutError(exc.errno, exc.strerror) from None

    def flush(self) -> None:
        try:
            self.stream.flush()
        except OSError as exc:
            raise StdoutError(exc.errno, exc.strerror) from None

    def __getattr__(self, name: str) -> Any:
        return getattr(self.stream, name)


def silence_stdout() -> None:
    """Send what is left for stdout nowhere (its reader has gone), so the exit's flush cannot fail."""
    with contextlib.suppress(OSError, ValueError):
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        os.close(devnull)
