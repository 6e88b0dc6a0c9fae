"""``NodeConfig`` <-> a plain document (TOML tables): the export/import format and what the
store keeps. ``from_document`` validates the whole document before anything is applied.
"""

from __future__ import annotations

import dataclasses
import tomllib
from typing import Any

import tomli_w

from intrafed.config.model import (
    AclEntry,
    ConfigError,
    Connection,
    Edition,
    HostAuthorization,
    HostEntry,
    ImpListeners,
    NodeConfig,
    NodeIdentity,
    Role,
    RoutingMode,
    StaticRoute,
    TlsProfile,
    User,
)

FORMAT_VERSION = 1


def _table(instance: Any) -> dict[str, Any]:
    """A dataclass as a TOML table: None values left out, enums as their values."""
    table = {}
    for item in dataclasses.fields(instance):
        value = getattr(instance, item.name)
        if value is not None:
            table[item.name] = value.value if hasattr(value, "value") else value
    return table


def to_document(config: NodeConfig) -> dict[str, Any]:
    """The whole configuration as nested tables, in a stable order."""
    document: dict[str, Any] = {
        "format": FORMAT_VERSION,
        "node": _table(config.identity),
        "domains": list(config.domains),
        "fips": config.fips,
        "tls_profile": config.tls_profile.value,
        "routes": [_table(route) for route in config.routes],
        "hosts": [_table(entry) for entry in config.hosts],
        "users": [_table(user) for user in config.users],
    }
    if config.role is Role.OCS:
        document["connections"] = [_table(c) for c in config.connections]
        document["host_authorizations"] = [_table(h) for h in config.host_authorizations]
    else:
        document["listeners"] = _table(config.listeners or ImpListeners())
        document["peer_subjects"] = list(config.peer_subjects)
        document["acl"] = [_table(entry) for entry in config.acl]
        document["routing_mode"] = config.routing_mode.value
    return document


def _build(kind: type[Any], table: Any, where: str) -> Any:
    if not isinstance(table, dict):
        raise ConfigError(where, "is not a table", "see intrafed config export for the format")
    names = {item.name for item in dataclasses.fields(kind)}
    unknown = sorted(set(table) - names)
    if unknown:
        raise ConfigError(
            f"{where}.{unknown[0]}",
            "is not a setting",
            f"remove it; known: {', '.join(sorted(names))}",
        )
    try:
        return kind(**table)
    except TypeError as exc:
        raise ConfigError(where, str(exc), "see intrafed config export for the format") from None


def from_document(document: dict[str, Any]) -> NodeConfig:
    """Build and validate a configuration; raise ``ConfigError`` naming the first problem."""
    if document.get("format") != FORMAT_VERSION:
        raise ConfigError(
            "format",
            f"unsupported format {document.get('format')!r}",
            f"export again with this version (format = {FORMAT_VERSION})",
        )
    node = dict(document.get("node", {}))
    try:
        node["role"] = Role(str(node.get("role")))
        if node.get("edition") is not None:
            node["edition"] = Edition(node["edition"])
        fields: dict[str, Any] = {
            "routing_mode": RoutingMode(document.get("routing_mode", RoutingMode.BASIC.value)),
            "tls_profile": TlsProfile(document.get("tls_profile", TlsProfile.DEFAULT.value)),
        }
    except ValueError as exc:
        raise ConfigError("node", str(exc), "use one of the documented values") from None
    identity = _build(NodeIdentity, node, "node")
    listeners = document.get("listeners")
    config = NodeConfig(
        identity=identity,
        domains=tuple(document.get("domains", ())),
        connections=tuple(
            _build(Connection, t, f"connections[{i}]")
            for i, t in enumerate(document.get("connections", ()))
        ),
        routes=tuple(
            _build(StaticRoute, t, f"routes[{i}]") for i, t in enumerate(document.get("routes", ()))
        ),
        host_authorizations=tuple(
            _build(HostAuthorization, t, f"host_authorizations[{i}]")
            for i, t in enumerate(document.get("host_authorizations", ()))
        ),
        listeners=_build(ImpListeners, listeners, "listeners") if listeners is not None else None,
        peer_subjects=tuple(document.get("peer_subjects", ())),
        acl=tuple(_build(AclEntry, t, f"acl[{i}]") for i, t in enumerate(document.get("acl", ()))),
        users=tuple(
            _build(User, t, f"users[{i}]") for i, t in enumerate(document.get("users", ()))
        ),
        hosts=tuple(
            _build(HostEntry, t, f"hosts[{i}]") for i, t in enumerate(document.get("hosts", ()))
        ),
        fips=bool(document.get("fips", True)),
        **fields,
    )
    return config.validate()


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
