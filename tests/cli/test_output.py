"""Tables and colours (rich): colour on a terminal, not one escape code under ``NO_COLOR`` or
into a pipe; and ``intrafed --help`` imports neither rich nor anything heavy."""

from __future__ import annotations

import json
import os
import pty
import re
import subprocess
import sys
from pathlib import Path

import pytest

from tests.cli.test_config_commands import config, init, ok

ESCAPE = "\x1b"
STYLE = re.compile(r"\x1b\[[0-9;]*m")
READ_LIMIT = 1 << 20


@pytest.fixture
def home(tmp_path: Path) -> str:
    """An OCS home with a route, a host authorization entry and a user: tables to print."""
    path = tmp_path / "ocs1"
    init(path, "ocs")
    home = str(path)
    config(home, "domain", "add", "example.com")
    config(home, "route", "add", "--domain", "example.com", "--transport", "TLS", "--port",
           "5061", "--fqdn", "imp1.example.com")  # fmt: skip
    config(home, "hostauth", "add", "--ip", "127.0.0.2")
    ok("config", "user", "add", "bob@example.com", "--password-file", "-", "--home", home,
       stdin="secret\n")  # fmt: skip
    return home


COMMANDS = [
    ("config", "route", "list"),
    ("config", "hostauth", "list"),
    ("config", "user", "list"),
    ("config", "show"),
    ("service", "status"),
    ("check",),
]


def environment(**changes: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in ("NO_COLOR", "FORCE_COLOR")}
    return {**env, "TERM": "xterm-256color", "COLUMNS": "200", **changes}


def on_a_terminal(arguments: tuple[str, ...], home: str, **env: str) -> str:
    """What ``intrafed ARGUMENTS --home HOME`` prints on a terminal (a pseudo-terminal)."""
    main, secondary = pty.openpty()
    with subprocess.Popen(
        [sys.executable, "-m", "intrafed", *arguments, "--home", home],
        stdin=subprocess.DEVNULL,
        stdout=secondary,
        stderr=secondary,
        env=environment(**env),
    ) as process:
        os.close(secondary)
        printed = b""
        while len(printed) < READ_LIMIT:
            try:
                chunk = os.read(main, 65536)
            except OSError:  # EIO: the command ended and closed the terminal
                break
            if not chunk:
                break
            printed += chunk
        process.wait(timeout=60)
    os.close(main)
    return printed.decode()


@pytest.mark.parametrize("arguments", COMMANDS, ids=" ".join)
def test_no_color_output_has_no_escape_codes_even_on_a_terminal(
    home: str, arguments: tuple[str, ...]
) -> None:
    coloured = on_a_terminal(arguments, home)
    plain = on_a_terminal(arguments, home, NO_COLOR="1")
    assert ESCAPE in coloured
    assert ESCAPE not in plain
    assert STYLE.sub("", coloured) == plain


@pytest.mark.parametrize("arguments", COMMANDS, ids=" ".join)
def test_output_into_a_pipe_is_plain_text(home: str, arguments: tuple[str, ...]) -> None:
    run = subprocess.run(
        [sys.executable, "-m", "intrafed", *arguments, "--home", home],
        capture_output=True,
        text=True,
        check=False,
        timeout=60,
        env=environment(),
    )
    assert run.stdout
    assert ESCAPE not in run.stdout + run.stderr


def test_help_imports_only_click_and_the_standard_library() -> None:
    """The import budget of ``intrafed --help`` (run by tab completion on every key):
    modules, not seconds, so the test does not depend on the machine's speed."""
    probe = (
        "import json, sys; before = set(sys.modules); from intrafed.cli import main; "
        "main(['--help'], standalone_mode=False); "
        "print(json.dumps(sorted(set(sys.modules) - before)))"
    )
    run = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, check=True, timeout=30
    )
    imported = json.loads(run.stdout.splitlines()[-1])
    packages = {name.partition(".")[0] for name in imported}
    third_party = packages - set(sys.stdlib_module_names) - {"intrafed"}
    assert third_party == {"click"}
    heavy = {"asyncio", "ssl", "socket", "sqlite3", "logging", "tomllib", "email", "http"}
    assert packages & heavy == set()
    ours = sorted(name for name in imported if name.startswith("intrafed"))
    assert ours == ["intrafed", "intrafed.cli", "intrafed.cli.common", "intrafed.cli.main"]


def rich_layout(headers: tuple[str, ...], rows: list[tuple[str, ...]]) -> str:
    """The table as rich draws it without colour: what a plain table must look like."""
    from rich.console import Console
    from rich.table import Table

    table = Table(box=None, pad_edge=False, padding=(0, 1))
    for header in headers:
        table.add_column(header)
    for row in rows:
        table.add_row(*row)
    console = Console(color_system=None, width=10_000)
    with console.capture() as captured:
        console.print(table)
    return "".join(f"  {line.rstrip()}\n" for line in captured.get().splitlines())


def test_a_long_table_is_laid_out_as_rich_would_without_taking_minutes(
    capsys: pytest.CaptureFixture[str],
) -> None:
    """Regression: ``config user list`` of 100,000 users took over a minute in rich."""
    from intrafed.cli.output import print_table

    headers = ("User", "Enabled", "Blocks")
    rows = [(f"user{n}@example.com", "yes" if n % 3 else "", "日本" * (n % 4)) for n in range(600)]
    rows.append(("ünïcødé", "no", "x"))
    print_table(headers, rows, indent="  ")
    assert capsys.readouterr().out == rich_layout(headers, rows)
