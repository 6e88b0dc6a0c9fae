"""``intrafed init`` and ``intrafed config …``: the node's settings, in the seed's words.

Each command is a thin layer over ``intrafed.config.edits`` and ``Configuration.stage``:
edits change the staged configuration and ``intrafed service reload`` applies them (``restart``
for listeners). A refusal prints the one-line ``ConfigError`` on standard error and exits
with status 2. Routes, listeners, trusted peers and users have their own modules
(``config_routes``, ``config_listeners``, ``config_trust``, ``config_users``); this one has
the rest of the settings, ``config show``, ``export`` and ``import``.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import IO

import click

from intrafed.cli.common import done, home_option, json_option, load_staged
from intrafed.cli.config_listeners import (
    connection_group,
    connections_table,
    listener_group,
    listeners_text,
)
from intrafed.cli.config_routes import (
    hosts_group,
    hosts_table,
    route_group,
    routes_table,
    routing_mode,
)
from intrafed.cli.config_staging import TABLE_JSON, Table, emit, stage, staged_note, utf8
from intrafed.cli.config_trust import (
    acl_group,
    acl_table,
    host_authorizations_table,
    hostauth_group,
    peer_subject_group,
)
from intrafed.cli.config_users import directory_group, user_group, users_table
from intrafed.cli.output import print_table
from intrafed.config import edits
from intrafed.config.document import (
    apply_command,
    as_table,
    changes,
    from_toml,
    to_document,
    to_toml,
    write_toml,
)
from intrafed.config.model import (
    ConfigError,
    Edition,
    MetricsListener,
    NodeConfig,
    NodeIdentity,
    Role,
    TlsProfile,
)
from intrafed.store import create_store, open_store

# ``intrafed init``


@click.command("init", context_settings={"show_default": True})
@home_option()
@click.option(
    "--role",
    type=click.Choice([role.value for role in Role], case_sensitive=False),
    required=True,
    help="ocs: an OCS Standard Edition server or Enterprise Edition front end; "
    "imp: an IM and Presence node.",
)
@click.option("--fqdn", required=True, help="The node's FQDN.")
@click.option("--ip", required=True, help="The address the node listens and connects from.")
@click.option(
    "--edition",
    type=click.Choice([edition.value for edition in Edition], case_sensitive=False),
    help="ocs only: standard (one server) or enterprise (a front end of a pool); "
    "role ocs defaults to standard.",
)
@click.option(
    "--pool-fqdn", help="ocs enterprise only: the pool FQDN (the certificate's subject CN)."
)
@click.option(
    "--cluster",
    help="imp only: the IM and Presence cluster this node is a member of (its nodes share "
    "the --db database and its settings).",
)
@click.option(
    "--db",
    "db_url",
    show_default="sqlite:///HOME/intrafed.db",
    help="The store of the configuration and state: sqlite:///PATH, or "
    "postgresql://USER:PASSWORD@HOST:PORT/DATABASE (a database of its own, owned by USER; "
    "the password is kept in HOME/store.url, readable by its owner alone).",
)
@json_option()
def init_command(
    home: Path,
    role: str,
    fqdn: str,
    ip: str,
    edition: str | None,
    pool_fqdn: str | None,
    cluster: str | None,
    db_url: str | None,
    as_json: bool,
) -> None:
    """Make HOME the home of a new ocs or imp node, with no settings yet.

    A member of an Enterprise pool (--pool-fqdn) or IM&P cluster (--cluster) whose --db
    already holds other members joins them and shares their settings."""
    identity = NodeIdentity(
        Role(role), fqdn, ip, Edition(edition) if edition else None, pool_fqdn, cluster
    )
    with create_store(home, identity, db_url) as store:
        path = store.location
    kind = f", {identity.edition.value} edition" if identity.edition else ""
    kind += f", cluster {identity.cluster}" if identity.cluster else ""
    result = {"home": str(home), "store": str(path), "node": as_table(identity)}
    done(as_json, result, [
        f"initialized {identity.role.value} node {identity.fqdn} ({identity.ip}{kind}) "
        f"in {home}; store {path}"
    ])  # fmt: skip


# ``intrafed config …``


@click.group("config", context_settings={"show_default": True})
def config_group() -> None:
    """Edit the staged configuration (applied by intrafed service reload or restart)."""


for _command in (
    connection_group,
    listener_group,
    route_group,
    routing_mode,
    hosts_group,
    hostauth_group,
    peer_subject_group,
    acl_group,
    user_group,
    directory_group,
):
    config_group.add_command(_command)


@config_group.group("domain")
def domain_group() -> None:
    """The SIP domains served here (the seed's "Domain Verification")."""


@domain_group.command("add")
@home_option()
@click.argument("domain")
def domain_add(home: Path, domain: str) -> None:
    """Serve DOMAIN here."""
    stage(home, lambda c: edits.add_domain(c, domain), f"added domain {domain.lower()}")


@domain_group.command("remove")
@home_option()
@click.argument("domain")
def domain_remove(home: Path, domain: str) -> None:
    """Stop serving DOMAIN (refused while users are homed in it)."""
    stage(home, lambda c: edits.remove_domain(c, domain), f"removed domain {domain.lower()}")


@domain_group.command("list")
@home_option()
@json_option(TABLE_JSON)
def domain_list(home: Path, as_json: bool) -> None:
    """List the domains served here."""
    config = load_staged(home)
    emit(as_json, list(config.domains), ("DOMAIN",), [(d,) for d in config.domains])


@config_group.group("rate-limit")
def rate_limit_group() -> None:
    """Requests per second of the two rate classes: clients (per source address) and
    peers authorized with Throttle As Server (per host authorization entry)."""


@rate_limit_group.command("set")
@home_option()
@click.option("--client-rate", type=int, help="Client requests per second (initially 200).")
@click.option("--client-burst", type=int, help="Client burst above the rate (initially 400).")
@click.option("--server-rate", type=int, help="Server requests per second (initially 50000).")
@click.option("--server-burst", type=int, help="Server burst (initially 100000).")
def rate_limit_set(
    home: Path,
    client_rate: int | None,
    client_burst: int | None,
    server_rate: int | None,
    server_burst: int | None,
) -> None:
    """Change the rate classes; the values left out keep theirs. Reload applies it."""
    stage(
        home,
        lambda c: edits.set_rate_limits(c, client_rate, client_burst, server_rate, server_burst),
        lambda c: f"rate limits: {_rate_limits_text(c)}",
    )


def _rate_limits_text(config: NodeConfig) -> str:
    limits = config.rate_limits
    return (
        f"client {limits.client.rate}/s (burst {limits.client.burst}) per address, "
        f"server {limits.server.rate}/s (burst {limits.server.burst}) per trusted peer"
    )


@config_group.command("digest")
@home_option()
@click.argument("algorithms", nargs=-1, required=True, metavar="ALGORITHM...")
def digest(home: Path, algorithms: tuple[str, ...]) -> None:
    """The digest algorithms challenged with, most preferred first, and the only ones
    accepted: SHA-256 MD5 (the default, RFC 8760), or MD5 first for clients that answer
    only the first challenge with MD5 (SIPp), or MD5 alone for clients that cannot answer
    at all while SHA-256 is offered (baresip/libre). A node names this setting in the
    Warning of a 401/407 when a client seems short of algorithms."""
    stage(
        home,
        lambda c: edits.set_digest_algorithms(c, algorithms),
        lambda c: f"digest algorithms: {', '.join(c.digest_algorithms)}",
    )


@config_group.command("metrics")
@home_option()
@click.argument("state", required=False, type=click.Choice(["off"], case_sensitive=False))
@click.option(
    "--listen",
    metavar="IP:PORT",
    help="Serve http://IP:PORT/metrics (port 9464 when left out); bind nothing else.",
)
def metrics(home: Path, state: str | None, listen: str | None) -> None:
    """Serve Prometheus metrics on --listen (the node counts messages only then), or turn
    them off. A restart applies it."""
    if (state is None) == (listen is None):
        raise ConfigError(
            "metrics", "give either --listen IP:PORT or off", "e.g. --listen 127.0.0.1:9464"
        )
    listener = MetricsListener.parse(listen) if listen is not None else None
    stage(home, lambda c: edits.set_metrics(c, listener), f"metrics: {_metrics_text(listener)}")


def _metrics_text(listener: MetricsListener | None) -> str:
    return f"served on http://{listener}/metrics" if listener is not None else "off"


@config_group.command("fips")
@home_option()
@click.argument("state", type=click.Choice(["on", "off"], case_sensitive=False))
def fips(home: Path, state: str) -> None:
    """The FIPS-approved-algorithms policy: on means TLS 1.2+ and approved suites only."""
    stage(home, lambda c: edits.set_fips(c, state == "on"), f"FIPS policy: {state}")


@config_group.command("tls-profile")
@home_option()
@click.argument("profile", type=click.Choice([p.value for p in TlsProfile], case_sensitive=False))
def tls_profile(home: Path, profile: str) -> None:
    """The TLS versions allowed: default (TLS 1.2 and up) or legacy-tls1 (TLS 1.0 and up,
    for old peers; it needs the FIPS policy off)."""
    chosen = TlsProfile(profile.lower())
    stage(home, lambda c: edits.set_tls_profile(c, chosen), f"TLS profile: {chosen.value}")


@config_group.command("show")
@home_option()
@click.option(
    "--staged/--running",
    default=True,
    help="Show the staged configuration (what edits change) or the running one.",
)
@click.option("--json", "as_json", is_flag=True, help="Print the document as JSON.")
def show(home: Path, staged: bool, as_json: bool) -> None:
    """Show the configuration, and what a reload or restart would change."""
    with open_store(home) as store:
        config = store.load("staged" if staged else "running")
        pending = store.pending_changes()
        command = apply_command(store.load("running"), store.load("staged"))
    if as_json:
        click.echo(json.dumps(to_document(config), indent=2))
        return
    identity = config.identity
    edition = ""
    if identity.edition is Edition.ENTERPRISE:
        edition = f", Enterprise Edition pool {identity.pool_fqdn}"
    elif identity.edition is Edition.STANDARD:
        edition = ", Standard Edition"
    elif identity.cluster is not None:
        edition = f", cluster {identity.cluster}"
    click.echo(
        f"{identity.role.value} node {identity.fqdn} ({identity.ip}){edition}, "
        f"{'staged' if staged else 'running'} configuration"
    )
    click.echo(f"domains: {', '.join(config.domains) or '(none)'}")
    tables: list[tuple[str, Table]] = [("static routes", routes_table(config))]
    if config.role is Role.OCS:
        tables = [
            ("connections", connections_table(config)),
            *tables,
            ("host authorization", host_authorizations_table(config)),
        ]
    else:
        click.echo(f"listeners: {listeners_text(config)}")
        click.echo(f"routing mode: {config.routing_mode.value}")
        click.echo(f"TLS peer subjects: {', '.join(config.peer_subjects) or '(none)'}")
        click.echo(f"peer directory: {len(config.peer_directory)} user(s)")
        tables.append(("incoming ACL", acl_table(config)))
    click.echo(f"FIPS policy: {'on' if config.fips else 'off'}")
    click.echo(f"rate limits: {_rate_limits_text(config)}")
    click.echo(f"digest algorithms: {', '.join(config.digest_algorithms)}")
    click.echo(f"metrics: {_metrics_text(config.metrics)}")
    tables += [("users", users_table(config)), ("hosts", hosts_table(config))]
    for title, (headers, rows) in tables:
        click.echo(f"{title}:")
        print_table(headers, rows, indent="  ")
    if pending:
        click.echo(f"{command} pending: {'; '.join(pending)}")
    else:
        click.echo("no reload or restart pending")


@config_group.command("export")
@home_option()
@click.option(
    "--file",
    "target",
    type=click.Path(dir_okay=False, path_type=Path),
    help="Write the TOML document here instead of to standard output.",
)
def export(home: Path, target: Path | None) -> None:
    """Print (or write) the staged configuration as a TOML document."""
    config = load_staged(home)
    if target is None:
        click.echo(to_toml(config), nl=False)
        return
    write_toml(target, config, "--file")
    click.echo(f"exported the staged configuration to {target}")


@config_group.command("import")
@home_option()
@click.argument("source", metavar="FILE", type=click.File("rb"))
def import_(home: Path, source: IO[bytes]) -> None:
    """Make a TOML document (from export; - for standard input) the staged configuration.

    The document is validated as a whole and applied all at once, or not at all.
    """
    config = from_toml(utf8(source, "FILE"))
    with open_store(home) as store:
        before = store.load("staged")
        store.replace_staged(config)
        staged = staged_note(store, home)
    difference = changes(before, config)
    click.echo(f"imported: {'; '.join(difference) or 'no change'} ({staged})")
