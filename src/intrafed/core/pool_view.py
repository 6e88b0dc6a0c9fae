"""What one member of an Enterprise pool or IM&P cluster knows of the others, sans-IO: where
each listens (the hop of the intra-pool link), which users' client flows each holds, and
whom to trust as a member. The runner keeps it current from the store's pool feed;
routing reads it from memory.

The intra-pool link is MTLS when the other member has an MTLS listener and this one can
open TLS: members trust each other by the pool certificate (an Enterprise pool's front ends
all show the pool FQDN; an IM&P node shows its own FQDN, a member's). Without TLS it is TCP,
and a member is known by its address, as host authorization knows a TCP peer.
"""

from __future__ import annotations

from dataclasses import dataclass

from intrafed.core.actions import Peer
from intrafed.policy import PeerTrust
from intrafed.sip.transaction import NextHop


@dataclass(frozen=True, slots=True)
class PoolMember:
    """Another member, as this one relays to it."""

    name: str
    ip: str
    hop: NextHop | None
    """Its intra-pool listener (None: it has no listener this member can reach)."""


class PoolView:
    """The other members of this node's pool, and the users whose flows they hold."""

    def __init__(self, pool: str | None, certificate_name: str | None, tls: bool) -> None:
        """``certificate_name``: the name every member's certificate shows (an Enterprise
        pool's FQDN), None when each shows its own FQDN; ``tls``: whether this member can
        open TLS connections."""
        self.pool = pool
        self._certificate_name = certificate_name
        self._tls = tls
        self.members: dict[str, PoolMember] = {}
        self._by_ip: dict[str, str] = {}
        self._holders: dict[str, dict[str, float]] = {}

    def member_listening(
        self, member: str, ip: str, listeners: tuple[tuple[str, int], ...]
    ) -> None:
        """Another member runs at ``ip`` with ``listeners`` ((transport, port))."""
        ports = dict(listeners)
        hop = None
        if "MTLS" in ports and self._tls:
            hop = NextHop("TLS", member, ports["MTLS"])
        elif "TCP" in ports:
            hop = NextHop("TCP", ip, ports["TCP"])
        self.members[member] = PoolMember(member, ip, hop)
        self._by_ip[ip] = member

    def member_gone(self, member: str) -> list[str]:
        """``member`` stopped running: nothing is relayed to it, and the registrations it
        holds count no more; returns the AORs it held."""
        gone = self.members.pop(member, None)
        if gone is not None and self._by_ip.get(gone.ip) == member:
            del self._by_ip[gone.ip]
        return sorted(aor for aor, held in self._holders.items() if member in held)

    def bindings_changed(self, aor: str, member: str, expires_at: float) -> None:
        """``member`` holds registrations of ``aor`` until ``expires_at`` (0: none)."""
        held = self._holders.setdefault(aor, {})
        if expires_at > 0:
            held[member] = expires_at
        else:
            held.pop(member, None)
            if not held:
                del self._holders[aor]

    def holders(self, aor: str, wall: float) -> list[PoolMember]:
        """The members that hold a live registration of ``aor`` and can be reached, in the
        order of their names."""
        held = self._holders.get(aor)
        if not held:
            return []
        found = [self.members.get(name) for name, expires in held.items() if expires > wall]
        return sorted(
            (m for m in found if m is not None and m.hop is not None), key=lambda m: m.name
        )

    def registered_until(self, aor: str, wall: float) -> float | None:
        """When the last registration of ``aor`` another member holds expires (None: none
        is live)."""
        held = self._holders.get(aor) or {}
        latest = max(
            (expires for name, expires in held.items() if name in self.members), default=0.0
        )
        return latest if latest > wall else None

    def trust(self, peer: Peer) -> PeerTrust | None:
        """The trust a peer gets as a member of this pool: by the pool certificate over
        TLS, by its address over TCP; None when it is not a member."""
        if self.pool is None:
            return None
        if peer.transport in ("TLS", "MTLS"):
            names = {name.lower() for name in peer.fqdns}
            if (self._certificate_name or "").lower() in names or names & self.members.keys():
                return PeerTrust(f"member of {self.pool}")
            return None
        member = self._by_ip.get(peer.ip)
        return PeerTrust(f"member {member} of {self.pool}") if member is not None else None

    def connect_to(self, hop: NextHop) -> tuple[str, str | None] | None:
        """The address and TLS name of a member's intra-pool hop (None when ``hop`` is not
        one): a front end of an Enterprise pool shows the pool's name."""
        member = self.members.get(hop.host) if hop.transport == "TLS" else None
        if member is None or member.hop != hop:
            return None
        return member.ip, self._certificate_name or member.name
