"""Which connections belong to the peer partition: OCS host authorization, IM&P incoming
ACL and TLS peer subjects. Trust is decided per request (DESIGN §8), so a reloaded table
applies at once."""

from __future__ import annotations

from dataclasses import dataclass

from intrafed.config.model import NodeConfig, Role


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
