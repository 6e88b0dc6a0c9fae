"""What the ``intrafed config`` commands share: staging one edit and saying what applies
it, the --fqdn/--ip pair, and the tables of the list commands."""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import IO, Any, TypeVar

import click

from intrafed.cli.output import print_table
from intrafed.config.document import apply_command
from intrafed.config.model import ConfigError, NodeConfig
from intrafed.store import Configuration, StagedEdit, open_store

F = TypeVar("F", bound=Callable[..., Any])

TABLE_JSON = "Print JSON instead of a table."

# Tables shared by the list commands and ``config show``: (headers, rows).
Table = tuple[tuple[str, ...], Sequence[tuple[str, ...]]]


def host_options(function: F) -> F:
    """``--fqdn`` and ``--ip``: the one host an entry names."""
    function = click.option("--ip", help="The host's IP address.")(function)
    return click.option("--fqdn", help="The host's FQDN.")(function)


def stage(home: Path, edit: StagedEdit, done: str | Callable[[NodeConfig], str]) -> None:
    """Apply ``edit`` to the staged configuration and say what was ``done``."""
    with open_store(home) as store:
        config = store.stage(edit)
        staged = staged_note(store, home)
    click.echo(f"{done if isinstance(done, str) else done(config)} ({staged})")


def staged_note(store: Configuration, home: Path) -> str:
    """What applies the staged configuration: reload, or restart for listeners."""
    command = apply_command(store.load("running"), store.load("staged"))
    if command is None:
        return "staged; the same as the running configuration"
    return f"staged; apply with intrafed service {command} --home {home}"


def one_host(fqdn: str | None, ip: str | None) -> str:
    """The host named by exactly one of ``--fqdn`` and ``--ip``."""
    if (fqdn is None) == (ip is None):
        raise ConfigError("--ip/--fqdn", "name one host", "give either --fqdn or --ip")
    return fqdn or ip or ""


def utf8(source: IO[bytes], setting: str) -> str:
    """The text of ``source``; ``ConfigError`` naming ``setting`` when it is not UTF-8."""
    try:
        return source.read().decode("utf-8")
    except UnicodeDecodeError as exc:
        raise ConfigError(setting, f"is not UTF-8 text ({exc})", "save it as UTF-8") from None


def yes(flag: bool) -> str:
    """A flag as a table cell."""
    return "yes" if flag else "no"


def emit(
    as_json: bool, entries: Any, headers: Sequence[str], rows: Sequence[Sequence[str]]
) -> None:
    """A list command's result: ``entries`` as JSON, or the table."""
    if as_json:
        click.echo(json.dumps(entries, indent=2))
    else:
        print_table(headers, rows)
