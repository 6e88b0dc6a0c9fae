"""The configuration store: an SQLite file, by default ``intrafed.db`` in the node's home.

Two documents, ``staged`` (what edits change) and ``running`` (what the node runs with),
kept as JSON text in one table so that the same narrow interface can later be served by
PostgreSQL for an Enterprise pool. The schema version is SQLite's ``user_version``.
"""

from __future__ import annotations

import json
import os
import sqlite3
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import NamedTuple

from intrafed.config.document import changes, from_document, to_document
from intrafed.config.model import ConfigError, NodeConfig, NodeIdentity

FILENAME = "intrafed.db"
LOCATOR = "store.url"
"""A home whose database is not ``HOME/intrafed.db`` names it in this file (a URL)."""
KINDS = ("staged", "running")
StagedEdit = Callable[[NodeConfig], NodeConfig]

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

# A registration as stored: aor, contact, expires_at (epoch seconds), q, call_id, cseq,
# flow_bound (reachable only over the connection it was registered on).
BindingRow = tuple[str, str, float, float, str, int, bool]


class StoreError(ConfigError):
    """A write to the store failed (disk full, read-only file, I/O error, busy) and nothing
    of it was stored. ``reason`` is SQLite's words alone (a SIP Warning may carry them; the
    message names the file, for the administrator)."""

    def __init__(self, path: Path, error: sqlite3.Error) -> None:
        reason = str(error)
        unwritable = _unwritable(path, error)
        if unwritable is not None:
            super().__init__(unwritable.setting, unwritable.message, unwritable.fix)
        elif getattr(error, "sqlite_errorcode", 0) & 0xFF == sqlite3.SQLITE_BUSY:
            super().__init__(
                "--home",
                f"{path} is busy ({reason})",
                "try again when the other intrafed command has finished",
            )
        else:
            super().__init__(
                "--home",
                f"{path} cannot be written ({reason})",
                "free disk space, or make the file and its directory writable",
            )
        self.reason = reason


class SubscriptionRow(NamedTuple):
    """A presence subscription (RFC 6665 dialog on the notifier side) as stored."""

    id: str
    presentity: str
    watcher: str
    event: str
    """The Event value the NOTIFYs carry (``presence``, with the subscriber's ``id``)."""
    call_id: str
    local_tag: str
    remote_tag: str
    local_party: str
    """The To of the SUBSCRIBE without tag: the From of our NOTIFYs."""
    remote_party: str
    """The From of the SUBSCRIBE, tag included: the To of our NOTIFYs."""
    remote_target: str
    route_set: str
    """The Record-Route values of the SUBSCRIBE in order, one per line."""
    local_contact: str
    expires_at: float
    local_cseq: int
    remote_cseq: int


class PublicationRow(NamedTuple):
    """A PUBLISHed presence state (RFC 3903 event state) as stored."""

    etag: str
    aor: str
    state: str
    """A ``PresenceState`` value."""
    note: str | None
    published_at: float
    expires_at: float


def database_path(home: Path, url: str | None) -> Path:
    """The SQLite file a ``--db`` URL names (``sqlite:///PATH``; relative to the current
    directory, ``sqlite:////abs`` absolute), or ``HOME/intrafed.db`` without one."""
    if url is None:
        return home / FILENAME
    scheme = url.partition(":")[0].lower()
    if scheme.startswith("postgres"):
        raise ConfigError(
            "--db",
            'the PostgreSQL back end arrives with the Enterprise pool (issue "pool")',
            "leave out --db (HOME/intrafed.db) or give sqlite:///PATH",
        )
    path = url.removeprefix("sqlite:///")
    if scheme != "sqlite" or path == url or not path:
        raise ConfigError(
            "--db",
            f"{url!r} is not a database URL this version supports",
            "give sqlite:///PATH, or leave out --db for HOME/intrafed.db",
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


class ConfigStore:
    """Staged and running configuration of one node. Use it as a context manager (or call
    ``close()``)."""

    busy_timeout = 10.0
    """Seconds an edit waits for another process's transaction before it is refused."""

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
    def open(cls, home: Path) -> ConfigStore:
        """The store of an existing home; ``ConfigError`` when ``home`` was never initialized."""
        locator = home / LOCATOR
        path = database_path(home, locator.read_text().strip() if locator.exists() else None)
        if not path.exists():
            raise ConfigError(
                "--home",
                f"{home} is not an intrafed home (no {path.name})",
                f"run: intrafed init --home {home} --role ocs|imp --fqdn FQDN --ip ADDR",
            )
        return cls(path)

    @classmethod
    def create(cls, home: Path, identity: NodeIdentity, url: str | None = None) -> ConfigStore:
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

    def __enter__(self) -> ConfigStore:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def close(self) -> None:
        """Close the database."""
        self._db.close()

    def load(self, kind: str = "staged") -> NodeConfig:
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

    def save_bindings(self, aor: str, rows: Sequence[BindingRow]) -> None:
        """Replace the stored registrations of ``aor`` (answered 2xx, so they must survive
        a restart: DESIGN §8); ``StoreError`` when that failed and nothing changed."""
        with self._transaction():
            self._db.execute("DELETE FROM bindings WHERE aor = ?", (aor,))
            self._db.executemany(
                "INSERT INTO bindings (aor, contact, expires_at, q, call_id, cseq, flow_bound) "
                "VALUES (?, ?, ?, ?, ?, ?, ?)",
                rows,
            )

    def load_bindings(self, now: float) -> list[BindingRow]:
        """Every stored registration still live at ``now`` (epoch seconds)."""
        cursor = self._db.execute(
            "SELECT aor, contact, expires_at, q, call_id, cseq, flow_bound FROM bindings "
            "WHERE expires_at > ?",
            (now,),
        )
        return [(*row[:6], bool(row[6])) for row in cursor.fetchall()]

    def write_presence(
        self,
        subscriptions: Sequence[SubscriptionRow] = (),
        ended_subscriptions: Sequence[str] = (),
        publications: Sequence[PublicationRow] = (),
        ended_publications: Sequence[str] = (),
    ) -> None:
        """In one transaction: save (insert or replace) subscriptions and publications and
        forget ended ones by id and entity tag; ``StoreError`` when that failed and
        nothing changed."""
        with self._transaction():
            self._db.executemany(
                "INSERT OR REPLACE INTO subscriptions VALUES "
                "(?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                subscriptions,
            )
            self._db.executemany(
                "DELETE FROM subscriptions WHERE id = ?", [(key,) for key in ended_subscriptions]
            )
            self._db.executemany(
                "INSERT OR REPLACE INTO publications VALUES (?, ?, ?, ?, ?, ?)", publications
            )
            self._db.executemany(
                "DELETE FROM publications WHERE etag = ?", [(key,) for key in ended_publications]
            )

    def save_subscription(self, row: SubscriptionRow) -> None:
        """Insert or replace one subscription (answered 2xx: it survives a restart)."""
        self.write_presence(subscriptions=(row,))

    def delete_subscription(self, subscription_id: str) -> None:
        """Forget one subscription (terminated, or expired)."""
        self.write_presence(ended_subscriptions=(subscription_id,))

    def load_subscriptions(self, now: float) -> list[SubscriptionRow]:
        """Every stored subscription still live at ``now`` (epoch seconds)."""
        cursor = self._db.execute(
            "SELECT id, presentity, watcher, event, call_id, local_tag, remote_tag, local_party, "
            "remote_party, remote_target, route_set, local_contact, expires_at, local_cseq, "
            "remote_cseq FROM subscriptions WHERE expires_at > ?",
            (now,),
        )
        return [SubscriptionRow(*row) for row in cursor.fetchall()]

    def save_publication(self, row: PublicationRow) -> None:
        """Insert or replace one publication (answered 2xx: it survives a restart)."""
        self.write_presence(publications=(row,))

    def delete_publication(self, etag: str) -> None:
        """Forget one publication (removed, replaced by a new entity tag, or expired)."""
        self.write_presence(ended_publications=(etag,))

    def load_publications(self, now: float) -> list[PublicationRow]:
        """Every stored publication still live at ``now`` (epoch seconds)."""
        cursor = self._db.execute(
            "SELECT etag, aor, state, note, published_at, expires_at FROM publications "
            "WHERE expires_at > ?",
            (now,),
        )
        return [PublicationRow(*row) for row in cursor.fetchall()]

    def pending_changes(self) -> list[str]:
        """What a restart would change, one phrase per setting (empty when nothing)."""
        return changes(self.load("running"), self.load("staged"))

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
        return StoreError(self._path, error)
