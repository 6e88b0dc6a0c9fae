"""``intrafed user move --from postgresql://…``: the old side named by its PostgreSQL
database (an Enterprise pool's back end) rather than a home, its password kept out of the
output."""

from __future__ import annotations

from pathlib import Path

from intrafed.config import edits
from intrafed.config.model import Edition, NodeIdentity, Role
from intrafed.store import create_store, open_store
from intrafed.store.urls import masked
from tests.cli.test_user_move import ALICE, BOB, run, staged
from tests.store.postgres import Database


def test_user_move_from_a_postgresql_url_moves_the_user_and_prints_no_password(
    tmp_path: Path, postgres: Database
) -> None:
    imp, ocs = tmp_path / "imp", tmp_path / "ocs"
    commands = [
        (imp, "init", "--role", "imp", "--fqdn", "imp1.example.com", "--ip", "127.0.0.2",
         "--db", postgres.url),
        (ocs, "init", "--role", "ocs", "--fqdn", "ocs1.example.com", "--ip", "127.0.0.3"),
        (imp, "config", "domain", "add", "example.com"),
        (ocs, "config", "domain", "add", "example.com"),
        (imp, "config", "user", "import", "-"),
        (ocs, "config", "user", "import", "-"),
    ]  # fmt: skip
    users = {imp: f"address,password\n{ALICE},pw-a\n", ocs: f"address,password\n{BOB},pw-b\n"}
    for home, *command in commands:
        result = run(*command, "--home", str(home), stdin=users[home])
        assert result.exit_code == 0, result.output
    alice = next(user for user in staged(imp)["users"] if user["aor"] == ALICE)

    result = run("user", "move", ALICE, "--from", postgres.url, "--to", str(ocs))

    assert result.exit_code == 0, result.output
    assert [user["aor"] for user in staged(imp)["users"]] == []
    assert staged(ocs)["users"][-1] == alice
    assert f"old side ({masked(postgres.url)}) is a database: reload each node" in result.stdout
    assert postgres.password not in result.output


def test_user_move_from_a_pool_database_moves_the_user_off_every_member(
    tmp_path: Path, postgres: Database
) -> None:
    pool = "pool.example.com"
    members = [
        NodeIdentity(Role.OCS, f"fe{n}.example.com", f"127.0.15.{n}", Edition.ENTERPRISE, pool)
        for n in (1, 2)
    ]
    for identity in members:
        create_store(tmp_path / identity.fqdn, identity, postgres.url).close()
    with open_store(tmp_path / members[0].fqdn) as fe1:
        fe1.stage(lambda config: edits.add_domain(config, "example.com"))
        fe1.stage(lambda config: edits.add_user(config, BOB, "pw-b"))
    imp = tmp_path / "imp"
    for command in (
        ("init", "--role", "imp", "--fqdn", "imp1.example.com", "--ip", "127.0.0.2"),
        ("config", "domain", "add", "example.com"),
    ):
        assert run(*command, "--home", str(imp)).exit_code == 0

    result = run("user", "move", BOB, "--from", postgres.url, "--to", str(imp))

    assert result.exit_code == 0, result.output
    assert [user["aor"] for user in staged(imp)["users"]] == [BOB]
    for identity in members:
        assert staged(tmp_path / identity.fqdn).get("users", []) == []
