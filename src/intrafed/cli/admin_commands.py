"""``intrafed admin``: the web console of a node's home, and its admin password."""

from __future__ import annotations

import sys
from pathlib import Path

import click

from intrafed.cli import logs
from intrafed.cli.common import fail, home_option, load_staged
from intrafed.console import in_node
from intrafed.console.app import ConsoleSettings
from intrafed.console.listen import DEFAULT_LISTEN, Listen
from intrafed.console.password import set_password
from intrafed.console.server import serve


@click.group("admin", invoke_without_command=True)
@home_option(required=False)
@click.option(
    "--listen",
    default=DEFAULT_LISTEN,
    show_default=True,
    help="IP:PORT the console listens on; keep it on loopback unless it runs over --tls.",
)
@click.option(
    "--tls",
    is_flag=True,
    help="Serve over HTTPS with the node's selected certificate (Security page).",
)
@click.option(
    "--peer",
    "peers",
    multiple=True,
    type=click.Path(file_okay=False, path_type=Path),
    help="Another node's home: checked with this one, and its trace drawn in the ladder. "
    "Repeat for every node.",
)
@logs.log_options
@click.pass_context
def admin_group(
    context: click.Context,
    home: Path | None,
    listen: str,
    tls: bool,
    peers: tuple[Path, ...],
    log_level: str,
    log_format: str,
) -> None:
    """The web console of a node (its tabs, status, check, probe and trace), and its admin
    password.

    Without a subcommand: serve the console of the node at HOME until Ctrl-C, logging
    every login, refusal and change to stderr."""
    if context.invoked_subcommand is not None:
        return
    if home is None:
        fail("--home: name the node's home (or set INTRAFED_HOME)")
    load_staged(home)  # refuse a directory that is not a node's home
    address = Listen.parse(listen)
    logs.configure(log_level, log_format)
    _warn_in_clear(address, tls)
    scheme = "https" if tls else "http"
    host = f"[{address.ip}]" if ":" in address.ip else address.ip
    url = f"{scheme}://{host}:{address.port}/"
    serve(
        ConsoleSettings(home, peers, secure=tls),
        address,
        lambda: click.echo(f"intrafed console for {home}: {url} (Ctrl-C stops)"),
    )


def _warn_in_clear(address: Listen, tls: bool) -> None:
    if not address.loopback and not tls:
        click.echo(
            f"warning: the console listens on {address.ip} without TLS: its password and "
            "cookie cross the network in clear; add --tls",
            err=True,
        )


@admin_group.command("password")
@home_option()
def password_command(home: Path) -> None:
    """Set the console's admin password (read from the terminal, or one line of stdin);
    only its scrypt hash is kept, in HOME/console-password (mode 0600)."""
    load_staged(home)
    if sys.stdin.isatty():
        password = click.prompt("Admin password", hide_input=True, confirmation_prompt=True)
    else:
        password = sys.stdin.readline().rstrip("\r\n")
    path = set_password(home, password)
    click.echo(f"console password set ({path}); start the console: intrafed admin --home {home}")


@admin_group.command("enable")
@home_option()
@click.option(
    "--listen", default=DEFAULT_LISTEN, show_default=True, help="IP:PORT the console listens on."
)
@click.option("--tls", is_flag=True, help="Serve over HTTPS with the node's selected certificate.")
def enable_command(home: Path, listen: str, tls: bool) -> None:
    """Serve the console from the running node itself (HOME/console.toml), from its next
    start: intrafed service restart applies it."""
    load_staged(home)
    address = Listen.parse(listen)
    path = in_node.enable(home, in_node.InNodeConsole(address, tls))
    _warn_in_clear(address, tls)
    click.echo(f"console enabled in {path}; apply it with intrafed service restart --home {home}")


@admin_group.command("disable")
@home_option()
def disable_command(home: Path) -> None:
    """Stop serving the console from the node, from its next start."""
    load_staged(home)
    if not in_node.disable(home):
        fail(f"the node of {home} serves no console", 1)
    click.echo(f"console disabled; apply it with intrafed service restart --home {home}")
