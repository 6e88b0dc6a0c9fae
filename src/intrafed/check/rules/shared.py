"""What rules of several steps ask of the nodes: federation routes, addresses, TLS use,
certificate names."""

from __future__ import annotations

from collections.abc import Sequence

from intrafed.check.facts import NodeFacts
from intrafed.config.model import NodeConfig, Role, StaticRoute
from intrafed.pki.certificates import proven_names


def covers_domain(route: StaticRoute, domain: str) -> bool:
    """Whether the route's domain (``*.`` for any sub-domain) covers ``domain``."""
    if route.domain.startswith("*."):
        return domain.endswith(route.domain[1:])
    return route.domain == domain


def federation_routes(config: NodeConfig) -> list[StaticRoute]:
    """Routes for a domain this node serves: the ones to the other partition."""
    return [r for r in config.routes if any(covers_domain(r, d) for d in config.domains)]


def route_address(node: NodeFacts, route: StaticRoute) -> str | None:
    """The address the route's next hop resolves to from ``node``."""
    if route.ip is not None:
        return route.ip
    return node.resolution(route.fqdn or "").address


def federates_over_tls(node: NodeFacts, others: Sequence[NodeFacts]) -> bool:
    """Whether the partitions speak TLS with each other: a federation route of this node
    is TLS, or a route of the other side reaches this node over TLS (TLS connections for
    users do not count)."""
    if any(route.transport == "TLS" for route in federation_routes(node.config)):
        return True
    ip = node.config.identity.ip
    return any(
        route.transport == "TLS" and route_address(other, route) == ip
        for other in others
        for route in federation_routes(other.config)
    )


def opens_tls(sender: NodeFacts, receiver: NodeFacts) -> bool:
    """Whether ``sender`` sends its requests to ``receiver`` over TLS (presenting its
    certificate): its routes to ``receiver`` say so, else whether the sides speak TLS."""
    ip = receiver.config.identity.ip
    transports = {
        route.transport
        for route in federation_routes(sender.config)
        if route_address(sender, route) == ip
    }
    return "TLS" in transports if transports else federates_over_tls(sender, [receiver])


def has_tls_listeners(config: NodeConfig) -> bool:
    """Whether the node listens for TLS at all (IM&P always does; OCS by its connections)."""
    if config.role is Role.IMP:
        return True
    return any(c.transport in ("TLS", "MTLS") for c in config.connections)


def certificate_names(node: NodeFacts) -> tuple[str, ...]:
    """The names the node's certificate proves (its configured names when unknown)."""
    certificates = node.certificates
    if certificates is not None and certificates.selected is not None:
        return proven_names(certificates.selected)
    identity = node.config.identity
    return tuple(dict.fromkeys([identity.certificate_name, identity.fqdn]))
