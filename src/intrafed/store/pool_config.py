"""The configuration rows of an Enterprise Edition pool or an IM&P cluster in PostgreSQL.

The pool-scope settings (domains, routes, trust, users, …) are stored once, in
``pool_config``; each member's own settings (who it is, where it listens) are its staged row
in ``config``, whose ``pool`` column names its pool. A member's staged configuration is the
two together, so an edit made through any member is staged for all. The running
configuration stays per member, whole: what that member applied at its last restart or
reload. A node on its own keeps both of its documents whole in ``config``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import psycopg
from psycopg.types.json import Jsonb

from intrafed.config.document import changes, from_document, member_part, pool_part, to_document
from intrafed.config.model import ConfigError, NodeConfig, NodeIdentity
from intrafed.store.base import Kind

MIGRATIONS = (
    """CREATE TABLE pool_config (
        pool TEXT PRIMARY KEY,
        document JSONB NOT NULL,
        updated_at TIMESTAMPTZ NOT NULL DEFAULT now()
    )""",
    "ALTER TABLE config ADD COLUMN pool TEXT",
)
"""What the pool adds to the schema (appended to the store's migrations)."""

Cursor = psycopg.Cursor[Any]

_LOAD_POOL = {
    False: "SELECT document FROM pool_config WHERE pool = %s",
    True: "SELECT document FROM pool_config WHERE pool = %s FOR UPDATE",
}
_LOAD_MEMBER = {
    False: "SELECT document FROM config WHERE member = %s AND kind = %s",
    True: "SELECT document FROM config WHERE member = %s AND kind = %s FOR UPDATE",
}
_SAVE_MEMBER = (
    "INSERT INTO config (member, kind, document, pool) VALUES (%s, %s, %s, %s) "
    "ON CONFLICT (member, kind) DO UPDATE SET document = excluded.document, updated_at = now()"
)
_SAVE_POOL = (
    "INSERT INTO pool_config (pool, document) VALUES (%s, %s) "
    "ON CONFLICT (pool) DO UPDATE SET document = excluded.document, updated_at = now()"
)


@dataclass(frozen=True, slots=True)
class Member:
    """Whose configuration a store reads and writes: a node's FQDN, and its pool or cluster
    (None for a node on its own)."""

    name: str
    pool: str | None

    @classmethod
    def of(cls, cursor: Cursor, name: str) -> Member:
        """The member ``name`` as its rows say."""
        row = cursor.execute("SELECT pool FROM config WHERE member = %s LIMIT 1", (name,))
        found = row.fetchone()
        return cls(name, None if found is None else found[0])


def load_document(cursor: Cursor, member: Member, kind: Kind, lock: bool) -> dict[str, Any] | None:
    """The member's staged or running document (None when a row is missing); ``lock``
    holds the rows until the transaction ends (the pool's first, so members that edit at
    once wait for each other instead of deadlocking)."""
    shared: dict[str, Any] | None = None
    if member.pool is not None and kind == "staged":
        row = cursor.execute(_LOAD_POOL[lock], (member.pool,)).fetchone()
        if row is None:
            return None
        shared = pool_part(row[0])
    row = cursor.execute(_LOAD_MEMBER[lock], (member.name, kind)).fetchone()
    if row is None:
        return None
    document: dict[str, Any] = row[0]
    return document if shared is None else {**shared, **member_part(document)}


def save_config(cursor: Cursor, member: Member, kind: Kind, config: NodeConfig) -> None:
    """Store the member's staged or running configuration: a pool member's staged one as
    the pool's settings and its own."""
    document = to_document(config)
    if member.pool is not None and kind == "staged":
        cursor.execute(_SAVE_POOL, (member.pool, Jsonb(pool_part(document))))
        document = member_part(document)
    cursor.execute(_SAVE_MEMBER, (member.name, kind, Jsonb(document), member.pool))


def enroll(cursor: Cursor, identity: NodeIdentity, location: str) -> Member:
    """Add the configuration rows of the new node ``identity`` (the config table locked):
    a node on its own needs an empty database; a pool member joins its pool, or starts it.
    A member that joins runs the pool's settings from the start."""
    member = Member(identity.fqdn, identity.pool)
    present = cursor.execute("SELECT DISTINCT member, pool FROM config ORDER BY member")
    nodes: list[tuple[str, str | None]] = list(present.fetchall())
    alone = [name for name, pool in nodes if pool is None]
    if alone or (nodes and member.pool is None):
        raise ConfigError(
            "--db",
            f"{location} already holds the node {(alone or [nodes[0][0]])[0]}",
            "give each node its own database (createdb), or edit that node with intrafed config",
        )
    if member.name in (name for name, _ in nodes):
        raise ConfigError(
            "--fqdn",
            f"{location} already holds the member {member.name} of {member.pool}",
            "give the new member its own --fqdn, or edit that member with intrafed config",
        )
    config = NodeConfig(identity)
    if member.pool is not None:
        config = _joined(cursor, member, config, location)
    for kind in ("staged", "running"):
        save_config(cursor, member, kind, config)
    return member


def _joined(cursor: Cursor, member: Member, config: NodeConfig, location: str) -> NodeConfig:
    """``config`` with the settings of the pool it joins (unchanged when it starts it)."""
    row = cursor.execute(
        "SELECT document FROM pool_config WHERE pool = %s", (member.pool,)
    ).fetchone()
    if row is None:
        return config
    shared = pool_part(row[0])
    role = cursor.execute(
        "SELECT document -> 'node' ->> 'role' FROM config WHERE pool = %s LIMIT 1", (member.pool,)
    ).fetchone()
    if role is not None and role[0] != config.role.value:
        raise ConfigError(
            "--role",
            f"{member.pool} in {location} is a pool of {role[0]} nodes",
            f"give this node --role {role[0]}, or another pool name",
        )
    return from_document({**shared, **member_part(to_document(config))})


def pool_identities(cursor: Cursor, member: Member) -> list[NodeIdentity]:
    """Who the members of ``member``'s pool other than ``member`` are."""
    rows = cursor.execute(
        "SELECT document FROM config WHERE pool = %s AND kind = 'running' AND member <> %s "
        "ORDER BY member",
        (member.pool, member.name),
    ).fetchall()
    return [from_document(member_part(row[0])).identity for row in rows]


def pool_pending(cursor: Cursor, pool: str) -> dict[str, list[str]]:
    """For each member of ``pool``, what its restart or reload would change (empty when it
    runs the staged configuration)."""
    rows = cursor.execute(
        "SELECT member FROM config WHERE pool = %s AND kind = 'running' ORDER BY member", (pool,)
    ).fetchall()
    pending = {}
    for (name,) in rows:
        member = Member(name, pool)
        staged = load_document(cursor, member, "staged", lock=False)
        running = load_document(cursor, member, "running", lock=False)
        if staged is None or running is None:
            continue
        pending[name] = changes(from_document(running), from_document(staged))
    return pending
