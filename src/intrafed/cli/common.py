"""What every ``intrafed`` command shares: the --home option, and turning an error an
administrator can fix into one line and an exit status (DESIGN §6), in one place."""

from __future__ import annotations

import importlib
import json
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, NoReturn, TypeVar

import click

if TYPE_CHECKING:
    from intrafed.config.model import NodeConfig

F = TypeVar("F", bound=Callable[..., Any])

HOME_HELP = "The node's home directory (made by intrafed init)."


def home_option(*, required: bool = True) -> Callable[[F], F]:
    """``--home DIR`` (or the INTRAFED_HOME environment variable)."""
    return click.option(
        "--home",
        type=click.Path(file_okay=False, path_type=Path),
        required=required,
        envvar="INTRAFED_HOME",
        show_envvar=True,
        help=HOME_HELP,
    )


def json_option(help_text: str = "Print JSON instead of text.") -> Callable[[F], F]:
    """``--json``: the result as JSON, and a refusal as ``{"ok": false, "error": ...}``."""
    return click.option("--json", "as_json", is_flag=True, help=help_text)


def json_wanted() -> bool:
    """Whether the command running was given --json."""
    context = click.get_current_context(silent=True)
    while context is not None:
        if context.params.get("as_json"):
            return True
        context = context.parent
    root = click.get_current_context(silent=True)
    return root is not None and "--json" in root.meta.get(_ARGUMENTS, ())


_ARGUMENTS = "intrafed.arguments"


def fail(message: str, code: int = 2, **details: object) -> NoReturn:
    """Print one line on stderr (under --json, ``{"ok": false, "error": message}`` with
    ``details`` on stdout) and exit (2: refused input, 1: a failed check)."""
    if json_wanted():
        click.echo(json.dumps({"ok": False, "error": message, **details}))
    else:
        click.echo(message, err=True)
    sys.exit(code)


def done(as_json: bool, result: dict[str, Any], lines: Sequence[str]) -> None:
    """Print what a command did: ``lines``, or ``{"ok": true, **result}`` with --json."""
    if as_json:
        click.echo(json.dumps({"ok": True, **result}, indent=2))
    else:
        for line in lines:
            click.echo(line)


def load_staged(home: Path) -> NodeConfig:
    """The staged configuration of the node at ``home`` (the store imported when used)."""
    from intrafed.store import load_staged as load

    return load(home)


@dataclass(frozen=True, slots=True)
class LazyCommand:
    """A subcommand known by name and short help; its module is imported when it runs."""

    name: str
    target: str
    """``module:attribute`` of the click command."""
    short_help: str


class IntrafedGroup(click.Group):
    """The root group: subcommands imported on use, and an error meant for the
    administrator becomes its one line."""

    def __init__(
        self, *args: Any, lazy_commands: Sequence[LazyCommand] = (), **kwargs: Any
    ) -> None:
        super().__init__(*args, **kwargs)
        self.lazy_commands = {command.name: command for command in lazy_commands}

    def parse_args(self, ctx: click.Context, args: list[str]) -> list[str]:
        # Kept for a usage error under --json, which click raises before any --json is parsed.
        ctx.meta[_ARGUMENTS] = tuple(args)
        return super().parse_args(ctx, args)

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted({*super().list_commands(ctx), *self.lazy_commands})

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        lazy = self.lazy_commands.get(cmd_name)
        if lazy is None or cmd_name in self.commands:
            return super().get_command(ctx, cmd_name)
        module, _, attribute = lazy.target.partition(":")
        command = getattr(importlib.import_module(module), attribute)
        if not isinstance(command, click.Command):
            raise TypeError(f"{lazy.target} is not a click command")
        self.add_command(command, cmd_name)
        return command

    def format_commands(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        """The command list from the short helps, without importing the commands."""
        rows = []
        limit = formatter.width - 6 - max(map(len, self.list_commands(ctx)), default=0)
        for name in self.list_commands(ctx):
            lazy = self.lazy_commands.get(name)
            if lazy is not None and name not in self.commands:
                rows.append((name, _shorten(lazy.short_help, limit)))
            elif (command := self.commands.get(name)) is not None and not command.hidden:
                rows.append((name, command.get_short_help_str(limit)))
        if rows:
            with formatter.section("Commands"):
                formatter.write_dl(rows)

    def invoke(self, ctx: click.Context) -> Any:
        from intrafed.config.model import ConfigError
        from intrafed.pki import CertificateValidationError, PkiError

        try:
            return super().invoke(ctx)
        except CertificateValidationError as exc:
            message = f"{exc.report.thumbprint} cannot be selected: it fails validation"
            if json_wanted():
                fail(message, 1, report=exc.report.to_json())
            for line in exc.report.lines():
                click.echo(line, err=True)
            fail(message, 1)
        except (ConfigError, PkiError) as exc:
            fail(str(exc))
        except OSError as exc:
            fail(f"{exc.filename or 'file'}: {exc.strerror or exc}")
        except click.ClickException as exc:
            if not json_wanted():
                raise
            fail(exc.format_message(), exc.exit_code)


def _shorten(text: str, limit: int) -> str:
    """``text`` cut to its first sentence and ``limit`` characters, as click shortens."""
    return click.Command("x", help=text).get_short_help_str(limit)
