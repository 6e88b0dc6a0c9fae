"""The SQLite store (``store.base.Store``): a file, by default ``intrafed.db`` in the
node's home.

The two configuration documents, ``staged`` and ``running``, are JSON text in one table;
registrations, subscriptions and publications have a table each. The schema version is
SQLite's ``user_version``.
"""

from __future__ import annotations

import json
import os
import sqlite3
import time
from dataclasses import astuple
from pathlib import Path

from intrafed.config.document import changes, from_document, to_document
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
from intrafed.store.urls import masked

FILENAME = "intrafed.db"
LOCATOR = "store.url"
"""A home whose database is not ``HOME/intrafed.db`` names it in this file (a URL)."""
KINDS: tuple[Kind, ...] = ("staged", "running")

# Each entry moves the schema one version up; never edit an applied entry, append.
MIGRATIONS = (
    """CREATE TABLE config (
        kind TEXT PRIMARY KEY,
        document TEXT NOT NULL,
        updated_at REAL NOT NULL
    )""",
    """CREATE TABLE bindings (
        aor TEXT NOT NULL,
        contact TEXT NOT NULL,
        expires_at REAL NOT NULL,
        q REAL NOT NULL,
        call_id TEXT NOT NULL,
        cseq INTEGER NOT NULL,
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
        expires_at REAL NOT NULL,
        local_cseq INTEGER NOT NULL,
        remote_cseq INTEGER NOT NULL
    )""",
    """CREATE TABLE publications (
        etag TEXT PRIMARY KEY,
        aor TEXT NOT NULL,
        state TEXT NOT NULL,
        note TEXT,
        published_at REAL NOT NULL,
        expires_at REAL NOT NULL
    )""",
    # Bindings stored before this column existed count as flow-bound (the safe side).
    "ALTER TABLE bindings ADD COLUMN flow_bound INTEGER NOT NULL DEFAULT 1",
)


def _store_error(path: Path, error: sqlite3.Error) -> StoreError:
    """What SQLite refused, for the administrator (the message names the file)."""
    reason = str(error)
    unwritable = _unwritable(path, error)
    if unwritable is not None:
        return StoreError(unwritable.setting, unwritable.message, unwritable.fix, reason)
    if getattr(error, "sqlite_errorcode", 0) & 0xFF == sqlite3.SQLITE_BUSY:
        return StoreError(
            "--home",
            f"{path} is busy ({reason})",
            "try again when the other intrafed command has finished",
            reason,
        )
    return StoreError(
        "--home",
        f"{path} cannot be written ({reason})",
        "free disk space, or make the file and its directory writable",
        reason,
    )


def database_path(home: Path, url: str | None, setting: str = "--db") -> Path:
    """The SQLite file a database URL names (``sqlite:///PATH``; relative to the current
    directory, ``sqlite:////abs`` absolute), or ``HOME/intrafed.db`` without one
    (PostgreSQL URLs go to ``store.postgres``).
    ``setting`` is where the URL came from, for the refusal of one this version cannot
    use."""
    if url is None:
        return home / FILENAME
    scheme = url.partition(":")[0].lower()
    path = url.removeprefix("sqlite:///")
    if scheme != "sqlite" or path == url or not path:
        raise ConfigError(
            setting,
            f"{masked(url)!r} is not a database URL this version supports",
            "give sqlite:///PATH or postgresql://USER:PASSWORD@HOST:PORT/DATABASE, "
            f"or leave out {setting} for HOME/intrafed.db",
        )
    return Path(path).absolute()


def _unwritable(path: Path, exc: sqlite3.Error) -> ConfigError | None:
    """What to tell when SQLite cannot write ``path`` (None when that is not the error):
    a read-only file system, or files this user may not write."""
    text = str(exc).lower()
    if not any(sign in text for sign in ("readonly", "read-only", "unable to open")):
        return None
    if os.statvfs(path.parent).f_flag & os.ST_RDONLY:
        return ConfigError(
            "--home",
            f"{path} is on a read-only file system",
            "remount it read-write, or move the home to a writable disk",
        )
    return ConfigError(
        "--home",
        f"{path} cannot be written by this user ({exc})",
        f"give the user running intrafed write access to {path.parent} and its files "
        "(check with ls -l and lsattr; fix with chown, chmod or chattr -i)",
    )


def home_containing(path: Path) -> Path | None:
    """The node home that ``path`` is (or lies inside), if any."""
    for directory in (path.absolute(), *path.absolute().parents):
        if (directory / FILENAME).exists() or (directory / LOCATOR).exists():
            return directory
    return None


class SqliteStore:
    """The store of one node in an SQLite file (``store.base.Store``). Use it as a context
    manager (or call ``close()``)."""

    busy_timeout = 10.0
    """Seconds a write waits for another process's transaction before it is refused."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._db = sqlite3.connect(path, isolation_level=None, timeout=self.busy_timeout)
        try:
            self._db.execute("PRAGMA journal_mode=WAL")
            self._migrate()
        except sqlite3.DatabaseError as exc:
            self._db.close()
            raise _unwritable(path, exc) or ConfigError(
                "--home",
                f"{path} cannot be used: {exc}",
                "restore it from a backup, or run intrafed init in an empty directory",
            ) from None
        except ConfigError:
            self._db.close()
            raise

    @classmethod
    def open(cls, home: Path, path: Path) -> SqliteStore:
        """The store of an existing home, in ``path``; ``ConfigError`` when ``home`` was
        never initialized."""
        if not path.exists():
            raise ConfigError(
                "--home",
                f"{home} is not an intrafed home (no {path.name})",
                f"run: intrafed init --home {home} --role ocs|imp --fqdn FQDN --ip ADDR",
            )
        return cls(path)

    @classmethod
    def create(cls, home: Path, identity: NodeIdentity, url: str | None = None) -> SqliteStore:
        """Initialize ``home`` for a new node, its database where ``url`` says (see
        ``database_path``); refuses to overwrite an existing node."""
        path = database_path(home, url)
        for existing in (home / FILENAME, home / LOCATOR, path):
            if existing.exists():
                raise ConfigError(
                    "--home",
                    f"{home} already holds a node ({existing} exists)",
                    "choose an empty directory, or edit this node with intrafed config",
                )
        home.mkdir(parents=True, exist_ok=True)
        path.parent.mkdir(parents=True, exist_ok=True)
        store = cls(path)
        with store._transaction():
            for kind in KINDS:
                store._write(kind, NodeConfig(identity))
        if url is not None:
            (home / LOCATOR).write_text(f"sqlite:///{path}\n")
        return store

    @property
    def location(self) -> str:
        """The database file."""
        return str(self.path)

    def __enter__(self) -> SqliteStore:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def close(self) -> None:
        """Close the database."""
        self._db.close()

    def load(self, kind: Kind = "staged") -> NodeConfig:
        """The staged or running configuration."""
        row = self._db.execute("SELECT document FROM config WHERE kind = ?", (kind,)).fetchone()
        if row is None:
            raise ConfigError(
                "--home",
                f"the {kind} configuration is missing from {self.path}",
                "re-create the home with intrafed init, or import a saved configuration",
            )
        return from_document(json.loads(row[0]))

    def stage(self, edit: StagedEdit) -> NodeConfig:
        """Apply ``edit`` to the staged configuration atomically; return the new one."""
        with self._transaction():
            config = edit(self.load("staged")).validate()
            self._write("staged", config)
        return config

    def replace_staged(self, config: NodeConfig) -> None:
        """Make ``config`` the staged configuration (an import), keeping the node's identity."""
        with self._transaction():
            current = self.load("staged").identity
            if config.identity != current:
                theirs = config.identity
                raise ConfigError(
                    "node",
                    f"the document is for {theirs.fqdn} ({theirs.role.value}, {theirs.ip}), "
                    f"this home is {current.fqdn} ({current.role.value}, {current.ip})",
                    "import it into that node's home, or edit the [node] table",
                )
            self._write("staged", config.validate())

    def promote(self, config: NodeConfig | None = None) -> NodeConfig:
        """Make the staged configuration (or ``config``, the one a node started with) the
        running one: a restart or reload applied it."""
        with self._transaction():
            config = config or self.load("staged")
            self._write("running", config)
        return config

    def restart_pending(self) -> bool:
        """Whether staged and running differ."""
        return self.load("staged") != self.load("running")

    def pending_changes(self) -> list[str]:
        """What a restart would change, one phrase per setting (empty when nothing)."""
        return changes(self.load("running"), self.load("staged"))

    def other_members(self) -> list[NodeIdentity]:
        """None: a SQLite store holds one node."""
        return []

    def pool_feed(self) -> None:
        """None: a SQLite store holds one node, in no pool."""
        return

    def members_pending(self) -> dict[str, list[str]]:
        """This node (a SQLite store holds one), with what a restart or reload would change."""
        running, staged = self.load("running"), self.load("staged")
        return {staged.identity.fqdn: changes(running, staged)}

    def write(self, changes: StateChanges) -> None:
        """Store ``changes`` in one transaction; ``StoreError`` when that failed and nothing
        of it was stored."""
        db = self._db
        with self._transaction():
            db.executemany(
                "DELETE FROM bindings WHERE aor = ?", [(aor,) for aor in changes.bindings]
            )
            db.executemany(
                "INSERT INTO bindings (aor, contact, expires_at, q, call_id, cseq, flow_bound) "
                "VALUES (?, ?, ?, ?, ?, ?, ?)",
                [  # by name: the registrar's bindings add a field that is never stored
                    (b.aor, b.contact, b.expires_at, b.q, b.call_id, b.cseq, b.flow_bound)
                    for rows in changes.bindings.values()
                    for b in rows
                ],
            )
            db.executemany(
                "INSERT OR REPLACE INTO subscriptions VALUES "
                "(?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                [astuple(row) for row in changes.saved_subscriptions],
            )
            db.executemany(
                "DELETE FROM subscriptions WHERE id = ?",
                [(key,) for key in changes.ended_subscriptions],
            )
            db.executemany(
                "INSERT OR REPLACE INTO publications VALUES (?, ?, ?, ?, ?, ?)",
                [astuple(row) for row in changes.saved_publications],
            )
            db.executemany(
                "DELETE FROM publications WHERE etag = ?",
                [(key,) for key in changes.ended_publications],
            )

    def load_bindings(self, now: float) -> list[BindingRow]:
        """Every stored registration still live at ``now`` (epoch seconds)."""
        cursor = self._db.execute(
            "SELECT aor, contact, expires_at, q, call_id, cseq, flow_bound FROM bindings "
            "WHERE expires_at > ?",
            (now,),
        )
        return [
            BindingRow(aor, contact, expires_at, q, call_id, cseq, bool(flow_bound))
            for aor, contact, expires_at, q, call_id, cseq, flow_bound in cursor.fetchall()
        ]

    def load_subscriptions(self, now: float) -> list[SubscriptionRow]:
        """Every stored subscription still live at ``now`` (epoch seconds)."""
        cursor = self._db.execute(
            "SELECT id, presentity, watcher, event, call_id, local_tag, remote_tag, local_party, "
            "remote_party, remote_target, route_set, local_contact, expires_at, local_cseq, "
            "remote_cseq FROM subscriptions WHERE expires_at > ?",
            (now,),
        )
        return [SubscriptionRow(*row) for row in cursor.fetchall()]

    def load_publications(self, now: float) -> list[PublicationRow]:
        """Every stored publication still live at ``now`` (epoch seconds)."""
        cursor = self._db.execute(
            "SELECT etag, aor, state, note, published_at, expires_at FROM publications "
            "WHERE expires_at > ?",
            (now,),
        )
        return [PublicationRow(*row) for row in cursor.fetchall()]

    def _write(self, kind: str, config: NodeConfig) -> None:
        self._db.execute(
            "INSERT INTO config (kind, document, updated_at) VALUES (?, ?, ?) "
            "ON CONFLICT (kind) DO UPDATE SET "
            "document = excluded.document, updated_at = excluded.updated_at",
            (kind, json.dumps(to_document(config), sort_keys=True), time.time()),
        )

    def _transaction(self) -> _Transaction:
        return _Transaction(self._db, self.path)

    def _migrate(self) -> None:
        version = self._db.execute("PRAGMA user_version").fetchone()[0]
        if version > len(MIGRATIONS):
            raise ConfigError(
                "--home",
                f"{self.path} has schema version {version}, "
                f"newer than this intrafed knows ({len(MIGRATIONS)})",
                "upgrade intrafed",
            )
        for number, statement in enumerate(MIGRATIONS[version:], start=version + 1):
            with self._transaction():
                self._db.execute(statement)
                self._db.execute(f"PRAGMA user_version = {number}")


class _Transaction:
    """BEGIN IMMEDIATE ... COMMIT, or ROLLBACK on an exception; what SQLite refuses is a
    ``StoreError``."""

    def __init__(self, db: sqlite3.Connection, path: Path) -> None:
        self._db = db
        self._path = path

    def __enter__(self) -> None:
        try:
            self._db.execute("BEGIN IMMEDIATE")
        except sqlite3.Error as exc:
            raise self._failed(exc) from None

    def __exit__(self, kind: object, error: object, trace: object) -> None:
        failure = error if isinstance(error, sqlite3.Error) else None
        if error is None:
            try:
                self._db.execute("COMMIT")
            except sqlite3.Error as exc:
                failure = exc
        # SQLite may have rolled back already (a full disk does); a COMMIT that failed
        # leaves the transaction open, and every later BEGIN would fail.
        if self._db.in_transaction:
            self._db.execute("ROLLBACK")
        if failure is not None:
            raise self._failed(failure) from None

    def _failed(self, error: sqlite3.Error) -> StoreError:
        return _store_error(self._path, error)
