"""Rules of the trust steps: OCS host authorization, IM and Presence TLS peer subjects
and incoming ACL, and the TLS policy between the sides."""

from __future__ import annotations

from collections.abc import Iterator, Sequence

from intrafed.check.facts import NodeFacts
from intrafed.check.findings import Finding
from intrafed.check.rules.catalogue import ERROR, WARNING, rule
from intrafed.check.rules.shared import (
    certificate_names,
    federation_routes,
    route_address,
    uses_tls,
)
from intrafed.config.model import Role, TlsProfile
from intrafed.policy.peers import trusted_peer


def check_host_authorization(node: NodeFacts, others: Sequence[NodeFacts]) -> Iterator[Finding]:
    config = node.config
    if config.role is not Role.OCS:
        return
    fqdns = {e.fqdn for e in config.host_authorizations if e.fqdn is not None}
    ips = {e.ip for e in config.host_authorizations if e.ip is not None}
    hops: set[str] = set()
    for route in federation_routes(config):
        address = route_address(node, route)
        if route.fqdn is not None:
            hops.add(route.fqdn)
            if route.fqdn not in fqdns:
                yield rule("hostauth.fqdn").finding(
                    node.name,
                    f"the next hop {route.fqdn} of TLS route {route.domain} has no host "
                    "authorization by FQDN (TLS needs FQDN and IP)",
                    f"intrafed config hostauth add --fqdn {route.fqdn} {node.home_arg}",
                )
        if address is not None:
            hops.add(address)
            if address not in ips:
                yield rule("hostauth.ip").finding(
                    node.name,
                    f"the next hop {route.next_hop} ({address}) of route {route.domain} has no "
                    "host authorization by IP: its requests are challenged (401)",
                    f"intrafed config hostauth add --ip {address} {node.home_arg}",
                )
    tls = uses_tls(node, others)
    for peer in others:
        identity = peer.config.identity
        missing = [("--ip", identity.ip)] if identity.ip not in ips else []
        if tls and identity.fqdn not in fqdns:
            missing.append(("--fqdn", identity.fqdn))
        missing = [(option, value) for option, value in missing if value not in hops]
        if missing:
            yield rule("hostauth.peer-node").finding(
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
            yield rule("hostauth.outbound-only").finding(
                node.name,
                f"host authorization {entry.host} is Outbound Only: requests it sends get no trust",
                f"{readd} (Outbound Only unchecked)",
            )
        if not entry.treat_as_authenticated:
            yield rule("hostauth.treat-as-authenticated").finding(
                node.name,
                f"host authorization {entry.host} is not Treat as Authenticated: its requests "
                "are challenged (401)",
                f"{readd} (Treat as Authenticated checked)",
            )
        if not entry.throttle_as_server:
            yield rule("hostauth.throttle-as-server").finding(
                node.name,
                f"host authorization {entry.host} is not Throttle as Server: the peer gets "
                "client rate limits",
                f"{readd} (Throttle as Server checked)",
            )


def check_imp_trust(node: NodeFacts, others: Sequence[NodeFacts]) -> Iterator[Finding]:
    """IM&P trusts OCS by TLS peer subject (or ACL FQDN) on MTLS, by ACL IP on TCP."""
    config = node.config
    if config.role is not Role.IMP:
        return
    checked: set[str] = set()
    for route in federation_routes(config):
        address = route_address(node, route)
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
        over_tcp = any(r.transport == "TCP" for r in federation_routes(peer.config))
        if identity.ip not in checked and over_tcp and trusted_peer(config, identity.ip) is None:
            yield _acl_finding(node, peer.name, identity.ip)
        names = certificate_names(peer)
        if (
            identity.fqdn not in checked
            and uses_tls(peer, [node])
            and trusted_peer(config, identity.ip, names) is None
        ):
            yield _peer_subject_finding(node, peer.name, identity.certificate_name, names)


def _peer_subject_finding(
    node: NodeFacts, peer: str, subject: str, names: Sequence[str] = ()
) -> Finding:
    proven = f" (its certificate names {', '.join(names)})" if names else ""
    return rule("trust.peer-subject").finding(
        node.name,
        f"MTLS connections from {peer}{proven} would not be trusted: no TLS peer subject "
        "or ACL entry matches (403)",
        f"intrafed config peer-subject add {subject} {node.home_arg}",
    )


def _acl_finding(node: NodeFacts, peer: str, ip: str) -> Finding:
    source = peer if peer == ip else f"{peer} ({ip})"
    return rule("trust.acl").finding(
        node.name,
        f"TCP requests from {source} would not be trusted: no incoming ACL entry "
        '("ACL - upstream not trusted - need to authenticate")',
        f"intrafed config acl add --ip {ip} {node.home_arg}",
    )


def check_tls_policy(node: NodeFacts, others: Sequence[NodeFacts]) -> Iterator[Finding]:
    config = node.config
    if not uses_tls(node, others):
        return
    if not config.fips:
        yield rule("tls.fips").finding(
            node.name,
            "TLS is used with the FIPS policy off: the seed turns it on so that TLS is "
            "negotiated instead of SSLv3, which the other side refuses",
            f"intrafed config fips on {node.home_arg}",
            severity=ERROR if config.role is Role.OCS else WARNING,
        )
    else:
        yield rule("tls.fips-tls12").finding(
            node.name,
            "TLS 1.3 is not offered: this Python cannot keep ChaCha20-Poly1305 (not "
            "FIPS-approved) out of TLS 1.3, so the FIPS policy caps TLS at 1.2 with AES-GCM",
            f"intrafed config fips off {node.home_arg}, only where the FIPS policy is not "
            "required and TLS 1.3 is wanted",
        )
    if config.tls_profile is TlsProfile.LEGACY_TLS1:
        yield rule("tls.legacy-profile").finding(
            node.name,
            "the legacy-tls1 profile admits TLS 1.0 and 1.1 with weak suites",
            f'set tls_profile = "default" (intrafed config export {node.home_arg}, edit, '
            "intrafed config import) once the peer speaks TLS 1.2",
        )
