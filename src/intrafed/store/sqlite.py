"""The configuration store: an SQLite file in the node's home directory.

Two documents, ``staged`` (what edits change) and ``running`` (what the node runs with),
kept as JSON text in one table so that the same narrow interface can later be served by
PostgreSQL for an Enterprise pool. The schema version is SQLite's ``user_version``.
"""

from __future__ import annotations

import json
import sqlite3
import time
from collections.abc import Callable
from pathlib import Path

from intrafed.config.document import from_document, to_document
from intrafed.config.model import ConfigError, ImpListeners, NodeConfig, NodeIdentity, Role

FILENAME = "intrafed.db"
KINDS = ("staged", "running")
StagedEdit = Callable[[NodeConfig], NodeConfig]

# Each entry moves the schema one version up; never edit an applied entry, append.
MIGRATIONS = (
    """CREATE TABLE config (
        kind TEXT PRIMARY KEY,
        document TEXT NOT NULL,
        updated_at REAL NOT NULL
    )""",
)


class ConfigStore:
    """Staged and running configuration of one node."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._db = sqlite3.connect(path, isolation_level=None, timeout=10.0)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._migrate()

    @classmethod
    def open(cls, home: Path) -> ConfigStore:
        """The store of an existing home; ``ConfigError`` when ``home`` was never initialized."""
        path = home / FILENAME
        if not path.exists():
            raise ConfigError(
                "--home",
                f"{home} is not an intrafed home (no {FILENAME})",
                f"run: intrafed init --home {home} --role ocs|imp --fqdn FQDN --ip ADDR",
            )
        return cls(path)

    @classmethod
    def create(cls, home: Path, identity: NodeIdentity) -> ConfigStore:
        """Initialize ``home`` for a new node; refuses to overwrite an existing one."""
        path = home / FILENAME
        if path.exists():
            raise ConfigError(
                "--home",
                f"{home} already holds a node",
                "choose an empty directory, or edit this node with intrafed config",
            )
        home.mkdir(parents=True, exist_ok=True)
        store = cls(path)
        config = NodeConfig(
            identity, listeners=ImpListeners() if identity.role is Role.IMP else None
        )
        with store._transaction():
            for kind in KINDS:
                store._write(kind, config)
        return store

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
        current = self.load("staged")
        if config.identity != current.identity:
            raise ConfigError(
                "node",
                f"the document is for {config.identity.fqdn} ({config.identity.role.value}), this home is {current.identity.fqdn} ({current.role.value})",
                "import it into that node's home, or edit the [node] table",
            )
        with self._transaction():
            self._write("staged", config.validate())

    def promote(self) -> NodeConfig:
        """Make the staged configuration the running one (a restart or reload applied it)."""
        with self._transaction():
            config = self.load("staged")
            self._write("running", config)
        return config

    def restart_pending(self) -> bool:
        """Whether staged and running differ."""
        return self.load("staged") != self.load("running")

    def _write(self, kind: str, config: NodeConfig) -> None:
        self._db.execute(
            "INSERT INTO config (kind, document, updated_at) VALUES (?, ?, ?) "
            "ON CONFLICT (kind) DO UPDATE SET document = excluded.document, updated_at = excluded.updated_at",
            (kind, json.dumps(to_document(config), sort_keys=True), time.time()),
        )

    def _transaction(self) -> _Transaction:
        return _Transaction(self._db)

    def _migrate(self) -> None:
        version = self._db.execute("PRAGMA user_version").fetchone()[0]
        if version > len(MIGRATIONS):
            raise ConfigError(
                "--home",
                f"{self.path} has schema version {version}, newer than this intrafed knows ({len(MIGRATIONS)})",
                "upgrade intrafed",
            )
        for number, statement in enumerate(MIGRATIONS[version:], start=version + 1):
            with self._transaction():
                self._db.execute(statement)
                self._db.execute(f"PRAGMA user_version = {number}")


class _Transaction:
    """BEGIN IMMEDIATE ... COMMIT, or ROLLBACK on an exception."""

    def __init__(self, db: sqlite3.Connection) -> None:
        self._db = db

    def __enter__(self) -> None:
        self._db.execute("BEGIN IMMEDIATE")

    def __exit__(self, kind: object, error: object, trace: object) -> None:
        self._db.execute("COMMIT" if error is None else "ROLLBACK")
