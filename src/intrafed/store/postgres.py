"""The PostgreSQL store (``store.base.Store``): one database per deployment side, named by a
``postgresql://USER:PASSWORD@HOST:PORT/DATABASE`` URL in the home's ``store.url``.

The tables are SQLite's, plus what an Enterprise pool needs: each configuration row,
binding and subscription names its member (the node's FQDN: whose configuration it is, which
front end holds the client's flow or sends the NOTIFYs). A database holds one node on its
own, or the members of pools and clusters (``store.pool_config``; a member's home names it in
``store.member``). The schema version is the one row of ``schema_version``.

A write never waits for a database that is down or has stopped answering: the server
cancels a statement a little before ``WRITE_TIMEOUT``, the client gives up on a silent
server at that deadline, and either way the write fails with ``StoreError``. A broken connection is
made again in the background; until it is, every operation fails at once.
"""

from __future__ import annotations

import math
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import astuple
from pathlib import Path
from typing import Any

import psycopg
from psycopg.conninfo import conninfo_to_dict, make_conninfo
from psycopg.pq import TransactionStatus

from intrafed.config.document import changes, from_document
from intrafed.config.model import ConfigError, NodeConfig, NodeIdentity
from intrafed.store.base import (
    BindingRow,
    Kind,
    PublicationRow,
    StagedEdit,
    StateChanges,
    StoreError,
    SubscriptionRow,
)
from intrafed.store.pool_config import MIGRATIONS as POOL_MIGRATIONS
from intrafed.store.pool_config import (
    Member,
    enroll,
    load_document,
    pool_identities,
    pool_pending,
    save_config,
)
from intrafed.store.pool_feed import MIGRATIONS as FEED_MIGRATIONS
from intrafed.store.pool_feed import PostgresPoolFeed
from intrafed.store.postgres_link import Link
from intrafed.store.sqlite import FILENAME, LOCATOR
from intrafed.store.urls import masked

WRITE_TIMEOUT = 1.0
"""Seconds a transaction may take before it fails: a write the database cannot take now
is answered 503 at once, not when the client's transaction times out."""
STATE_WRITE_TIMEOUT = 0.9
"""Seconds a write of the node's state may take: its requests' 503 leaves within a second
of their arrival, the hop to the writer thread included."""
LOAD_TIMEOUT = 30.0
"""Seconds loading every stored row may take (at start, before any request waits)."""
CONNECT_TIMEOUT = 2
"""Seconds a connection attempt may take (libpq's least); never on a request's path."""
IDLE_IN_TRANSACTION_TIMEOUT = 10.0
"""Seconds the server waits for a client that vanished inside a transaction."""
MEMBER_FILE = "store.member"
"""The file of a pool member's home that names the member (its FQDN) in the database."""
MIGRATION_LOCK = 0x696E_7472
"""The advisory lock that lets one process at a time migrate the schema."""
_OPEN = (TransactionStatus.INTRANS, TransactionStatus.INERROR)
_UNAVAILABLE = (psycopg.OperationalError, psycopg.errors.ReadOnlySqlTransaction)
"""Failures of the database rather than of the rows: down, timed out, cancelled, locked
out, shutting down, a standby."""

# Each entry moves the schema one version up; never edit an applied entry, append.
MIGRATIONS = (
    """CREATE TABLE config (
        member TEXT NOT NULL,
        kind TEXT NOT NULL,
        document JSONB NOT NULL,
        updated_at TIMESTAMPTZ NOT NULL DEFAULT now(),
        PRIMARY KEY (member, kind)
    )""",
    """CREATE TABLE bindings (
        aor TEXT NOT NULL,
        contact TEXT NOT NULL,
        expires_at DOUBLE PRECISION NOT NULL,
        q DOUBLE PRECISION NOT NULL,
        call_id TEXT NOT NULL,
        cseq BIGINT NOT NULL,
        flow_bound BOOLEAN NOT NULL,
        member TEXT NOT NULL,
        PRIMARY KEY (aor, contact)
    )""",
    """CREATE TABLE subscriptions (
        id TEXT PRIMARY KEY,
        presentity TEXT NOT NULL,
        watcher TEXT NOT NULL,
        event TEXT NOT NULL,
        call_id TEXT NOT NULL,
        local_tag TEXT NOT NULL,
        remote_tag TEXT NOT NULL,
        local_party TEXT NOT NULL,
        remote_party TEXT NOT NULL,
        remote_target TEXT NOT NULL,
        route_set TEXT NOT NULL,
        local_contact TEXT NOT NULL,
        expires_at DOUBLE PRECISION NOT NULL,
        local_cseq BIGINT NOT NULL,
        remote_cseq BIGINT NOT NULL,
        member TEXT NOT NULL
    )""",
    """CREATE TABLE publications (
        etag TEXT PRIMARY KEY,
        aor TEXT NOT NULL,
        state TEXT NOT NULL,
        note TEXT,
        published_at DOUBLE PRECISION NOT NULL,
        expires_at DOUBLE PRECISION NOT NULL
    )""",
    *POOL_MIGRATIONS,
    *FEED_MIGRATIONS,
)

_SAVE_SUBSCRIPTION = (
    "INSERT INTO subscriptions (id, presentity, watcher, event, call_id, local_tag, "
    "remote_tag, local_party, remote_party, remote_target, route_set, local_contact, "
    "expires_at, local_cseq, remote_cseq, member) VALUES "
    "(%s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s) "
    "ON CONFLICT (id) DO UPDATE SET presentity = excluded.presentity, "
    "watcher = excluded.watcher, event = excluded.event, call_id = excluded.call_id, "
    "local_tag = excluded.local_tag, remote_tag = excluded.remote_tag, "
    "local_party = excluded.local_party, remote_party = excluded.remote_party, "
    "remote_target = excluded.remote_target, route_set = excluded.route_set, "
    "local_contact = excluded.local_contact, expires_at = excluded.expires_at, "
    "local_cseq = excluded.local_cseq, remote_cseq = excluded.remote_cseq, "
    "member = excluded.member"
)
_SAVE_BINDING = (  # a contact registered again at another member of the pool moves there
    "INSERT INTO bindings (aor, contact, expires_at, q, call_id, cseq, flow_bound, member) "
    "VALUES (%s, %s, %s, %s, %s, %s, %s, %s) "
    "ON CONFLICT (aor, contact) DO UPDATE SET expires_at = excluded.expires_at, q = excluded.q, "
    "call_id = excluded.call_id, cseq = excluded.cseq, flow_bound = excluded.flow_bound, "
    "member = excluded.member"
)
_SAVE_PUBLICATION = (
    "INSERT INTO publications (etag, aor, state, note, published_at, expires_at) "
    "VALUES (%s, %s, %s, %s, %s, %s) "
    "ON CONFLICT (etag) DO UPDATE SET aor = excluded.aor, state = excluded.state, "
    "note = excluded.note, published_at = excluded.published_at, "
    "expires_at = excluded.expires_at"
)


def _conninfo(url: str, member: str, setting: str) -> tuple[str, str]:
    """The libpq connection string for ``url`` with intrafed's timeouts, and the password
    it holds (to keep out of messages); ``ConfigError`` for a URL libpq cannot read."""
    scheme, _, rest = url.partition("://")
    try:
        params = conninfo_to_dict(f"{scheme.lower()}://{rest}")
    except psycopg.Error:
        raise ConfigError(
            setting,
            f"{masked(url)!r} is not a PostgreSQL URL",
            "give postgresql://USER:PASSWORD@HOST:PORT/DATABASE",
        ) from None
    # The server gives up first when it is alive (a lock held elsewhere): its words, and
    # a connection that stays usable.
    options = (
        f"-c statement_timeout={int(WRITE_TIMEOUT * 800)} "
        f"-c idle_in_transaction_session_timeout={int(IDLE_IN_TRANSACTION_TIMEOUT * 1000)}"
    )
    params["options"] = f"{params.get('options') or ''} {options}".strip()
    params["connect_timeout"] = CONNECT_TIMEOUT
    params["application_name"] = application_name(member)
    return make_conninfo("", **params), str(params.get("password") or "")


def application_name(member: str) -> str:
    """How the connections of ``member`` name themselves to the server."""
    return f"intrafed {member}".rstrip()[:63]


class PostgresStore:
    """The store of one node in a PostgreSQL database (``store.base.Store``). Use it as a
    context manager (or call ``close()``)."""

    def __init__(self, url: str, member: str | None, setting: str, unreachable: str = "") -> None:
        """Connect to ``url`` and bring its schema up to date; ``member`` is the node whose
        rows these are (None: the one the database holds). ``setting`` names where the URL
        came from, for messages. With ``unreachable`` (why the database cannot be reached
        now; ``member`` given), connect in the background, to a schema a start migrated."""
        self._url = url
        self._setting = setting
        self._serial = threading.Lock()
        """One transaction at a time on the one connection (the node's writer thread and
        its event loop both use the store)."""
        conninfo, self._password = _conninfo(url, member or "", setting)
        self._feedless = bool(unreachable)
        if unreachable and member is not None:
            self._link = Link(conninfo, self._detail, unreachable)
            self.member = member
            return
        try:
            self._link = Link(conninfo, self._detail)
        except psycopg.Error as exc:
            raise ConfigError(
                setting,
                f"cannot connect to PostgreSQL at {self.location} ({self._detail(exc)})",
                "start PostgreSQL, or correct the URL (its host, port, user, password and "
                "database)",
            ) from None
        try:
            self._migrate()
            self.member = member or self._only_member()
            with self._transaction(WRITE_TIMEOUT) as cursor:
                self._member = Member.of(cursor, self.member)
        except ConfigError:
            self.close()
            raise

    @classmethod
    def unreachable(cls, home: Path, url: str, node: NodeIdentity, why: str) -> PostgresStore:
        """The store of the existing home ``home`` (of ``node``) while its database cannot
        be reached (``why``): every operation fails (``StoreError``) until a connection
        made in the background succeeds. It gives no pool feed: the node follows its pool
        again once restarted."""
        store = cls(url, node.fqdn, str(home / LOCATOR), unreachable=why)
        store._member = Member(node.fqdn, node.pool)
        return store

    @classmethod
    def open(cls, home: Path, url: str) -> PostgresStore:
        """The store of the existing home ``home`` whose ``store.url`` is ``url``."""
        named = home / MEMBER_FILE
        member = named.read_text().strip() if named.exists() else None
        return cls(url, member or None, str(home / LOCATOR))

    @classmethod
    def create(cls, home: Path, identity: NodeIdentity, url: str) -> PostgresStore:
        """Initialize ``home`` for a new node whose database, at ``url``, holds no node yet
        (or, for a member of a pool or cluster, only other members); the home remembers the
        URL (readable by its owner alone: it may hold a password) and the member."""
        for existing in (home / FILENAME, home / LOCATOR):
            if existing.exists():
                raise ConfigError(
                    "--home",
                    f"{home} already holds a node ({existing} exists)",
                    "choose an empty directory, or edit this node with intrafed config",
                )
        store = cls(url, identity.fqdn, "--db")
        locator = home / LOCATOR
        created = False
        try:
            with store._transaction(WRITE_TIMEOUT) as cursor:
                cursor.execute("LOCK TABLE config IN EXCLUSIVE MODE")
                store._member = enroll(cursor, identity, store.location)
                # Before the commit: a home that cannot be written leaves the database empty.
                home.mkdir(parents=True, exist_ok=True)
                locator.touch(mode=0o600, exist_ok=False)
                created = True
                locator.write_text(f"{url}\n")
                (home / MEMBER_FILE).write_text(f"{identity.fqdn}\n")
        except BaseException:
            if created:
                locator.unlink()
                (home / MEMBER_FILE).unlink(missing_ok=True)
            store.close()
            raise
        store._setting = str(locator)
        return store

    @property
    def location(self) -> str:
        """The database's URL, its password masked."""
        return masked(self._url)

    def __enter__(self) -> PostgresStore:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def close(self) -> None:
        """Close the connection."""
        self._link.close()

    def load(self, kind: Kind = "staged") -> NodeConfig:
        """The staged or running configuration."""
        with self._transaction(WRITE_TIMEOUT) as cursor:
            return self._load(cursor, kind)

    def stage(self, edit: StagedEdit) -> NodeConfig:
        """Apply ``edit`` to the staged configuration atomically; return the new one."""
        with self._transaction(WRITE_TIMEOUT) as cursor:
            config = edit(self._load(cursor, "staged", lock=True)).validate()
            self._save(cursor, "staged", config)
        return config

    def replace_staged(self, config: NodeConfig) -> None:
        """Make ``config`` the staged configuration (an import), keeping the node's identity."""
        with self._transaction(WRITE_TIMEOUT) as cursor:
            current = self._load(cursor, "staged", lock=True).identity
            if config.identity != current:
                theirs = config.identity
                raise ConfigError(
                    "node",
                    f"the document is for {theirs.fqdn} ({theirs.role.value}, {theirs.ip}), "
                    f"this home is {current.fqdn} ({current.role.value}, {current.ip})",
                    "import it into that node's home, or edit the [node] table",
                )
            self._save(cursor, "staged", config.validate())

    def promote(self, config: NodeConfig | None = None) -> NodeConfig:
        """Make the staged configuration (or ``config``, the one a node started with) the
        running one: a restart or reload applied it."""
        with self._transaction(WRITE_TIMEOUT) as cursor:
            config = config or self._load(cursor, "staged")
            self._save(cursor, "running", config)
        return config

    def restart_pending(self) -> bool:
        """Whether staged and running differ."""
        with self._transaction(WRITE_TIMEOUT) as cursor:
            return self._load(cursor, "staged") != self._load(cursor, "running")

    def pending_changes(self) -> list[str]:
        """What a restart would change, one phrase per setting (empty when nothing)."""
        with self._transaction(WRITE_TIMEOUT) as cursor:
            return changes(self._load(cursor, "running"), self._load(cursor, "staged"))

    def members_pending(self) -> dict[str, list[str]]:
        """For each member of this node's pool (this node alone outside a pool), what a
        restart or reload there would change."""
        if self._member.pool is None:
            return {self.member: self.pending_changes()}
        with self._transaction(WRITE_TIMEOUT) as cursor:
            return pool_pending(cursor, self._member.pool)

    def other_members(self) -> list[NodeIdentity]:
        """Who the other members of this node's pool or cluster are (none outside one)."""
        if self._member.pool is None:
            return []
        with self._transaction(WRITE_TIMEOUT) as cursor:
            return pool_identities(cursor, self._member)

    def pool_feed(self) -> PostgresPoolFeed | None:
        """The events of the other members of this node's pool (None outside a pool)."""
        if self._member.pool is None or self._feedless:
            return None
        conninfo, _ = _conninfo(self._url, self.member, self._setting)
        return PostgresPoolFeed(conninfo, self._member, application_name(self.member))

    def write(self, changes: StateChanges) -> None:
        """Store ``changes`` in one transaction within ``STATE_WRITE_TIMEOUT``;
        ``StoreError`` when that failed and nothing of it was stored."""
        member = self.member
        with self._transaction(STATE_WRITE_TIMEOUT) as cursor:
            if changes.bindings:
                # Only this member's: another member of the pool holds its own flows.
                cursor.execute(
                    "DELETE FROM bindings WHERE aor = ANY(%s) AND member = %s",
                    (list(changes.bindings), member),
                )
            bindings = [  # by name: the registrar's bindings add a field that is never stored
                (b.aor, b.contact, b.expires_at, b.q, b.call_id, b.cseq, b.flow_bound, member)
                for rows in changes.bindings.values()
                for b in rows
            ]
            if bindings:
                cursor.executemany(
                    _SAVE_BINDING,
                    bindings,
                )
            if changes.saved_subscriptions:
                cursor.executemany(
                    _SAVE_SUBSCRIPTION,
                    [(*astuple(row), member) for row in changes.saved_subscriptions],
                )
            if changes.ended_subscriptions:
                cursor.execute(
                    "DELETE FROM subscriptions WHERE id = ANY(%s)",
                    (list(changes.ended_subscriptions),),
                )
            if changes.saved_publications:
                cursor.executemany(
                    _SAVE_PUBLICATION, [astuple(row) for row in changes.saved_publications]
                )
            if changes.ended_publications:
                cursor.execute(
                    "DELETE FROM publications WHERE etag = ANY(%s)",
                    (list(changes.ended_publications),),
                )

    def load_bindings(self, now: float) -> list[BindingRow]:
        """Every stored registration still live at ``now`` (epoch seconds)."""
        rows = self._load_rows(
            "SELECT aor, contact, expires_at, q, call_id, cseq, flow_bound FROM bindings "
            "WHERE expires_at > %s AND member = %s",
            now,
            self.member,
        )
        return [BindingRow(*row) for row in rows]

    def load_subscriptions(self, now: float) -> list[SubscriptionRow]:
        """Every stored subscription still live at ``now`` (epoch seconds)."""
        rows = self._load_rows(
            "SELECT id, presentity, watcher, event, call_id, local_tag, remote_tag, local_party, "
            "remote_party, remote_target, route_set, local_contact, expires_at, local_cseq, "
            "remote_cseq FROM subscriptions WHERE expires_at > %s AND member = %s",
            now,
            self.member,
        )
        return [SubscriptionRow(*row) for row in rows]

    def load_publications(self, now: float) -> list[PublicationRow]:
        """Every stored publication still live at ``now`` (epoch seconds)."""
        rows = self._load_rows(
            "SELECT etag, aor, state, note, published_at, expires_at FROM publications "
            "WHERE expires_at > %s",
            now,
        )
        return [PublicationRow(*row) for row in rows]

    def _load_rows(self, query: str, *params: object) -> list[tuple[Any, ...]]:
        with self._transaction(LOAD_TIMEOUT) as cursor:
            cursor.execute(f"SET LOCAL statement_timeout = {int(LOAD_TIMEOUT * 1000)}")
            return cursor.execute(query, params).fetchall()

    def _load(self, cursor: psycopg.Cursor[Any], kind: Kind, lock: bool = False) -> NodeConfig:
        document = load_document(cursor, self._member, kind, lock)
        if document is None:
            raise ConfigError(
                self._setting,
                f"the {kind} configuration of {self.member} is missing from {self.location}",
                "re-create the home with intrafed init, or import a saved configuration",
            )
        return from_document(document)

    def _save(self, cursor: psycopg.Cursor[Any], kind: Kind, config: NodeConfig) -> None:
        save_config(cursor, self._member, kind, config)

    def _only_member(self) -> str:
        """The one node the database holds; for a pool or cluster (every member in one
        pool) the first member, through which an edit of pool-scope settings is staged for
        all."""
        with self._transaction(WRITE_TIMEOUT) as cursor:
            rows = cursor.execute("SELECT DISTINCT member, pool FROM config ORDER BY member")
            found = [(str(member), pool) for member, pool in rows]
        members = [member for member, _ in found]
        pools = {pool for _, pool in found}
        if len(members) == 1 or (members and len(pools) == 1 and None not in pools):
            return members[0]
        if not members:
            raise ConfigError(
                self._setting,
                f"{self.location} holds no intrafed node",
                "run intrafed init --db URL for the node this database is for",
            )
        raise ConfigError(
            self._setting,
            f"{self.location} holds several nodes ({', '.join(sorted(members))})",
            "give each node its own database",
        )

    def _migrate(self) -> None:
        with self._transaction(LOAD_TIMEOUT) as cursor:
            cursor.execute(f"SET LOCAL statement_timeout = {int(LOAD_TIMEOUT * 1000)}")
            cursor.execute("SELECT pg_advisory_xact_lock(%s)", (MIGRATION_LOCK,))
            cursor.execute("CREATE TABLE IF NOT EXISTS schema_version (version INTEGER NOT NULL)")
            row = cursor.execute("SELECT version FROM schema_version").fetchone()
            version = 0 if row is None else int(row[0])
            if version > len(MIGRATIONS):
                raise ConfigError(
                    self._setting,
                    f"{self.location} has schema version {version}, "
                    f"newer than this intrafed knows ({len(MIGRATIONS)})",
                    "upgrade intrafed",
                )
            for statement in MIGRATIONS[version:]:
                cursor.execute(statement)
            if row is None:
                cursor.execute("INSERT INTO schema_version VALUES (%s)", (len(MIGRATIONS),))
            elif version < len(MIGRATIONS):
                cursor.execute("UPDATE schema_version SET version = %s", (len(MIGRATIONS),))

    @contextmanager
    def _transaction(self, timeout: float) -> Iterator[psycopg.Cursor[Any]]:
        """A transaction that ends within ``timeout`` seconds; what fails in the database
        is a ``StoreError`` (and a connection left unusable is made again)."""
        with self._serial:
            yield from self._transaction_alone(timeout)

    def _transaction_alone(self, timeout: float) -> Iterator[psycopg.Cursor[Any]]:
        connection = self._link.get()
        if connection is None:
            raise self._failed(
                f"not connected: {self._link.why}", "the database cannot be reached", True
            )
        connection.deadline = time.monotonic() + timeout
        try:
            cursor = connection.cursor()
            cursor.execute("BEGIN")
            try:
                yield cursor
                cursor.execute("COMMIT")
            except BaseException:
                # Not while a statement is in flight: that connection is dropped below.
                if connection.pgconn.transaction_status in _OPEN:
                    connection.execute("ROLLBACK")
                raise
        except psycopg.Error as exc:
            detail = self._detail(exc)
            if connection.broken or connection.pgconn.transaction_status != TransactionStatus.IDLE:
                self._link.broke(connection, detail)
            unavailable = isinstance(exc, _UNAVAILABLE)
            raise self._failed(detail, _reason(exc, timeout), unavailable) from None
        finally:
            connection.deadline = math.inf

    def _failed(self, detail: str, reason: str, unavailable: bool) -> StoreError:
        return StoreError(
            self._setting,
            f"PostgreSQL at {self.location} failed ({detail})",
            "check that PostgreSQL runs and answers, and that the database accepts writes",
            reason,
            unavailable,
        )

    def _detail(self, error: psycopg.Error) -> str:
        """What psycopg says of ``error``, on one line and without the password."""
        text = " ".join(str(error).split())
        if self._password:
            text = text.replace(self._password, "***")
        return text


def _reason(error: psycopg.Error, timeout: float) -> str:
    """The database's words for a failure, without the server's address (a SIP Warning
    carries them to the client)."""
    if error.diag.message_primary:
        return error.diag.message_primary
    if isinstance(error, psycopg.OperationalError) and "timeout" in str(error):
        return f"the database did not answer within {timeout:g} s"
    return "the database connection was lost"
