"""Rules of the domain and listener steps: served domains, listeners and connections,
and listeners that clash with the other side's on one machine."""

from __future__ import annotations

import ipaddress
from collections.abc import Iterator, Sequence

from intrafed.check.facts import NodeFacts
from intrafed.check.findings import Finding
from intrafed.check.rules.catalogue import ERROR, WARNING, rule
from intrafed.check.rules.shared import federates_over_tls, federation_routes, route_address
from intrafed.config.model import ImpListeners, NodeConfig, Role, StaticRoute
from intrafed.policy.peers import peer_trust

ANY_ADDRESS = "0.0.0.0"  # noqa: S104 - what a connection on All binds
STANDARD_TLS_PORT = 5061
"""Where the seed wants OCS's MTLS and IM&P's Peer Auth."""


def check_domains(node: NodeFacts, others: Sequence[NodeFacts]) -> Iterator[Finding]:
    config = node.config
    if not config.domains:
        theirs = sorted({d for other in others for d in other.config.domains}) or ["<DOMAIN>"]
        yield rule("domain.none").finding(
            node.name,
            "serves no SIP domain: no user can be provisioned and nothing crosses",
            " && ".join(f"intrafed config domain add {d} {node.home_arg}" for d in theirs),
        )
    for other in others:
        for domain in other.config.domains:
            if domain in config.domains:
                continue
            related = [
                d for d in config.domains if d.endswith(f".{domain}") or domain.endswith(f".{d}")
            ]
            hint = (
                f"; it serves {related[0]}, and a sub-domain is not the same domain"
                if related
                else ""
            )
            yield rule("domain.mismatch").finding(
                node.name,
                f"does not serve {domain}, which {other.name} serves{hint}: users of {domain} "
                f"cannot cross (or remove it from {other.name}: intrafed config domain remove "
                f"{domain} {other.home_arg})",
                f"intrafed config domain add {domain} {node.home_arg}",
            )


def _peer_routes_to(node: NodeFacts, others: Sequence[NodeFacts]) -> list[StaticRoute]:
    """The other side's federation routes whose next hop is this node."""
    ip = node.config.identity.ip
    return [
        route
        for other in others
        for route in federation_routes(other.config)
        if route_address(other, route) == ip
    ]


def _free_server_auth(ports: ImpListeners, taken: int) -> int:
    """A port for Server Auth off the standard TLS port and the other listeners."""
    used = {ports.tcp, taken, STANDARD_TLS_PORT}
    candidates: list[int] = [5063, 5062, *range(5064, 65536)]
    return next(port for port in candidates if port not in used)


def check_listeners(node: NodeFacts, others: Sequence[NodeFacts]) -> Iterator[Finding]:
    config = node.config
    if config.role is Role.IMP:
        ports = config.listeners or ImpListeners()
        if ports.server_auth == STANDARD_TLS_PORT:
            yield rule("listener.imp-server-auth").finding(
                node.name,
                f"Server Auth listens on {STANDARD_TLS_PORT} and Peer Auth on {ports.peer_auth}: "
                f"OCS routes to {STANDARD_TLS_PORT} expecting Peer Auth (MTLS), gets no client "
                "certificate asked, and its requests are refused (403)",
                f"intrafed config listener set --peer-auth {STANDARD_TLS_PORT} --server-auth "
                f"{_free_server_auth(ports, STANDARD_TLS_PORT)} {node.home_arg}",
            )
        return
    own = config.identity.ip
    incoming = _peer_routes_to(node, others)
    transports = {c.transport for c in config.connections}
    if not transports & {"TCP", "MTLS"}:
        tcp = [r.port for r in incoming if r.transport == "TCP"]
        wanted, port = ("TCP", tcp[0]) if tcp else ("MTLS", _wanted_tls_port(incoming))
        yield rule("listener.ocs-none").finding(
            node.name,
            "has no TCP or MTLS connection, so IM and Presence cannot reach it",
            f"intrafed config connection add --transport {wanted} --port {port} --ip {own} "
            f"{node.home_arg}",
        )
        return
    if "MTLS" not in transports and federates_over_tls(node, others):
        tls = [c for c in config.connections if c.transport == "TLS"]
        port = _wanted_tls_port(incoming)
        replaced = next((c for c in tls if c.port == port), None)
        what = f"port {port} is TLS, not MTLS" if replaced else "there is no MTLS connection"
        peers = [o.config.identity.ip for o in others] or [
            address for r in federation_routes(config) if (address := route_address(node, r))
        ]
        by_ip = [ip for ip in peers if (trust := peer_trust(config, ip)) and trust.authenticated]
        broken = len(by_ip) < len(peers) or not peers
        effect = (
            "IM and Presence's requests are refused (403)"
            if broken
            else "IM and Presence is trusted by its IP only"
        )
        removal = (
            f"intrafed config connection remove --transport TLS --port {port} --ip "
            f"{replaced.ip} {node.home_arg} && "
            if replaced
            else ""
        )
        yield rule("listener.ocs-mtls").finding(
            node.name,
            f"TLS is used with IM and Presence but {what}: the peer's certificate is never asked "
            f"for, so its name cannot be authorized: {effect}",
            f"{removal}intrafed config connection add --transport MTLS --port {port} --ip "
            f"{replaced.ip if replaced else own} {node.home_arg}",
            severity=ERROR if broken else WARNING,
        )


def _wanted_tls_port(incoming: Sequence[StaticRoute]) -> int:
    """The port the other side's TLS routes to this node use (the seed's 5061 when none)."""
    return next((r.port for r in incoming if r.transport == "TLS"), STANDARD_TLS_PORT)


def _bound(config: NodeConfig) -> list[tuple[str, str, int]]:
    """(transport, address, port) of every listener the node binds; All is 0.0.0.0."""
    if config.role is Role.IMP:
        ports, ip = config.listeners or ImpListeners(), config.identity.ip
        return [
            ("TCP", ip, ports.tcp),
            ("MTLS", ip, ports.peer_auth),
            ("TLS", ip, ports.server_auth),
        ]
    return [
        (c.transport, ANY_ADDRESS if c.ip == "All" else c.ip, c.port) for c in config.connections
    ]


def _same_machine(one: NodeConfig, other: NodeConfig) -> bool:
    """Whether two nodes share a machine, as far as their addresses tell: both on
    loopback (a lab), or the same address."""
    a, b = ipaddress.ip_address(one.identity.ip), ipaddress.ip_address(other.identity.ip)
    return a == b or (a.is_loopback and b.is_loopback)


def _taken(
    listeners: Sequence[tuple[str, str, int]], address: str, port: int
) -> tuple[str, str] | None:
    """(transport, address) of the listener that binding ``address:port`` would clash with."""
    for transport, bound, bound_port in listeners:
        if bound_port == port and (bound == address or ANY_ADDRESS in (bound, address)):
            return transport, bound
    return None


def check_listener_clash(node: NodeFacts, others: Sequence[NodeFacts]) -> Iterator[Finding]:
    """Reported on the OCS side, whose connections choose their address."""
    config = node.config
    if config.role is not Role.OCS:
        return
    own = config.identity.ip
    for peer in others:
        if not _same_machine(config, peer.config):
            continue
        theirs = _bound(peer.config)
        used = {port for _, _, port in _bound(config) + theirs}
        for transport, address, port in _bound(config):
            clash = _taken(theirs, address, port)
            if clash is None:
                continue
            ip_option = "" if address == ANY_ADDRESS else f" --ip {address}"
            new_port = (
                port
                if _taken(theirs, own, port) is None
                else next(free for free in range(port + 1, 65536) if free not in used)
            )
            moved = "" if new_port == port else f"; then point what uses port {port} to {new_port}"
            where = "All" if address == ANY_ADDRESS else address
            yield rule("listener.clash").finding(
                node.name,
                f"its {transport} connection on {where}:{port} takes the port of {peer.name}'s "
                f"{clash[0]} listener on {clash[1]}:{port}, on the same machine: the node "
                f"started second cannot listen{moved}",
                f"intrafed config connection remove --transport {transport} --port {port}"
                f"{ip_option} {node.home_arg} && intrafed config connection add --transport "
                f"{transport} --port {new_port} --ip {own} {node.home_arg}",
            )
