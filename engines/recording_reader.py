"""Reading a recording: every byte checked, every failure one line.

:class:`RecordingReader` checks everything: the header, each batch through the wire decoder,
every integer's range (engine ids, phases, lanes, times) and each ``info``'s keys and settings,
so a consumer never meets a value it cannot handle. Whatever is wrong is one
:class:`~syncviz.engines.recording_format.RecordingError`, one line: a file cut short says it is
truncated (and how many batches came before the cut), a corrupt one where it broke, an old
pickle recording or a foreign file what it is. Nothing here unpickles or executes a byte.
"""

from __future__ import annotations

import gzip
import json
import zlib
from collections.abc import Iterator
from pathlib import Path
from typing import IO, Any

from .counts import ServerSnapshot
from .events import ENGINE_IDS, Batch
from .recording_format import (
    FORMAT,
    GZIP_MAGIC,
    INT64,
    MAX_LINE,
    PICKLE_PROTO,
    VERSION,
    RecordingError,
    check_info,
    one_line,
)
from .wire import WireError, decode_batch


def _no_constant(name: str) -> None:
    raise ValueError(f"{name} is not a number a recording holds")


class RecordingReader:
    """Reads and checks one recording, a batch at a time; every failure is a :class:`RecordingError`.

    Opening reads the header (``header``, ``info``); iterating yields every batch, and ends
    only after the end record and the gzip trailer (its CRC) have been read.
    """

    def __init__(self, path: str | Path) -> None:
        self.path = str(path)
        self.count = 0
        try:
            self._raw: IO[bytes] = open(path, "rb")  # noqa: SIM115 (closed by close())
        except OSError as exc:
            raise RecordingError(f"cannot read recording {path}: {one_line(exc.strerror or exc)}") from None
        try:
            self.header = self._read_header()
        except BaseException:
            self.close()
            raise
        self.info: dict[str, Any] = self.header["info"]

    # -- errors, one line each
    def _truncated(self) -> RecordingError:
        return RecordingError(f"recording {self.path} is truncated ({self.count} batches read)")

    def _corrupt(self, why: object) -> RecordingError:
        return RecordingError(f"recording {self.path} is corrupt after {self.count} batches: {one_line(why)}")

    def _foreign(self, what: str) -> RecordingError:
        return RecordingError(f"{self.path} is not a syncviz recording ({what})")

    def _read_header(self) -> dict[str, Any]:
        magic = self._raw.read(2)
        if magic != GZIP_MAGIC:
            if not magic:
                raise self._foreign("the file is empty")
            if magic == GZIP_MAGIC[:1]:
                raise self._truncated()
            if magic.startswith(PICKLE_PROTO):
                raise self._foreign("it is a pickle, which syncviz never loads")
            raise self._foreign("not gzip-compressed")
        self._raw.seek(0)
        self._gz = gzip.GzipFile(filename="", mode="rb", fileobj=self._raw)
        first = self._call(lambda: self._gz.peek(1)[:1])
        if first == PICKLE_PROTO:
            raise RecordingError(
                f"{self.path} is an old-format (pickle, version 1) recording, which this syncviz does not read "
                "(loading one could run code): record it again with `syncviz record`"
            )
        if first != b"{":
            raise self._foreign("its content is not a syncviz-recording header" if first else "it is empty")
        header = self._parse(self._next_line(), header=True)
        if not isinstance(header, dict) or header.get("format") != FORMAT:
            raise self._foreign("no syncviz-recording header")
        version = header.get("version")
        if version != VERSION or type(version) is not int:
            raise RecordingError(
                f"{self.path} is syncviz-recording format version {one_line(version)[:20]}, "
                f"which this syncviz does not read (it reads version {VERSION})"
            )
        try:
            check_info(header.get("info"))
            if header.get("settings") is not None:
                check_info({"settings": header["settings"]})
        except ValueError as exc:
            raise self._corrupt(f"header: {exc}") from None
        if not isinstance(header.get("created", ""), str):
            raise self._corrupt("header: 'created' is not text")
        seconds = header.get("seconds")
        if seconds is not None and not (type(seconds) in (int, float) and 0 <= seconds < INT64):
            raise self._corrupt("header: 'seconds' is not a duration")
        return header

    def _call(self, read: Any) -> bytes:
        """Run one read of the gzip stream, its failures as one-line errors."""
        try:
            return read()
        except EOFError:
            raise self._truncated() from None
        except (gzip.BadGzipFile, zlib.error) as exc:
            raise self._corrupt(exc) from None
        except OSError as exc:
            raise RecordingError(f"cannot read recording {self.path}: {one_line(exc.strerror or exc)}") from None

    def _next_line(self) -> bytes | None:
        """The next record's bytes (without its newline); ``None`` at the end of the file."""
        line = self._call(lambda: self._gz.readline(MAX_LINE + 1))
        if not line:
            return None  # the gzip trailer (length, CRC) has been checked by now
        if len(line) > MAX_LINE:
            raise self._corrupt(f"a record longer than {MAX_LINE} bytes")
        if not line.endswith(b"\n"):
            raise self._truncated()  # the file ends inside a record
        return line[:-1]

    def _parse(self, line: bytes | None, header: bool = False) -> Any:
        if line is None:
            raise self._foreign("no header") if header else self._truncated()
        try:
            return json.loads(line, parse_constant=_no_constant)
        except (ValueError, RecursionError) as exc:
            if header:
                raise self._foreign("its header is not JSON") from None
            raise self._corrupt(f"a record is not JSON ({exc.__class__.__name__})") from None

    def __iter__(self) -> Iterator[Batch]:
        while True:
            record = self._parse(self._next_line())  # the file ending before the end record: truncated
            if isinstance(record, dict) and "end" in record:
                if record != {"end": True, "batches": self.count}:
                    raise self._corrupt("the end record does not match the batches read")
                if self._next_line() is not None:
                    raise self._corrupt("data after the end record")
                return
            yield self._batch(record)

    def _batch(self, record: Any) -> Batch:
        try:
            batch = decode_batch(record).batch  # types and ranges checked there
            info = record.get("info")
            if info is not None:
                batch.info = check_info(info)
            if "srvs" in record:
                batch.servers = _servers(record["srvs"])
        except (WireError, ValueError) as exc:
            raise self._corrupt(f"batch {self.count + 1}: {exc}") from None
        self.count += 1
        return batch

    def close(self) -> None:
        gz = getattr(self, "_gz", None)
        if gz is not None:
            gz.close()
        self._raw.close()

    def __enter__(self) -> RecordingReader:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _servers(srvs: object) -> dict[str, dict[str, int]]:
    """A batch's ``srvs``: engine name -> its source counters, each checked
    (:meth:`~syncviz.engines.counts.ServerSnapshot.from_dict`); ValueError (one line) otherwise."""
    if not isinstance(srvs, dict) or not all(name in ENGINE_IDS for name in srvs):
        raise ValueError("'srvs' is not a record of engines' server counts")
    try:
        return {name: ServerSnapshot.from_dict(snap).as_dict() for name, snap in srvs.items()}
    except ValueError as exc:
        raise ValueError(f"'srvs': {exc}") from None


def read_recording(path: str | Path) -> tuple[dict[str, Any], list[Batch]]:
    """The header's info and every batch, or :class:`RecordingError`."""
    with RecordingReader(path) as reader:
        return reader.info, list(reader)
