"""The layering rules of STYLE.md, checked on the source tree.

import-linter (``lint-imports``, run by ``./dev test``) checks the layer order; this test
checks what the sans-IO layers must never touch, naming file and line.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

from tests.paths import REPO

PACKAGE = REPO / "src" / "intrafed"
IO_MODULES = {"asyncio", "socket", "ssl", "selectors", "threading", "sqlite3", "psycopg"}
FORBIDDEN = {
    "sip": IO_MODULES | {"time", "intrafed.store"},
    "policy": IO_MODULES | {"intrafed.store"},
    "routing": IO_MODULES | {"intrafed.store"},
    "services": IO_MODULES | {"time"},
    "core": IO_MODULES
    | {"time", "intrafed.store", "intrafed.state_writes", "intrafed.transport", "intrafed.node"},
}


def _imports(path: Path) -> list[tuple[int, str]]:
    found = []
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            found += [(node.lineno, alias.name) for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.append((node.lineno, node.module))
    return found


def _violations(layer: str) -> list[str]:
    forbidden = FORBIDDEN[layer]
    problems = []
    for path in sorted((PACKAGE / layer).rglob("*.py")):
        for line, module in _imports(path):
            if any(module == bad or module.startswith(bad + ".") for bad in forbidden):
                problems.append(f"{path.relative_to(REPO)}:{line} imports {module}")
    return problems


@pytest.mark.parametrize("layer", sorted(FORBIDDEN))
def test_sans_io_layer_imports_no_io(layer: str) -> None:
    assert _violations(layer) == []


def test_checker_catches_a_forbidden_import(tmp_path: Path) -> None:
    sample = tmp_path / "sample.py"
    sample.write_text("import os\nfrom asyncio import sleep\n")
    assert _imports(sample) == [(1, "os"), (2, "asyncio")]


def test_sip_layer_does_not_print() -> None:
    calls = [
        f"{path.relative_to(REPO)}:{node.lineno}"
        for path in sorted((PACKAGE / "sip").rglob("*.py"))
        for node in ast.walk(ast.parse(path.read_text()))
        if isinstance(node, ast.Call)
        and isinstance(node.func, ast.Name)
        and node.func.id == "print"
    ]
    assert calls == []
