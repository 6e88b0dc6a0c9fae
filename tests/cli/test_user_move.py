"""``intrafed user move`` on stopped nodes: the plan, the checks that each user is on the
old side only, and a failed step leaving both stores as they were."""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path
from typing import Any

from click.testing import CliRunner, Result

from intrafed.cli import main
from intrafed.config.document import to_document
from intrafed.store import BindingRow, StateChanges, open_store
from intrafed.store.sqlite import FILENAME

ALICE, BOB = "alice@example.com", "bob@example.com"


def run(*arguments: str, stdin: str | None = None) -> Result:
    result = CliRunner().invoke(main, list(arguments), input=stdin)
    assert result.exception is None or isinstance(result.exception, SystemExit), result.exception
    return result


def homes(tmp_path: Path) -> tuple[Path, Path]:
    """imp1 homing alice (blocking bob) in advanced routing mode with bob in its
    directory, and ocs1 homing bob; both stopped."""
    imp, ocs = tmp_path / "imp", tmp_path / "ocs"
    commands = [
        (imp, "init", "--role", "imp", "--fqdn", "imp1.example.com", "--ip", "127.0.0.2"),
        (ocs, "init", "--role", "ocs", "--fqdn", "ocs1.example.com", "--ip", "127.0.0.3"),
        (imp, "config", "domain", "add", "example.com"),
        (ocs, "config", "domain", "add", "example.com"),
        (imp, "config", "user", "import", "-"),
        (ocs, "config", "user", "import", "-"),
        (imp, "config", "user", "block", ALICE, BOB),
        (imp, "config", "routing-mode", "advanced"),
        (imp, "config", "directory", "add", BOB),
    ]
    users = {imp: f"address,password\n{ALICE},pw-a\n", ocs: f"address,password\n{BOB},pw-b\n"}
    for home, *command in commands:
        result = run(*command, "--home", str(home), stdin=users[Path(home)])
        assert result.exit_code == 0, result.output
    return imp, ocs


def staged(home: Path) -> dict[str, Any]:
    with open_store(home) as store:
        return to_document(store.load("staged"))


def refuse_staged_writes(home: Path, unless: str | None = None) -> None:
    """The store of ``home`` refuses to change its staged configuration (unless the new
    one contains ``unless``), as a store that fails does, from any process."""
    condition = "" if unless is None else f" AND instr(NEW.document, '{unless}') = 0"
    with sqlite3.connect(home / FILENAME) as db:
        db.execute(
            "CREATE TRIGGER refuse BEFORE UPDATE ON config "
            f"WHEN NEW.kind = 'staged'{condition} "
            "BEGIN SELECT RAISE(ABORT, 'the disk refuses'); END"
        )


def test_user_move_dry_run_prints_the_plan_and_changes_nothing(tmp_path: Path) -> None:
    imp, ocs = homes(tmp_path)
    before = staged(imp), staged(ocs)
    result = run("user", "move", ALICE, "--from", str(imp), "--to", str(ocs), "--dry-run")
    assert result.exit_code == 0, result.output
    assert result.stdout.splitlines() == [
        f"ocs1.example.com: add {ALICE} (enabled, HA1 MD5+SHA-256, blocking 1 watcher(s))",
        f"imp1.example.com: disable {ALICE}",
        f"imp1.example.com: delete {ALICE}",
        f"imp1.example.com: directory add {ALICE}",
        f"{ocs}: not running: its next start applies the move",
        f"{imp}: not running: its next start applies the move",
    ]
    assert (staged(imp), staged(ocs)) == before


def test_user_move_refuses_users_not_on_exactly_the_old_side(tmp_path: Path) -> None:
    imp, ocs = homes(tmp_path)
    result = run(
        "user", "move", ALICE, BOB, "carol@example.com", "--from", str(imp), "--to", str(ocs)
    )
    assert result.exit_code == 2
    assert result.stderr == (
        f"user move: {BOB} is already on ocs1.example.com; carol@example.com is not a user "
        "of imp1.example.com — nothing was moved; fix the list\n"
    )


def test_user_move_takes_credentials_block_list_directory_and_stored_state(
    tmp_path: Path,
) -> None:
    imp, ocs = homes(tmp_path)
    with open_store(imp) as store:
        binding = BindingRow(ALICE, "sip:alice@127.0.0.9:5070", 4e9, 1.0, "c", 1, True)
        store.write(StateChanges(bindings={ALICE: (binding,)}))
    alice = next(user for user in staged(imp)["users"] if user["aor"] == ALICE)
    result = run(
        "user",
        "move",
        "--csv",
        "-",
        "--from",
        str(imp),
        "--to",
        str(ocs),
        stdin=(f"address,enabled\n{ALICE},yes\n"),
    )
    assert result.exit_code == 0, result.output
    assert f"moved {ALICE}" in result.stdout
    assert staged(ocs)["users"][-1] == alice
    assert [user["aor"] for user in staged(imp)["users"]] == []
    assert staged(imp)["peer_directory"] == [BOB, ALICE]
    with open_store(imp) as store:
        assert store.load_bindings(0) == []
    checked = run("check", "--home", str(imp), "--peer", str(ocs))
    assert "user." not in checked.stdout
    assert "directory-" not in checked.stdout


def test_user_move_whose_new_side_refuses_leaves_both_sides_as_they_were(
    tmp_path: Path,
) -> None:
    imp, ocs = homes(tmp_path)
    before = staged(imp), staged(ocs)
    refuse_staged_writes(ocs)
    result = run("user", "move", ALICE, "--from", str(imp), "--to", str(ocs))
    assert result.exit_code == 2
    assert "the disk refuses" in result.stderr
    assert (staged(imp), staged(ocs)) == before


def test_user_move_whose_delete_step_fails_puts_both_sides_back(tmp_path: Path) -> None:
    imp, ocs = homes(tmp_path)
    before = staged(imp), staged(ocs)
    refuse_staged_writes(imp, unless=f'"aor": "{ALICE}"')  # the disable passes, not the delete
    result = run("user", "move", ALICE, "--from", str(imp), "--to", str(ocs))
    assert result.exit_code == 2
    assert "the disk refuses" in result.stderr
    assert (staged(imp), staged(ocs)) == before


def test_check_flags_a_user_deleted_on_the_old_side_and_never_added_on_the_new(
    tmp_path: Path,
) -> None:
    imp, ocs = homes(tmp_path)
    assert run("config", "user", "block", BOB, ALICE, "--home", str(ocs)).exit_code == 0
    saved = run("config", "user", "export", "--csv", "--home", str(imp)).stdout
    assert run("config", "user", "remove", ALICE, "--home", str(imp)).exit_code == 0
    checked = run("check", "--home", str(ocs), "--peer", str(imp), "--json")
    [finding] = [f for f in json.loads(checked.stdout)["findings"] if f["rule"].startswith("user.")]
    assert finding["rule"] == "user.neither-side"
    assert finding["severity"] == "warning"
    assert finding["message"].startswith(
        f"{ALICE} is provisioned on none of ocs1.example.com, imp1.example.com, yet the block "
        f"list of {BOB} names it: if it is a user moved half-way, it has no home"
    )
    assert (
        f"(if it left for good: intrafed config user unblock {BOB} {ALICE} --home {ocs})"
        in (finding["message"])
    )
    assert finding["fix"].startswith("intrafed config user import USERS.csv --home <its new home>")
    imported = run("config", "user", "import", "-", "--home", str(ocs), stdin=saved)
    assert imported.exit_code == 0, imported.output
    checked = run("check", "--home", str(ocs), "--peer", str(imp), "--json")
    assert not [f for f in json.loads(checked.stdout)["findings"] if f["rule"].startswith("user.")]
