"""``intrafed config route|routing-mode|hosts``: where requests for the other partition
go: static routes, IM&P's routing mode, and the names of next hops without DNS."""

from __future__ import annotations

from pathlib import Path

import click

from intrafed.cli.common import home_option, json_option, load_staged
from intrafed.cli.config_staging import TABLE_JSON, Table, emit, stage, yes
from intrafed.config import edits
from intrafed.config.document import as_table
from intrafed.config.model import HostEntry, NodeConfig, Role, RoutingMode, StaticRoute


def routes_table(config: NodeConfig) -> Table:
    """The static routes as the role's console shows them."""
    if config.role is Role.OCS:
        return ("MATCHING URI", "TRANSPORT", "NEXT HOP", "PORT", "PHONE URI", "REPLACE HOST"), [
            (
                r.domain,
                r.transport,
                r.next_hop,
                str(r.port),
                yes(r.phone_uri),
                yes(r.replace_host),
            )
            for r in config.routes
        ]
    return ("DESTINATION", "TRANSPORT", "NEXT HOP", "PORT", "PRIORITY"), [
        (r.domain, r.transport, r.next_hop, str(r.port), str(r.priority))
        for r in sorted(config.routes, key=lambda route: route.key)
    ]


def hosts_table(config: NodeConfig) -> Table:
    """The static host entries."""
    return ("FQDN", "ADDRESS"), [(entry.fqdn, entry.ip) for entry in config.hosts]


@click.group("route")
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
    stage(home, lambda c: edits.add_route(c, route), f"added static route {_route_text(route)}")


def _route_text(route: StaticRoute) -> str:
    return f"{route.domain} → {route.transport} {route.next_hop}:{route.port}"


@route_group.command("set")
@home_option()
@click.option("--domain", required=True, help="The route's matching URI.")
@click.option("--priority", type=int, default=1, help="imp: which of the domain's routes.")
@click.option("--transport", metavar="TCP|TLS", help="A new next hop transport.")
@click.option("--port", type=int, help="A new next hop port.")
@click.option("--ip", help="A new next hop address (TCP routes); replaces an FQDN.")
@click.option("--fqdn", help="A new next hop FQDN (TLS routes); replaces an address.")
@click.option("--phone-uri/--no-phone-uri", default=None, help="ocs: match only phone URIs.")
@click.option(
    "--replace-host/--no-replace-host",
    default=None,
    help="ocs: rewrite the Request-URI host to the next hop.",
)
@click.option("--new-priority", type=int, help="imp: move the route to this priority.")
def route_set(
    home: Path,
    domain: str,
    priority: int,
    transport: str | None,
    port: int | None,
    ip: str | None,
    fqdn: str | None,
    phone_uri: bool | None,
    replace_host: bool | None,
    new_priority: int | None,
) -> None:
    """Change the static route for DOMAIN in place: the values given replace its own,
    checked as intrafed config route add checks them."""
    key = (domain.lower(), new_priority or priority)

    def changed(config: NodeConfig) -> str:
        [route] = [r for r in config.routes if r.key == key]
        return f"changed static route {_route_text(route)}"

    stage(
        home,
        lambda c: edits.set_route(
            c,
            domain,
            priority,
            transport=transport,
            port=port,
            ip=ip,
            fqdn=fqdn,
            phone_uri=phone_uri,
            replace_host=replace_host,
            new_priority=new_priority,
        ),
        changed,
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
    stage(
        home,
        lambda c: edits.remove_route(
            c, domain, priority, transport=transport, port=port, next_hop=fqdn or ip
        ),
        f"removed static route {domain.lower()}",
    )


@route_group.command("list")
@home_option()
@json_option(TABLE_JSON)
def route_list(home: Path, as_json: bool) -> None:
    """List the static routes."""
    config = load_staged(home)
    emit(as_json, [as_table(r) for r in config.routes], *routes_table(config))


@click.command("routing-mode")
@home_option()
@click.argument(
    "mode", type=click.Choice([mode.value for mode in RoutingMode], case_sensitive=False)
)
def routing_mode(home: Path, mode: str) -> None:
    """IM&P: basic forwards every same-domain user not homed here; advanced only known ones."""
    stage(home, lambda c: edits.set_routing_mode(c, RoutingMode(mode)), f"routing mode: {mode}")


@click.group("hosts")
def hosts_group() -> None:
    """Static name resolution, used before DNS."""


@hosts_group.command("add")
@home_option()
@click.argument("fqdn")
@click.argument("address")
def hosts_add(home: Path, fqdn: str, address: str) -> None:
    """Resolve FQDN to ADDRESS."""
    entry = HostEntry(fqdn, address)
    stage(home, lambda c: edits.add_host(c, entry), f"added host {entry.fqdn} {entry.ip}")


@hosts_group.command("set")
@home_option()
@click.argument("fqdn")
@click.argument("address")
def hosts_set(home: Path, fqdn: str, address: str) -> None:
    """Resolve the listed FQDN to a new ADDRESS."""
    entry = HostEntry(fqdn, address)
    stage(home, lambda c: edits.set_host(c, entry), f"changed host {entry.fqdn} {entry.ip}")


@hosts_group.command("remove")
@home_option()
@click.argument("fqdn")
@click.argument("address", required=False)
def hosts_remove(home: Path, fqdn: str, address: str | None) -> None:
    """Forget FQDN (ADDRESS, when given, must be its address)."""
    stage(home, lambda c: edits.remove_host(c, fqdn, address), f"removed host {fqdn.lower()}")


@hosts_group.command("list")
@home_option()
@json_option(TABLE_JSON)
def hosts_list(home: Path, as_json: bool) -> None:
    """List the static host entries."""
    config = load_staged(home)
    emit(as_json, [as_table(entry) for entry in config.hosts], *hosts_table(config))
