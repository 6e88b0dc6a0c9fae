"""Atomic file writes: a reader sees the old file or the new one, never half of either."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

PRIVATE_MODE = 0o600
PUBLIC_MODE = 0o644
DIRECTORY_MODE = 0o700


def ensure_directory(path: Path) -> Path:
    """Create ``path`` (mode 0700 for new directories) and return it."""
    path.mkdir(mode=DIRECTORY_MODE, parents=True, exist_ok=True)
    return path


def write_atomic(path: Path, data: bytes, *, mode: int) -> None:
    """Write ``data`` to ``path`` through a temporary file in the same directory.

    The temporary file is created 0600 by ``mkstemp`` and changed to ``mode`` before it
    holds any data, so a private key is never readable by others, not even briefly.
    """
    ensure_directory(path.parent)
    descriptor, temporary = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    try:
        with os.fdopen(descriptor, "wb") as file:
            os.fchmod(file.fileno(), mode)
            file.write(data)
            file.flush()
            os.fsync(file.fileno())
        os.replace(temporary, path)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise


def write_private(path: Path, data: bytes) -> None:
    """Write secret material (a private key) with mode 0600."""
    write_atomic(path, data, mode=PRIVATE_MODE)


def write_public(path: Path, data: bytes) -> None:
    """Write a certificate or request with mode 0644."""
    write_atomic(path, data, mode=PUBLIC_MODE)
