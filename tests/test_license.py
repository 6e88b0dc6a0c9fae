"""The project ships the licence its metadata declares."""

from __future__ import annotations

import tomllib

from tests.paths import REPO


def test_the_declared_mit_license_ships_as_a_license_file() -> None:
    project = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]
    text = (REPO / "LICENSE").read_text()
    assert project["license"] == "MIT"
    assert text.startswith("MIT License\n")
    assert "Copyright (c) 2026 the intrafed authors" in text
    assert 'THE SOFTWARE IS PROVIDED "AS IS", WITHOUT WARRANTY OF ANY KIND' in text
