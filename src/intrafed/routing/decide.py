"""The routing decision of DESIGN §4, pure: a Request-URI and the node's tables in, where
the request goes (and why) out. ``intrafed route explain`` prints the same decision.

1. our domain and the user is provisioned here (enabled or not) → local;
2. our domain, not ours, a static route matches → the peer partition — unless the request
   came from the peer partition: then the user exists on neither side → 404; in advanced
   routing mode only users of the peer directory go there, the rest get 404 at once;
3. a foreign domain with a matching route → forward;
4. otherwise 404 (our domain) or 403 (a foreign domain).
Phone URIs follow only routes marked ``phone_uri``; the other routes never take them.
"""

from __future__ import annotations

from dataclasses import dataclass

from intrafed.config.model import NodeConfig, RoutingMode, StaticRoute
from intrafed.sip.decisions import Reject
from intrafed.sip.uri import SipUri, TelUri, Uri


@dataclass(frozen=True, slots=True)
class RoutingTables:
    """What the decision reads, taken from one configuration."""

    domains: frozenset[str]
    users: frozenset[str]
    routes: tuple[StaticRoute, ...]
    routing_mode: RoutingMode = RoutingMode.BASIC
    peer_directory: frozenset[str] = frozenset()
    """Advanced routing mode: the other side's users (only they are forwarded)."""

    @classmethod
    def from_config(cls, config: NodeConfig) -> RoutingTables:
        """The tables of a node's configuration."""
        return cls(
            domains=frozenset(config.domains),
            users=frozenset(user.aor for user in config.users),
            routes=config.routes,
            routing_mode=config.routing_mode,
            peer_directory=frozenset(config.peer_directory),
        )


@dataclass(frozen=True, slots=True)
class Local:
    """The user is homed here: registrar, presence agent, or delivery to its contacts."""

    aor: str
    reasons: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class ToPeer:
    """Forward along ``routes`` (the first, then the next ones by priority while the
    earlier ones are unreachable); ``request_uri`` replaces the Request-URI when set."""

    routes: tuple[StaticRoute, ...]
    request_uri: Uri | None = None
    reasons: tuple[str, ...] = ()


RouteDecision = Local | ToPeer | Reject


def matching_routes(
    routes: tuple[StaticRoute, ...], host: str, phone: bool
) -> tuple[StaticRoute, ...]:
    """The routes whose Matching URI takes ``host``, most specific first, then by priority.

    An exact domain beats ``*.domain``; a longer ``*.`` suffix beats a shorter one. Phone
    URIs only take ``phone_uri`` routes and ordinary URIs never do.
    """
    host = host.lower()
    scored: list[tuple[int, int, StaticRoute]] = []
    for route in routes:
        if route.phone_uri != phone:
            continue
        if route.domain == host:
            specificity = 10_000
        elif route.domain.startswith("*.") and host.endswith(route.domain[1:]):
            specificity = len(route.domain)
        else:
            continue
        scored.append((-specificity, route.priority, route))
    if not scored:
        return ()
    best = min(score for score, _, _ in scored)
    return tuple(
        route for score, _, route in sorted(scored, key=lambda item: item[:2]) if score == best
    )


def _replace_host(uri: Uri, route: StaticRoute) -> Uri | None:
    if not route.replace_host or not isinstance(uri, SipUri):
        return None
    return uri._replace(host=route.next_hop, port=route.port)


def decide(
    uri: Uri, tables: RoutingTables, *, from_peer: bool = False, explain: bool = False
) -> RouteDecision:
    """Where a request for ``uri`` goes. ``from_peer``: it arrived from the peer partition.
    ``explain``: the decision carries its ``reasons`` (route explain); the per-request path
    leaves them out, so that no sentence is formatted for each message."""
    if not isinstance(uri, SipUri | TelUri):
        return Reject(416, f"Request-URI scheme {uri.scheme}: is not supported")
    phone = uri.is_phone
    host = uri.host.lower() if isinstance(uri, SipUri) else ""
    reasons: list[str] = []
    if isinstance(uri, SipUri) and host in tables.domains:
        aor = uri.aor
        if explain:
            reasons.append(f"{host} is one of our domains")
        if aor in tables.users:
            if explain:
                reasons.append(f"{aor} is provisioned here")
            return Local(aor, tuple(reasons))
        if explain:
            reasons.append(f"{aor} is not provisioned here")
        if from_peer:
            if explain:
                reasons.append("a request from the peer partition is never sent back to it")
            return Reject(
                404,
                f"{aor} is not provisioned here and the request came from the peer partition",
                reasons=tuple(reasons),
            )
        if tables.routing_mode is RoutingMode.ADVANCED:
            listed = aor in tables.peer_directory
            if explain:
                reasons.append(
                    f"advanced routing mode: {aor} is {'' if listed else 'not '}in the peer "
                    "directory"
                )
            if not listed:
                return Reject(
                    404,
                    f"{aor} is not in the peer partition's directory (advanced routing mode)",
                    reasons=tuple(reasons),
                )
    elif isinstance(uri, SipUri) and explain:
        reasons.append(f"{host} is not one of our domains")
    routes = (
        matching_routes(tables.routes, host, phone)
        if host
        else tuple(
            route for route in sorted(tables.routes, key=lambda r: r.priority) if route.phone_uri
        )
    )
    if routes:
        first = routes[0]
        if explain:
            reasons.append(
                f"static route {first.domain} (priority {first.priority}) → "
                f"{first.transport} {first.next_hop}:{first.port}"
            )
        return ToPeer(routes, _replace_host(uri, first), tuple(reasons))
    if isinstance(uri, SipUri) and host in tables.domains:
        return Reject(
            404,
            f"no static route for {host} and the user is not provisioned here",
            reasons=tuple(reasons),
        )
    kind = "phone number" if phone else f"domain {host}"
    return Reject(403, f"no static route for {kind}", reasons=tuple(reasons))
