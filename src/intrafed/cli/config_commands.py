"""``intrafed init`` and ``intrafed config …``: the node's settings, in the seed's words.

Each command is a thin layer over ``intrafed.config.edits`` and ``ConfigStore.stage``:
edits change the staged configuration and ``intrafed service reload`` applies them (``restart``
for listeners). A
refusal prints the one-line ``ConfigError`` on standard error and exits with status 2.
"""

from __future__ import annotations

import json
import os
import tempfile
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import IO, Any, TypeVar

import click

from intrafed.cli.common import done, home_option, json_option, load_staged
from intrafed.config import edits
from intrafed.config.document import (
    apply_command,
    as_table,
    changes,
    from_toml,
    to_document,
    to_toml,
)
from intrafed.config.model import (
    AclEntry,
    ConfigError,
    Connection,
    Edition,
    HostAuthorization,
    HostEntry,
    ImpListeners,
    NodeConfig,
    NodeIdentity,
    Role,
    RoutingMode,
    StaticRoute,
    TlsProfile,
)
from intrafed.store import ConfigStore, StagedEdit

_F = TypeVar("_F", bound=Callable[..., Any])


def _as_json(function: _F) -> _F:
    return click.option("--json", "as_json", is_flag=True, help="Print JSON instead of a table.")(
        function
    )


def _host_options(function: _F) -> _F:
    function = click.option("--ip", help="The host's IP address.")(function)
    return click.option("--fqdn", help="The host's FQDN.")(function)


def _stage(home: Path, edit: StagedEdit, done: str | Callable[[NodeConfig], str]) -> None:
    """Apply ``edit`` to the staged configuration and say what was ``done``."""
    with ConfigStore.open(home) as store:
        config = store.stage(edit)
        staged = _staged_note(store, home)
    click.echo(f"{done if isinstance(done, str) else done(config)} ({staged})")


def _staged_note(store: ConfigStore, home: Path) -> str:
    """What applies the staged configuration: reload, or restart for listeners."""
    command = apply_command(store.load("running"), store.load("staged"))
    if command is None:
        return "staged; the same as the running configuration"
    return f"staged; apply with intrafed service {command} --home {home}"


def _one_host(fqdn: str | None, ip: str | None) -> str:
    if (fqdn is None) == (ip is None):
        raise ConfigError("--ip/--fqdn", "name one host", "give either --fqdn or --ip")
    return fqdn or ip or ""


def _utf8(source: IO[bytes], setting: str) -> str:
    try:
        return source.read().decode("utf-8")
    except UnicodeDecodeError as exc:
        raise ConfigError(setting, f"is not UTF-8 text ({exc})", "save it as UTF-8") from None


def _yes(flag: bool) -> str:
    return "yes" if flag else "no"


def _echo_table(headers: Sequence[str], rows: Sequence[Sequence[str]], indent: str = "") -> None:
    if not rows:
        click.echo(f"{indent}(none)")
        return
    widths = [max(len(row[i]) for row in (headers, *rows)) for i in range(len(headers))]
    for row in (headers, *rows):
        cells = (cell.ljust(width) for cell, width in zip(row, widths, strict=True))
        click.echo(indent + "  ".join(cells).rstrip())


def _emit(
    as_json: bool, entries: Any, headers: Sequence[str], rows: Sequence[Sequence[str]]
) -> None:
    if as_json:
        click.echo(json.dumps(entries, indent=2))
    else:
        _echo_table(headers, rows)


# Tables shared by the list commands and ``config show``: (headers, rows).
Table = tuple[tuple[str, ...], Sequence[tuple[str, ...]]]


def _connections(config: NodeConfig) -> Table:
    rows = [(c.ip, c.transport, str(c.port)) for c in config.connections]
    return ("IP", "TRANSPORT", "PORT"), rows


def _routes(config: NodeConfig) -> Table:
    if config.role is Role.OCS:
        return ("MATCHING URI", "TRANSPORT", "NEXT HOP", "PORT", "PHONE URI", "REPLACE HOST"), [
            (
                r.domain,
                r.transport,
                r.next_hop,
                str(r.port),
                _yes(r.phone_uri),
                _yes(r.replace_host),
            )
            for r in config.routes
        ]
    return ("DESTINATION", "TRANSPORT", "NEXT HOP", "PORT", "PRIORITY"), [
        (r.domain, r.transport, r.next_hop, str(r.port), str(r.priority))
        for r in sorted(config.routes, key=lambda route: route.key)
    ]


def _host_authorizations(config: NodeConfig) -> Table:
    headers = ("HOST", "OUTBOUND ONLY", "THROTTLE AS SERVER", "TREAT AS AUTHENTICATED")
    rows = [
        (
            h.host,
            _yes(h.outbound_only),
            _yes(h.throttle_as_server),
            _yes(h.treat_as_authenticated),
        )
        for h in config.host_authorizations
    ]
    return headers, rows


def _acl(config: NodeConfig) -> Table:
    return ("HOST",), [(entry.host,) for entry in config.acl]


def _users(config: NodeConfig) -> Table:
    rows = [(u.aor, _yes(u.enabled), _yes(u.ha1_sha256 is not None)) for u in config.users]
    return ("USER", "ENABLED", "PASSWORD SET"), rows


def _user_entries(config: NodeConfig) -> list[dict[str, Any]]:
    return [
        {"aor": u.aor, "enabled": u.enabled, "password_set": u.ha1_sha256 is not None}
        for u in config.users
    ]


def _hosts(config: NodeConfig) -> Table:
    return ("FQDN", "ADDRESS"), [(entry.fqdn, entry.ip) for entry in config.hosts]


def _listeners_text(config: NodeConfig) -> str:
    ports = config.listeners or ImpListeners()
    return (
        f"TCP {ports.tcp}, Peer Auth {ports.peer_auth} (MTLS), "
        f"Server Auth {ports.server_auth} (TLS)"
    )


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
    "--db",
    "db_url",
    show_default="sqlite:///HOME/intrafed.db",
    help="The configuration store: sqlite:///PATH (PostgreSQL comes with the Enterprise pool).",
)
@json_option()
def init_command(
    home: Path,
    role: str,
    fqdn: str,
    ip: str,
    edition: str | None,
    pool_fqdn: str | None,
    db_url: str | None,
    as_json: bool,
) -> None:
    """Make HOME the home of a new ocs or imp node, with no settings yet."""
    identity = NodeIdentity(Role(role), fqdn, ip, Edition(edition) if edition else None, pool_fqdn)
    with ConfigStore.create(home, identity, db_url) as store:
        path = store.path
    kind = f", {identity.edition.value} edition" if identity.edition else ""
    result = {"home": str(home), "store": str(path), "node": as_table(identity)}
    done(as_json, result, [
        f"initialized {identity.role.value} node {identity.fqdn} ({identity.ip}{kind}) "
        f"in {home}; store {path}"
    ])  # fmt: skip


# ``intrafed config …``


@click.group("config", context_settings={"show_default": True})
def config_group() -> None:
    """Edit the staged configuration (applied by intrafed service reload or restart)."""


@config_group.group("domain")
def domain_group() -> None:
    """The SIP domains served here (the seed's "Domain Verification")."""


@domain_group.command("add")
@home_option()
@click.argument("domain")
def domain_add(home: Path, domain: str) -> None:
    """Serve DOMAIN here."""
    _stage(home, lambda c: edits.add_domain(c, domain), f"added domain {domain.lower()}")


@domain_group.command("remove")
@home_option()
@click.argument("domain")
def domain_remove(home: Path, domain: str) -> None:
    """Stop serving DOMAIN (refused while users are homed in it)."""
    _stage(home, lambda c: edits.remove_domain(c, domain), f"removed domain {domain.lower()}")


@domain_group.command("list")
@home_option()
@_as_json
def domain_list(home: Path, as_json: bool) -> None:
    """List the domains served here."""
    config = load_staged(home)
    _emit(as_json, list(config.domains), ("DOMAIN",), [(d,) for d in config.domains])


@config_group.group("connection")
def connection_group() -> None:
    """OCS: the Front End "Connections" (General tab), where the server listens."""


def _connection_options(function: _F) -> _F:
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
    _stage(
        home,
        lambda c: edits.add_connection(c, connection),
        f"added connection {connection.transport} {connection.port} on {connection.ip}",
    )


@connection_group.command("remove")
@home_option()
@_connection_options
def connection_remove(home: Path, transport: str, port: int, ip: str) -> None:
    """Stop listening on exactly this connection (remove TLS 5061, add MTLS 5061 to switch)."""
    connection = Connection(transport, port, ip)
    _stage(
        home,
        lambda c: edits.remove_connection(c, connection),
        f"removed connection {connection.transport} {connection.port} on {connection.ip}",
    )


@connection_group.command("list")
@home_option()
@_as_json
def connection_list(home: Path, as_json: bool) -> None:
    """List the connections."""
    config = load_staged(home)
    config.require_role("connection", Role.OCS)
    entries = [as_table(c) for c in config.connections]
    _emit(as_json, entries, *_connections(config))


@config_group.group("route")
def route_group() -> None:
    """Static routes: requests for a domain's users not homed here go to the next hop."""


@route_group.command("add")
@home_option()
@click.option("--domain", required=True, help="Matching URI: a domain, or *.domain.")
@click.option(
    "--transport",
    metavar="TCP|TLS",
    required=True,
    help="Next hop transport: TCP takes --ip, TLS takes --fqdn.",
)
@click.option(
    "--port",
    type=int,
    required=True,
    help="Next hop port (TLS: the peer's Peer Auth listener port).",
)
@click.option("--ip", help="Next hop address (TCP routes).")
@click.option("--fqdn", help="Next hop FQDN (TLS routes).")
@click.option(
    "--phone-uri/--no-phone-uri",
    default=False,
    help="ocs: match only phone URIs (the seed leaves it unchecked).",
)
@click.option(
    "--replace-host/--no-replace-host",
    default=False,
    help="ocs: rewrite the Request-URI host to the next hop (the seed leaves it unchecked).",
)
@click.option(
    "--priority",
    type=int,
    default=1,
    help="imp: 1 for the primary route, 2 and up for backups used while it is unreachable.",
)
def route_add(
    home: Path,
    domain: str,
    transport: str,
    port: int,
    ip: str | None,
    fqdn: str | None,
    phone_uri: bool,
    replace_host: bool,
    priority: int,
) -> None:
    """Add a static route for DOMAIN."""
    route = StaticRoute(domain, transport, port, ip, fqdn, phone_uri, replace_host, priority)
    _stage(
        home,
        lambda c: edits.add_route(c, route),
        f"added static route {route.domain} → {route.transport} {route.next_hop}:{route.port}",
    )


@route_group.command("remove")
@home_option()
@click.option("--domain", required=True, help="The route's matching URI.")
@click.option("--priority", type=int, default=1, help="imp: which of the domain's routes.")
@click.option(
    "--transport",
    metavar="TCP|TLS",
    help="When given, must be the route's (a guard).",
)
@click.option("--port", type=int, help="When given, must be the route's.")
@click.option("--ip", help="When given, must be the route's next hop.")
@click.option("--fqdn", help="When given, must be the route's next hop.")
def route_remove(
    home: Path,
    domain: str,
    priority: int,
    transport: str | None,
    port: int | None,
    ip: str | None,
    fqdn: str | None,
) -> None:
    """Remove the static route for DOMAIN."""
    _stage(
        home,
        lambda c: edits.remove_route(
            c, domain, priority, transport=transport, port=port, next_hop=fqdn or ip
        ),
        f"removed static route {domain.lower()}",
    )


@route_group.command("list")
@home_option()
@_as_json
def route_list(home: Path, as_json: bool) -> None:
    """List the static routes."""
    config = load_staged(home)
    _emit(as_json, [as_table(r) for r in config.routes], *_routes(config))


@config_group.group("hostauth")
def hostauth_group() -> None:
    """OCS: Host Authorization, peers whose requests are trusted as a server's."""


@hostauth_group.command("add")
@home_option()
@_host_options
@click.option(
    "--outbound-only/--no-outbound-only",
    default=False,
    help="Only we open connections to it; its own connections get no trust.",
)
@click.option(
    "--throttle-as-server/--no-throttle-as-server",
    default=True,
    help="Server rate limits instead of a client's.",
)
@click.option(
    "--treat-as-authenticated/--no-treat-as-authenticated",
    default=True,
    help="Never challenge its requests; trust their From identities.",
)
def hostauth_add(
    home: Path,
    fqdn: str | None,
    ip: str | None,
    outbound_only: bool,
    throttle_as_server: bool,
    treat_as_authenticated: bool,
) -> None:
    """Authorize a host (TLS peers need two entries: --fqdn and --ip)."""
    entry = HostAuthorization(fqdn, ip, outbound_only, throttle_as_server, treat_as_authenticated)
    _stage(
        home,
        lambda c: edits.add_host_authorization(c, entry),
        f"added host authorization {entry.host}",
    )


@hostauth_group.command("remove")
@home_option()
@_host_options
def hostauth_remove(home: Path, fqdn: str | None, ip: str | None) -> None:
    """Remove the entry for a host."""
    host = _one_host(fqdn, ip)
    _stage(
        home,
        lambda c: edits.remove_host_authorization(c, host),
        f"removed host authorization {host}",
    )


@hostauth_group.command("list")
@home_option()
@_as_json
def hostauth_list(home: Path, as_json: bool) -> None:
    """List the authorized hosts."""
    config = load_staged(home)
    config.require_role("hostauth", Role.OCS)
    entries = [as_table(h) for h in config.host_authorizations]
    _emit(as_json, entries, *_host_authorizations(config))


@config_group.group("listener")
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
    _stage(
        home,
        lambda c: edits.set_listeners(c, tcp, peer_auth, server_auth),
        lambda c: f"listeners: {_listeners_text(c)}",
    )


@config_group.group("peer-subject")
def peer_subject_group() -> None:
    """IM&P: TLS peer subjects accepted on the Peer Auth listener."""


@peer_subject_group.command("add")
@home_option()
@click.argument("name")
def peer_subject_add(home: Path, name: str) -> None:
    """Accept NAME (the OCS server or pool certificate's subject)."""
    _stage(
        home, lambda c: edits.add_peer_subject(c, name), f"added TLS peer subject {name.lower()}"
    )


@peer_subject_group.command("remove")
@home_option()
@click.argument("name")
def peer_subject_remove(home: Path, name: str) -> None:
    """Stop accepting NAME."""
    _stage(
        home,
        lambda c: edits.remove_peer_subject(c, name),
        f"removed TLS peer subject {name.lower()}",
    )


@peer_subject_group.command("list")
@home_option()
@_as_json
def peer_subject_list(home: Path, as_json: bool) -> None:
    """List the TLS peer subjects."""
    config = load_staged(home)
    config.require_role("peer-subject", Role.IMP)
    subjects = config.peer_subjects
    _emit(as_json, list(subjects), ("SUBJECT",), [(s,) for s in subjects])


@config_group.group("acl")
def acl_group() -> None:
    """IM&P: the incoming ACL, hosts whose TCP requests are trusted without digest."""


@acl_group.command("add")
@home_option()
@_host_options
def acl_add(home: Path, fqdn: str | None, ip: str | None) -> None:
    """Trust a host (the seed: the OCS server's IP and FQDN)."""
    entry = AclEntry(fqdn, ip)
    _stage(home, lambda c: edits.add_acl(c, entry), f"added ACL entry {entry.host}")


@acl_group.command("remove")
@home_option()
@_host_options
def acl_remove(home: Path, fqdn: str | None, ip: str | None) -> None:
    """Remove the entry for a host."""
    host = _one_host(fqdn, ip)
    _stage(home, lambda c: edits.remove_acl(c, host), f"removed ACL entry {host}")


@acl_group.command("list")
@home_option()
@_as_json
def acl_list(home: Path, as_json: bool) -> None:
    """List the incoming ACL."""
    config = load_staged(home)
    config.require_role("acl", Role.IMP)
    _emit(as_json, [as_table(entry) for entry in config.acl], *_acl(config))


@config_group.command("routing-mode")
@home_option()
@click.argument(
    "mode", type=click.Choice([mode.value for mode in RoutingMode], case_sensitive=False)
)
def routing_mode(home: Path, mode: str) -> None:
    """IM&P: basic forwards every same-domain user not homed here; advanced only known ones."""
    _stage(home, lambda c: edits.set_routing_mode(c, RoutingMode(mode)), f"routing mode: {mode}")


@config_group.group("directory")
def directory_group() -> None:
    """IM&P: the OCS side's users; advanced routing mode forwards only them."""


@directory_group.command("add")
@home_option()
@click.argument("aors", metavar="USER@DOMAIN...", nargs=-1, required=True)
def directory_add(home: Path, aors: tuple[str, ...]) -> None:
    """List OCS users USER@DOMAIN... in the directory."""
    _stage(
        home,
        lambda c: edits.add_directory_users(c, aors),
        f"added {', '.join(aors)} to the directory",
    )


@directory_group.command("remove")
@home_option()
@click.argument("aor", metavar="USER@DOMAIN")
def directory_remove(home: Path, aor: str) -> None:
    """Take USER@DOMAIN off the directory (it is no longer forwarded in advanced mode)."""
    _stage(home, lambda c: edits.remove_directory_user(c, aor), f"removed {aor} from the directory")


@directory_group.command("list")
@home_option()
@_as_json
def directory_list(home: Path, as_json: bool) -> None:
    """List the directory of the OCS side's users."""
    config = load_staged(home)
    config.require_role("directory", Role.IMP)
    users = config.peer_directory
    _emit(as_json, list(users), ("USER",), [(aor,) for aor in users])


@directory_group.command("import")
@home_option()
@click.argument("source", metavar="FILE", type=click.File("rb"), required=False)
@click.option(
    "--from-home",
    type=click.Path(file_okay=False, path_type=Path),
    help="Take the users of this OCS node's home instead of FILE.",
)
def directory_import(home: Path, source: IO[bytes] | None, from_home: Path | None) -> None:
    """Replace the directory with the users of FILE or of an OCS node's home.

    FILE (- for standard input) holds one USER@DOMAIN per line, # starts a comment; the
    JSON of intrafed config user list --json (run on the OCS side) is accepted as well.
    """
    if source is not None and from_home is None:
        aors = _directory_file(_utf8(source, "FILE"))
    elif from_home is not None and source is None:
        aors = _ocs_users(from_home)
    else:
        raise ConfigError(
            "directory", "name one source", "give either FILE or --from-home OCS_HOME"
        )
    _stage(home, lambda c: edits.replace_directory(c, aors), f"directory: {len(aors)} user(s)")


def _directory_file(text: str) -> list[str]:
    """The addresses of a directory file: a JSON list (of addresses, or of user entries
    with ``aor``), or one address per line with ``#`` comments."""
    if text.lstrip().startswith("["):
        try:
            entries = json.loads(text)
        except json.JSONDecodeError as exc:
            raise ConfigError("FILE", f"is not a JSON list ({exc})", "fix the JSON") from None
        aors = [entry.get("aor") if isinstance(entry, dict) else entry for entry in entries]
        strings = [aor for aor in aors if isinstance(aor, str)]
        if len(strings) != len(aors):
            raise ConfigError(
                "FILE", "a JSON entry has no address", "give USER@DOMAIN strings or aor entries"
            )
        return strings
    lines = (line.partition("#")[0].strip() for line in text.splitlines())
    return [line for line in lines if line]


def _ocs_users(home: Path) -> list[str]:
    """The users homed on the OCS node at ``home``."""
    config = load_staged(home)
    if config.role is not Role.OCS:
        raise ConfigError(
            "--from-home",
            f"{home} is an {config.role.value} node; the directory lists the OCS side's users",
            "give an OCS node's home",
        )
    return [user.aor for user in config.users]


@config_group.group("user")
def user_group() -> None:
    """Users homed here (digest credentials kept as HA1 hashes only)."""


@user_group.command("add")
@home_option()
@click.argument("aor", metavar="USER@DOMAIN")
@click.option(
    "--password-file",
    type=click.File("rb"),
    required=True,
    help="A file whose first line is the password (- for standard input).",
)
def user_add(home: Path, aor: str, password_file: IO[bytes]) -> None:
    """Home USER@DOMAIN here, enabled."""
    lines = _utf8(password_file, "--password-file").splitlines()
    password = lines[0] if lines else ""
    _stage(home, lambda c: edits.add_user(c, aor, password), f"added user {aor}")


@user_group.command("remove")
@home_option()
@click.argument("aor", metavar="USER@DOMAIN")
def user_remove(home: Path, aor: str) -> None:
    """Delete USER@DOMAIN (the seed: delete, not just disable, a user who moves)."""
    _stage(home, lambda c: edits.remove_user(c, aor), f"removed user {aor}")


@user_group.command("enable")
@home_option()
@click.argument("aor", metavar="USER@DOMAIN")
def user_enable(home: Path, aor: str) -> None:
    """Let USER@DOMAIN register again."""
    _stage(home, lambda c: edits.set_user_enabled(c, aor, True), f"enabled user {aor}")


@user_group.command("disable")
@home_option()
@click.argument("aor", metavar="USER@DOMAIN")
def user_disable(home: Path, aor: str) -> None:
    """Refuse USER@DOMAIN's registrations; the user stays homed here."""
    _stage(home, lambda c: edits.set_user_enabled(c, aor, False), f"disabled user {aor}")


@user_group.command("block")
@home_option()
@click.argument("aor", metavar="USER@DOMAIN")
@click.argument("watcher", metavar="WATCHER@DOMAIN")
def user_block(home: Path, aor: str, watcher: str) -> None:
    """Block WATCHER politely: its subscriptions to USER@DOMAIN are accepted and show Offline."""
    _stage(home, lambda c: edits.block_watcher(c, aor, watcher), f"{aor} blocks {watcher}")


@user_group.command("unblock")
@home_option()
@click.argument("aor", metavar="USER@DOMAIN")
@click.argument("watcher", metavar="WATCHER@DOMAIN")
def user_unblock(home: Path, aor: str, watcher: str) -> None:
    """Let WATCHER see USER@DOMAIN's presence again."""
    _stage(home, lambda c: edits.unblock_watcher(c, aor, watcher), f"{aor} unblocks {watcher}")


@user_group.command("list")
@home_option()
@_as_json
def user_list(home: Path, as_json: bool) -> None:
    """List the homed users."""
    config = load_staged(home)
    _emit(as_json, _user_entries(config), *_users(config))


@config_group.group("hosts")
def hosts_group() -> None:
    """Static name resolution, used before DNS."""


@hosts_group.command("add")
@home_option()
@click.argument("fqdn")
@click.argument("address")
def hosts_add(home: Path, fqdn: str, address: str) -> None:
    """Resolve FQDN to ADDRESS."""
    entry = HostEntry(fqdn, address)
    _stage(home, lambda c: edits.add_host(c, entry), f"added host {entry.fqdn} {entry.ip}")


@hosts_group.command("remove")
@home_option()
@click.argument("fqdn")
@click.argument("address", required=False)
def hosts_remove(home: Path, fqdn: str, address: str | None) -> None:
    """Forget FQDN (ADDRESS, when given, must be its address)."""
    _stage(home, lambda c: edits.remove_host(c, fqdn, address), f"removed host {fqdn.lower()}")


@hosts_group.command("list")
@home_option()
@_as_json
def hosts_list(home: Path, as_json: bool) -> None:
    """List the static host entries."""
    config = load_staged(home)
    _emit(as_json, [as_table(entry) for entry in config.hosts], *_hosts(config))


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
    _stage(
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
    _stage(
        home,
        lambda c: edits.set_digest_algorithms(c, algorithms),
        lambda c: f"digest algorithms: {', '.join(c.digest_algorithms)}",
    )


@config_group.command("fips")
@home_option()
@click.argument("state", type=click.Choice(["on", "off"], case_sensitive=False))
def fips(home: Path, state: str) -> None:
    """The FIPS-approved-algorithms policy: on means TLS 1.2+ and approved suites only."""
    _stage(home, lambda c: edits.set_fips(c, state == "on"), f"FIPS policy: {state}")


@config_group.command("tls-profile")
@home_option()
@click.argument("profile", type=click.Choice([p.value for p in TlsProfile], case_sensitive=False))
def tls_profile(home: Path, profile: str) -> None:
    """The TLS versions allowed: default (TLS 1.2 and up) or legacy-tls1 (TLS 1.0 and up,
    for old peers; it needs the FIPS policy off)."""
    chosen = TlsProfile(profile.lower())
    _stage(home, lambda c: edits.set_tls_profile(c, chosen), f"TLS profile: {chosen.value}")


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
    with ConfigStore.open(home) as store:
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
    click.echo(
        f"{identity.role.value} node {identity.fqdn} ({identity.ip}){edition}, "
        f"{'staged' if staged else 'running'} configuration"
    )
    click.echo(f"domains: {', '.join(config.domains) or '(none)'}")
    tables: list[tuple[str, Table]] = [("static routes", _routes(config))]
    if config.role is Role.OCS:
        tables = [
            ("connections", _connections(config)),
            *tables,
            ("host authorization", _host_authorizations(config)),
        ]
    else:
        click.echo(f"listeners: {_listeners_text(config)}")
        click.echo(f"routing mode: {config.routing_mode.value}")
        click.echo(f"TLS peer subjects: {', '.join(config.peer_subjects) or '(none)'}")
        click.echo(f"peer directory: {len(config.peer_directory)} user(s)")
        tables.append(("incoming ACL", _acl(config)))
    click.echo(f"FIPS policy: {'on' if config.fips else 'off'}")
    click.echo(f"rate limits: {_rate_limits_text(config)}")
    click.echo(f"digest algorithms: {', '.join(config.digest_algorithms)}")
    for title, (headers, rows) in [*tables, ("users", _users(config)), ("hosts", _hosts(config))]:
        click.echo(f"{title}:")
        _echo_table(headers, rows, indent="  ")
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
    text = to_toml(load_staged(home))
    if target is None:
        click.echo(text, nl=False)
        return
    try:
        handle, temporary = tempfile.mkstemp(dir=target.parent, prefix=f".{target.name}.")
        with os.fdopen(handle, "w", encoding="utf-8") as stream:
            stream.write(text)
        os.replace(temporary, target)
    except OSError as exc:
        raise ConfigError(
            "--file", f"cannot write {target}: {exc.strerror}", "choose a writable path"
        ) from None
    click.echo(f"exported the staged configuration to {target}")


@config_group.command("import")
@home_option()
@click.argument("source", metavar="FILE", type=click.File("rb"))
def import_(home: Path, source: IO[bytes]) -> None:
    """Make a TOML document (from export; - for standard input) the staged configuration.

    The document is validated as a whole and applied all at once, or not at all.
    """
    config = from_toml(_utf8(source, "FILE"))
    with ConfigStore.open(home) as store:
        before = store.load("staged")
        store.replace_staged(config)
        staged = _staged_note(store, home)
    difference = changes(before, config)
    click.echo(f"imported: {'; '.join(difference) or 'no change'} ({staged})")
