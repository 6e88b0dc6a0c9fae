"""``NodeConfig`` <-> a plain document (TOML tables): the export/import format and what the
store keeps. ``from_document`` checks every key and type and validates the whole document
before anything is applied.
"""

from __future__ import annotations

import dataclasses
import enum
import functools
import json
import os
import tempfile
import tomllib
import typing
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

import tomli_w

from intrafed.config.model import (
    DIGEST_ALGORITHMS,
    ConfigError,
    NodeConfig,
    NodeIdentity,
    RateLimits,
    Role,
)

if TYPE_CHECKING:
    from _typeshed import DataclassInstance

FORMAT_VERSION = 1
_T = TypeVar("_T", bound="DataclassInstance")
_FORMAT_FIX = "see intrafed config export for the format"

# Document keys that only one role has.
_ROLE_KEYS = {
    Role.OCS: ("connections", "host_authorizations"),
    Role.IMP: ("listeners", "peer_subjects", "acl", "routing_mode", "peer_directory"),
}
# What names an entry of a list, to tell "changed" from "added" and "removed".
_LABELS: dict[str, Callable[[dict[str, Any]], str]] = {
    "connections": lambda entry: f"{entry['transport']} {entry['ip']}:{entry['port']}",
    "routes": lambda entry: (
        entry["domain"] + (f" priority {entry['priority']}" if entry["priority"] != 1 else "")
    ),
    "host_authorizations": lambda entry: entry.get("fqdn") or entry["ip"],
    "acl": lambda entry: entry.get("fqdn") or entry["ip"],
    "users": lambda entry: entry["aor"],
    "hosts": lambda entry: entry["fqdn"],
}


def as_table(instance: Any) -> dict[str, Any]:
    """A dataclass as a TOML table: None values and empty lists left out, enums as their
    values."""
    table = {}
    for item in dataclasses.fields(instance):
        value = getattr(instance, item.name)
        if isinstance(value, tuple):
            if value:
                table[item.name] = list(value)
        elif value is not None:
            table[item.name] = value.value if isinstance(value, enum.Enum) else value
    return table


def to_document(config: NodeConfig) -> dict[str, Any]:
    """The whole configuration as nested tables, in a stable order."""
    document: dict[str, Any] = {
        "format": FORMAT_VERSION,
        "node": as_table(config.identity),
        "domains": list(config.domains),
        "fips": config.fips,
        "tls_profile": config.tls_profile.value,
        "routes": [as_table(route) for route in config.routes],
        "hosts": [as_table(entry) for entry in config.hosts],
        "users": [as_table(user) for user in config.users],
    }
    if config.digest_algorithms != DIGEST_ALGORITHMS:
        document["digest_algorithms"] = list(config.digest_algorithms)
    if config.rate_limits != RateLimits():
        document["rate_limits"] = {
            "client": as_table(config.rate_limits.client),
            "server": as_table(config.rate_limits.server),
        }
    if config.metrics is not None:
        document["metrics"] = as_table(config.metrics)
    if config.role is Role.OCS:
        document["connections"] = [as_table(c) for c in config.connections]
        document["host_authorizations"] = [as_table(h) for h in config.host_authorizations]
    else:
        document["listeners"] = as_table(config.listeners)
        document["peer_subjects"] = list(config.peer_subjects)
        document["acl"] = [as_table(entry) for entry in config.acl]
        document["routing_mode"] = config.routing_mode.value
        if config.peer_directory:
            document["peer_directory"] = list(config.peer_directory)
    return document


def from_document(document: dict[str, Any]) -> NodeConfig:
    """Build and validate a configuration; raise ``ConfigError`` naming the first problem."""
    if document.get("format") != FORMAT_VERSION:
        raise ConfigError(
            "format",
            f"unsupported format {document.get('format')!r}",
            f"export again with this version (format = {FORMAT_VERSION})",
        )
    if "node" not in document:
        raise ConfigError("node", "the [node] table is missing", _FORMAT_FIX)
    identity = _convert(NodeIdentity, document["node"], "node")
    other = Role.IMP if identity.role is Role.OCS else Role.OCS
    for key in _ROLE_KEYS[other]:
        if key in document:
            raise ConfigError(
                key,
                f"belongs to role {other.value}; this document is for an "
                f"{identity.role.value} node",
                f"remove {key} from the document",
            )
    known = ["format", "node"] + [
        f.name for f in dataclasses.fields(NodeConfig) if f.name != "identity"
    ]
    for key in document:
        if key not in known:
            raise ConfigError(key, "is not a setting", f"remove it; known: {', '.join(known)}")
    fields = {key: value for key, value in document.items() if key not in ("format", "node")}
    return _build(NodeConfig, {**fields, "identity": identity}, "").validate()


def to_toml(config: NodeConfig) -> str:
    """The configuration as a TOML document."""
    return tomli_w.dumps(to_document(config))


def from_toml(text: str) -> NodeConfig:
    """Parse and validate a TOML document."""
    try:
        document = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError("TOML", str(exc), "fix the document's syntax") from None
    return from_document(document)


def write_toml(path: Path, config: NodeConfig, setting: str) -> None:
    """Write ``config`` to ``path`` as a TOML document, atomically (a reader sees the old
    document or the new one); ``ConfigError`` naming ``setting`` when it cannot."""
    try:
        handle, temporary = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
        with os.fdopen(handle, "w", encoding="utf-8") as stream:
            stream.write(to_toml(config))
        os.replace(temporary, path)
    except OSError as exc:
        raise ConfigError(
            setting, f"cannot write {path}: {exc.strerror}", "choose a writable path"
        ) from None


class DocumentFile:
    """A configuration exported to a TOML file (``config export --file``), edited in place
    as a store's staged configuration is: a node on another machine, whose administrator
    imports the file there (``config import``)."""

    def __init__(self, path: Path, setting: str) -> None:
        self.path = path
        self._setting = setting

    def load(self, kind: str = "staged") -> NodeConfig:
        """The document's configuration (a file has no running one: ``kind`` is ignored)."""
        try:
            text = self.path.read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as exc:
            raise ConfigError(
                self._setting,
                f"cannot read {self.path} ({exc})",
                "give a file written by intrafed config export",
            ) from None
        return from_toml(text)

    def stage(self, edit: Callable[[NodeConfig], NodeConfig]) -> NodeConfig:
        """Apply ``edit`` and write the result back."""
        config = edit(self.load())
        write_toml(self.path, config, self._setting)
        return config

    def replace_staged(self, config: NodeConfig) -> None:
        """Write ``config`` as the document."""
        write_toml(self.path, config, self._setting)


def changes(old: NodeConfig, new: NodeConfig) -> list[str]:
    """What differs from ``old`` to ``new``, one phrase per setting, e.g.
    ``routes: added example.com`` or ``fips: true → false``."""
    before, after = to_document(old), to_document(new)
    found = []
    for key in dict.fromkeys([*before, *after]):
        was, now = before.get(key), after.get(key)
        if was == now:
            continue
        if isinstance(was, list) or isinstance(now, list):
            found.append(f"{key}: {_list_changes(key, was or [], now or [])}")
        elif isinstance(was, dict) and isinstance(now, dict):
            parts = [
                f"{name} {_text(was.get(name))} → {_text(now.get(name))}"
                for name in dict.fromkeys([*was, *now])
                if was.get(name) != now.get(name)
            ]
            found.append(f"{key}: {', '.join(parts)}")
        else:
            found.append(f"{key}: {_text(was)} → {_text(now)}")
    return found


RESTART_SETTINGS = ("node", "connections", "listeners", "metrics")
"""What only a restart applies (where the node listens, its metrics listener too, and who
it is); a reload applies every other setting (DESIGN §6, ``Node.reload``)."""


MEMBER_SETTINGS = RESTART_SETTINGS
"""What each member of an Enterprise pool or IM&P cluster has of its own, as the seed scopes
it (who it is, where it listens); every other setting belongs to the pool and is the same on
every member."""


def member_part(document: dict[str, Any]) -> dict[str, Any]:
    """The member-scope settings of a configuration document (``MEMBER_SETTINGS``)."""
    return {key: value for key, value in document.items() if key in ("format", *MEMBER_SETTINGS)}


def pool_part(document: dict[str, Any]) -> dict[str, Any]:
    """The pool-scope settings of a configuration document (all but ``MEMBER_SETTINGS``)."""
    return {key: value for key, value in document.items() if key not in MEMBER_SETTINGS}


def apply_command(old: NodeConfig, new: NodeConfig) -> str | None:
    """``reload`` or ``restart``: what takes a node running ``old`` to ``new`` (None when
    they are the same)."""
    before, after = to_document(old), to_document(new)
    if before == after:
        return None
    if any(before.get(key) != after.get(key) for key in RESTART_SETTINGS):
        return "restart"
    return "reload"


def _list_changes(key: str, was: list[Any], now: list[Any]) -> str:
    def label(entry: Any) -> str:
        return _LABELS[key](entry) if isinstance(entry, dict) else str(entry)

    old = {label(entry): entry for entry in was}
    new = {label(entry): entry for entry in now}
    groups = {
        "added": [name for name in new if name not in old],
        "removed": [name for name in old if name not in new],
        "changed": [name for name in new if name in old and new[name] != old[name]],
    }
    parts = [f"{verb} {', '.join(names)}" for verb, names in groups.items() if names]
    return ", ".join(parts) or "reordered"


def _text(value: Any) -> str:
    return "(none)" if value is None else json.dumps(value)


def _build(kind: type[_T], table: Any, where: str) -> _T:
    """An instance of the dataclass ``kind`` from a document table, every value checked."""
    if not isinstance(table, dict):
        raise ConfigError(where, "is not a table", _FORMAT_FIX)
    names, required, hints = _shape(kind)
    prefix = f"{where}." if where else ""
    if not names.issuperset(table):
        unknown = sorted(set(table) - names)
        raise ConfigError(
            f"{prefix}{unknown[0]}",
            "is not a setting",
            f"remove it; known: {', '.join(sorted(names))}",
        )
    missing = [name for name in required if name not in table]
    if missing:
        raise ConfigError(f"{prefix}{missing[0]}", "is missing", _FORMAT_FIX)
    values = {
        name: _convert(hints[name], value, f"{prefix}{name}") for name, value in table.items()
    }
    try:
        return kind(**values)
    except ConfigError as error:
        if not where:
            raise
        raise ConfigError(f"{where} {error.setting}", error.message, error.fix) from None


@functools.cache
def _shape(kind: type[Any]) -> tuple[frozenset[str], tuple[str, ...], dict[str, Any]]:
    """The field names of the dataclass ``kind``, those without a default, and their
    resolved types: worked out once per type, not per entry (100,000 users load in a
    second, not in six)."""
    fields = dataclasses.fields(kind)
    required = tuple(
        item.name
        for item in fields
        if item.default is dataclasses.MISSING and item.default_factory is dataclasses.MISSING
    )
    return frozenset(item.name for item in fields), required, typing.get_type_hints(kind)


@functools.cache
def _kinds(hint: Any) -> tuple[Any, tuple[Any, ...]]:
    """The item type when ``hint`` is a tuple (else None), and the types it admits."""
    item = typing.get_args(hint)[0] if typing.get_origin(hint) is tuple else None
    return item, typing.get_args(hint) or (hint,)


def _convert(hint: Any, value: Any, where: str) -> Any:
    """``value`` as the type ``hint`` names: a dataclass, a tuple, an enum or a scalar."""
    item, kinds = _kinds(hint)
    if item is not None:
        if not isinstance(value, list):
            raise ConfigError(where, f"{_text(value)} is not a list", _FORMAT_FIX)
        return tuple(_convert(item, entry, f"{where}[{i}]") for i, entry in enumerate(value))
    for kind in kinds:
        if isinstance(kind, type) and dataclasses.is_dataclass(kind):
            return value if isinstance(value, kind) else _build(kind, value, where)
        if isinstance(kind, type) and issubclass(kind, enum.Enum) and isinstance(value, str):
            try:
                return kind(value)
            except ValueError:
                choices = ", ".join(str(member.value) for member in kind)
                raise ConfigError(where, f"{value!r} is not allowed", f"use {choices}") from None
        if isinstance(kind, type) and isinstance(value, kind) and not _bool_as_int(kind, value):
            return value
    expected = " or ".join(getattr(k, "__name__", str(k)) for k in kinds)
    raise ConfigError(where, f"{_text(value)} is not {expected}", _FORMAT_FIX)


def _bool_as_int(kind: type[Any], value: Any) -> bool:
    """True for ``true`` where a number is expected (bool is a subclass of int)."""
    return kind is int and isinstance(value, bool)
