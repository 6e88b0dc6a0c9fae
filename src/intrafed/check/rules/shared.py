"""What rules of several steps ask of the nodes: federation routes, addresses, TLS use,
certificate names."""

from __future__ import annotations

from collections.abc import Sequence

from intrafed.check.facts import NodeFacts
from intrafed.config.model import NodeConfig, StaticRoute
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


def uses_tls(node: NodeFacts, others: Sequence[NodeFacts]) -> bool:
    """Whether the node opens or accepts TLS with the other side."""
    config = node.config
    if any(route.transport == "TLS" for route in config.routes):
        return True
    if any(c.transport in ("TLS", "MTLS") for c in config.connections):
        return True
    ip = config.identity.ip
    return any(
        route.transport == "TLS" and route_address(other, route) == ip
        for other in others
        for route in other.config.routes
    )


def certificate_names(node: NodeFacts) -> tuple[str, ...]:
    """The names the node's certificate proves (its configured names when unknown)."""
    certificates = node.certificates
    if certificates is not None and certificates.selected is not None:
        return proven_names(certificates.selected)
    identity = node.config.identity
    return tuple(dict.fromkeys([identity.certificate_name, identity.fqdn]))
