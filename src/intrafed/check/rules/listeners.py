"""Rules of the domain and listener steps: served domains, listeners and connections,
and listeners that clash with the other side's on one machine."""

from __future__ import annotations

import ipaddress
from collections.abc import Iterator, Sequence

from intrafed.check.facts import NodeFacts
from intrafed.check.findings import Finding
from intrafed.check.rules.catalogue import rule
from intrafed.check.rules.shared import uses_tls
from intrafed.config.model import ImpListeners, NodeConfig, Role

ANY_ADDRESS = "0.0.0.0"  # noqa: S104 - what a connection on All binds
STANDARD_TLS_PORT = 5061
"""Where the seed wants OCS's MTLS and IM&P's Peer Auth."""


def check_domains(node: NodeFacts, others: Sequence[NodeFacts]) -> Iterator[Finding]:
    config = node.config
    if not config.domains:
        yield rule("domain.none").finding(
            node.name,
            "serves no SIP domain",
            f"intrafed config domain add DOMAIN {node.home_arg}",
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
                f"does not serve {domain}, which {other.name} serves{hint}",
                f"intrafed config domain add {domain} {node.home_arg} (or remove it from "
                f"{other.name}: intrafed config domain remove {domain} {other.home_arg})",
            )


def check_listeners(node: NodeFacts, others: Sequence[NodeFacts]) -> Iterator[Finding]:
    config = node.config
    if config.role is Role.IMP:
        ports = config.listeners or ImpListeners()
        if ports.server_auth == STANDARD_TLS_PORT:
            yield rule("listener.imp-server-auth").finding(
                node.name,
                f"Server Auth listens on {STANDARD_TLS_PORT} and Peer Auth on {ports.peer_auth}: "
                "OCS routes to 5061 expecting Peer Auth (MTLS)",
                f"intrafed config listener set --peer-auth 5061 --server-auth 5063 {node.home_arg}",
            )
        return
    transports = {c.transport for c in config.connections}
    if not transports & {"TCP", "MTLS"}:
        yield rule("listener.ocs-none").finding(
            node.name,
            "has no TCP or MTLS connection, so IM and Presence cannot reach it",
            f"intrafed config connection add --transport MTLS --port 5061 {node.home_arg} "
            "(and/or --transport TCP --port 5060)",
        )
        return
    if "MTLS" not in transports and uses_tls(node, others):
        tls = [c.port for c in config.connections if c.transport == "TLS"]
        what = f"port {tls[0]} is TLS, not MTLS" if tls else "there is no MTLS connection"
        port = tls[0] if tls else STANDARD_TLS_PORT
        yield rule("listener.ocs-mtls").finding(
            node.name,
            f"TLS is used with IM and Presence but {what}: the peer's certificate is never asked "
            "for",
            (
                f"intrafed config connection remove --transport TLS --port {port} "
                f"{node.home_arg}, then "
                if tls
                else ""
            )
            + f"intrafed config connection add --transport MTLS --port {port} {node.home_arg}",
        )


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
            moved = "" if new_port == port else f" (and move what uses port {port} to {new_port})"
            where = "All" if address == ANY_ADDRESS else address
            yield rule("listener.clash").finding(
                node.name,
                f"its {transport} connection on {where}:{port} takes the port of {peer.name}'s "
                f"{clash[0]} listener on {clash[1]}:{port}, on the same machine: the node "
                "started second cannot listen",
                f"intrafed config connection remove --transport {transport} --port {port}"
                f"{ip_option} {node.home_arg}, then intrafed config connection add --transport "
                f"{transport} --port {new_port} --ip {own} {node.home_arg}{moved}",
            )
