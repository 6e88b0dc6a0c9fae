"""Rules of the static route steps: each side's routes to the other partition."""

from __future__ import annotations

from collections.abc import Iterator, Sequence

from intrafed.check.facts import NodeFacts
from intrafed.check.findings import Finding, Step
from intrafed.check.rules.catalogue import rule
from intrafed.check.rules.shared import (
    certificate_names,
    covers_domain,
    federation_routes,
    route_address,
)
from intrafed.config.model import ImpListeners, NodeConfig, Role, StaticRoute
from intrafed.pki.validation import covers


def _route_step(config: NodeConfig) -> Step:
    return Step.OCS_ROUTE if config.role is Role.OCS else Step.IMP_ROUTE


def _route_text(route: StaticRoute) -> str:
    return f"{route.domain} → {route.transport} {route.next_hop}:{route.port}"


def _tls_port(config: NodeConfig) -> int | None:
    """The port the other side's TLS route should use: OCS MTLS, IM&P Peer Auth."""
    if config.role is Role.IMP:
        return (config.listeners or ImpListeners()).peer_auth
    ports = [c.port for c in config.connections if c.transport == "MTLS"]
    return ports[0] if ports else None


def _listener_at(config: NodeConfig, port: int) -> tuple[str, str] | None:
    """(transport, description) of what listens on ``port``."""
    if config.role is Role.IMP:
        ports = config.listeners or ImpListeners()
        named = {
            ports.tcp: ("TCP", "TCP listener"),
            ports.peer_auth: ("MTLS", "Peer Auth listener"),
            ports.server_auth: ("TLS", "Server Auth listener (it asks no client certificate)"),
        }
        return named.get(port)
    for connection in config.connections:
        if connection.port == port:
            return connection.transport, f"{connection.transport} connection"
    return None


def _route_fix(node: NodeFacts, route: StaticRoute, **changes: object) -> str:
    """``route remove`` then ``route add`` with ``changes`` (option → value; True for a flag,
    None to leave one out)."""
    options: dict[str, object] = {
        "--domain": route.domain,
        "--transport": route.transport,
        "--port": route.port,
        "--ip": route.ip,
        "--fqdn": route.fqdn,
        "--priority": route.priority if route.priority != 1 else None,
    } | changes
    words = [
        name if value is True else f"{name} {value}"
        for name, value in options.items()
        if value is not None and value is not False
    ]
    priority = f" --priority {route.priority}" if route.priority != 1 else ""
    return (
        f"intrafed config route remove {node.home_arg} --domain {route.domain}{priority} && "
        f"intrafed config route add {node.home_arg} {' '.join(words)}"
    )


def _hosts_fix(node: NodeFacts, fqdn: str, ip: str | None) -> str:
    """`` && intrafed config hosts add FQDN IP`` when ``fqdn`` does not resolve to ``ip``
    from ``node`` yet (remove a wrong entry first)."""
    if ip is None or node.resolution(fqdn).address == ip:
        return ""
    remove = (
        f" && intrafed config hosts remove {fqdn} {node.home_arg}"
        if any(entry.fqdn == fqdn for entry in node.config.hosts)
        else ""
    )
    return f"{remove} && intrafed config hosts add {fqdn} {ip} {node.home_arg}"


def _named(fqdn: str, others: Sequence[NodeFacts]) -> NodeFacts | None:
    """The node of the other side whose certificate (or configured names) carry ``fqdn``."""
    return next((o for o in others if any(covers(n, fqdn) for n in certificate_names(o))), None)


def missing_route_fix(node: NodeFacts, domain: str, others: Sequence[NodeFacts]) -> str:
    """The command that adds the missing route for ``domain``: to the other side as its
    listeners and its routes to us say (TCP by IP when it reaches us over TCP, else TLS by
    its certificate name to its Peer Auth / MTLS port), or the seed's route to fill in."""
    ip = node.config.identity.ip
    peer = others[0] if others else None
    if peer is None:
        what = "IM and Presence node" if node.config.role is Role.OCS else "OCS server or pool"
        return (
            f"intrafed config route add {node.home_arg} --domain {domain} --transport TLS "
            f"--port 5061 --fqdn <{what} FQDN>"
        )
    theirs = [r for r in federation_routes(peer.config) if route_address(peer, r) == ip]
    tls_port, tcp_port = _tls_port(peer.config), _tcp_port(peer.config)
    if ((theirs and theirs[0].transport == "TCP") or tls_port is None) and tcp_port is not None:
        return (
            f"intrafed config route add {node.home_arg} --domain {domain} --transport TCP "
            f"--port {tcp_port} --ip {peer.config.identity.ip}"
        )
    name = peer.config.identity.certificate_name
    return (
        f"intrafed config route add {node.home_arg} --domain {domain} --transport TLS "
        f"--port {tls_port or 5061} --fqdn {name}"
    ) + _hosts_fix(node, name, peer.config.identity.ip)


def unreachable(domain: str) -> str:
    """What a missing route for ``domain`` does."""
    return f"users of {domain} homed on the other side cannot be reached"


def _peer_at(address: str | None, others: Sequence[NodeFacts]) -> NodeFacts | None:
    return next((other for other in others if other.config.identity.ip == address), None)


def check_routes(node: NodeFacts, others: Sequence[NodeFacts]) -> Iterator[Finding]:
    config = node.config
    step = _route_step(config)
    for domain in config.domains:
        if not any(covers_domain(route, domain) for route in config.routes):
            yield rule("route.missing").finding(
                node.name,
                f"has no static route for {domain}: {unreachable(domain)}",
                missing_route_fix(node, domain, others),
                step=step,
            )
    for route in federation_routes(config):
        if route.phone_uri:
            yield rule("route.phone-uri").finding(
                node.name,
                f"route {_route_text(route)} has Phone URI checked: it matches phone URIs only, "
                "so no user of the domain crosses",
                _route_fix(node, route, **{"--phone-uri": None}),
                step=step,
            )
        if route.replace_host:
            yield rule("route.replace-host").finding(
                node.name,
                f"route {_route_text(route)} has Replace host checked: the Request-URI reaches "
                f"the peer as user@{route.next_hop}, a domain it does not serve (403)",
                _route_fix(node, route, **{"--replace-host": None}),
                step=step,
            )
        yield from _route_target(node, route, others, step)


def _route_target(
    node: NodeFacts, route: StaticRoute, others: Sequence[NodeFacts], step: Step
) -> Iterator[Finding]:
    """Where a federation route leads: the name resolves, to a node of the other side,
    whose certificate names it, on a listener of the route's transport."""
    if route.fqdn is not None:
        resolution = node.resolution(route.fqdn)
        if resolution.address is None:
            named = _named(route.fqdn, others)
            ip = named.config.identity.ip if named is not None else "<its IP>"
            yield rule("route.unresolved").finding(
                node.name,
                f"route {_route_text(route)}: {route.fqdn} does not resolve "
                f"(not in the hosts table; {resolution.source}): nothing crosses (or add it "
                "to DNS)",
                f"intrafed config hosts add {route.fqdn} {ip} {node.home_arg}",
                step=step,
            )
            return
    if not others:
        return
    address = route_address(node, route)
    peer = _peer_at(address, others)
    if peer is None and (
        any(m.ip == address for o in others for m in o.members)
        or any(o.config.identity.cluster == route.fqdn for o in others)
    ):
        # Another member of the other side's pool, or its cluster's name (a load balancer
        # or DNS in front of the members): any member takes any request.
        return
    if peer is None:
        known = ", ".join(f"{o.name} ({o.config.identity.ip})" for o in others)
        how = f"{route.fqdn} resolves to {address}" if route.fqdn else f"next hop {address}"
        named = _named(route.fqdn, others) if route.fqdn else None
        named = named or (others[0] if len(others) == 1 else None)
        ip = named.config.identity.ip if named is not None else "<the peer's IP>"
        fix = (
            f"intrafed config hosts remove {route.fqdn} {node.home_arg} && intrafed config "
            f"hosts add {route.fqdn} {ip} {node.home_arg}"
            if route.fqdn and any(entry.fqdn == route.fqdn for entry in node.config.hosts)
            else f"intrafed config hosts add {route.fqdn} {ip} {node.home_arg}"
            if route.fqdn
            else _route_fix(node, route, **{"--ip": ip})
        )
        yield rule("route.address").finding(
            node.name,
            f"route {_route_text(route)}: {how}, which is none of the other side's nodes ({known})",
            fix,
            step=step,
        )
        return
    if route.fqdn is not None:
        names = certificate_names(peer)
        if not any(covers(name, route.fqdn) for name in names):
            name = peer.config.identity.certificate_name
            yield rule("route.principal").finding(
                node.name,
                f"wrong principal: certificate of {peer.name} names {', '.join(names)}, route "
                f"{route.domain} expects {route.fqdn}: the TLS handshake is refused",
                _route_fix(node, route, **{"--fqdn": name})
                + _hosts_fix(node, name, peer.config.identity.ip),
                step=step,
            )
    listener = _listener_at(peer.config, route.port)
    wanted = "MTLS" if route.transport == "TLS" else "TCP"
    if listener is None or listener[0] != wanted:
        found = f"its {listener[1]}" if listener else "nothing of it listens there"
        right = _tls_port(peer.config) if wanted == "MTLS" else _tcp_port(peer.config)
        expected = "Peer Auth" if peer.config.role is Role.IMP else f"{wanted} connection"
        fix = (
            _route_fix(node, route, **{"--port": right})
            if right is not None
            else f"intrafed config connection add --transport {wanted} --port {route.port} "
            f"--ip {peer.config.identity.ip} {peer.home_arg}"
        )
        yield rule("route.port").finding(
            node.name,
            f"route {_route_text(route)} reaches {peer.name} port {route.port}: {found}; "
            f"a {route.transport} route needs its {expected}"
            + (f" ({right})" if right is not None else ""),
            fix,
            step=step,
        )


def _tcp_port(config: NodeConfig) -> int | None:
    if config.role is Role.IMP:
        return (config.listeners or ImpListeners()).tcp
    ports = [c.port for c in config.connections if c.transport == "TCP"]
    return ports[0] if ports else None
