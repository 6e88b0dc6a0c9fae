"""A node's SIP trace on disk: JSON lines and a pcap capture side by side in the home's
``trace`` directory, rotated together by size; read back oldest first, or followed."""

from __future__ import annotations

import contextlib
import os
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import BinaryIO

from intrafed.observe.pcap import PcapEncoder, file_header
from intrafed.observe.trace import TraceFilter, TraceFormatError, TraceRecord

TRACE_DIR = "trace"
RECORDS = "sip.jsonl"
CAPTURE = "sip.pcap"
MAX_BYTES = 16 * 1024 * 1024
"""Size of the JSON-lines file at which both files rotate."""
KEEP = 4
"""Rotated generations kept (``sip.jsonl.1`` newest … ``sip.jsonl.4`` oldest)."""


def trace_directory(home: Path) -> Path:
    """Where the node of ``home`` writes its trace."""
    return home / TRACE_DIR


class TraceWriter:
    """Appends the records ``keep`` lets through to the trace files."""

    def __init__(
        self,
        directory: Path,
        keep: TraceFilter | None = None,
        max_bytes: int = MAX_BYTES,
        generations: int = KEEP,
    ) -> None:
        self.directory = directory
        self.filter = keep or TraceFilter()
        self._max_bytes = max_bytes
        self._generations = generations
        directory.mkdir(mode=0o700, exist_ok=True)
        self._records, self._capture = self._open()
        self._encoder = PcapEncoder()

    def _open(self) -> tuple[BinaryIO, BinaryIO]:
        records = (self.directory / RECORDS).open("ab")
        capture = (self.directory / CAPTURE).open("ab")
        if capture.tell() == 0:
            capture.write(file_header())
        return records, capture

    def write(self, record: TraceRecord) -> None:
        """Write ``record`` if the filter keeps it (buffered: ``flush`` makes what was
        written visible to a follower)."""
        if not self.filter.matches(record.message):
            return
        self._records.write(record.to_json_line().encode() + b"\n")
        self._capture.write(self._encoder.packets(record))
        if self._records.tell() >= self._max_bytes:
            self._rotate()

    def flush(self) -> None:
        """Hand what was written to the files."""
        self._records.flush()
        self._capture.flush()

    def _rotate(self) -> None:
        self.close()
        for name in (RECORDS, CAPTURE):
            base = self.directory / name
            base.with_name(f"{name}.{self._generations}").unlink(missing_ok=True)
            for generation in range(self._generations - 1, 0, -1):
                older = base.with_name(f"{name}.{generation}")
                if older.exists():
                    older.rename(base.with_name(f"{name}.{generation + 1}"))
            base.rename(base.with_name(f"{name}.1"))
        self._records, self._capture = self._open()

    def close(self) -> None:
        """Close both files."""
        self._records.close()
        self._capture.close()


def _files_oldest_first(directory: Path) -> list[Path]:
    rotated = sorted(
        (path for path in directory.glob(f"{RECORDS}.*") if path.suffix[1:].isdigit()),
        key=lambda path: -int(path.suffix[1:]),
    )
    current = directory / RECORDS
    return rotated + ([current] if current.exists() else [])


def read_records(directory: Path, bad_lines: list[str] | None = None) -> Iterator[TraceRecord]:
    """Every record in the trace files, oldest first; lines that are not records are
    skipped (and their ``file:line`` appended to ``bad_lines``)."""
    for path in _files_oldest_first(directory):
        with path.open(encoding="utf-8", errors="surrogateescape") as lines:
            for number, line in enumerate(lines, 1):
                try:
                    yield TraceRecord.from_json_line(line)
                except TraceFormatError:
                    if bad_lines is not None:
                        bad_lines.append(f"{path.name}:{number}")


def follow(directory: Path, stop: Callable[[], bool], poll: float = 0.2) -> Iterator[TraceRecord]:
    """Records appended to the current trace file from this call on (across rotations),
    until ``stop()`` is true; checked every ``poll`` seconds when there is nothing new."""
    path = directory / RECORDS
    handle: BinaryIO | None = None
    with contextlib.suppress(FileNotFoundError):
        handle = path.open("rb")
        handle.seek(0, os.SEEK_END)  # what is there already is history
    return _follow(path, handle, stop, poll)


def _inode(path: Path) -> int | None:
    try:
        return path.stat().st_ino
    except FileNotFoundError:
        return None  # between a rotation's rename and the new file


def _follow(
    path: Path, handle: BinaryIO | None, stop: Callable[[], bool], poll: float
) -> Iterator[TraceRecord]:
    inode = os.fstat(handle.fileno()).st_ino if handle is not None else 0
    try:
        while not stop():
            if handle is None:
                with contextlib.suppress(FileNotFoundError):
                    handle = path.open("rb")
                    inode = os.fstat(handle.fileno()).st_ino
            if handle is None:
                time.sleep(poll)
                continue
            lines = [handle.readline()]
            if not lines[0].endswith(b"\n"):
                handle.seek(handle.tell() - len(lines[0]))  # a line still being written
                if _inode(path) != inode:
                    # Rotated: the old file is complete; read its rest, then the new one.
                    lines = handle.readlines()
                    handle.close()
                    handle = None
                elif not stop():
                    time.sleep(poll)
            for line in lines:
                if line.endswith(b"\n"):
                    with contextlib.suppress(TraceFormatError):
                        yield TraceRecord.from_json_line(line.decode("utf-8", "surrogateescape"))
    finally:
        if handle is not None:
            handle.close()
