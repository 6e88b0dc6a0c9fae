"""``intrafed route explain``: the routing decision for a URI, and why (a dry run)."""

from __future__ import annotations

import json
from pathlib import Path

import click

from intrafed.cli.common import fail, home_option, load_staged
from intrafed.config.values import is_ip_address
from intrafed.control.client import NodeNotRunningError, ask
from intrafed.control.protocol import ControlError
from intrafed.policy import peer_partition_route, trusted_peer
from intrafed.routing import Local, RoutingTables, ToPeer, decide
from intrafed.sip import RemoteSipError, parse_uri
from intrafed.sip.decisions import Reject


@click.group("route")
def route_group() -> None:
    """Routing decisions of the node."""


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
@click.option(
    "--staged",
    is_flag=True,
    help="Decide on the staged configuration even when the node runs.",
)
def explain_command(home: Path, uri: str, source: str | None, as_json: bool, staged: bool) -> None:
    """Where a request for URI would go on this node, and why: asked of the running node
    (its routing, authorization and next-hop health), or decided on the staged
    configuration when no node runs (or with --staged)."""
    try:
        target = parse_uri(uri)
    except RemoteSipError as exc:
        raise click.BadParameter(exc.reason, param_hint="URI") from None
    if not staged:
        try:
            live = ask(home, "explain", uri=uri, source=source)
        except NodeNotRunningError:
            pass
        except ControlError as exc:
            fail(str(exc))
        else:
            _print_live(live, as_json)
            return
    config = load_staged(home)
    trust, route = None, None
    if source is not None:
        ip, names = (source, ()) if is_ip_address(source) else ("", (source,))
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
        click.echo(
            json.dumps({**verdict, "peer": peer, "reasons": list(decision.reasons), "live": False})
        )
        return
    click.echo(line)
    click.echo(f"  because: {peer}")
    for reason in decision.reasons:
        click.echo(f"           {reason}")
    click.echo(f"  (decided on the staged configuration: no node runs on {home})")


def _print_live(verdict: object, as_json: bool) -> None:
    if not isinstance(verdict, dict):
        fail(f"the node gave an unexpected answer to explain: {verdict!r}")
    if as_json:
        click.echo(json.dumps({**verdict, "live": True}))
        return
    decision = verdict.get("decision")
    if decision == "local":
        line = f"local: {verdict['aor']} is handled on this node ({verdict['contacts']} contacts)"
    elif decision == "forward":
        hops = [
            f"{hop['next_hop']} (priority {hop['priority']}, "
            + ("up)" if hop["up"] else f"down: {hop['down_because']})")
            for hop in verdict["next_hops"]
        ]
        line = "forward to " + ", then ".join(hops)
        if "answer" in verdict:
            line += f"; answered now: {verdict['answer']}"
    else:
        line = f"refuse: {verdict.get('status')} — {verdict.get('rule')}"
    click.echo(line)
    click.echo(f"  authorization: {verdict.get('authorization')}")
    for reason in verdict.get("reasons", []):
        click.echo(f"  because: {reason}")
    click.echo("  (asked the running node: its routing, trust and next-hop health now)")
