"""``intrafed config user import FILE.csv`` and ``config user export --csv``: the whole file
checked, applied in one staged edit or not at all, and 100,000 users in one transaction."""

from __future__ import annotations

import contextlib
import json
import os
import pty
import select
import subprocess
import sys
import time
from pathlib import Path

from click.testing import CliRunner, Result

from intrafed.cli import main
from intrafed.config.model import ha1
from intrafed.config.user_csv import apply_users, read_users
from intrafed.node import settings_from_config
from intrafed.store import open_store
from tests.store_faults import count_transactions


def run(*arguments: str, stdin: str | None = None) -> Result:
    result = CliRunner().invoke(main, list(arguments), input=stdin)
    assert result.exception is None or isinstance(result.exception, SystemExit), result.exception
    return result


def ocs_home(tmp_path: Path) -> Path:
    home = tmp_path / "ocs"
    for command in (
        ["init", "--role", "ocs", "--fqdn", "ocs1.example.com", "--ip", "127.0.0.3"],
        ["config", "domain", "add", "example.com"],
    ):
        assert run(*command, "--home", str(home)).exit_code == 0
    return home


def exported(home: Path) -> str:
    result = run("config", "user", "export", "--csv", "--home", str(home))
    assert result.exit_code == 0, result.stderr
    return result.stdout


def test_user_import_refuses_the_whole_file_naming_each_bad_line(tmp_path: Path) -> None:
    home = ocs_home(tmp_path)
    csv = (
        "address,enabled,password,ha1_md5\n"
        "alice@example.com,yes,secret,\n"
        "bob@example.com,maybe,x,\n"
        "carol@other.com,,x,\n"
        "alice@example.com,no,y,\n"
        "dave@example.com,,,\n"
        "erin@example.com,,pw,0123456789abcdef0123456789abcdef\n"
        "not-an-address,,pw,\n"
    )
    result = run("config", "user", "import", "-", "--home", str(home), stdin=csv)
    assert result.exit_code == 2
    assert result.stderr.splitlines() == [
        "line 3: enabled: 'maybe' is not yes or no",
        "line 4: address: other.com is not a domain this node serves",
        "line 5: address: alice@example.com is also on line 2",
        "line 6: password: a new user needs credentials",
        "line 7: password: given with an HA1",
        "line 8: USER@DOMAIN: 'not-an-address' is not user@domain",
    ]
    assert "added 1, changed 0, unchanged 0, refused 6" in result.stdout
    assert "nothing was applied" in result.stdout
    assert exported(home) == "address,enabled,password,ha1_md5,ha1_sha256\n"


def test_user_import_adds_and_changes_in_one_edit_and_export_round_trips(tmp_path: Path) -> None:
    home = ocs_home(tmp_path)
    first = "address,password\nalice@example.com,secret\nbob@example.com,pw\n"
    result = run("config", "user", "import", "-", "--home", str(home), stdin=first)
    assert result.exit_code == 0, result.stderr
    assert result.stdout.startswith("added 2, changed 0, unchanged 0, refused 0 (staged;")
    md5 = ha1("carol", "example.com", "pw3", "MD5")
    second = (
        "enabled,address,ha1_md5\n"  # any column order; HA1 of one algorithm only
        "no,alice@example.com,\n"  # credentials kept
        "yes,bob@example.com,\n"
        f"yes,carol@example.com,{md5}\n"
    )
    dry = run(
        "config", "user", "import", "-", "--dry-run", "--json", "--home", str(home), stdin=second
    )
    assert json.loads(dry.stdout)["added"] == 1
    assert "carol" not in exported(home)
    result = run("config", "user", "import", "-", "--home", str(home), stdin=second)
    assert result.stdout.startswith("added 1, changed 1, unchanged 1, refused 0"), result.stdout
    csv = exported(home)
    alice_md5 = ha1("alice", "example.com", "secret", "MD5")
    assert f"alice@example.com,no,,{alice_md5}," in csv
    assert f"carol@example.com,yes,,{md5},\n" in csv
    again = run("config", "user", "import", "-", "--home", str(home), stdin=csv)
    assert again.stdout.startswith("added 0, changed 0, unchanged 3, refused 0"), again.stdout


def test_user_import_of_100000_users_is_one_transaction(tmp_path: Path) -> None:
    home = ocs_home(tmp_path)
    lines = ["address,enabled,password"]
    lines += [f"user{i}@example.com,yes,pw{i}" for i in range(100_000)]
    source = tmp_path / "users.csv"
    source.write_text("\n".join(lines) + "\n")
    with open_store(home) as store:
        begun = count_transactions(store)
        started = time.perf_counter()
        found = read_users(source.read_text(), store.load("staged"))
        store.stage(lambda config: apply_users(config, found))
        spent = time.perf_counter() - started
        assert begun == ["BEGIN IMMEDIATE"]
    size = (home / "intrafed.db").stat().st_size
    print(f"\n100,000 users: checked and staged in {spent:.1f} s; store {size / 1e6:.1f} MB")
    started = time.perf_counter()
    result = run("config", "user", "import", str(source), "--home", str(home))
    assert result.stdout.startswith("added 0, changed 0, unchanged 100000"), result.stdout
    assert result.stderr == ""  # no progress bar where standard error is no terminal
    print(f"re-import through the CLI (nothing changes): {time.perf_counter() - started:.1f} s")
    with open_store(home) as store:
        settings = settings_from_config(store.load("staged"))
    assert isinstance(settings.users, frozenset)
    assert len(settings.users) == 100_000


def test_user_import_of_a_large_file_shows_a_progress_bar_on_a_terminal(tmp_path: Path) -> None:
    home = ocs_home(tmp_path)
    source = tmp_path / "users.csv"
    lines = [f"user{i}@example.com,yes,,{'0' * 32}," for i in range(20_000)]
    source.write_text("address,enabled,password,ha1_md5,ha1_sha256\n" + "\n".join(lines) + "\n")
    controller, terminal = pty.openpty()
    process = subprocess.Popen(
        [sys.executable, "-m", "intrafed", "config", "user", "import", str(source),
         "--home", str(home)],
        stdout=subprocess.PIPE, stderr=terminal, env={**os.environ, "COLUMNS": "100"},
    )  # fmt: skip
    os.close(terminal)
    shown = b""
    with contextlib.suppress(OSError):  # EIO once the process has closed the terminal
        while select.select([controller], [], [], 30)[0] and (chunk := os.read(controller, 65536)):
            shown += chunk
    os.close(controller)
    stdout, _ = process.communicate(timeout=60)
    assert process.returncode == 0
    assert stdout.decode().startswith("added 20000, changed 0, unchanged 0, refused 0")
    assert b"checking users" in shown
