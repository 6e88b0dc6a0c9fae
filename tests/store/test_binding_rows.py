"""Registrations in the store: bindings from before flow binding was recorded."""

from __future__ import annotations

import sqlite3
from pathlib import Path

from intrafed.config.model import NodeIdentity, Role
from intrafed.store import BindingRow, create_store, open_store
from intrafed.store.sqlite import FILENAME, MIGRATIONS

IDENTITY = NodeIdentity(Role.IMP, "imp1.example.com", "127.0.0.3")


def test_bindings_stored_before_flow_binding_was_recorded_count_as_flow_bound(
    tmp_path: Path,
) -> None:
    create_store(tmp_path, IDENTITY).close()
    with sqlite3.connect(tmp_path / FILENAME) as db:
        db.execute("ALTER TABLE bindings DROP COLUMN flow_bound")
        db.execute(f"PRAGMA user_version = {len(MIGRATIONS) - 1}")
        db.execute(
            "INSERT INTO bindings VALUES "
            "('bob@example.com', 'sip:bob@127.0.0.9:5060', 2000.0, 1.0, 'c', 1)"
        )
    db.close()
    with open_store(tmp_path) as store:
        assert store.load_bindings(1000.0) == [
            BindingRow("bob@example.com", "sip:bob@127.0.0.9:5060", 2000.0, 1.0, "c", 1, True)
        ]
