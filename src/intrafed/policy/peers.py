"""Which connections belong to the peer partition: OCS host authorization, IM&P incoming
ACL and TLS peer subjects. Trust is decided per request (DESIGN §8), so a reloaded table
applies at once."""

from __future__ import annotations

from intrafed.config.model import NodeConfig, Role


def trusted_peer(config: NodeConfig, ip: str, names: tuple[str, ...] = ()) -> str | None:
    """The entry that makes a peer at ``ip`` proving ``names`` (verified certificate names)
    the peer partition, as a phrase for logs and ``route explain``; None when none does.

    An OCS entry marked Outbound Only gives no trust to connections the host opens.
    """
    proven = {name.lower() for name in names}
    if config.role is Role.OCS:
        for entry in config.host_authorizations:
            if entry.outbound_only:
                continue
            if entry.ip == ip or (entry.fqdn is not None and entry.fqdn in proven):
                return f"host authorization {entry.host}"
        return None
    for acl in config.acl:
        if acl.ip == ip or (acl.fqdn is not None and acl.fqdn in proven):
            return f"incoming ACL {acl.host}"
    for subject in config.peer_subjects:
        if subject.lower() in proven:
            return f"TLS peer subject {subject}"
    return None
