"""Real faults of a node's SQLite store, made through the store's own connection: SQLite
refuses the writes exactly as on a full disk or a read-only file. And what a store costs:
the write transactions it begins."""

from __future__ import annotations

import sqlite3

from intrafed.store import Store
from intrafed.store.sqlite import SqliteStore


def _connection(store: Store) -> sqlite3.Connection:
    assert isinstance(store, SqliteStore)
    return store._db


def cap_size(store: Store) -> None:
    """The database may not grow past its current pages: a write that needs a new page
    fails with SQLITE_FULL ("database or disk is full"), as on a full disk."""
    db = _connection(store)
    pages = db.execute("PRAGMA page_count").fetchone()[0]
    db.execute(f"PRAGMA max_page_count = {pages}")


def make_room(store: Store) -> None:
    """The disk has room again."""
    _connection(store).execute("PRAGMA max_page_count = 1073741823")


def set_read_only(store: Store, read_only: bool) -> None:
    """Writes fail with SQLITE_READONLY ("attempt to write a readonly database"), as on a
    file system remounted read-only; False lifts it."""
    _connection(store).execute(f"PRAGMA query_only = {int(read_only)}")


def count_transactions(store: Store) -> list[str]:
    """From now on, one entry per write transaction the store begins (the list grows)."""
    begun: list[str] = []
    _connection(store).set_trace_callback(
        lambda statement: begun.append(statement) if statement == "BEGIN IMMEDIATE" else None
    )
    return begun


def refuse_contact(store: Store, contact: str) -> None:
    """Every write that stores a binding of ``contact`` fails ("this contact is refused"),
    and with it the rest of its transaction."""
    _connection(store).execute(
        "CREATE TEMP TRIGGER refuse BEFORE INSERT ON bindings "
        f"WHEN NEW.contact = '{contact}' BEGIN SELECT RAISE(ABORT, 'this contact is refused'); END"
    )
