"""Rules of the trust steps: OCS host authorization, IM and Presence TLS peer subjects
and incoming ACL, and the TLS policy between the sides."""

from __future__ import annotations

from collections.abc import Iterator, Sequence

from intrafed.check.facts import NodeFacts
from intrafed.check.findings import Finding
from intrafed.check.rules.catalogue import ERROR, WARNING, rule
from intrafed.check.rules.shared import (
    certificate_names,
    federates_over_tls,
    federation_routes,
    opens_tls,
    route_address,
)
from intrafed.config.model import NodeConfig, Role, TlsProfile
from intrafed.policy.peers import peer_trust, trusted_peer


def _refusal(config: NodeConfig, ip: str, names: tuple[str, ...]) -> str | None:
    """What OCS does to requests from a peer at ``ip`` proving ``names``: None when they
    are trusted as the seed wants, else the effect."""
    trust = peer_trust(config, ip, names)
    if trust is None:
        return "refused (403): no entry that is not Outbound Only matches it"
    if not trust.authenticated:
        return (
            f"challenged (407) by {trust.entry}, which is not Treat as Authenticated, and the "
            "peer cannot answer for its users"
        )
    return None


def _hops(node: NodeFacts, others: Sequence[NodeFacts]) -> list[tuple[str, str, tuple[str, ...]]]:
    """(name, IP, names proven) of every IM&P node OCS must trust: the nodes of the other
    side when given, and the other members of their clusters (a route that leads elsewhere
    is ``route.address``'s, not an address to authorize), else the next hops of its routes.
    Names count only where the sides speak TLS."""
    hops: dict[str, tuple[str, str, tuple[str, ...]]] = {}
    for route in federation_routes(node.config) if not others else ():
        address = route_address(node, route)
        if address is not None:
            proven: tuple[str, ...] = (route.fqdn,) if route.fqdn is not None else ()
            hops.setdefault(address, (route.next_hop, address, proven))
    for peer in others:
        tls = opens_tls(peer, node)
        identity = peer.config.identity
        names = certificate_names(peer) if tls else ()
        hops[identity.ip] = (peer.name, identity.ip, names)
        # Every member of an IM&P cluster sends its own users' requests to OCS.
        for member in peer.members:
            proven = tuple(dict.fromkeys([member.certificate_name, member.fqdn])) if tls else ()
            hops.setdefault(member.ip, (member.fqdn, member.ip, proven))
    return list(hops.values())


def check_host_authorization(node: NodeFacts, others: Sequence[NodeFacts]) -> Iterator[Finding]:
    """Missing or mis-flagged entries are errors when the peer's requests are then refused
    or challenged, warnings when another entry still trusts it."""
    config = node.config
    if config.role is not Role.OCS:
        return
    fqdns = {e.fqdn for e in config.host_authorizations if e.fqdn is not None}
    ips = {e.ip for e in config.host_authorizations if e.ip is not None}
    hops = _hops(node, others)
    refused = {ip: _refusal(config, ip, names) for _, ip, names in hops}
    peers = {o.config.identity.ip for o in others}
    for name, ip, names in hops:
        effect = refused[ip]
        severity = ERROR if effect is not None else WARNING
        outcome = f"its requests are {effect}" if effect else "it is trusted by its other entry"
        wanted = [("--ip", ip)] if ip not in ips else []
        if names and not fqdns & set(names):
            wanted.append(("--fqdn", names[0]))
        if not wanted:
            continue
        rule_id = "hostauth.peer-node" if ip in peers and not _routed(node, ip) else None
        for option, value in wanted:
            kind = "IP" if option == "--ip" else "FQDN"
            yield rule(rule_id or f"hostauth.{kind.lower()}").finding(
                node.name,
                f"IM and Presence node {name} ({ip}) has no host authorization by {kind}: "
                f"{outcome}" + ("" if effect else " (the seed adds both for TLS)"),
                f"intrafed config hostauth add {option} {value} {node.home_arg}",
                severity=severity,
            )
    for entry in config.host_authorizations:
        option = "--fqdn" if entry.fqdn else "--ip"
        readd = (
            f"intrafed config hostauth remove {option} {entry.host} {node.home_arg} && "
            f"intrafed config hostauth add {option} {entry.host} {node.home_arg}"
        )
        matched = [ip for _, ip, names in hops if entry.host == ip or entry.host in names]
        effect = next((refused[ip] for ip in matched if refused[ip] is not None), None)
        severity = ERROR if effect is not None else WARNING
        then = f"; its requests are {effect}" if effect is not None else ""
        if entry.outbound_only:
            yield rule("hostauth.outbound-only").finding(
                node.name,
                f"host authorization {entry.host} is Outbound Only: connections the peer opens "
                f"get no trust from it{then}",
                readd,
                severity=severity,
            )
        if not entry.treat_as_authenticated:
            yield rule("hostauth.treat-as-authenticated").finding(
                node.name,
                f"host authorization {entry.host} is not Treat as Authenticated: requests it "
                f"matches first are challenged (407){then}",
                readd,
                severity=severity,
            )
        if not entry.throttle_as_server:
            yield rule("hostauth.throttle-as-server").finding(
                node.name,
                f"host authorization {entry.host} is not Throttle as Server: the peer gets "
                f"client rate limits ({config.rate_limits.client.rate} requests per second)",
                readd,
            )


def _routed(node: NodeFacts, ip: str) -> bool:
    """Whether a federation route of ``node`` leads to ``ip``."""
    return any(route_address(node, r) == ip for r in federation_routes(node.config))


def check_imp_trust(node: NodeFacts, others: Sequence[NodeFacts]) -> Iterator[Finding]:
    """IM&P trusts OCS by TLS peer subject (or ACL FQDN) on MTLS, by ACL IP on TCP: the OCS
    nodes given, or else the next hops of this node's routes."""
    config = node.config
    if config.role is not Role.IMP:
        return
    if not others:
        for route in federation_routes(config):
            address = route_address(node, route)
            if route.fqdn is not None:
                if trusted_peer(config, address or "", (route.fqdn,)) is None:
                    yield _peer_subject_finding(node, route.fqdn, route.fqdn)
            elif route.ip is not None and trusted_peer(config, route.ip) is None:
                yield _acl_finding(node, route.ip, route.ip)
        return
    for peer in others:
        identity = peer.config.identity
        if opens_tls(peer, node):
            names = certificate_names(peer)
            if trusted_peer(config, identity.ip, names) is None:
                yield _peer_subject_finding(node, peer.name, identity.certificate_name, names)
        elif trusted_peer(config, identity.ip) is None:
            yield _acl_finding(node, peer.name, identity.ip)


def _peer_subject_finding(
    node: NodeFacts, peer: str, subject: str, names: Sequence[str] = ()
) -> Finding:
    proven = f" (its certificate names {', '.join(names)})" if names else ""
    return rule("trust.peer-subject").finding(
        node.name,
        f"MTLS connections from {peer}{proven} would not be trusted: no TLS peer subject "
        "or ACL entry matches, so its requests are refused (403)",
        f"intrafed config peer-subject add {subject} {node.home_arg}",
    )


def _acl_finding(node: NodeFacts, peer: str, ip: str) -> Finding:
    source = peer if peer == ip else f"{peer} ({ip})"
    return rule("trust.acl").finding(
        node.name,
        f"TCP requests from {source} would not be trusted: no incoming ACL entry, so its "
        "requests are refused (403)",
        f"intrafed config acl add --ip {ip} {node.home_arg}",
    )


def check_tls_policy(node: NodeFacts, others: Sequence[NodeFacts]) -> Iterator[Finding]:
    config = node.config
    federation = federates_over_tls(node, others)
    if config.tls_profile is TlsProfile.LEGACY_TLS1 and config.fips:
        yield rule("tls.legacy-fips").finding(
            node.name,
            "the legacy-tls1 profile admits TLS 1.0, which the FIPS policy refuses: the node "
            "builds no TLS context, so it starts with no TLS or MTLS listener and opens no TLS "
            "connection" + ("" if federation else " (federation is over TCP: users lose TLS)"),
            f"intrafed config tls-profile default {node.home_arg}",
            severity=ERROR if federation else WARNING,
        )
        return
    if not federation:
        return
    if not config.fips:
        yield rule("tls.fips").finding(
            node.name,
            "TLS is used with the FIPS policy off: TLS 1.3 and suites outside FIPS 140 "
            "(ChaCha20-Poly1305, CBC) are offered; TLS with a FIPS peer still agrees on TLS 1.2 "
            "with AES-GCM, but the seed requires the policy on",
            f"intrafed config fips on {node.home_arg}",
        )
    else:
        yield rule("tls.fips-tls12").finding(
            node.name,
            "TLS 1.3 is not offered: this Python cannot keep ChaCha20-Poly1305 (not "
            "FIPS-approved) out of TLS 1.3, so the FIPS policy caps TLS at 1.2 with AES-GCM",
            f"intrafed config fips off {node.home_arg}",
        )
    if config.tls_profile is TlsProfile.LEGACY_TLS1:
        yield rule("tls.legacy-profile").finding(
            node.name,
            "the legacy-tls1 profile admits TLS 1.0 and 1.1 with weak suites (CBC with SHA-1, "
            "OpenSSL security level 0)",
            f"intrafed config tls-profile default {node.home_arg}",
        )
