"""The SQLite store: where the file lives, its schema, and how SQLite's refusals read (what
every store owes is in test_contract.py)."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest

from intrafed.config import edits
from intrafed.config.model import ConfigError, NodeConfig, NodeIdentity, Role
from intrafed.store import BindingRow, StateChanges, Store, StoreError, create_store, open_store
from intrafed.store.sqlite import FILENAME, LOCATOR, MIGRATIONS, SqliteStore, database_path
from tests.store_faults import cap_size, make_room, set_read_only

IDENTITY = NodeIdentity(Role.IMP, "imp1.example.com", "127.0.0.2")


def test_create_then_open_gives_equal_staged_and_running(tmp_path: Path) -> None:
    home = tmp_path / "imp1"
    with create_store(home, IDENTITY) as store:
        assert store.location == str(home / FILENAME)
    with open_store(home) as store:
        assert store.load("staged") == store.load("running") == NodeConfig(IDENTITY)
        assert store.restart_pending() is False
        assert store.pending_changes() == []
    with sqlite3.connect(home / FILENAME) as db:
        assert db.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
        assert db.execute("PRAGMA user_version").fetchone()[0] == len(MIGRATIONS)
    db.close()


def test_create_refuses_an_existing_node_and_open_refuses_a_non_home(tmp_path: Path) -> None:
    create_store(tmp_path / "a", IDENTITY).close()
    with pytest.raises(ConfigError) as error:
        create_store(tmp_path / "a", IDENTITY)
    assert "already holds a node" in str(error.value)
    with pytest.raises(ConfigError) as error:
        open_store(tmp_path / "b")
    assert str(error.value).startswith(f"--home: {tmp_path / 'b'} is not an intrafed home")
    assert "intrafed init --home" in str(error.value)


def test_db_url_puts_the_file_elsewhere_and_the_home_remembers_it(tmp_path: Path) -> None:
    target = tmp_path / "data" / "imp1.db"
    create_store(tmp_path / "home", IDENTITY, f"sqlite:///{target}").close()
    assert (tmp_path / "home" / LOCATOR).read_text() == f"sqlite:///{target}\n"
    assert not (tmp_path / "home" / FILENAME).exists()
    with open_store(tmp_path / "home") as store:
        assert store.location == str(target)
    with pytest.raises(ConfigError) as error:
        create_store(tmp_path / "other", IDENTITY, f"sqlite:///{target}")
    assert f"({target} exists)" in str(error.value)
    assert not (tmp_path / "other" / LOCATOR).exists()


def test_database_path(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    assert database_path(Path("h"), None) == Path("h") / FILENAME
    assert database_path(Path("h"), "sqlite:///rel/x.db") == tmp_path / "rel" / "x.db"
    assert database_path(Path("h"), "sqlite:////abs/x.db") == Path("/abs/x.db")


@pytest.mark.parametrize(
    "url", ["sqlite://x.db", "sqlite:///", "mysql://h/d", "x.db", "mysql://u:secret@h/d"]
)
def test_other_urls_are_refused(url: str) -> None:
    with pytest.raises(ConfigError) as error:
        database_path(Path("h"), url)
    assert "is not a database URL this version supports" in str(error.value)
    assert "secret" not in str(error.value)


def test_a_damaged_or_newer_database_is_a_config_error(tmp_path: Path) -> None:
    (tmp_path / FILENAME).write_bytes(b"this is not SQLite" * 100)
    with pytest.raises(ConfigError) as error:
        open_store(tmp_path)
    assert "cannot be used" in str(error.value)
    newer = tmp_path / "newer"
    create_store(newer, IDENTITY).close()
    with sqlite3.connect(newer / FILENAME) as db:
        db.execute(f"PRAGMA user_version = {len(MIGRATIONS) + 1}")
    db.close()
    with pytest.raises(ConfigError) as error:
        open_store(newer)
    assert "newer than this intrafed knows" in str(error.value)


def test_a_store_held_by_another_process_is_refused_after_the_busy_timeout(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    create_store(tmp_path, IDENTITY).close()
    monkeypatch.setattr(SqliteStore, "busy_timeout", 0.05)
    other = sqlite3.connect(tmp_path / FILENAME, isolation_level=None)
    other.execute("BEGIN IMMEDIATE")
    try:
        with open_store(tmp_path) as store, pytest.raises(ConfigError) as error:
            store.stage(lambda c: edits.add_domain(c, "example.com"))
        assert str(error.value).startswith(f"--home: {tmp_path / FILENAME} is busy")
    finally:
        other.execute("ROLLBACK")
        other.close()


def test_a_write_to_a_full_store_raises_store_error_and_the_store_recovers(
    tmp_path: Path,
) -> None:
    with create_store(tmp_path, IDENTITY) as store:
        cap_size(store)
        contact = "sip:alice@127.0.0.10:5070;x=" + "y" * 900
        stored, error = fill(store, contact)
        assert error.reason == "database or disk is full"
        assert stored > 0
        # Nothing of the failed write is kept, and the connection is usable.
        assert len(store.load_bindings(0.0)) == stored
        assert store.load("staged") == NodeConfig(IDENTITY)
        make_room(store)
        store.write(StateChanges({f"u{stored}@example.com": (row(stored, contact),)}))
        assert len(store.load_bindings(0.0)) == stored + 1


def test_a_read_only_store_raises_store_error_naming_the_file(tmp_path: Path) -> None:
    with create_store(tmp_path, IDENTITY) as store:
        set_read_only(store, True)
        with pytest.raises(StoreError) as error:
            store.write(StateChanges({"alice@example.com": (row(1, "sip:alice@127.0.0.10"),)}))
        assert error.value.reason == "attempt to write a readonly database"
        assert str(error.value).startswith(
            f"--home: {tmp_path / FILENAME} cannot be written by this user (attempt to write "
            "a readonly database) — give the user running intrafed write access"
        )
        set_read_only(store, False)
        store.write(StateChanges({"alice@example.com": (row(1, "sip:alice@127.0.0.10"),)}))
        assert len(store.load_bindings(0.0)) == 1


def fill(store: Store, contact: str) -> tuple[int, StoreError]:
    """Registrations saved until the store refuses one: how many fitted, and the error."""
    for n in range(100):
        try:
            store.write(StateChanges({f"u{n}@example.com": (row(n, contact),)}))
        except StoreError as error:
            return n, error
    raise AssertionError("the capped store never filled up")


def row(n: int, contact: str) -> BindingRow:
    return BindingRow(f"u{n}@example.com", contact, 5000.0, 1.0, f"call-{n}", 1, True)
