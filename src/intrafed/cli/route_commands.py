"""``intrafed route explain``: the routing decision for a URI, and why (a dry run)."""

from __future__ import annotations

import ipaddress
import json
from pathlib import Path

import click

from intrafed.cli.common import home_option, load_staged
from intrafed.policy import peer_partition_route, trusted_peer
from intrafed.routing import Local, RoutingTables, ToPeer, decide
from intrafed.sip import RemoteSipError, parse_uri
from intrafed.sip.decisions import Reject


@click.group("route")
def route_group() -> None:
    """Routing decisions of the node."""


def _is_ip(host: str) -> bool:
    try:
        ipaddress.ip_address(host)
    except ValueError:
        return False
    return True


@route_group.command("explain")
@home_option()
@click.argument("uri")
@click.option(
    "--from-peer",
    "source",
    metavar="HOST",
    help="Decide as if the request came from HOST (an IP, or a certificate's FQDN).",
)
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object.")
def explain_command(home: Path, uri: str, source: str | None, as_json: bool) -> None:
    """Where a request for URI would go on this node (staged configuration), and why."""
    config = load_staged(home)
    try:
        target = parse_uri(uri)
    except RemoteSipError as exc:
        raise click.BadParameter(exc.reason, param_hint="URI") from None
    trust, route = None, None
    if source is not None:
        ip, names = (source, ()) if _is_ip(source) else ("", (source,))
        trust = trusted_peer(config, ip, names)
        hosts = {entry.fqdn: entry.ip for entry in config.hosts}
        route = peer_partition_route(config.routes, config.domains, hosts, ip, names)
    from_peer = trust is not None and route is not None
    decision = decide(target, RoutingTables.from_config(config), from_peer=from_peer, explain=True)
    if source is None:
        peer = "request from a client"
    elif trust is None:
        peer = f"{source} is not a trusted peer"
    elif route is None:
        peer = (
            f"{source} is trusted ({trust}) but is no static route's next hop: "
            "not the peer partition"
        )
    else:
        peer = f"{source} is the peer partition ({trust}; next hop of static route {route.domain})"
    verdict: dict[str, object]
    if isinstance(decision, Local):
        verdict = {"decision": "local", "aor": decision.aor}
        line = f"local: {decision.aor} is handled on this node"
    elif isinstance(decision, ToPeer):
        hops = [
            f"{r.transport} {r.next_hop}:{r.port} (priority {r.priority})" for r in decision.routes
        ]
        verdict = {"decision": "forward", "next_hops": hops}
        if decision.request_uri is not None:
            verdict["request_uri"] = str(decision.request_uri)
        line = "forward to " + ", then ".join(hops)
    else:
        assert isinstance(decision, Reject)
        verdict = {"decision": "refuse", "status": decision.status, "rule": decision.rule}
        line = f"refuse: {decision.status} — {decision.rule}"
    if as_json:
        click.echo(json.dumps({**verdict, "peer": peer, "reasons": list(decision.reasons)}))
        return
    click.echo(line)
    click.echo(f"  because: {peer}")
    for reason in decision.reasons:
        click.echo(f"           {reason}")
