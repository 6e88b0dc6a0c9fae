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
    "transport/deadlines.py": IO_MODULES | {"time"},
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
    base = PACKAGE / layer
    for path in [base] if base.is_file() else sorted(base.rglob("*.py")):
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


# A class's private names are its own: another class (or module) reaching into them ties
# the two together behind their public API (e.g. a connection and its pool).
NAMED_TUPLE_API = {"_asdict", "_field_defaults", "_fields", "_make", "_replace"}
PRIVATE_ACCESS_ALLOWED = {
    # The parser builds messages through the constructors that skip checking again; they
    # stay private so that nothing else can skip the checks.
    ("sip/parser.py", "Headers._from_parsed"),
    ("sip/parser.py", "Request._parsed"),
    ("sip/parser.py", "Response._parsed"),
    # asyncio's own loop.start_tls reads the TLS transport this way; there is no public one.
    ("transport/tls.py", "tls._app_transport"),
}


def _own_names(cls: ast.ClassDef, classes: dict[str, ast.ClassDef]) -> set[str]:
    """The names a class (and its bases in the same module) defines for itself."""
    names: set[str] = set()
    for node in ast.walk(cls):
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
            names.add(node.name)
        elif isinstance(node, ast.Name) and isinstance(node.ctx, ast.Store):
            names.add(node.id)
        elif (
            isinstance(node, ast.Attribute)
            and isinstance(node.ctx, ast.Store)
            and isinstance(node.value, ast.Name)
            and node.value.id in ("self", "cls")
        ):
            names.add(node.attr)
        if isinstance(node, ast.Assign) and any(
            isinstance(target, ast.Name) and target.id == "__slots__" for target in node.targets
        ):
            names |= {
                entry.value
                for entry in ast.walk(node.value)
                if isinstance(entry, ast.Constant) and isinstance(entry.value, str)
            }
    for base in cls.bases:
        if isinstance(base, ast.Name) and base.id in classes and classes[base.id] is not cls:
            names |= _own_names(classes[base.id], classes)
    return names


def _private_accesses(source: str) -> list[tuple[int, str]]:
    """``x._name`` unless ``x`` is ``self``, ``cls`` or ``super()``, or ``x`` is a plain
    name (not a parameter annotated as another class) and ``_name`` is one the enclosing
    class defines: a class may touch its own private names on any of its instances, but not
    those of an object it holds (``self._pool._flows``) or is handed."""
    tree = ast.parse(source)
    classes = {node.name: node for node in ast.walk(tree) if isinstance(node, ast.ClassDef)}
    found: list[tuple[int, str]] = []

    def visit(node: ast.AST, own: set[str], cls_name: str, others: set[str]) -> None:
        if isinstance(node, ast.ClassDef):
            own, cls_name = _own_names(node, classes), node.name
        elif isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
            arguments = node.args
            others = others | {
                argument.arg
                for argument in [*arguments.posonlyargs, *arguments.args, *arguments.kwonlyargs]
                if argument.annotation is not None
                and ast.unparse(argument.annotation).strip("'\"") != cls_name
            }
        elif isinstance(node, ast.Attribute):
            name, value = node.attr, node.value
            special = name.startswith("__") and name.endswith("__")
            if name.startswith("_") and not special and name not in NAMED_TUPLE_API:
                self_or_super = (isinstance(value, ast.Name) and value.id in ("self", "cls")) or (
                    isinstance(value, ast.Call) and ast.unparse(value.func) == "super"
                )
                own_instance = (
                    isinstance(value, ast.Name) and value.id not in others and name in own
                ) or (isinstance(value, ast.Name) and value.id == cls_name)
                if not (self_or_super or own_instance):
                    found.append((node.lineno, ast.unparse(node)))
        for child in ast.iter_child_nodes(node):
            visit(child, own, cls_name, others)

    visit(tree, set(), "", set())
    return found


def test_no_module_reaches_into_another_objects_private_attributes() -> None:
    problems = [
        f"src/intrafed/{relative}:{line} touches {access}"
        for path in sorted(PACKAGE.rglob("*.py"))
        for line, access in _private_accesses(path.read_text())
        if (relative := path.relative_to(PACKAGE).as_posix(), access) not in PRIVATE_ACCESS_ALLOWED
    ]
    assert problems == []


def test_private_access_checker_tells_own_names_from_another_objects() -> None:
    sample = (
        "class Pool:\n"
        "    __slots__ = ('_ids',)\n"
        "    def merge(self, other: 'Pool') -> None:\n"
        "        other._ids\n"
        "        self._connection._flush()\n"
        "        super()._merge()\n"
        "    def adopt(self, layer: Layer) -> None:\n"
        "        layer._ids\n"
        "def helper(pool):\n"
        "    return pool._ids, row._replace(a=1)\n"
    )
    assert _private_accesses(sample) == [
        (5, "self._connection._flush"),
        (8, "layer._ids"),
        (10, "pool._ids"),
    ]


MAX_LINES = 600


def test_no_source_file_grows_past_600_lines() -> None:
    too_long = [
        f"{path.relative_to(REPO)}: {lines} lines"
        for path in sorted([*PACKAGE.rglob("*.py"), *(REPO / "bench").rglob("*.py")])
        if (lines := len(path.read_text().splitlines())) > MAX_LINES
    ]
    assert too_long == []
