"""What every store implementation owes the node and the CLI (``store.base.Store``), run
against each one (SQLite, and a real PostgreSQL): configuration staged and running, state
that survives reopening, and a refused write that stores nothing. A new back end joins
``IMPLEMENTATIONS``."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Iterator
from dataclasses import FrozenInstanceError, dataclass
from pathlib import Path

import pytest

from intrafed.config import edits
from intrafed.config.model import ConfigError, NodeConfig, NodeIdentity, Role
from intrafed.store import (
    BindingRow,
    PublicationRow,
    StateChanges,
    Store,
    StoreError,
    SubscriptionRow,
    create_store,
    open_store,
)
from tests import store_faults as sqlite_faults
from tests.config.test_document import IMP
from tests.store import postgres as postgres_faults

IDENTITY = NodeIdentity(Role.IMP, "imp1.example.com", "127.0.0.2")
ALICE, BOB = "alice@example.com", "bob@example.com"


@dataclass(frozen=True, slots=True)
class Implementation:
    """How a test makes and breaks one kind of store."""

    name: str
    database: Callable[[pytest.FixtureRequest], str | None]
    """The ``--db`` URL of a new store (None: ``HOME/intrafed.db``)."""
    refuse_writes: Callable[[Store, bool], None]
    """Make every write fail for real (True) or work again (False)."""


IMPLEMENTATIONS = [
    Implementation("sqlite", lambda request: None, sqlite_faults.set_read_only),
    Implementation(
        "postgresql",
        lambda request: request.getfixturevalue("postgres").url,
        postgres_faults.set_read_only,
    ),
]


@dataclass(frozen=True, slots=True)
class Kind:
    """One kind of store, for one test: make, reopen and break it."""

    create: Callable[[Path, NodeIdentity], Store]
    reopen: Callable[[Path], Store]
    refuse_writes: Callable[[Store, bool], None]


@pytest.fixture(params=IMPLEMENTATIONS, ids=lambda implementation: implementation.name)
def kind(request: pytest.FixtureRequest) -> Kind:
    implementation: Implementation = request.param
    url = implementation.database(request)
    return Kind(
        lambda home, identity: create_store(home, identity, url),
        open_store,
        implementation.refuse_writes,
    )


@pytest.fixture
def store(kind: Kind, tmp_path: Path) -> Iterator[Store]:
    with kind.create(tmp_path, IDENTITY) as store:
        yield store


def binding(
    aor: str, contact: str, expires_at: float = 2000.0, q: float = 1.0, flow_bound: bool = True
) -> BindingRow:
    return BindingRow(aor, contact, expires_at, q, "c", 1, flow_bound)


def subscription(id_: str, expires_at: float, local_cseq: int = 1) -> SubscriptionRow:
    return SubscriptionRow(
        id=id_,
        presentity=BOB,
        watcher=ALICE,
        event="presence",
        call_id=f"call-{id_}",
        local_tag="ours",
        remote_tag="theirs",
        local_party=f"<sip:{BOB}>",
        remote_party=f"<sip:{ALICE}>;tag=theirs",
        remote_target="sip:alice@127.0.0.10:5070;transport=tcp",
        route_set="<sip:imp1.example.com:5061;transport=tls;lr>\n<sip:127.0.0.2;lr>",
        local_contact="sip:ocs1.example.com:5061;transport=tls",
        expires_at=expires_at,
        local_cseq=local_cseq,
        remote_cseq=1,
    )


# -- configuration -------------------------------------------------------------------------


def test_a_new_store_runs_what_is_staged(kind: Kind, tmp_path: Path) -> None:
    kind.create(tmp_path, IDENTITY).close()
    with kind.reopen(tmp_path) as store:
        assert store.load("staged") == store.load("running") == NodeConfig(IDENTITY)
        assert store.restart_pending() is False
        assert store.pending_changes() == []
        assert store.location


def test_stage_changes_only_staged_until_promoted(store: Store) -> None:
    staged = store.stage(lambda c: edits.add_domain(c, "example.com"))
    assert store.load("staged") == staged
    assert store.load("running").domains == ()
    assert store.restart_pending() is True
    assert store.pending_changes() == ["domains: added example.com"]
    assert store.promote() == staged
    assert store.load("running") == staged
    assert store.restart_pending() is False


def test_a_refused_edit_changes_nothing(store: Store) -> None:
    store.stage(lambda c: edits.add_domain(c, "example.com"))
    before = store.load("staged")
    with pytest.raises(ConfigError):
        store.stage(lambda c: edits.add_domain(edits.add_domain(c, "example.org"), "x"))
    assert store.load("staged") == before


def test_replace_staged_keeps_the_identity(store: Store) -> None:
    other = NodeConfig(NodeIdentity(Role.IMP, "imp2.example.com", "127.0.0.4"))
    with pytest.raises(ConfigError) as error:
        store.replace_staged(other)
    assert str(error.value).startswith(
        "node: the document is for imp2.example.com (imp, 127.0.0.4), "
        "this home is imp1.example.com (imp, 127.0.0.2)"
    )
    config = edits.add_domain(NodeConfig(IDENTITY), "example.com")
    store.replace_staged(config)
    assert store.load("staged") == config


def test_every_kind_of_setting_comes_back_as_stored(kind: Kind, tmp_path: Path) -> None:
    config = dataclasses.replace(IMP, identity=IDENTITY).validate()
    with kind.create(tmp_path, IDENTITY) as store:
        store.replace_staged(config)
        store.promote()
    with kind.reopen(tmp_path) as store:
        assert store.load("staged") == store.load("running") == config
        assert store.restart_pending() is False


# -- state ---------------------------------------------------------------------------------


def test_a_flow_bound_binding_is_still_flow_bound_after_a_restart(
    kind: Kind, tmp_path: Path
) -> None:
    bound = binding(ALICE, "sip:alice@127.0.0.9:40000;transport=tcp")
    listening = binding(ALICE, "sip:alice@127.0.0.9:5060;transport=tcp", q=0.5, flow_bound=False)
    with kind.create(tmp_path, IDENTITY) as store:
        store.write(StateChanges({ALICE: (bound, listening)}))
    with kind.reopen(tmp_path) as store:
        assert sorted(store.load_bindings(1000.0)) == sorted([bound, listening])


def test_the_bindings_of_an_aor_are_replaced_whole_and_an_empty_set_forgets_it(
    store: Store,
) -> None:
    old, new = binding(ALICE, "sip:alice@127.0.0.9"), binding(ALICE, "sip:alice@127.0.0.8")
    bob = binding(BOB, "sip:bob@127.0.0.7", 1500.0)
    store.write(StateChanges({ALICE: (old,), BOB: (bob,)}))
    store.write(StateChanges({ALICE: (new,)}))
    assert sorted(store.load_bindings(1000.0)) == [new, bob]
    assert store.load_bindings(1500.0) == [new]
    store.write(StateChanges({ALICE: ()}))
    assert store.load_bindings(1000.0) == [bob]


def test_subscriptions_are_saved_replaced_deleted_and_filtered_by_expiry(
    kind: Kind, tmp_path: Path
) -> None:
    with kind.create(tmp_path, IDENTITY) as store:
        store.write(StateChanges(saved_subscriptions=(subscription("a", 2000.0),)))
        store.write(StateChanges(saved_subscriptions=(subscription("b", 1500.0),)))
        store.write(StateChanges(saved_subscriptions=(subscription("a", 2000.0, local_cseq=9),)))
    with kind.reopen(tmp_path) as store:
        assert sorted(store.load_subscriptions(1000.0)) == [
            subscription("a", 2000.0, local_cseq=9),
            subscription("b", 1500.0),
        ]
        assert store.load_subscriptions(1500.0) == [subscription("a", 2000.0, local_cseq=9)]
        store.write(StateChanges(ended_subscriptions=("a",)))
        assert store.load_subscriptions(1000.0) == [subscription("b", 1500.0)]


def test_publications_are_saved_deleted_and_filtered_by_expiry(kind: Kind, tmp_path: Path) -> None:
    busy = PublicationRow("e1", BOB, "busy", "in a meeting", 900.0, 2000.0)
    away = PublicationRow("e2", BOB, "away", None, 950.0, 1200.0)
    with kind.create(tmp_path, IDENTITY) as store:
        store.write(StateChanges(saved_publications=(busy, away)))
    with kind.reopen(tmp_path) as store:
        assert sorted(store.load_publications(1000.0)) == [busy, away]
        assert store.load_publications(1200.0) == [busy]
        store.write(StateChanges(ended_publications=("e1",)))
        assert store.load_publications(1000.0) == [away]


def test_a_write_the_store_refuses_stores_none_of_its_rows(kind: Kind, store: Store) -> None:
    kept = binding(BOB, "sip:bob@127.0.0.7")
    store.write(StateChanges({BOB: (kept,)}))
    changes = StateChanges(
        {ALICE: (binding(ALICE, "sip:alice@127.0.0.9"),), BOB: ()},
        saved_subscriptions=(subscription("a", 2000.0),),
        saved_publications=(PublicationRow("e1", BOB, "busy", None, 900.0, 2000.0),),
    )
    kind.refuse_writes(store, True)
    with pytest.raises(StoreError) as error:
        store.write(changes)
    assert error.value.reason
    assert store.load_bindings(0.0) == [kept]
    assert store.load_subscriptions(0.0) == []
    assert store.load_publications(0.0) == []
    kind.refuse_writes(store, False)
    store.write(changes)
    assert store.load_bindings(0.0) == list(changes.bindings[ALICE])
    assert len(store.load_subscriptions(0.0)) == len(store.load_publications(0.0)) == 1


def test_rows_cannot_be_changed_in_place() -> None:
    row = binding(ALICE, "sip:alice@127.0.0.9")
    with pytest.raises(FrozenInstanceError):
        row.expires_at = 0.0  # type: ignore[misc]
    assert not StateChanges()
    assert StateChanges({ALICE: ()})
