"""What every ``intrafed`` command shares: choices in any case, a quick ``--help`` (each
command's module imported only when it runs), and the command list."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import click
from click.testing import CliRunner

from intrafed.cli import main
from intrafed.cli.common import IntrafedGroup


def every_command() -> Iterator[tuple[str, click.Command]]:
    """Each command of the tree with its full name (the lazy ones imported)."""
    context = click.Context(main)

    def walk(name: str, command: click.Command) -> Iterator[tuple[str, click.Command]]:
        yield name, command
        if isinstance(command, click.Group):
            for sub in command.list_commands(context):
                found = command.get_command(context, sub)
                assert found is not None, sub
                yield from walk(f"{name} {sub}", found)

    yield from walk("intrafed", main)


def test_every_choice_takes_any_case() -> None:
    sensitive = [
        f"{name} {parameter.name}"
        for name, command in every_command()
        for parameter in command.params
        if isinstance(parameter.type, click.Choice) and parameter.type.case_sensitive
    ]
    assert sensitive == []


def test_init_takes_an_upper_case_role(tmp_path: Path) -> None:
    result = CliRunner().invoke(
        main,
        [
            "init", "--home", str(tmp_path / "ocs1"), "--role", "OCS",
            "--fqdn", "ocs1.example.com", "--ip", "127.0.0.3", "--edition", "Standard",
        ],
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    assert result.output.startswith("initialized ocs node ocs1.example.com")


def test_help_lists_every_command_as_its_own_help_says_without_importing_it() -> None:
    assert isinstance(main, IntrafedGroup)
    for name, lazy in main.lazy_commands.items():
        command = main.get_command(click.Context(main), name)
        assert command is not None
        assert lazy.short_help == command.get_short_help_str(limit=1000), name
    probe = (
        "import sys; from intrafed.cli import main; "
        "main(['--help'], standalone_mode=False); "
        "print(sorted(m for m in sys.modules if m.startswith('intrafed.') "
        "and m not in ('intrafed.cli', 'intrafed.cli.main', 'intrafed.cli.common')))"
    )
    result = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, check=True, timeout=30
    )
    assert "  ua       A small SIP client" in result.stdout
    assert result.stdout.rstrip().endswith("[]")


def test_init_with_json_prints_the_node_and_its_store(tmp_path: Path) -> None:
    home = tmp_path / "imp1"
    arguments = ["init", "--home", str(home), "--role", "imp", "--fqdn", "imp1.example.com"]
    result = CliRunner().invoke(main, [*arguments, "--ip", "127.0.0.2", "--json"])
    assert result.exit_code == 0, result.output
    assert json.loads(result.output) == {
        "ok": True,
        "home": str(home),
        "store": str(home / "intrafed.db"),
        "node": {"role": "imp", "fqdn": "imp1.example.com", "ip": "127.0.0.2"},
    }
    again = CliRunner().invoke(main, [*arguments, "--ip", "127.0.0.2", "--json"])
    assert again.exit_code == 2
    assert json.loads(again.output)["error"].startswith(f"--home: {home} already holds a node")


def test_every_cli_module_stays_under_600_lines() -> None:
    """The config commands were one module of 940 lines; each object now has its own."""
    root = Path(__file__).resolve().parents[2] / "src" / "intrafed" / "cli"
    sizes = {path.name: len(path.read_text().splitlines()) for path in root.glob("*.py")}
    assert "config_routes.py" in sizes
    assert {name: size for name, size in sizes.items() if size > 600} == {}
