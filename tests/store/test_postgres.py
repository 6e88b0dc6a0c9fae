"""The PostgreSQL store on a real server: what the home keeps, what messages show of the
URL, its schema, and writes that fail within a second when the database is hung or locked,
then work again (what every store owes is in test_contract.py)."""

from __future__ import annotations

import json
import os
import signal
import stat
import time
from pathlib import Path

import psycopg
import pytest
from click.testing import CliRunner

from intrafed.cli import main
from intrafed.config import edits
from intrafed.config.model import ConfigError, NodeIdentity, Role
from intrafed.store import BindingRow, StateChanges, StoreError, create_store, open_store
from intrafed.store.postgres import MIGRATIONS, PostgresStore
from intrafed.store.sqlite import FILENAME, LOCATOR
from intrafed.store.urls import masked
from tests.store.postgres import Database, backend_pid

IDENTITY = NodeIdentity(Role.IMP, "imp1.example.com", "127.0.0.2")
ALICE = "alice@example.com"
BINDING = BindingRow(ALICE, "sip:alice@127.0.0.9:5070", 2e9, 1.0, "c", 1, True)


def invoke(*arguments: str) -> str:
    result = CliRunner().invoke(main, list(arguments))
    assert result.exit_code == 0, result.output
    return result.stdout


def rows(database: Database, query: str) -> list[tuple[object, ...]]:
    with psycopg.connect(database.url) as connection:
        return connection.execute(query).fetchall()


def test_init_with_a_postgresql_url_keeps_the_configuration_there_and_never_prints_the_password(
    postgres: Database, tmp_path: Path
) -> None:
    home = tmp_path / "imp1"
    init = ("init", "--home", str(home), "--role", "imp", "--fqdn", "imp1.example.com",
            "--ip", "127.0.0.2", "--db", postgres.url, "--json")  # fmt: skip
    shown = json.loads(invoke(*init))
    assert shown["store"] == masked(postgres.url)
    assert ":***@127.0.0.1:" in shown["store"]
    invoke("config", "domain", "add", "--home", str(home), "example.com")
    assert postgres.password not in invoke("config", "show", "--home", str(home))
    # The home names the database, for its owner's eyes only; nothing else is in it.
    assert (home / LOCATOR).read_text() == f"{postgres.url}\n"
    assert stat.S_IMODE((home / LOCATOR).stat().st_mode) == 0o600
    assert not (home / FILENAME).exists()
    stored = rows(postgres, "SELECT member, kind, document FROM config ORDER BY kind")
    assert [(member, kind) for member, kind, _ in stored] == [
        ("imp1.example.com", "running"),
        ("imp1.example.com", "staged"),
    ]
    assert stored[1][2]["domains"] == ["example.com"]  # type: ignore[index]
    with open_store(home) as store:
        assert store.location == masked(postgres.url)
        assert store.pending_changes() == ["domains: added example.com"]


def test_a_database_that_holds_a_node_is_not_given_to_another(
    postgres: Database, tmp_path: Path
) -> None:
    create_store(tmp_path / "imp1", IDENTITY, postgres.url).close()
    other = NodeIdentity(Role.IMP, "imp2.example.com", "127.0.0.4")
    with pytest.raises(ConfigError) as error:
        create_store(tmp_path / "imp2", other, postgres.url)
    assert str(error.value) == (
        f"--db: {masked(postgres.url)} already holds the node imp1.example.com — give each "
        "node its own database (createdb), or edit that node with intrafed config"
    )
    assert not (tmp_path / "imp2").exists()


def test_a_home_that_cannot_be_made_leaves_the_database_to_another_init(
    postgres: Database, tmp_path: Path
) -> None:
    (tmp_path / "file").write_text("not a directory")
    with pytest.raises(NotADirectoryError):
        create_store(tmp_path / "file" / "imp1", IDENTITY, postgres.url)
    assert rows(postgres, "SELECT member FROM config") == []
    create_store(tmp_path / "imp1", IDENTITY, postgres.url).close()


def test_a_database_that_cannot_be_reached_is_refused_without_its_password(
    tmp_path: Path,
) -> None:
    url = "postgresql://intrafed:s3cret%40x@127.0.0.1:1/intrafed"
    with pytest.raises(ConfigError) as error:
        create_store(tmp_path / "imp1", IDENTITY, url)
    text = str(error.value)
    assert text.startswith(
        "--db: cannot connect to PostgreSQL at postgresql://intrafed:***@127.0.0.1:1/intrafed ("
    )
    assert "s3cret" not in text
    assert not (tmp_path / "imp1").exists()


def test_the_schema_is_versioned_and_a_newer_one_is_refused(
    postgres: Database, tmp_path: Path
) -> None:
    create_store(tmp_path, IDENTITY, postgres.url).close()
    with open_store(tmp_path) as store:
        store.stage(lambda config: edits.add_domain(config, "example.com"))
    assert rows(postgres, "SELECT version FROM schema_version") == [(len(MIGRATIONS),)]
    with psycopg.connect(postgres.url) as connection:
        connection.execute("UPDATE schema_version SET version = version + 1")
    with pytest.raises(ConfigError) as error:
        open_store(tmp_path)
    assert str(error.value) == (
        f"{tmp_path / LOCATOR}: {masked(postgres.url)} has schema version "
        f"{len(MIGRATIONS) + 1}, newer than this intrafed knows ({len(MIGRATIONS)}) — "
        "upgrade intrafed"
    )


def test_a_write_to_a_hung_database_fails_within_a_second_and_the_store_connects_again(
    postgres: Database, tmp_path: Path
) -> None:
    with create_store(tmp_path, IDENTITY, postgres.url) as store:
        hung = backend_pid(store)
        os.kill(hung, signal.SIGSTOP)
        try:
            began = time.monotonic()
            with pytest.raises(StoreError) as error:
                store.write(StateChanges({ALICE: (BINDING,)}))
            took = time.monotonic() - began
        finally:
            os.kill(hung, signal.SIGCONT)
        assert error.value.reason == "the database did not answer within 0.9 s"
        assert postgres.password not in str(error.value)
        assert took < 2.0
        # Until the new connection is made, writes fail at once; then they work again.
        reasons = []
        for _ in range(100):
            try:
                store.write(StateChanges({ALICE: (BINDING,)}))
                break
            except StoreError as exc:
                reasons.append(exc.reason)
                time.sleep(0.05)
        assert set(reasons) <= {"the database cannot be reached"}
        assert store.load_bindings(0.0) == [BINDING]
        assert backend_pid(store) != hung


def test_a_write_blocked_by_a_lock_is_cancelled_by_the_server_and_the_connection_kept(
    postgres: Database, tmp_path: Path
) -> None:
    with create_store(tmp_path, IDENTITY, postgres.url) as store:
        served_by = backend_pid(store)
        with psycopg.connect(postgres.url) as other:
            other.execute("LOCK TABLE bindings IN ACCESS EXCLUSIVE MODE")
            began = time.monotonic()
            with pytest.raises(StoreError) as error:
                store.write(StateChanges({ALICE: (BINDING,)}))
            took = time.monotonic() - began
        assert error.value.reason == "canceling statement due to statement timeout"
        assert took < 2.0
        store.write(StateChanges({ALICE: (BINDING,)}))
        assert store.load_bindings(0.0) == [BINDING]
        assert backend_pid(store) == served_by


def test_a_binding_names_the_member_that_holds_its_flow(postgres: Database, tmp_path: Path) -> None:
    with create_store(tmp_path, IDENTITY, postgres.url) as store:
        assert isinstance(store, PostgresStore)
        store.write(StateChanges({ALICE: (BINDING,)}))
    assert rows(postgres, "SELECT aor, member FROM bindings") == [(ALICE, "imp1.example.com")]


@pytest.mark.parametrize(
    ("url", "shown"),
    [
        ("postgresql://u:p%40ss@h:5432/d", "postgresql://u:***@h:5432/d"),
        ("postgresql://u@h/d?password=pw&sslmode=require", "postgresql://u@h/d?password=***&sslmode=require"),
        ("postgres://h/d", "postgres://h/d"),
    ],
)  # fmt: skip
def test_messages_show_a_url_without_its_password(url: str, shown: str) -> None:
    assert masked(url) == shown
