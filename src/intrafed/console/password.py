"""The console's admin password: a scrypt hash in the home, readable by its owner only."""

from __future__ import annotations

import base64
import hashlib
import hmac
import os
import secrets
from pathlib import Path

from intrafed.config.model import ConfigError

PASSWORD_FILE = "console-password"  # noqa: S105 (a file name)
"""The file in the home that holds the hash (mode 0600)."""
MIN_LENGTH = 8
SCRYPT_N, SCRYPT_R, SCRYPT_P = 2**14, 8, 1
"""RFC 7914 parameters: 16 MiB and some 50 ms per guess on a small machine."""
_SCHEME = "scrypt"


def hash_password(password: str, salt: bytes | None = None) -> str:
    """``scrypt$N$r$p$salt$hash`` (salt and hash in base64) of ``password``."""
    salt = secrets.token_bytes(16) if salt is None else salt
    digest = _scrypt(password, salt, SCRYPT_N, SCRYPT_R, SCRYPT_P)
    fields = (_SCHEME, str(SCRYPT_N), str(SCRYPT_R), str(SCRYPT_P), _b64(salt), _b64(digest))
    return "$".join(fields)


def matches(password: str, stored: str) -> bool:
    """Whether ``password`` is the one ``stored`` (a ``hash_password`` result) was made of;
    False for a damaged or foreign hash."""
    parts = stored.strip().split("$")
    if len(parts) != 6 or parts[0] != _SCHEME:
        return False
    try:
        n, r, p = (int(value) for value in parts[1:4])
        salt, digest = base64.b64decode(parts[4]), base64.b64decode(parts[5])
        candidate = _scrypt(password, salt, n, r, p)
    except ValueError:
        return False
    return hmac.compare_digest(candidate, digest)


def set_password(home: Path, password: str) -> Path:
    """Store the hash of ``password`` in ``home``, replacing any earlier one."""
    if len(password) < MIN_LENGTH:
        raise ConfigError(
            "PASSWORD",
            f"is shorter than {MIN_LENGTH} characters",
            f"choose a password of at least {MIN_LENGTH} characters",
        )
    path = home / PASSWORD_FILE
    staging = path.with_name(path.name + ".new")
    staging.unlink(missing_ok=True)
    descriptor = os.open(staging, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(descriptor, "w") as file:
        file.write(hash_password(password) + "\n")
    staging.replace(path)
    return path


def stored_hash(home: Path) -> str | None:
    """The hash kept in ``home``; None when no password was set."""
    try:
        return (home / PASSWORD_FILE).read_text()
    except FileNotFoundError:
        return None


def _scrypt(password: str, salt: bytes, n: int, r: int, p: int) -> bytes:
    return hashlib.scrypt(password.encode(), salt=salt, n=n, r=r, p=p, maxmem=64 * 1024 * 1024)


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode()
