"""Real faults of a node's SQLite store, made through the store's own connection: SQLite
refuses the writes exactly as on a full disk or a read-only file."""

from __future__ import annotations

from intrafed.store import ConfigStore


def cap_size(store: ConfigStore) -> None:
    """The database may not grow past its current pages: a write that needs a new page
    fails with SQLITE_FULL ("database or disk is full"), as on a full disk."""
    pages = store._db.execute("PRAGMA page_count").fetchone()[0]
    store._db.execute(f"PRAGMA max_page_count = {pages}")


def make_room(store: ConfigStore) -> None:
    """The disk has room again."""
    store._db.execute("PRAGMA max_page_count = 1073741823")


def set_read_only(store: ConfigStore, read_only: bool) -> None:
    """Writes fail with SQLITE_READONLY ("attempt to write a readonly database"), as on a
    file system remounted read-only; False lifts it."""
    store._db.execute(f"PRAGMA query_only = {int(read_only)}")
