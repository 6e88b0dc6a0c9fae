"""``intrafed user move`` whose side is not a home on this machine: a configuration
exported with ``config export --file`` (edited in place), or a database URL."""

from __future__ import annotations

import tomllib
from pathlib import Path

from intrafed.config.document import from_toml
from tests.cli.test_user_move import ALICE, BOB, homes, refuse_staged_writes, run, staged


def exported(home: Path, path: Path) -> Path:
    result = run("config", "export", "--home", str(home), "--file", str(path))
    assert result.exit_code == 0, result.output
    return path


def aors(path: Path) -> list[str]:
    return [user["aor"] for user in tomllib.loads(path.read_text()).get("users", [])]


def test_user_move_into_an_exported_configuration_edits_the_file_and_says_to_import_it(
    tmp_path: Path,
) -> None:
    imp, ocs = homes(tmp_path)
    file = exported(ocs, tmp_path / "ocs1.toml")
    alice = next(user for user in staged(imp)["users"] if user["aor"] == ALICE)
    result = run("user", "move", ALICE, "--from", str(imp), "--to", str(file))
    assert result.exit_code == 0, result.output
    assert aors(file) == [BOB, ALICE]
    moved = next(u for u in from_toml(file.read_text()).users if u.aor == ALICE)
    assert moved.ha1_md5 == alice["ha1_md5"]
    assert [user["aor"] for user in staged(imp)["users"]] == []
    assert f"new side ({file}) is an exported configuration: import it where that node runs" in (
        result.stdout
    )
    assert f"intrafed config import {file} --home HOME" in result.stdout
    imported = run("config", "import", str(file), "--home", str(ocs))
    assert imported.exit_code == 0, imported.output
    assert [user["aor"] for user in staged(ocs)["users"]] == [BOB, ALICE]


def test_user_move_out_of_an_exported_configuration_into_a_home(tmp_path: Path) -> None:
    imp, ocs = homes(tmp_path)
    file = exported(imp, tmp_path / "imp1.toml")
    result = run("user", "move", ALICE, "--from", str(file), "--to", str(ocs), "--json")
    assert result.exit_code == 0, result.output
    assert aors(file) == []
    assert [user["aor"] for user in staged(ocs)["users"]] == [BOB, ALICE]
    assert [user["aor"] for user in staged(imp)["users"]] == [ALICE]  # the home is untouched


def test_user_move_whose_old_side_refuses_puts_the_exported_new_side_back(
    tmp_path: Path,
) -> None:
    imp, ocs = homes(tmp_path)
    file = exported(ocs, tmp_path / "ocs1.toml")
    before = file.read_text(), staged(imp)
    refuse_staged_writes(imp)
    result = run("user", "move", ALICE, "--from", str(imp), "--to", str(file))
    assert result.exit_code == 2
    assert "the disk refuses" in result.stderr
    assert (file.read_text(), staged(imp)) == before


def test_user_move_dry_run_on_an_exported_file_changes_nothing(tmp_path: Path) -> None:
    imp, ocs = homes(tmp_path)
    file = exported(ocs, tmp_path / "ocs1.toml")
    before = file.read_text()
    result = run("user", "move", ALICE, "--from", str(imp), "--to", str(file), "--dry-run")
    assert result.exit_code == 0, result.output
    assert f"{file}: an exported configuration" in result.stdout
    assert file.read_text() == before


def test_user_move_by_sqlite_url_edits_that_database(tmp_path: Path) -> None:
    imp, ocs = homes(tmp_path)
    url = f"sqlite:///{ocs / 'intrafed.db'}"
    result = run("user", "move", ALICE, "--from", str(imp), "--to", url)
    assert result.exit_code == 0, result.output
    assert [user["aor"] for user in staged(ocs)["users"]] == [BOB, ALICE]
    assert "is a database: reload each node that uses it" in result.stdout


def test_user_move_from_a_path_that_is_neither_home_nor_file_names_the_option(
    tmp_path: Path,
) -> None:
    imp, _ = homes(tmp_path)
    missing = f"sqlite:///{tmp_path / 'nothing.db'}"
    result = run("user", "move", ALICE, "--from", str(imp), "--to", missing)
    assert result.exit_code == 2
    assert "--to" in result.stderr
    assert "does not exist" in result.stderr
    assert "Traceback" not in result.output
