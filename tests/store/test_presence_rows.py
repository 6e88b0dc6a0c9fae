"""Subscriptions and publications in the store: what was answered 2xx survives a restart."""

from __future__ import annotations

import sqlite3
from pathlib import Path

from intrafed.config.model import NodeIdentity, Role
from intrafed.store import (
    PublicationRow,
    StateChanges,
    SubscriptionRow,
    create_store,
    open_store,
)
from intrafed.store.sqlite import FILENAME, MIGRATIONS

IDENTITY = NodeIdentity(Role.OCS, "ocs1.example.com", "127.0.0.3")


def subscription(id_: str, expires_at: float, local_cseq: int = 1) -> SubscriptionRow:
    return SubscriptionRow(
        id=id_,
        presentity="bob@example.com",
        watcher="alice@example.com",
        event="presence",
        call_id=f"call-{id_}",
        local_tag="ours",
        remote_tag="theirs",
        local_party="<sip:bob@example.com>",
        remote_party="<sip:alice@example.com>;tag=theirs",
        remote_target="sip:alice@127.0.0.10:5070;transport=tcp",
        route_set="<sip:imp1.example.com:5061;transport=tls;lr>\n<sip:127.0.0.2;lr>",
        local_contact="sip:ocs1.example.com:5061;transport=tls",
        expires_at=expires_at,
        local_cseq=local_cseq,
        remote_cseq=1,
    )


def test_subscriptions_are_saved_replaced_deleted_and_filtered_by_expiry(tmp_path: Path) -> None:
    with create_store(tmp_path, IDENTITY) as store:
        store.write(StateChanges(saved_subscriptions=(subscription("a", 2000.0),)))
        store.write(StateChanges(saved_subscriptions=(subscription("b", 1500.0),)))
        store.write(StateChanges(saved_subscriptions=(subscription("a", 2000.0, local_cseq=9),)))
    with open_store(tmp_path) as store:
        assert sorted(store.load_subscriptions(1000.0)) == [
            subscription("a", 2000.0, local_cseq=9),
            subscription("b", 1500.0),
        ]
        assert store.load_subscriptions(1500.0) == [subscription("a", 2000.0, local_cseq=9)]
        store.write(StateChanges(ended_subscriptions=("a",)))
        assert store.load_subscriptions(1000.0) == [subscription("b", 1500.0)]


def test_publications_are_saved_deleted_and_filtered_by_expiry(tmp_path: Path) -> None:
    busy = PublicationRow("e1", "bob@example.com", "busy", "in a meeting", 900.0, 2000.0)
    away = PublicationRow("e2", "bob@example.com", "away", None, 950.0, 1200.0)
    with create_store(tmp_path, IDENTITY) as store:
        store.write(StateChanges(saved_publications=(busy, away)))
    with open_store(tmp_path) as store:
        assert sorted(store.load_publications(1000.0)) == [busy, away]
        assert store.load_publications(1200.0) == [busy]
        store.write(StateChanges(ended_publications=("e1",)))
        assert store.load_publications(1000.0) == [away]


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
