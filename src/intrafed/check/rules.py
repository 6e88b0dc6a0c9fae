"""The checker's rules: the seed's task list and Cisco's Integration Troubleshooting
checklist as pure functions of the loaded nodes and the time.

Rules about one node run on every node given; rules that compare the two sides run when
nodes of both roles are given (``intrafed check --home A --peer B``).
"""

from __future__ import annotations

import datetime
import ipaddress
from collections.abc import Iterator, Sequence

from cryptography import x509

from intrafed.check.facts import NodeFacts
from intrafed.check.findings import CheckReport, Finding, Rule, Step
from intrafed.config.model import (
    ImpListeners,
    NodeConfig,
    Role,
    RoutingMode,
    StaticRoute,
    TlsProfile,
)
from intrafed.pki import Severity, validate
from intrafed.pki.certificates import proven_names, subject_text
from intrafed.pki.validation import covers
from intrafed.policy.peers import trusted_peer

ERROR, WARNING, INFO = Severity.ERROR, Severity.WARNING, Severity.INFO
ANY_ADDRESS = "0.0.0.0"  # noqa: S104 - what a connection on All binds
STANDARD_TLS_PORT = 5061
"""Where the seed wants OCS's MTLS and IM&P's Peer Auth."""

RULES: dict[str, Rule] = {
    rule.id: rule
    for rule in (
        Rule("domain.none", Step.DOMAINS, "the node serves no SIP domain"),
        Rule(
            "domain.mismatch",
            Step.DOMAINS,
            "a domain served on one side is not served on the other (a sub-domain is not the "
            "same domain)",
        ),
        Rule("listener.ocs-none", Step.PORTS, "the OCS server has no TCP or MTLS connection"),
        Rule(
            "listener.ocs-mtls",
            Step.PORTS,
            "OCS uses TLS towards IM and Presence but has no MTLS connection (Configure Mutual "
            "TLS Authentication on OCS)",
        ),
        Rule(
            "listener.imp-server-auth",
            Step.PORTS,
            "the IM and Presence Server Auth listener is on 5061, where OCS expects Peer Auth",
        ),
        Rule(
            "listener.clash",
            Step.PORTS,
            "an OCS connection and an IM and Presence listener on the same machine take the "
            "same port (one on All, or both on one address): the node started second cannot "
            "listen",
        ),
        Rule("route.missing", Step.OCS_ROUTE, "no static route for a domain this side serves"),
        Rule("route.phone-uri", Step.OCS_ROUTE, "the route matches phone URIs only"),
        Rule("route.replace-host", Step.OCS_ROUTE, "the route rewrites the Request-URI host"),
        Rule(
            "route.unresolved",
            Step.OCS_ROUTE,
            "a TLS route's FQDN resolves neither in the hosts table nor in DNS",
        ),
        Rule(
            "route.address",
            Step.OCS_ROUTE,
            "the route's next hop is none of the other side's nodes",
        ),
        Rule(
            "route.principal",
            Step.OCS_ROUTE,
            "the TLS route's FQDN is not a name on the peer's certificate (\"wrong principal\")",
        ),
        Rule(
            "route.port",
            Step.OCS_ROUTE,
            "the route's port and transport do not match a listener of the peer (TLS: OCS MTLS "
            "connection or IM and Presence Peer Auth; TCP: its TCP listener)",
        ),
        Rule(
            "hostauth.fqdn",
            Step.HOST_AUTHORIZATION,
            "a TLS route's next hop has no host authorization entry by FQDN",
        ),
        Rule(
            "hostauth.ip",
            Step.HOST_AUTHORIZATION,
            "a route's next hop has no host authorization entry by IP",
        ),
        Rule(
            "hostauth.peer-node",
            Step.HOST_AUTHORIZATION,
            "an IM and Presence node of the other side has no host authorization (IP, and FQDN "
            "for TLS)",
        ),
        Rule("hostauth.outbound-only", Step.HOST_AUTHORIZATION, "an entry is Outbound Only"),
        Rule(
            "hostauth.treat-as-authenticated",
            Step.HOST_AUTHORIZATION,
            "an entry is not Treat as Authenticated",
        ),
        Rule(
            "hostauth.throttle-as-server",
            Step.HOST_AUTHORIZATION,
            "an entry is not Throttle as Server",
            WARNING,
        ),
        Rule(
            "trust.peer-subject",
            Step.IMP_TRUST,
            "IM and Presence would not trust the OCS server's MTLS connections (no TLS peer "
            "subject or ACL entry for its certificate names)",
        ),
        Rule(
            "trust.acl",
            Step.IMP_TRUST,
            "IM and Presence would not trust the OCS server's TCP connections (no incoming ACL "
            "entry for its IP)",
        ),
        Rule("cert.none", Step.OCS_CERTIFICATE, "TLS is used but no certificate is selected"),
        Rule("cert.private-key", Step.OCS_CERTIFICATE, "the selected certificate has no key"),
        Rule("cert.expired", Step.OCS_CERTIFICATE, "the selected certificate is not valid now"),
        Rule(
            "cert.expiring",
            Step.OCS_CERTIFICATE,
            "the selected certificate ends within 30 days",
            WARNING,
        ),
        Rule(
            "cert.eku",
            Step.OCS_CERTIFICATE,
            "the certificate lacks Server or Client Authentication EKU",
        ),
        Rule(
            "cert.name",
            Step.OCS_CERTIFICATE,
            "the subject CN is not the SE server FQDN, the EE pool FQDN, or the IM and Presence "
            "node FQDN",
        ),
        Rule("cert.key", Step.OCS_CERTIFICATE, "the key is too weak or of a refused type"),
        Rule(
            "cert.chain",
            Step.OCS_CERTIFICATE,
            "the certificate does not chain to a root of the node's own trusted store",
        ),
        Rule(
            "cert.peer-untrusted",
            Step.FIPS,
            "the other side's trusted store has no root for this side's certificate "
            '("certificate root not trusted")',
        ),
        Rule("tls.fips", Step.FIPS, "TLS is used with the FIPS policy off"),
        Rule("tls.legacy-profile", Step.FIPS, "the legacy-tls1 profile admits TLS 1.0", WARNING),
        Rule(
            "tls.fips-tls12",
            Step.FIPS,
            "with the FIPS policy on, TLS is capped at 1.2 (Python 3.11 cannot restrict the "
            "TLS 1.3 suites)",
            INFO,
        ),
        Rule(
            "user.both-sides",
            Step.USERS,
            "a user is provisioned on both sides (a disabled OCS user still counts as OCS's)",
        ),
        Rule(
            "routing.advanced",
            Step.USERS,
            "advanced routing mode with an empty directory of the other side's users",
        ),
        Rule(
            "routing.directory-stale",
            Step.USERS,
            "the advanced routing mode directory lists users the OCS side does not have, or "
            "misses some of its users",
            WARNING,
        ),
        Rule("restart.pending", Step.RESTART, "staged settings are not running yet", WARNING),
    )
}


def _rule(rule_id: str) -> Rule:
    return RULES[rule_id]


def check_nodes(nodes: Sequence[NodeFacts], now: datetime.datetime | None = None) -> CheckReport:
    """Every rule over ``nodes`` (one node, or both sides of a deployment)."""
    moment = now if now is not None else datetime.datetime.now(datetime.UTC)
    findings: list[Finding] = []
    for node in nodes:
        others = [other for other in nodes if other.config.role is not node.config.role]
        for rule in _NODE_RULES:
            findings.extend(rule(node, others))
        findings.extend(_certificate(node, others, moment))
    return CheckReport.of((node.name for node in nodes), findings)


# Helpers -------------------------------------------------------------------------------


def _route_step(config: NodeConfig) -> Step:
    return Step.OCS_ROUTE if config.role is Role.OCS else Step.IMP_ROUTE


def _certificate_step(config: NodeConfig) -> Step:
    return Step.OCS_CERTIFICATE if config.role is Role.OCS else Step.IMP_CERTIFICATE


def _root_step(config: NodeConfig) -> Step:
    """Where the seed imports the CA root on this side."""
    return Step.FIPS if config.role is Role.OCS else Step.IMP_CERTIFICATE


def _covers_domain(route: StaticRoute, domain: str) -> bool:
    if route.domain.startswith("*."):
        return domain.endswith(route.domain[1:])
    return route.domain == domain


def _federation_routes(config: NodeConfig) -> list[StaticRoute]:
    """Routes for a domain this node serves: the ones to the other partition."""
    return [r for r in config.routes if any(_covers_domain(r, d) for d in config.domains)]


def _route_text(route: StaticRoute) -> str:
    return f"{route.domain} → {route.transport} {route.next_hop}:{route.port}"


def _address(node: NodeFacts, route: StaticRoute) -> str | None:
    """The address the route's next hop resolves to from ``node``."""
    if route.ip is not None:
        return route.ip
    return node.resolution(route.fqdn or "").address


def _uses_tls(node: NodeFacts, others: Sequence[NodeFacts]) -> bool:
    """Whether the node opens or accepts TLS with the other side."""
    config = node.config
    if any(route.transport == "TLS" for route in config.routes):
        return True
    if any(c.transport in ("TLS", "MTLS") for c in config.connections):
        return True
    ip = config.identity.ip
    return any(
        route.transport == "TLS" and _address(other, route) == ip
        for other in others
        for route in other.config.routes
    )


def _certificate_names(node: NodeFacts) -> tuple[str, ...]:
    """The names the node's certificate proves (its configured names when unknown)."""
    certificates = node.certificates
    if certificates is not None and certificates.selected is not None:
        return proven_names(certificates.selected)
    identity = node.config.identity
    return tuple(dict.fromkeys([identity.certificate_name, identity.fqdn]))


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
        f"intrafed config route remove {node.home_arg} --domain {route.domain}{priority}, then "
        f"intrafed config route add {node.home_arg} {' '.join(words)}"
    )


def _peer_at(address: str | None, others: Sequence[NodeFacts]) -> NodeFacts | None:
    return next((other for other in others if other.config.identity.ip == address), None)


# Rules about the node (and, where given, the other side) --------------------------------


def _domains(node: NodeFacts, others: Sequence[NodeFacts]) -> Iterator[Finding]:
    config = node.config
    if not config.domains:
        yield _rule("domain.none").finding(
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
            yield _rule("domain.mismatch").finding(
                node.name,
                f"does not serve {domain}, which {other.name} serves{hint}",
                f"intrafed config domain add {domain} {node.home_arg} (or remove it from "
                f"{other.name}: intrafed config domain remove {domain} {other.home_arg})",
            )


def _listeners(node: NodeFacts, others: Sequence[NodeFacts]) -> Iterator[Finding]:
    config = node.config
    if config.role is Role.IMP:
        ports = config.listeners or ImpListeners()
        if ports.server_auth == STANDARD_TLS_PORT:
            yield _rule("listener.imp-server-auth").finding(
                node.name,
                f"Server Auth listens on {STANDARD_TLS_PORT} and Peer Auth on {ports.peer_auth}: "
                "OCS routes to 5061 expecting Peer Auth (MTLS)",
                f"intrafed config listener set --peer-auth 5061 --server-auth 5063 {node.home_arg}",
            )
        return
    transports = {c.transport for c in config.connections}
    if not transports & {"TCP", "MTLS"}:
        yield _rule("listener.ocs-none").finding(
            node.name,
            "has no TCP or MTLS connection, so IM and Presence cannot reach it",
            f"intrafed config connection add --transport MTLS --port 5061 {node.home_arg} "
            "(and/or --transport TCP --port 5060)",
        )
        return
    if "MTLS" not in transports and _uses_tls(node, others):
        tls = [c.port for c in config.connections if c.transport == "TLS"]
        what = f"port {tls[0]} is TLS, not MTLS" if tls else "there is no MTLS connection"
        port = tls[0] if tls else STANDARD_TLS_PORT
        yield _rule("listener.ocs-mtls").finding(
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


def _listener_clash(node: NodeFacts, others: Sequence[NodeFacts]) -> Iterator[Finding]:
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
            yield _rule("listener.clash").finding(
                node.name,
                f"its {transport} connection on {where}:{port} takes the port of {peer.name}'s "
                f"{clash[0]} listener on {clash[1]}:{port}, on the same machine: the node "
                "started second cannot listen",
                f"intrafed config connection remove --transport {transport} --port {port}"
                f"{ip_option} {node.home_arg}, then intrafed config connection add --transport "
                f"{transport} --port {new_port} --ip {own} {node.home_arg}{moved}",
            )


def _routes(node: NodeFacts, others: Sequence[NodeFacts]) -> Iterator[Finding]:
    config = node.config
    step = _route_step(config)
    peer_role = "IM and Presence node" if config.role is Role.OCS else "OCS server or pool"
    for domain in config.domains:
        if not any(_covers_domain(route, domain) for route in config.routes):
            yield _rule("route.missing").finding(
                node.name,
                f"has no static route for {domain}: users of {domain} homed on the other side "
                "are unreachable (408/404)",
                f"intrafed config route add {node.home_arg} --domain {domain} --transport TLS "
                f"--port 5061 --fqdn <{peer_role} FQDN>",
                step=step,
            )
    for route in _federation_routes(config):
        if route.phone_uri:
            yield _rule("route.phone-uri").finding(
                node.name,
                f"route {_route_text(route)} has Phone URI checked: it matches phone URIs only, "
                "so no user of the domain crosses",
                _route_fix(node, route, **{"--phone-uri": None}),
                step=step,
            )
        if route.replace_host:
            yield _rule("route.replace-host").finding(
                node.name,
                f"route {_route_text(route)} has Replace host checked: the Request-URI reaches "
                f"the peer as user@{route.next_hop}, a domain it does not serve",
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
            yield _rule("route.unresolved").finding(
                node.name,
                f"route {_route_text(route)}: {route.fqdn} does not resolve "
                f"(not in the hosts table; {resolution.source})",
                f"intrafed config hosts add {route.fqdn} <its IP> {node.home_arg}, or add it to "
                "DNS",
                step=step,
            )
            return
    if not others:
        return
    address = _address(node, route)
    peer = _peer_at(address, others)
    if peer is None:
        known = ", ".join(f"{o.name} ({o.config.identity.ip})" for o in others)
        how = f"{route.fqdn} resolves to {address}" if route.fqdn else f"next hop {address}"
        fix = (
            f"intrafed config hosts remove {route.fqdn} {node.home_arg}, then intrafed config "
            f"hosts add {route.fqdn} <the peer's IP> {node.home_arg}"
            if route.fqdn
            else _route_fix(node, route, **{"--ip": "<the peer's IP>"})
        )
        yield _rule("route.address").finding(
            node.name,
            f"route {_route_text(route)}: {how}, which is none of the other side's nodes ({known})",
            fix,
            step=step,
        )
        return
    if route.fqdn is not None:
        names = _certificate_names(peer)
        if not any(covers(name, route.fqdn) for name in names):
            yield _rule("route.principal").finding(
                node.name,
                f"wrong principal: certificate of {peer.name} names {', '.join(names)}, route "
                f"{route.domain} expects {route.fqdn}",
                _route_fix(node, route, **{"--fqdn": peer.config.identity.certificate_name}),
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
            f"{peer.home_arg}"
        )
        yield _rule("route.port").finding(
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


def _host_authorization(node: NodeFacts, others: Sequence[NodeFacts]) -> Iterator[Finding]:
    config = node.config
    if config.role is not Role.OCS:
        return
    fqdns = {e.fqdn for e in config.host_authorizations if e.fqdn is not None}
    ips = {e.ip for e in config.host_authorizations if e.ip is not None}
    hops: set[str] = set()
    for route in _federation_routes(config):
        address = _address(node, route)
        if route.fqdn is not None:
            hops.add(route.fqdn)
            if route.fqdn not in fqdns:
                yield _rule("hostauth.fqdn").finding(
                    node.name,
                    f"the next hop {route.fqdn} of TLS route {route.domain} has no host "
                    "authorization by FQDN (TLS needs FQDN and IP)",
                    f"intrafed config hostauth add --fqdn {route.fqdn} {node.home_arg}",
                )
        if address is not None:
            hops.add(address)
            if address not in ips:
                yield _rule("hostauth.ip").finding(
                    node.name,
                    f"the next hop {route.next_hop} ({address}) of route {route.domain} has no "
                    "host authorization by IP: its requests are challenged (401)",
                    f"intrafed config hostauth add --ip {address} {node.home_arg}",
                )
    tls = _uses_tls(node, others)
    for peer in others:
        identity = peer.config.identity
        missing = [("--ip", identity.ip)] if identity.ip not in ips else []
        if tls and identity.fqdn not in fqdns:
            missing.append(("--fqdn", identity.fqdn))
        missing = [(option, value) for option, value in missing if value not in hops]
        if missing:
            yield _rule("hostauth.peer-node").finding(
                node.name,
                f"IM and Presence node {peer.name} has no host authorization by "
                f"{' and '.join('IP' if o == '--ip' else 'FQDN' for o, _ in missing)}",
                ", ".join(
                    f"intrafed config hostauth add {o} {v} {node.home_arg}" for o, v in missing
                ),
            )
    for entry in config.host_authorizations:
        again = f"intrafed config hostauth remove {'--fqdn' if entry.fqdn else '--ip'} "
        readd = (
            f"{again}{entry.host} {node.home_arg}, then intrafed config hostauth add "
            f"{'--fqdn' if entry.fqdn else '--ip'} {entry.host} {node.home_arg}"
        )
        if entry.outbound_only:
            yield _rule("hostauth.outbound-only").finding(
                node.name,
                f"host authorization {entry.host} is Outbound Only: requests it sends get no trust",
                f"{readd} (Outbound Only unchecked)",
            )
        if not entry.treat_as_authenticated:
            yield _rule("hostauth.treat-as-authenticated").finding(
                node.name,
                f"host authorization {entry.host} is not Treat as Authenticated: its requests "
                "are challenged (401)",
                f"{readd} (Treat as Authenticated checked)",
            )
        if not entry.throttle_as_server:
            yield _rule("hostauth.throttle-as-server").finding(
                node.name,
                f"host authorization {entry.host} is not Throttle as Server: the peer gets "
                "client rate limits",
                f"{readd} (Throttle as Server checked)",
            )


def _imp_trust(node: NodeFacts, others: Sequence[NodeFacts]) -> Iterator[Finding]:
    """IM&P trusts OCS by TLS peer subject (or ACL FQDN) on MTLS, by ACL IP on TCP."""
    config = node.config
    if config.role is not Role.IMP:
        return
    checked: set[str] = set()
    for route in _federation_routes(config):
        address = _address(node, route)
        if route.fqdn is not None:
            checked.add(route.fqdn)
            if trusted_peer(config, address or "", (route.fqdn,)) is None:
                yield _peer_subject_finding(node, route.fqdn, route.fqdn)
        elif route.ip is not None:
            checked.add(route.ip)
            if trusted_peer(config, route.ip) is None:
                yield _acl_finding(node, route.ip, route.ip)
    for peer in others:
        identity = peer.config.identity
        over_tcp = any(r.transport == "TCP" for r in _federation_routes(peer.config))
        if identity.ip not in checked and over_tcp and trusted_peer(config, identity.ip) is None:
            yield _acl_finding(node, peer.name, identity.ip)
        names = _certificate_names(peer)
        if (
            identity.fqdn not in checked
            and _uses_tls(peer, [node])
            and trusted_peer(config, identity.ip, names) is None
        ):
            yield _peer_subject_finding(node, peer.name, identity.certificate_name, names)


def _peer_subject_finding(
    node: NodeFacts, peer: str, subject: str, names: Sequence[str] = ()
) -> Finding:
    proven = f" (its certificate names {', '.join(names)})" if names else ""
    return _rule("trust.peer-subject").finding(
        node.name,
        f"MTLS connections from {peer}{proven} would not be trusted: no TLS peer subject "
        "or ACL entry matches (403)",
        f"intrafed config peer-subject add {subject} {node.home_arg}",
    )


def _acl_finding(node: NodeFacts, peer: str, ip: str) -> Finding:
    source = peer if peer == ip else f"{peer} ({ip})"
    return _rule("trust.acl").finding(
        node.name,
        f"TCP requests from {source} would not be trusted: no incoming ACL entry "
        '("ACL - upstream not trusted - need to authenticate")',
        f"intrafed config acl add --ip {ip} {node.home_arg}",
    )


def _tls_policy(node: NodeFacts, others: Sequence[NodeFacts]) -> Iterator[Finding]:
    config = node.config
    if not _uses_tls(node, others):
        return
    if not config.fips:
        yield _rule("tls.fips").finding(
            node.name,
            "TLS is used with the FIPS policy off: the seed turns it on so that TLS is "
            "negotiated instead of SSLv3, which the other side refuses",
            f"intrafed config fips on {node.home_arg}",
            severity=ERROR if config.role is Role.OCS else WARNING,
        )
    else:
        yield _rule("tls.fips-tls12").finding(
            node.name,
            "TLS 1.3 is not offered: this Python cannot keep ChaCha20-Poly1305 (not "
            "FIPS-approved) out of TLS 1.3, so the FIPS policy caps TLS at 1.2 with AES-GCM",
            f"intrafed config fips off {node.home_arg}, only where the FIPS policy is not "
            "required and TLS 1.3 is wanted",
        )
    if config.tls_profile is TlsProfile.LEGACY_TLS1:
        yield _rule("tls.legacy-profile").finding(
            node.name,
            "the legacy-tls1 profile admits TLS 1.0 and 1.1 with weak suites",
            f'set tls_profile = "default" (intrafed config export {node.home_arg}, edit, '
            "intrafed config import) once the peer speaks TLS 1.2",
        )


def _users(node: NodeFacts, others: Sequence[NodeFacts]) -> Iterator[Finding]:
    config = node.config
    if config.role is Role.IMP:
        yield from _directory(node, others)
        return
    for peer in others:
        theirs = {user.aor for user in peer.config.users}
        for user in config.users:
            if user.aor not in theirs:
                continue
            state = (
                "disabled but not deleted on OCS, which still treats it as its own, so "
                "messages never reach IM and Presence (Disable before Delete)"
                if not user.enabled
                else "enabled on both"
            )
            yield _rule("user.both-sides").finding(
                node.name,
                f"{user.aor} is provisioned on {node.name} and on {peer.name}: {state}",
                f"intrafed config user remove {user.aor} {node.home_arg} (or from {peer.name}: "
                f"intrafed config user remove {user.aor} {peer.home_arg})",
            )


def _directory(node: NodeFacts, others: Sequence[NodeFacts]) -> Iterator[Finding]:
    """Advanced routing mode forwards only the directory's users: it must hold exactly the
    users of the OCS side (when that side is given)."""
    config = node.config
    if config.routing_mode is not RoutingMode.ADVANCED:
        return
    source = next((f"--from-home {o.home}" for o in others if o.home is not None), None)
    refill = f"intrafed config directory import {source or 'FILE'} {node.home_arg}"
    if not config.peer_directory:
        yield _rule("routing.advanced").finding(
            node.name,
            "advanced routing mode forwards only users listed in a directory of the OCS "
            "side's users, and the directory is empty: every OCS user gets 404",
            f"{refill} (or intrafed config routing-mode basic {node.home_arg})",
        )
        return
    if not others:
        return
    theirs = {user.aor for other in others for user in other.config.users}
    listed = set(config.peer_directory)
    sides = ", ".join(other.name for other in others)
    unknown = sorted(listed - theirs)
    if unknown:
        yield _rule("routing.directory-stale").finding(
            node.name,
            f"the directory lists {', '.join(unknown)}, not provisioned on {sides}: requests "
            "for them cross to the OCS side and come back 404",
            f"intrafed config directory remove {unknown[0]} {node.home_arg} for each, or {refill}",
        )
    missing = sorted(theirs - listed)
    if missing:
        yield _rule("routing.directory-stale").finding(
            node.name,
            f"the directory misses {', '.join(missing)} of {sides}: requests for them get 404 "
            "here instead of reaching the OCS side",
            f"intrafed config directory add {' '.join(missing)} {node.home_arg}, or {refill}",
        )


def _restart(node: NodeFacts, others: Sequence[NodeFacts]) -> Iterator[Finding]:
    if node.pending:
        yield _rule("restart.pending").finding(
            node.name,
            f"restart pending: {'; '.join(node.pending)}",
            f"intrafed service restart {node.home_arg}",
        )


_NODE_RULES = (
    _domains,
    _listeners,
    _listener_clash,
    _routes,
    _host_authorization,
    _imp_trust,
    _tls_policy,
    _users,
    _restart,
)


# Certificates -----------------------------------------------------------------------------

# pki validation findings → checker rules (``validity`` splits by severity).
_PKI_RULES = {
    "eku": "cert.eku",
    "name": "cert.name",
    "key": "cert.key",
    "chain": "cert.chain",
}


def _certificate(
    node: NodeFacts, others: Sequence[NodeFacts], now: datetime.datetime
) -> Iterator[Finding]:
    certificates = node.certificates
    if certificates is None:
        return
    config = node.config
    step = _certificate_step(config)
    certificate = certificates.selected
    if certificate is None:
        if _uses_tls(node, others):
            yield _rule("cert.none").finding(
                node.name,
                f"TLS is used but {certificates.problem or 'no certificate is selected'}",
                f"intrafed pki csr --role {config.role.value} {node.home_arg}, have the CA sign "
                f"it, intrafed pki import --store personal CERT {node.home_arg}, intrafed pki "
                f"select THUMBPRINT {node.home_arg}",
                step=step,
            )
        return
    subject = subject_text(certificate)
    if not certificates.has_key:
        yield _rule("cert.private-key").finding(
            node.name,
            f"the selected certificate ({subject}) has no private key in the personal store",
            f"intrafed pki import --store personal CERT.pfx {node.home_arg}, then intrafed pki "
            f"select THUMBPRINT {node.home_arg}",
            step=step,
        )
    report = validate(
        certificate,
        identity=config.identity,
        chain=certificates.chain,
        trusted=certificates.trusted,
        now=now,
    )
    for finding in report.findings:
        if finding.rule == "validity":
            rule_id = "cert.expired" if finding.severity is ERROR else "cert.expiring"
        else:
            rule_id = _PKI_RULES[finding.rule]
        yield _rule(rule_id).finding(
            node.name,
            f"certificate {subject}: {finding.message}",
            f"{finding.fix} ({node.home_arg})",
            severity=finding.severity,
            step=_root_step(config) if rule_id == "cert.chain" else step,
        )
    yield from _trusted_by_peers(node, certificate, certificates.chain, others, now)


def _trusted_by_peers(
    node: NodeFacts,
    certificate: x509.Certificate,
    chain: tuple[x509.Certificate, ...],
    others: Sequence[NodeFacts],
    now: datetime.datetime,
) -> Iterator[Finding]:
    """The other side must trust the root of our certificate (the seed: "import the CA
    root certificate" on each side)."""
    for peer in others:
        if peer.certificates is None or not (_uses_tls(node, [peer]) or _uses_tls(peer, [node])):
            continue
        report = validate(
            certificate,
            identity=node.config.identity,
            chain=chain,
            trusted=peer.certificates.trusted,
            now=now,
        )
        for finding in report.findings:
            if finding.rule != "chain":
                continue
            yield _rule("cert.peer-untrusted").finding(
                peer.name,
                f"certificate root not trusted: {node.name}'s certificate "
                f"({subject_text(certificate)}, issued by {certificate.issuer.rfc4514_string()}) "
                f"does not chain to {peer.name}'s trusted store ({finding.message})",
                f"intrafed pki import --store trusted <the root of "
                f"{certificate.issuer.rfc4514_string()}> {peer.home_arg}",
                step=_root_step(peer.config),
            )
