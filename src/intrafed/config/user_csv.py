"""Users in bulk as CSV: the columns ``address``, ``enabled``, and either ``password`` or
the digest HA1s of the user's realm (its domain), ``ha1_md5`` and/or ``ha1_sha256``.

``read_users`` checks every line against a configuration and gives the users to add or
change and the lines refused; ``apply_users`` makes one new configuration of them (the
whole file in one edit). ``write_users`` is the export (HA1s only, never a password).
"""

from __future__ import annotations

import csv
import dataclasses
import io
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass

from intrafed.config.model import ConfigError, NodeConfig, User, ha1

COLUMNS = ("address", "enabled", "password", "ha1_md5", "ha1_sha256")
"""The header of a users CSV file, in the order ``export --csv`` writes it."""
_TRUE = frozenset({"", "yes", "true", "1", "enabled"})
_FALSE = frozenset({"no", "false", "0", "disabled"})


@dataclass(frozen=True, slots=True)
class Refusal:
    """A line of the file that cannot be applied, and why."""

    line: int
    reason: str


@dataclass(frozen=True, slots=True)
class UserImport:
    """What a users file would do: users added, users changed (same address, other
    settings), lines equal to what is configured, and the lines refused."""

    added: tuple[User, ...]
    changed: tuple[User, ...]
    unchanged: int
    refused: tuple[Refusal, ...]


def read_users(
    text: str, config: NodeConfig, progress: Callable[[int], None] | None = None
) -> UserImport:
    """Check every line of the users CSV ``text`` against ``config``; ``progress`` is
    told each line number read. ``ConfigError`` when the header is wrong."""
    rows = csv.reader(io.StringIO(text, newline=""))
    header = [name.strip().lower() for name in next(rows, [])]
    _check_header(header)
    current = {user.aor: user for user in config.users}
    served = frozenset(config.domains)
    seen: dict[str, int] = {}
    added: list[User] = []
    changed: list[User] = []
    refused: list[Refusal] = []
    unchanged = 0
    for number, fields in enumerate(rows, start=2):
        if progress is not None:
            progress(number)
        if not any(field.strip() for field in fields):
            continue
        try:
            if len(fields) != len(header):
                raise ConfigError(
                    "line", f"has {len(fields)} fields, the header {len(header)}", "fix it"
                )
            user = _user(dict(zip(header, (f.strip() for f in fields), strict=True)), current)
            if user.domain not in served:
                raise ConfigError(
                    "address", f"{user.domain} is not a domain this node serves", "fix it"
                )
            first = seen.setdefault(user.aor, number)
            if first != number:
                raise ConfigError("address", f"{user.aor} is also on line {first}", "fix it")
        except ConfigError as exc:
            refused.append(Refusal(number, f"{exc.setting}: {exc.message}"))
            continue
        before = current.get(user.aor)
        if before is None:
            added.append(user)
        elif before != user:
            changed.append(user)
        else:
            unchanged += 1
    return UserImport(tuple(added), tuple(changed), unchanged, tuple(refused))


def _check_header(header: list[str]) -> None:
    unknown = [name for name in header if name not in COLUMNS]
    fix = f"give the header {','.join(COLUMNS)} (see intrafed config user export --csv)"
    if unknown or "address" not in header or len(set(header)) != len(header):
        what = f"unknown column {unknown[0]!r}" if unknown else "no address column, or a repeat"
        raise ConfigError("FILE.csv", f"the header line has {what}", fix)


def _user(fields: dict[str, str], current: dict[str, User]) -> User:
    """The user one line describes; a line without credentials keeps the configured ones."""
    aor = fields["address"]
    if not aor:
        raise ConfigError("address", "is empty", "give USER@DOMAIN")
    user = User(aor)
    enabled = fields.get("enabled", "").lower()
    if enabled not in _TRUE | _FALSE:
        raise ConfigError("enabled", f"{enabled!r} is not yes or no", "write yes or no")
    password = fields.get("password", "")
    md5, sha256 = fields.get("ha1_md5", "").lower(), fields.get("ha1_sha256", "").lower()
    before = current.get(user.aor)
    if password and (md5 or sha256):
        raise ConfigError("password", "given with an HA1", "give a password or HA1s, not both")
    if password:
        md5 = ha1(user.user, user.domain, password, "MD5")
        sha256 = ha1(user.user, user.domain, password, "SHA-256")
    elif not (md5 or sha256):
        if before is None:
            raise ConfigError("password", "a new user needs credentials", "give one")
        md5, sha256 = before.ha1_md5 or "", before.ha1_sha256 or ""
    blocked = before.blocked if before is not None else ()
    return User(user.aor, enabled in _TRUE, md5 or None, sha256 or None, blocked)


def apply_users(config: NodeConfig, found: UserImport) -> NodeConfig:
    """``config`` with the users of ``found`` added and changed, in one edit (changed
    users keep their place)."""
    changes = {user.aor: user for user in found.changed}
    users = tuple(changes.get(user.aor, user) for user in config.users)
    return dataclasses.replace(config, users=(*users, *found.added)).validate()


def write_users(users: Iterable[User]) -> Iterator[str]:
    """The users CSV of ``users``, line by line (header first; HA1s, no password)."""
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(COLUMNS)
    yield buffer.getvalue()
    for user in users:
        buffer.seek(0)
        buffer.truncate()
        enabled = "yes" if user.enabled else "no"
        writer.writerow((user.aor, enabled, "", user.ha1_md5 or "", user.ha1_sha256 or ""))
        yield buffer.getvalue()
