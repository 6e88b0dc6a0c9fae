"""Members of an Enterprise Edition pool (and of an IM&P cluster) in one PostgreSQL
database: the pool's settings are stored once and staged for every member by an edit made
through any of them; each member keeps its own address and listeners, applies the staged
configuration itself, and every member can tell which members still run an older one."""

from __future__ import annotations

import dataclasses
import json
import queue
from pathlib import Path

import psycopg
import pytest
from click.testing import CliRunner

from intrafed.cli import main
from intrafed.config import edits
from intrafed.config.model import (
    ConfigError,
    Connection,
    Edition,
    HostAuthorization,
    NodeIdentity,
    Role,
    StaticRoute,
)
from intrafed.store import BindingRow, PublicationRow, StateChanges, create_store, open_store
from intrafed.store.pool_events import (
    MemberBindings,
    MemberListening,
    MemberPublished,
    MemberUnpublished,
    PoolEvent,
)
from intrafed.store.urls import masked
from tests.store.postgres import Database

POOL = "pool.example.com"
FE1 = NodeIdentity(Role.OCS, "fe1.example.com", "127.0.15.1", Edition.ENTERPRISE, POOL)
FE2 = NodeIdentity(Role.OCS, "fe2.example.com", "127.0.15.2", Edition.ENTERPRISE, POOL)


def invoke(*arguments: str, code: int = 0) -> str:
    result = CliRunner().invoke(main, list(arguments))
    assert result.exit_code == code, result.output
    return result.stdout


def test_an_edit_made_through_one_front_end_is_staged_for_every_member_of_the_pool(
    postgres: Database, tmp_path: Path
) -> None:
    for identity in (FE1, FE2):
        create_store(tmp_path / identity.fqdn, identity, postgres.url).close()
    route = StaticRoute("example.com", transport="TLS", port=5061, fqdn="imp.example.com")
    with open_store(tmp_path / FE1.fqdn) as fe1:
        fe1.stage(lambda config: edits.add_domain(config, "example.com"))
        fe1.stage(lambda config: edits.add_route(config, route))
        fe1.stage(
            lambda config: edits.add_host_authorization(config, HostAuthorization(ip="127.0.15.20"))
        )
        fe1.stage(lambda config: edits.add_user(config, "bob@example.com", "secret"))
        fe1.stage(lambda config: edits.add_connection(config, Connection("TCP", 5060)))
    with open_store(tmp_path / FE2.fqdn) as fe2:
        staged = fe2.load("staged")
        assert staged.identity == FE2
        assert staged.domains == ("example.com",)
        assert staged.routes == (route,)
        assert [entry.host for entry in staged.host_authorizations] == ["127.0.15.20"]
        assert [user.aor for user in staged.users] == ["bob@example.com"]
        # A connection is the front end's own: fe2 listens nowhere yet.
        assert staged.connections == ()
        assert fe2.load("running").domains == ()
        assert "domains: added example.com" in fe2.pending_changes()
    # The pool's settings are one row; each member's own settings and running
    # configuration are its rows.
    with psycopg.connect(postgres.url) as connection:
        pools = connection.execute("SELECT pool, document FROM pool_config").fetchall()
        members = connection.execute(
            "SELECT member, kind, pool, document FROM config ORDER BY member, kind"
        ).fetchall()
    assert [pool for pool, _ in pools] == [POOL]
    assert pools[0][1]["domains"] == ["example.com"]
    assert [(member, kind, pool) for member, kind, pool, _ in members] == [
        (FE1.fqdn, "running", POOL),
        (FE1.fqdn, "staged", POOL),
        (FE2.fqdn, "running", POOL),
        (FE2.fqdn, "staged", POOL),
    ]
    staged_row = members[1][3]
    assert "domains" not in staged_row
    assert staged_row["connections"] == [{"transport": "TCP", "port": 5060, "ip": "All"}]


def test_each_member_applies_the_staged_configuration_itself_and_any_member_names_the_others(
    postgres: Database, tmp_path: Path
) -> None:
    for identity in (FE1, FE2):
        create_store(tmp_path / identity.fqdn, identity, postgres.url).close()
    with open_store(tmp_path / FE2.fqdn) as fe2:
        fe2.stage(lambda config: edits.add_domain(config, "example.com"))
        assert sorted(name for name, behind in fe2.members_pending().items() if behind) == [
            FE1.fqdn,
            FE2.fqdn,
        ]
    with open_store(tmp_path / FE1.fqdn) as fe1:
        fe1.promote()
        assert fe1.load("running").domains == ("example.com",)
        assert fe1.load("running").identity == FE1
        assert fe1.members_pending() == {FE1.fqdn: [], FE2.fqdn: ["domains: added example.com"]}


def test_a_member_that_joins_later_runs_the_pool_settings_from_the_start(
    postgres: Database, tmp_path: Path
) -> None:
    with create_store(tmp_path / FE1.fqdn, FE1, postgres.url) as fe1:
        fe1.stage(lambda config: edits.add_domain(config, "example.com"))
        fe1.promote()
    with create_store(tmp_path / FE2.fqdn, FE2, postgres.url) as fe2:
        assert fe2.load("running").domains == ("example.com",)
        assert fe2.load("running").identity == FE2
        assert not fe2.restart_pending()


def test_an_imp_cluster_shares_its_settings_the_same_way(
    postgres: Database, tmp_path: Path
) -> None:
    homes = {name: tmp_path / name for name in ("imp1", "imp2")}
    for number, (name, home) in enumerate(homes.items(), 1):
        address = f"127.0.15.{20 + number}"
        invoke("init", "--home", str(home), "--role", "imp", "--fqdn", f"{name}.example.com",
               "--ip", address, "--cluster", "cup", "--db", postgres.url)  # fmt: skip
    invoke("config", "domain", "add", "--home", str(homes["imp1"]), "example.com")
    invoke("config", "peer-subject", "add", "--home", str(homes["imp2"]), POOL)
    with open_store(homes["imp1"]) as imp1:
        staged = imp1.load("staged")
    assert (staged.domains, staged.peer_subjects, staged.identity.cluster) == (
        ("example.com",),
        (POOL,),
        "cup",
    )
    shown = invoke("config", "show", "--home", str(homes["imp2"]), "--staged")
    assert "imp node imp2.example.com (127.0.15.22), cluster cup" in shown


def test_service_status_on_any_member_lists_the_members_that_run_an_older_configuration(
    postgres: Database, tmp_path: Path
) -> None:
    for identity in (FE1, FE2):
        create_store(tmp_path / identity.fqdn, identity, postgres.url).close()
    invoke("config", "domain", "add", "--home", str(tmp_path / FE1.fqdn), "example.com")
    with open_store(tmp_path / FE1.fqdn) as fe1:
        fe1.promote()
    status = invoke("service", "status", "--home", str(tmp_path / FE1.fqdn), "--json", code=3)
    state = json.loads(status)
    assert (state["pool"], state["members_behind"], state["pending_changes"]) == (
        POOL,
        [FE2.fqdn],
        [],
    )
    text = invoke("service", "status", "--home", str(tmp_path / FE1.fqdn), code=3)
    assert f"pool {POOL}: an older configuration runs on {FE2.fqdn}" in text


@pytest.mark.parametrize(
    ("first", "second", "refusal"),
    [
        (
            NodeIdentity(Role.OCS, "ocs1.example.com", "127.0.15.9"),
            FE1,
            "--db: {url} already holds the node ocs1.example.com — give each node its own "
            "database (createdb), or edit that node with intrafed config",
        ),
        (
            FE1,
            NodeIdentity(Role.OCS, "ocs1.example.com", "127.0.15.9"),
            "--db: {url} already holds the node fe1.example.com — give each node its own "
            "database (createdb), or edit that node with intrafed config",
        ),
        (
            FE1,
            NodeIdentity(Role.OCS, FE1.fqdn, "127.0.15.9", Edition.ENTERPRISE, POOL),
            "--fqdn: {url} already holds the member fe1.example.com of pool.example.com — "
            "give the new member its own --fqdn, or edit that member with intrafed config",
        ),
        (
            FE1,
            NodeIdentity(Role.IMP, "imp1.example.com", "127.0.15.9", cluster=POOL),
            "--role: pool.example.com in {url} is a pool of ocs nodes — give this node "
            "--role ocs, or another pool name",
        ),
    ],
)
def test_a_node_that_cannot_join_the_nodes_of_a_database_is_refused(
    postgres: Database, tmp_path: Path, first: NodeIdentity, second: NodeIdentity, refusal: str
) -> None:
    create_store(tmp_path / "first", first, postgres.url).close()
    with pytest.raises(ConfigError) as error:
        create_store(tmp_path / "second", second, postgres.url)
    assert str(error.value) == refusal.format(url=masked(postgres.url))
    assert not (tmp_path / "second").exists()


def test_a_cluster_name_is_for_imp_nodes_and_a_pool_fqdn_for_ocs_ones() -> None:
    with pytest.raises(ConfigError, match="OCS servers form pools, not clusters"):
        NodeIdentity(Role.OCS, "fe1.example.com", "127.0.15.1", cluster="cup")
    with pytest.raises(ConfigError, match="'cup one' is not a cluster name"):
        NodeIdentity(Role.IMP, "imp1.example.com", "127.0.15.1", cluster="cup one")
    assert NodeIdentity(Role.IMP, "imp1.example.com", "127.0.15.1", cluster="cup").pool == "cup"
    assert FE1.pool == POOL


def test_a_registration_at_one_front_end_leaves_those_held_by_the_other_and_moves_a_contact(
    postgres: Database, tmp_path: Path
) -> None:
    for identity in (FE1, FE2):
        create_store(tmp_path / identity.fqdn, identity, postgres.url).close()
    first = BindingRow("alice@example.com", "sip:alice@127.0.15.50:5070", 2e9, 1.0, "a", 1, True)
    second = dataclasses.replace(first, contact="sip:alice@127.0.15.51:5070", call_id="b")
    with open_store(tmp_path / FE1.fqdn) as fe1, open_store(tmp_path / FE2.fqdn) as fe2:
        fe1.write(StateChanges(bindings={first.aor: (first,)}))
        fe2.write(StateChanges(bindings={second.aor: (second,)}))
        assert (fe1.load_bindings(0), fe2.load_bindings(0)) == ([first], [second])
        # The client of the first contact registers again at fe2 (fe1 died): it moves.
        fe2.write(StateChanges(bindings={first.aor: (first, second)}))
        assert fe1.load_bindings(0) == []
        assert sorted(fe2.load_bindings(0)) == [first, second]


def test_a_member_hears_what_the_others_store_and_not_what_it_stores_itself(
    postgres: Database, tmp_path: Path
) -> None:
    for identity in (FE1, FE2):
        create_store(tmp_path / identity.fqdn, identity, postgres.url).close()
    heard: queue.Queue[PoolEvent] = queue.Queue()
    binding = BindingRow("bob@example.com", "sip:bob@127.0.15.52:5070", 2e9, 1.0, "b", 1, True)
    published = PublicationRow("e1", "bob@example.com", "busy", None, 1e9, 2e9)
    with open_store(tmp_path / FE1.fqdn) as fe1, open_store(tmp_path / FE2.fqdn) as fe2:
        fe2.write(StateChanges(bindings={binding.aor: (binding,)}))
        feed = fe1.pool_feed()
        assert feed is not None
        # What is true when it starts: fe2, where it listens, and whom it holds.
        assert feed.start(heard.put) == [
            MemberListening(FE2.fqdn, FE2.ip, ()),
            MemberBindings(binding.aor, FE2.fqdn, 2e9),
        ]
        try:
            carol = dataclasses.replace(binding, aor="carol@example.com")
            fe1.write(StateChanges(bindings={carol.aor: (carol,)}))
            fe2.stage(lambda config: edits.add_connection(config, Connection("MTLS", 5061)))
            fe2.promote()
            fe2.write(StateChanges(saved_publications=(published,)))
            fe2.write(StateChanges(bindings={binding.aor: ()}, ended_publications=("e1",)))
            assert [heard.get(timeout=10) for _ in range(4)] == [
                MemberListening(FE2.fqdn, FE2.ip, (("MTLS", 5061),)),
                MemberPublished(published),
                MemberBindings(binding.aor, FE2.fqdn, 0.0),
                MemberUnpublished(binding.aor, "e1"),
            ]
        finally:
            feed.close()
        assert heard.empty()
