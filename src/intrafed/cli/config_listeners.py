"""``intrafed config connection|listener``: where the node listens (OCS Connections, IM&P
application listeners). A restart applies them."""

from __future__ import annotations

from pathlib import Path

import click

from intrafed.cli.common import home_option, json_option, load_staged
from intrafed.cli.config_staging import TABLE_JSON, F, Table, emit, stage
from intrafed.config import edits
from intrafed.config.document import as_table
from intrafed.config.model import Connection, ImpListeners, NodeConfig, Role


def connections_table(config: NodeConfig) -> Table:
    """OCS: the connections."""
    rows = [(c.ip, c.transport, str(c.port)) for c in config.connections]
    return ("IP", "TRANSPORT", "PORT"), rows


def listeners_text(config: NodeConfig) -> str:
    """IM&P: the three application listeners in one line."""
    ports = config.listeners or ImpListeners()
    return (
        f"TCP {ports.tcp}, Peer Auth {ports.peer_auth} (MTLS), "
        f"Server Auth {ports.server_auth} (TLS)"
    )


@click.group("connection")
def connection_group() -> None:
    """OCS: the Front End "Connections" (General tab), where the server listens."""


def _connection_options(function: F) -> F:
    function = click.option("--ip", default="All", help="All, or one of the server's addresses.")(
        function
    )
    function = click.option("--port", type=int, required=True, help="The port, 1-65535.")(function)
    return click.option(
        "--transport",
        metavar="TCP|TLS|MTLS",
        required=True,
        help="MTLS requires and verifies a client certificate; TLS does not ask for one.",
    )(function)


@connection_group.command("add")
@home_option()
@_connection_options
def connection_add(home: Path, transport: str, port: int, ip: str) -> None:
    """Listen on IP:PORT with TRANSPORT (the seed: TCP 5060, MTLS 5061)."""
    connection = Connection(transport, port, ip)
    stage(
        home,
        lambda c: edits.add_connection(c, connection),
        f"added connection {_text(connection)}",
    )


@connection_group.command("remove")
@home_option()
@_connection_options
def connection_remove(home: Path, transport: str, port: int, ip: str) -> None:
    """Stop listening on exactly this connection (remove TLS 5061, add MTLS 5061 to switch)."""
    connection = Connection(transport, port, ip)
    stage(
        home,
        lambda c: edits.remove_connection(c, connection),
        f"removed connection {_text(connection)}",
    )


@connection_group.command("set")
@home_option()
@_connection_options
@click.option("--new-transport", metavar="TCP|TLS|MTLS", help="Switch the connection to it.")
@click.option("--new-port", type=int, help="Move the connection to this port.")
@click.option("--new-ip", help="Move the connection to this address (or All).")
def connection_set(
    home: Path,
    transport: str,
    port: int,
    ip: str,
    new_transport: str | None,
    new_port: int | None,
    new_ip: str | None,
) -> None:
    """Change exactly this connection in place (e.g. TLS 5061 to MTLS with --new-transport
    MTLS)."""
    connection = Connection(transport, port, ip)
    changed = Connection(
        new_transport or transport, new_port if new_port is not None else port, new_ip or ip
    )
    stage(
        home,
        lambda c: edits.set_connection(c, connection, changed),
        f"changed connection {_text(connection)} to {_text(changed)}",
    )


def _text(connection: Connection) -> str:
    return f"{connection.transport} {connection.port} on {connection.ip}"


@connection_group.command("list")
@home_option()
@json_option(TABLE_JSON)
def connection_list(home: Path, as_json: bool) -> None:
    """List the connections."""
    config = load_staged(home)
    config.require_role("connection", Role.OCS)
    entries = [as_table(c) for c in config.connections]
    emit(as_json, entries, *connections_table(config))


@click.group("listener")
def listener_group() -> None:
    """IM&P: the application listeners."""


@listener_group.command("set")
@home_option()
@click.option("--tcp", type=int, help="TCP listener port (initially 5060).")
@click.option("--peer-auth", type=int, help="Peer Auth (MTLS) port (initially 5061).")
@click.option("--server-auth", type=int, help="Server Auth (TLS) port (initially 5062).")
def listener_set(
    home: Path, tcp: int | None, peer_auth: int | None, server_auth: int | None
) -> None:
    """Move listeners; the ports left out keep their values."""
    stage(
        home,
        lambda c: edits.set_listeners(c, tcp, peer_auth, server_auth),
        lambda c: f"listeners: {listeners_text(c)}",
    )
