"""What a pool member knows of the others, sans-IO: the hop of the intra-pool link, the
member that holds a user's client flow, and whom it trusts as a member."""

from __future__ import annotations

from intrafed.core.actions import Peer
from intrafed.core.pool_view import PoolView
from intrafed.sip.transaction import NextHop

POOL = "pool.example.com"
ALICE = "alice@example.com"


def front_end_view(tls: bool = True) -> PoolView:
    view = PoolView(POOL, POOL, tls)
    view.member_listening("fe2.example.com", "127.0.15.2", (("TCP", 5060), ("MTLS", 5061)))
    view.member_listening("fe3.example.com", "127.0.15.3", (("TLS", 5062),))
    return view


def test_a_member_is_reached_over_mtls_verified_by_the_pool_name_else_over_tcp() -> None:
    view = front_end_view()
    hop = NextHop("TLS", "fe2.example.com", 5061)
    assert view.members["fe2.example.com"].hop == hop
    assert view.connect_to(hop) == ("127.0.15.2", POOL)
    # An IM&P node's certificate names the node itself.
    imp = PoolView("cup", None, tls=True)
    imp.member_listening("imp2.example.com", "127.0.15.4", (("TCP", 5060), ("MTLS", 5061)))
    assert imp.connect_to(NextHop("TLS", "imp2.example.com", 5061)) == (
        "127.0.15.4",
        "imp2.example.com",
    )
    # Without TLS of its own, a member relays over TCP; a member it cannot reach is none.
    plain = front_end_view(tls=False)
    assert plain.members["fe2.example.com"].hop == NextHop("TCP", "127.0.15.2", 5060)
    assert plain.connect_to(NextHop("TCP", "127.0.15.2", 5060)) is None
    assert view.members["fe3.example.com"].hop is None
    # A static route's hop is not a member's, even to a member's name.
    assert view.connect_to(NextHop("TLS", "fe2.example.com", 5999)) is None


def test_the_members_holding_a_live_registration_are_those_a_request_is_relayed_to() -> None:
    view = front_end_view()
    assert view.holders(ALICE, 100.0) == []
    view.bindings_changed(ALICE, "fe2.example.com", 200.0)
    view.bindings_changed(ALICE, "fe3.example.com", 300.0)
    # fe3 holds the later registration but has no listener this member can reach.
    assert [member.name for member in view.holders(ALICE, 100.0)] == ["fe2.example.com"]
    assert view.registered_until(ALICE, 100.0) == 300.0
    assert view.holders(ALICE, 250.0) == []
    view.bindings_changed(ALICE, "fe3.example.com", 0.0)
    view.bindings_changed(ALICE, "fe2.example.com", 0.0)
    assert (view.holders(ALICE, 100.0), view.registered_until(ALICE, 100.0)) == ([], None)


def test_members_are_trusted_by_the_pool_certificate_or_their_address_and_no_one_else() -> None:
    view = front_end_view()
    assert view.trust(Peer("127.0.15.9", 1, "MTLS", (POOL,))) is not None
    assert view.trust(Peer("127.0.15.2", 1, "TCP")) is not None
    # Another certificate, or a member's address over TLS without the pool's name.
    assert view.trust(Peer("127.0.15.9", 1, "MTLS", ("imp1.example.com",))) is None
    assert view.trust(Peer("127.0.15.2", 1, "TLS")) is None
    assert view.trust(Peer("127.0.15.9", 1, "TCP")) is None
    # A node on its own has no members.
    assert PoolView(None, None, tls=True).trust(Peer("127.0.15.2", 1, "MTLS", (POOL,))) is None
