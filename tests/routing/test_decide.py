"""The routing decision of DESIGN §4 with plain tables."""

from __future__ import annotations

import dataclasses

import pytest

from intrafed.config.model import NodeConfig, NodeIdentity, Role, RoutingMode, StaticRoute
from intrafed.routing import Local, RoutingTables, ToPeer, decide, matching_routes
from intrafed.sip import SipUri, parse_uri
from intrafed.sip.decisions import Reject

TO_OCS = StaticRoute("example.com", "TLS", 5061, fqdn="ocs1.example.com")
BACKUP = StaticRoute("example.com", "TLS", 5061, fqdn="ocs2.example.com", priority=2)
CHILDREN = StaticRoute("*.example.com", "TCP", 5060, ip="192.0.2.9")
DEEPER = StaticRoute("*.lab.example.com", "TCP", 5060, ip="192.0.2.10")
PHONES = StaticRoute("example.com", "TCP", 5060, ip="192.0.2.20", phone_uri=True)
PARTNER = StaticRoute("partner.test", "TCP", 5060, ip="192.0.2.30", replace_host=True)

TABLES = RoutingTables(
    domains=frozenset({"example.com"}),
    users=frozenset({"alice@example.com"}),
    routes=(BACKUP, TO_OCS, CHILDREN, DEEPER, PHONES, PARTNER),
)


def route(uri: str, *, from_peer: bool = False, tables: RoutingTables = TABLES) -> object:
    return decide(parse_uri(uri), tables, from_peer=from_peer, explain=True)


def test_a_provisioned_user_is_local() -> None:
    decision = route("sip:alice@example.com")
    assert isinstance(decision, Local)
    assert decision.aor == "alice@example.com"


def test_a_user_not_homed_here_goes_to_the_peer_partition_by_priority() -> None:
    decision = route("sip:bob@example.com")
    assert isinstance(decision, ToPeer)
    assert decision.routes == (TO_OCS, BACKUP)
    assert decision.request_uri is None


def test_from_the_peer_partition_an_unknown_user_is_404_not_sent_back() -> None:
    decision = route("sip:nobody@example.com", from_peer=True)
    assert isinstance(decision, Reject)
    assert decision.status == 404
    assert "came from the peer partition" in decision.rule


def test_the_most_specific_matching_uri_wins() -> None:
    assert route("sip:x@a.lab.example.com").routes == (DEEPER,)  # type: ignore[attr-defined]
    assert route("sip:x@sales.example.com").routes == (CHILDREN,)  # type: ignore[attr-defined]
    assert matching_routes(TABLES.routes, "example.org", phone=False) == ()


def test_phone_uris_follow_only_phone_routes() -> None:
    assert route("sip:+15551234@example.com;user=phone").routes == (PHONES,)  # type: ignore[attr-defined]
    assert route("tel:+15551234").routes == (PHONES,)  # type: ignore[attr-defined]
    assert PHONES not in route("sip:bob@example.com").routes  # type: ignore[attr-defined]


def test_replace_host_rewrites_the_request_uri_to_the_next_hop() -> None:
    decision = route("sip:carol@partner.test")
    assert isinstance(decision, ToPeer)
    assert isinstance(decision.request_uri, SipUri)
    assert str(decision.request_uri) == "sip:carol@192.0.2.30:5060"


@pytest.mark.parametrize(
    ("uri", "status", "rule"),
    [
        ("sip:x@elsewhere.test", 403, "no static route for domain elsewhere.test"),
        ("im:x@example.com", 416, "Request-URI scheme im: is not supported"),
    ],
)
def test_refusals_name_their_rule(uri: str, status: int, rule: str) -> None:
    decision = route(uri)
    assert isinstance(decision, Reject)
    assert (decision.status, decision.rule) == (status, rule)


def test_our_domain_without_any_route_is_404() -> None:
    tables = RoutingTables(domains=frozenset({"example.com"}), users=frozenset(), routes=())
    decision = route("sip:bob@example.com", tables=tables)
    assert isinstance(decision, Reject)
    assert decision.status == 404


def test_advanced_mode_forwards_only_users_in_the_peer_directory() -> None:
    tables = RoutingTables(
        domains=frozenset({"example.com"}),
        users=frozenset(),
        routes=(TO_OCS,),
        routing_mode=RoutingMode.ADVANCED,
        peer_directory=frozenset({"bob@example.com"}),
    )
    forwarded = route("sip:bob@example.com", tables=tables)
    assert isinstance(forwarded, ToPeer)
    assert "advanced routing mode: bob@example.com is in the peer directory" in forwarded.reasons
    refused = route("sip:eve@example.com", tables=tables)
    assert isinstance(refused, Reject)
    assert refused.status == 404
    assert refused.rule == (
        "eve@example.com is not in the peer partition's directory (advanced routing mode)"
    )
    assert refused.reasons[-1] == (
        "advanced routing mode: eve@example.com is not in the peer directory"
    )
    assert isinstance(route("sip:carol@partner.test", tables=tables), Reject)


def test_the_tables_of_a_configuration_carry_its_peer_directory() -> None:
    config = NodeConfig(
        NodeIdentity(Role.IMP, "imp1.example.com", "127.0.0.2"),
        domains=("example.com",),
        routes=(TO_OCS,),
        routing_mode=RoutingMode.ADVANCED,
        peer_directory=("bob@example.com",),
    )
    tables = RoutingTables.from_config(config)
    assert tables.peer_directory == frozenset({"bob@example.com"})
    assert isinstance(route("sip:bob@example.com", tables=tables), ToPeer)
    basic = RoutingTables.from_config(dataclasses.replace(config, routing_mode=RoutingMode.BASIC))
    assert isinstance(route("sip:eve@example.com", tables=basic), ToPeer)


def test_every_decision_explains_itself() -> None:
    decision = route("sip:bob@example.com")
    assert isinstance(decision, ToPeer)
    assert decision.reasons == (
        "example.com is one of our domains",
        "bob@example.com is not provisioned here",
        "static route example.com (priority 1) → TLS ocs1.example.com:5061",
    )


def test_the_per_request_decision_formats_no_reasons_but_decides_the_same() -> None:
    """Route explain asks for the sentences; the proxy's path (once per message) does not
    pay for them."""
    for uri in ("sip:alice@example.com", "sip:bob@example.com", "sip:carol@partner.test"):
        for from_peer in (False, True):
            explained = route(uri, from_peer=from_peer)
            quiet = decide(parse_uri(uri), TABLES, from_peer=from_peer)
            assert quiet.reasons == ()
            assert dataclasses.replace(explained, reasons=()) == quiet
