"""Which connections are the peer partition."""

from __future__ import annotations

import dataclasses

from intrafed.config.model import (
    AclEntry,
    HostAuthorization,
    NodeConfig,
    NodeIdentity,
    Role,
    StaticRoute,
)
from intrafed.policy import TrustTable, peer_partition_route, peer_trust, trusted_peer

OCS = NodeConfig(
    NodeIdentity(Role.OCS, "ocs1.example.com", "127.0.0.3"),
    host_authorizations=(
        HostAuthorization(fqdn="imp1.example.com"),
        HostAuthorization(ip="127.0.0.2"),
        HostAuthorization(ip="127.0.0.9", outbound_only=True),
    ),
)
IMP = NodeConfig(
    NodeIdentity(Role.IMP, "imp1.example.com", "127.0.0.2"),
    peer_subjects=("ocs1.example.com",),
    acl=(AclEntry(ip="127.0.0.3"),),
)


def test_ocs_trusts_host_authorization_by_ip_or_certificate_name() -> None:
    assert trusted_peer(OCS, "127.0.0.2") == "host authorization 127.0.0.2"
    assert (
        trusted_peer(OCS, "10.9.9.9", ("IMP1.example.com",))
        == "host authorization imp1.example.com"
    )
    assert trusted_peer(OCS, "10.9.9.9", ("imp9.example.com",)) is None


def test_outbound_only_gives_no_trust_to_connections_the_host_opens() -> None:
    assert trusted_peer(OCS, "127.0.0.9") is None


def test_imp_trusts_its_acl_and_tls_peer_subjects() -> None:
    assert trusted_peer(IMP, "127.0.0.3") == "incoming ACL 127.0.0.3"
    assert (
        trusted_peer(IMP, "10.0.0.1", ("ocs1.example.com",)) == "TLS peer subject ocs1.example.com"
    )
    assert trusted_peer(dataclasses.replace(IMP, acl=()), "127.0.0.3") is None


ROUTES = (
    StaticRoute("example.com", "TLS", 5061, fqdn="imp1.example.com"),
    StaticRoute("partner.example.net", "TCP", 5060, ip="192.0.2.7"),
)
HOSTS = {"imp1.example.com": "127.0.0.2"}


def test_the_peer_partition_is_the_next_hop_of_a_route_for_our_domain() -> None:
    by_name = peer_partition_route(ROUTES, {"example.com"}, {}, "10.0.0.1", ("imp1.example.com",))
    by_address = peer_partition_route(ROUTES, {"example.com"}, HOSTS, "127.0.0.2")
    assert by_name == by_address == ROUTES[0]


def test_other_trusted_hosts_and_other_domains_next_hops_are_not_the_partition() -> None:
    assert peer_partition_route(ROUTES, {"example.com"}, HOSTS, "127.0.0.9") is None
    assert peer_partition_route(ROUTES, {"example.com"}, HOSTS, "192.0.2.7") is None
    wildcard = (StaticRoute("*.example.com", "TCP", 5060, ip="127.0.0.5"),)
    assert peer_partition_route(wildcard, {"sales.example.com"}, {}, "127.0.0.5") == wildcard[0]


def test_the_first_matching_entry_wins_whether_found_by_address_or_by_name() -> None:
    config = dataclasses.replace(
        OCS,
        host_authorizations=(
            HostAuthorization(fqdn="imp1.example.com", treat_as_authenticated=False),
            HostAuthorization(ip="127.0.0.2"),
        ),
    )
    table = TrustTable.of(config)
    by_both = table.lookup("127.0.0.2", ("imp1.example.com",))
    assert by_both is not None
    assert (by_both.entry, by_both.authenticated) == (
        "host authorization imp1.example.com",
        False,
    )
    by_address = table.lookup("127.0.0.2")
    assert by_address is not None
    assert by_address.authenticated


def test_an_outbound_only_entry_trusts_only_connections_we_opened() -> None:
    assert peer_trust(OCS, "127.0.0.9") is None
    opened = peer_trust(OCS, "127.0.0.9", outbound=True)
    assert opened is not None
    assert opened.entry == "host authorization 127.0.0.9"
