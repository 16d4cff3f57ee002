"""The tape's temporary files: packed batches written out of the app's memory (:mod:`~syncviz.tui.tape`).

A :class:`Spill` is one unlinked temporary file the tape appends packed batches to and reads them
back from, by offset and length; it is gone on exit, even on ``kill -9``.
"""

from __future__ import annotations

import errno
import os
import tempfile


class Spill:
    """An unlinked temporary file of packed batches, appended to; closed once nothing refers to it.

    Reads and writes are positional (``os.pread`` / ``os.pwrite``), so a recording saved off the UI
    thread reads it while the tape appends. Raises :class:`OSError` when it cannot be made.
    """

    __slots__ = ("file", "size", "t0_ns")

    def __init__(self, t0_ns: int) -> None:
        if not hasattr(os, "pwrite"):
            raise OSError(errno.ENOTSUP, "positional file i/o is not available here")
        self.file = tempfile.TemporaryFile(buffering=0)  # noqa: SIM115 (never named, or unlinked at once; closed in __del__)
        self.size = 0
        self.t0_ns = t0_ns

    def write(self, data: bytes) -> int:
        """Append ``data``; its offset (raises :class:`OSError`, the file unchanged in size)."""
        offset = self.size
        if os.pwrite(self.file.fileno(), data, offset) != len(data):
            raise OSError(errno.ENOSPC, "short write to the tape's temporary file")
        self.size += len(data)
        return offset

    def read(self, offset: int, length: int) -> bytes:
        data = os.pread(self.file.fileno(), length, offset)
        if len(data) != length:
            raise OSError(errno.EIO, f"short read from the tape's temporary file ({len(data)} of {length} bytes)")
        return data

    def __del__(self) -> None:
        file = getattr(self, "file", None)  # None: the file could not be made
        if file is not None:
            file.close()
