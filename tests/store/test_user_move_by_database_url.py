"""``intrafed user move --from postgresql://…``: the old side named by its PostgreSQL
database (an Enterprise pool's back end) rather than a home, its password kept out of the
output."""

from __future__ import annotations

from pathlib import Path

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
