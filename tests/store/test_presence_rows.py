"""Subscriptions and publications in the store: a home from before presence gains their
tables."""

from __future__ import annotations

import sqlite3
from pathlib import Path

from intrafed.config.model import NodeIdentity, Role
from intrafed.store import create_store, open_store
from intrafed.store.sqlite import FILENAME, MIGRATIONS

IDENTITY = NodeIdentity(Role.OCS, "ocs1.example.com", "127.0.0.3")


def test_a_home_from_before_presence_gains_the_tables(tmp_path: Path) -> None:
    create_store(tmp_path, IDENTITY).close()
    with sqlite3.connect(tmp_path / FILENAME) as db:
        db.execute("DROP TABLE subscriptions")
        db.execute("DROP TABLE publications")
        db.execute("ALTER TABLE bindings DROP COLUMN flow_bound")
        db.execute("PRAGMA user_version = 2")
    db.close()
    with open_store(tmp_path) as store:
        assert store.load_subscriptions(0.0) == []
        assert store.load_publications(0.0) == []
    with sqlite3.connect(tmp_path / FILENAME) as db:
        assert db.execute("PRAGMA user_version").fetchone()[0] == len(MIGRATIONS)
    db.close()
