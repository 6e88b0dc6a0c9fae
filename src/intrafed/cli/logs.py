"""How a running node logs: level and format (text or JSON lines), and where — stderr, a
log file that follows logrotate, or journald under systemd. Set up here and nowhere else.
"""

from __future__ import annotations

import datetime
import json
import logging
import os
import re
import sys
from collections.abc import Callable
from logging.handlers import WatchedFileHandler
from pathlib import Path
from typing import Any, TextIO, TypeVar

import click

F = TypeVar("F", bound=Callable[..., Any])

LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR")
FORMATS = ("text", "json")
TEXT_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"
JOURNAL_FORMAT = "<%(priority)d>%(levelname)s %(name)s: %(message)s"
"""journald stamps each line itself and reads the ``<N>`` prefix as the syslog priority."""
_TEXT_LINE = re.compile(r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d{3} [A-Z]+ [\w.]+: (.*)")
"""A line of TEXT_FORMAT; the group is the message."""

SYSLOG_PRIORITY = {
    logging.DEBUG: 7,
    logging.INFO: 6,
    logging.WARNING: 4,
    logging.ERROR: 3,
    logging.CRITICAL: 2,
}

_RECORD_FIELDS = frozenset(vars(logging.makeLogRecord({}))) | {"message", "asctime", "priority"}
"""Attributes every log record has; any other attribute came from ``extra=``."""


def log_options(command: F) -> F:
    """``--log-level`` and ``--log-format``, as ``serve`` and ``service start`` take them."""
    command = click.option(
        "--log-format",
        default="text",
        show_default=True,
        type=click.Choice(FORMATS, case_sensitive=False),
        help="text lines, or json: one object per line (time, level, logger, message and "
        "the record's structured fields).",
    )(command)
    return click.option(
        "--log-level",
        default="INFO",
        show_default=True,
        type=click.Choice(LEVELS, case_sensitive=False),
        help="Logging threshold.",
    )(command)


class JsonFormatter(logging.Formatter):
    """One JSON object per record: time (ISO 8601, UTC), level, logger, message, the
    fields given with ``extra=``, and the traceback of an exception."""

    def format(self, record: logging.LogRecord) -> str:
        fields = {name: value for name, value in vars(record).items() if name not in _RECORD_FIELDS}
        at = datetime.datetime.fromtimestamp(record.created, datetime.UTC)
        fields |= {
            "time": at.isoformat(timespec="milliseconds"),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        if record.exc_info:
            fields["exception"] = self.formatException(record.exc_info)
        return json.dumps(fields, default=str)


class _Priority(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        record.priority = SYSLOG_PRIORITY.get(record.levelno, 6)
        return True


class LogFile(WatchedFileHandler):
    """A log file that is opened again when logrotate moves it away; stdout and stderr
    follow it, so that a traceback lands in the current file too."""

    def _open(self) -> Any:
        stream = super()._open()
        for fd in (sys.stdout.fileno(), sys.stderr.fileno()):
            os.dup2(stream.fileno(), fd)
        return stream


def under_journald(stream: TextIO) -> bool:
    """Whether ``stream`` is the journal stream systemd handed us (``JOURNAL_STREAM`` names
    its device and inode; a redirected stderr is not it)."""
    device, _, inode = os.environ.get("JOURNAL_STREAM", "").partition(":")
    try:
        status = os.fstat(stream.fileno())
        return (status.st_dev, status.st_ino) == (int(device), int(inode))
    except (ValueError, OSError):
        return False


def configure(level: str, log_format: str, log_file: Path | None = None) -> None:
    """Send the process's log records to ``log_file`` (reopened after rotation) or stderr
    (without timestamps when stderr is the journal), as text or JSON lines."""
    handler: logging.Handler
    if log_file is not None:
        handler = LogFile(log_file, encoding="utf-8")
    else:
        handler = logging.StreamHandler(sys.stderr)
    if log_format.lower() == "json":
        handler.setFormatter(JsonFormatter())
    elif log_file is None and under_journald(sys.stderr):
        handler.addFilter(_Priority())
        handler.setFormatter(logging.Formatter(JOURNAL_FORMAT))
    else:
        handler.setFormatter(logging.Formatter(TEXT_FORMAT))
    logging.basicConfig(level=level.upper(), handlers=[handler], force=True)


def message_of(line: str) -> str:
    """The message of one log line, in either format (any other line as it is)."""
    try:
        record = json.loads(line)
    except ValueError:
        match = _TEXT_LINE.fullmatch(line)
        return match.group(1) if match else line
    return str(record.get("message", line)) if isinstance(record, dict) else line
