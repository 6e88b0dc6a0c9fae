"""What every ``intrafed`` command shares: the --home option, and turning an error an
administrator can fix into one line and an exit status (DESIGN §6), in one place."""

from __future__ import annotations

import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any, NoReturn, TypeVar

import click

from intrafed.config.model import ConfigError, NodeConfig
from intrafed.pki import CertificateValidationError, PkiError
from intrafed.store import ConfigStore

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


def fail(message: str, code: int = 2) -> NoReturn:
    """Print one line on stderr and exit (2: refused input, 1: a failed check)."""
    click.echo(message, err=True)
    sys.exit(code)


def load_staged(home: Path) -> NodeConfig:
    """The staged configuration of the node at ``home``."""
    with ConfigStore.open(home) as store:
        return store.load("staged")


class IntrafedGroup(click.Group):
    """The root group: an error meant for the administrator becomes its one line."""

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except CertificateValidationError as exc:
            for line in exc.report.lines():
                click.echo(line, err=True)
            fail(f"{exc.report.thumbprint} cannot be selected: it fails validation", 1)
        except (ConfigError, PkiError) as exc:
            fail(str(exc))
        except OSError as exc:
            fail(f"{exc.filename or 'file'}: {exc.strerror or exc}")
