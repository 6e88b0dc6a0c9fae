"""Which connections belong to the peer partition: OCS host authorization, IM&P incoming
ACL and TLS peer subjects. Trust is decided per request (DESIGN §8), so a reloaded table
applies at once."""

from __future__ import annotations

from collections.abc import Collection, Iterable, Mapping
from dataclasses import dataclass

from intrafed.config.model import NodeConfig, Role, StaticRoute


@dataclass(frozen=True, slots=True)
class PeerTrust:
    """The trust entry a peer matched, with what it grants."""

    entry: str
    """The entry as a phrase for logs, Warning headers and ``route explain``."""
    authenticated: bool = True
    """Requests are never challenged and their From identities are trusted."""
    server_class: bool = True
    """The peer gets the server rate limits, not the per-client ones."""


def peer_trust(
    config: NodeConfig, ip: str, names: tuple[str, ...] = (), *, outbound: bool = False
) -> PeerTrust | None:
    """The trust a peer at ``ip`` proving ``names`` (verified certificate names) gets, or
    None when no entry makes it the peer partition.

    An OCS entry marked Outbound Only gives no trust to connections the host opens, only to
    requests on a connection we opened (``outbound``: responses, in-dialog requests). IM&P
    trusts its incoming ACL and TLS peer subjects fully (the product has no flags).
    """
    proven = {name.lower() for name in names}
    if config.role is Role.OCS:
        for entry in config.host_authorizations:
            if entry.outbound_only and not outbound:
                continue
            if entry.ip == ip or (entry.fqdn is not None and entry.fqdn in proven):
                return PeerTrust(
                    f"host authorization {entry.host}",
                    entry.treat_as_authenticated,
                    entry.throttle_as_server,
                )
        return None
    for acl in config.acl:
        if acl.ip == ip or (acl.fqdn is not None and acl.fqdn in proven):
            return PeerTrust(f"incoming ACL {acl.host}")
    for subject in config.peer_subjects:
        if subject.lower() in proven:
            return PeerTrust(f"TLS peer subject {subject}")
    return None


def trusted_peer(config: NodeConfig, ip: str, names: tuple[str, ...] = ()) -> str | None:
    """The entry that makes a peer at ``ip`` proving ``names`` the peer partition, as a
    phrase; None when none does."""
    trust = peer_trust(config, ip, names)
    return trust.entry if trust is not None else None


def peer_partition_route(
    routes: Iterable[StaticRoute],
    domains: Collection[str],
    hosts: Mapping[str, str],
    ip: str,
    names: tuple[str, ...] = (),
) -> StaticRoute | None:
    """The static route for one of our domains whose next hop is the trusted peer at
    ``ip`` proving ``names``: that peer is the other partition, and a request from it for
    a user who is not ours must not go back (DESIGN §4). Other trusted hosts (gateways,
    applications) are not the partition. The next hop matches by a proven name, by its
    address, or by the address the hosts table gives its FQDN."""
    proven = {name.lower() for name in names}
    for route in routes:
        pattern = route.domain
        ours = pattern in domains or (
            pattern.startswith("*.") and any(d.endswith(pattern[1:]) for d in domains)
        )
        if not ours:
            continue
        if route.ip == ip or (
            route.fqdn is not None and (route.fqdn in proven or hosts.get(route.fqdn) == ip)
        ):
            return route
    return None
