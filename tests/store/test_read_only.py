"""A store that cannot be written is named for what it is (a read-only file system, or
files this user may not write) with the fix — never "restore it from a backup", never a
traceback."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from intrafed.config.model import NodeIdentity, Role
from intrafed.store import create_store
from intrafed.store.sqlite import FILENAME

IDENTITY = NodeIdentity(Role.OCS, "ocs1.example.com", "127.0.0.3")
ADD_DOMAIN = ["config", "domain", "add", "example.com"]


def intrafed_command(home: Path, arguments: list[str]) -> list[str]:
    return [sys.executable, "-m", "intrafed", *arguments, "--home", str(home)]


def one_line(result: subprocess.CompletedProcess[str]) -> str:
    assert result.returncode == 2, result.stdout + result.stderr
    assert "Traceback" not in result.stderr
    [line] = result.stderr.splitlines()
    return line


@pytest.fixture
def home(tmp_path: Path) -> Path:
    home = tmp_path / "ocs1"
    create_store(home, IDENTITY).close()
    return home


@pytest.fixture
def unwritable(home: Path) -> Iterator[Path]:
    """The home's database, made unwritable for this user (the immutable flag for root,
    whom permissions do not stop)."""
    database = home / FILENAME
    if os.geteuid() == 0:
        if shutil.which("chattr") is None:
            pytest.skip("chattr is not installed")
        flagged = subprocess.run(["chattr", "+i", str(database)], check=False)
        if flagged.returncode != 0:
            pytest.skip("this file system has no immutable flag")
        try:
            yield database
        finally:
            subprocess.run(["chattr", "-i", str(database)], check=True)
    else:
        database.chmod(0o444)
        home.chmod(0o555)
        try:
            yield database
        finally:
            home.chmod(0o755)
            database.chmod(0o644)


def test_an_unwritable_store_says_who_cannot_write_and_how_to_fix_it(
    home: Path, unwritable: Path
) -> None:
    result = subprocess.run(
        intrafed_command(home, ADD_DOMAIN), capture_output=True, text=True, timeout=30
    )
    line = one_line(result)
    assert line.startswith(f"--home: {unwritable} cannot be written by this user")
    assert "give the user running intrafed write access" in line
    assert "backup" not in line


def read_only_mount(home: Path, arguments: list[str]) -> subprocess.CompletedProcess[str]:
    """``intrafed ARGUMENTS`` with ``home`` mounted read-only (a private mount namespace)."""
    command = " ".join(f"'{part}'" for part in intrafed_command(home, arguments))
    script = f"mount --bind '{home}' '{home}' && mount -o remount,ro,bind '{home}' && {command}"
    return subprocess.run(
        ["unshare", "-m", "sh", "-c", script], capture_output=True, text=True, timeout=30
    )


@pytest.mark.parametrize("arguments", [ADD_DOMAIN, ["config", "show"]])
def test_a_store_on_a_read_only_file_system_says_so(home: Path, arguments: list[str]) -> None:
    if os.geteuid() != 0 or shutil.which("unshare") is None:
        pytest.skip("a read-only mount needs root and unshare")
    probe = subprocess.run(
        ["unshare", "-m", "sh", "-c", f"mount --bind '{home}' '{home}'"],
        capture_output=True,
        check=False,
    )
    if probe.returncode != 0:
        pytest.skip("mount namespaces are not allowed here")
    line = one_line(read_only_mount(home, arguments))
    assert line == (
        f"--home: {home / FILENAME} is on a read-only file system — remount it read-write, "
        "or move the home to a writable disk"
    )
