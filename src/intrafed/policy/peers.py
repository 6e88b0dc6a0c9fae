"""Which connections belong to the peer partition: OCS host authorization, IM&P incoming
ACL and TLS peer subjects. Trust is decided per request (DESIGN §8), so a reloaded table
applies at once; the tables are indexed once per configuration, so a lookup is a
dictionary access on the hot path."""

from __future__ import annotations

from collections.abc import Collection, Iterable, Mapping
from dataclasses import dataclass, field

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


# (position in the configuration, the trust it gives, Outbound Only)
_Entry = tuple[int, PeerTrust, bool]


@dataclass(frozen=True, slots=True)
class TrustTable:
    """The trust entries of one configuration, indexed by address and by name."""

    by_ip: Mapping[str, tuple[_Entry, ...]] = field(default_factory=dict)
    by_name: Mapping[str, tuple[_Entry, ...]] = field(default_factory=dict)

    @classmethod
    def of(cls, config: NodeConfig) -> TrustTable:
        """The table of a node's configuration: OCS host authorization entries; IM&P
        incoming ACL entries, then TLS peer subjects (which IM&P trusts fully)."""
        by_ip: dict[str, list[_Entry]] = {}
        by_name: dict[str, list[_Entry]] = {}
        if config.role is Role.OCS:
            for position, entry in enumerate(config.host_authorizations):
                trust = PeerTrust(
                    f"host authorization {entry.host}",
                    entry.treat_as_authenticated,
                    entry.throttle_as_server,
                )
                item = (position, trust, entry.outbound_only)
                if entry.ip is not None:
                    by_ip.setdefault(entry.ip, []).append(item)
                if entry.fqdn is not None:
                    by_name.setdefault(entry.fqdn, []).append(item)
        else:
            for position, acl in enumerate(config.acl):
                item = (position, PeerTrust(f"incoming ACL {acl.host}"), False)
                if acl.ip is not None:
                    by_ip.setdefault(acl.ip, []).append(item)
                if acl.fqdn is not None:
                    by_name.setdefault(acl.fqdn, []).append(item)
            for position, subject in enumerate(config.peer_subjects, start=len(config.acl)):
                item = (position, PeerTrust(f"TLS peer subject {subject}"), False)
                by_name.setdefault(subject.lower(), []).append(item)
        return cls(
            {ip: tuple(items) for ip, items in by_ip.items()},
            {name: tuple(items) for name, items in by_name.items()},
        )

    def lookup(
        self, ip: str, names: tuple[str, ...] = (), outbound: bool = False
    ) -> PeerTrust | None:
        """The first entry (in configuration order) that a peer at ``ip`` proving
        ``names`` (verified certificate names) matches. An Outbound Only entry trusts only
        requests on a connection we opened (``outbound``: responses, in-dialog requests)."""
        candidates = self.by_ip.get(ip, ())
        for name in names:
            candidates += self.by_name.get(name.lower(), ())
        if not candidates:  # a client: nothing to choose from
            return None
        usable = [entry for entry in candidates if outbound or not entry[2]]
        return min(usable, key=lambda entry: entry[0])[1] if usable else None


def peer_trust(
    config: NodeConfig, ip: str, names: tuple[str, ...] = (), *, outbound: bool = False
) -> PeerTrust | None:
    """The trust a peer at ``ip`` proving ``names`` gets from ``config``, or None when no
    entry makes it the peer partition (see ``TrustTable.lookup``)."""
    return TrustTable.of(config).lookup(ip, names, outbound=outbound)


def trusted_peer(config: NodeConfig, ip: str, names: tuple[str, ...] = ()) -> str | None:
    """The entry that makes a peer at ``ip`` proving ``names`` the peer partition, as a
    phrase; None when none does."""
    trust = peer_trust(config, ip, names)
    return trust.entry if trust is not None else None


@dataclass(frozen=True, slots=True)
class PartitionHops:
    """The next hops of the static routes for our domains, by address and by name: a
    trusted peer among them is the other partition (DESIGN §4)."""

    by_ip: Mapping[str, StaticRoute] = field(default_factory=dict)
    by_name: Mapping[str, StaticRoute] = field(default_factory=dict)

    @classmethod
    def of(
        cls, routes: Iterable[StaticRoute], domains: Collection[str], hosts: Mapping[str, str]
    ) -> PartitionHops:
        """The hops of ``routes`` whose Matching URI takes one of ``domains``; an FQDN next
        hop also counts by the address the hosts table gives it."""
        by_ip: dict[str, StaticRoute] = {}
        by_name: dict[str, StaticRoute] = {}
        for route in routes:
            pattern = route.domain
            ours = pattern in domains or (
                pattern.startswith("*.") and any(d.endswith(pattern[1:]) for d in domains)
            )
            if not ours:
                continue
            if route.ip is not None:
                by_ip.setdefault(route.ip, route)
            if route.fqdn is not None:
                by_name.setdefault(route.fqdn, route)
                if route.fqdn in hosts:
                    by_ip.setdefault(hosts[route.fqdn], route)
        return cls(by_ip, by_name)

    def route_for(self, ip: str, names: tuple[str, ...] = ()) -> StaticRoute | None:
        """The route whose next hop is the peer at ``ip`` proving ``names``, or None."""
        route = self.by_ip.get(ip)
        for name in names:
            if route is not None:
                break
            route = self.by_name.get(name.lower())
        return route


def peer_partition_route(
    routes: Iterable[StaticRoute],
    domains: Collection[str],
    hosts: Mapping[str, str],
    ip: str,
    names: tuple[str, ...] = (),
) -> StaticRoute | None:
    """The static route for one of our domains whose next hop is the peer at ``ip``
    proving ``names``: that peer is the other partition, and a request from it for a user
    who is not ours must not go back. Other trusted hosts (gateways, applications) are not
    the partition."""
    return PartitionHops.of(routes, domains, hosts).route_for(ip, names)
