"""Registrations in the store: whether a binding is bound to its flow survives a restart."""

from __future__ import annotations

import sqlite3
from pathlib import Path

from intrafed.config.model import NodeIdentity, Role
from intrafed.store import BindingRow, StateChanges, create_store, open_store
from intrafed.store.sqlite import FILENAME, MIGRATIONS

IDENTITY = NodeIdentity(Role.IMP, "imp1.example.com", "127.0.0.3")


def test_a_flow_bound_binding_is_still_flow_bound_after_a_restart(tmp_path: Path) -> None:
    bound = BindingRow(
        "alice@example.com",
        "sip:alice@127.0.0.9:40000;transport=tcp",
        2000.0,
        1.0,
        "c",
        1,
        True,
    )
    listening = BindingRow(
        "alice@example.com",
        "sip:alice@127.0.0.9:5060;transport=tcp",
        2000.0,
        0.5,
        "c",
        1,
        False,
    )
    with create_store(tmp_path, IDENTITY) as store:
        store.write(StateChanges({"alice@example.com": (bound, listening)}))
    with open_store(tmp_path) as store:
        assert sorted(store.load_bindings(1000.0)) == sorted([bound, listening])


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
