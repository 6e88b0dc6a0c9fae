"""The admin password: scrypt hashes, checked in constant time, stored 0600."""

from __future__ import annotations

from pathlib import Path

import pytest

from intrafed.config.model import ConfigError
from intrafed.console.password import (
    PASSWORD_FILE,
    hash_password,
    matches,
    set_password,
    stored_hash,
)


def test_a_hash_matches_its_password_only() -> None:
    stored = hash_password("correct horse battery")
    assert stored.startswith("scrypt$16384$8$1$")
    assert matches("correct horse battery", stored)
    assert not matches("correct horse batterY", stored)
    assert not matches("", stored)


def test_the_salt_makes_every_hash_different() -> None:
    assert hash_password("same password") != hash_password("same password")
    salt = b"0123456789abcdef"
    assert hash_password("same password", salt) == hash_password("same password", salt)


@pytest.mark.parametrize(
    "stored",
    ["", "plain text", "md5$abc", "scrypt$x$8$1$AAAA$AAAA", "scrypt$16384$8$1$!!$AAAA"],
)
def test_a_damaged_or_foreign_hash_matches_nothing(stored: str) -> None:
    assert not matches("anything at all", stored)


def test_set_password_writes_the_hash_for_its_owner_only(tmp_path: Path) -> None:
    assert stored_hash(tmp_path) is None
    path = set_password(tmp_path, "correct horse battery")
    assert path == tmp_path / PASSWORD_FILE
    assert path.stat().st_mode & 0o777 == 0o600
    first = stored_hash(tmp_path)
    assert first is not None
    assert matches("correct horse battery", first)
    set_password(tmp_path, "another long password")
    second = stored_hash(tmp_path)
    assert second is not None
    assert matches("another long password", second)
    assert not matches("correct horse battery", second)
    assert [p.name for p in tmp_path.iterdir()] == [PASSWORD_FILE]


def test_a_short_password_is_refused_and_nothing_is_written(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as refused:
        set_password(tmp_path, "seven!!")
    assert refused.value.setting == "PASSWORD"
    assert not (tmp_path / PASSWORD_FILE).exists()
