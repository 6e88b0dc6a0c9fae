"""The stateful proxy (RFC 3261 §16) over a real transaction layer, with plain messages."""

from __future__ import annotations

from intrafed.policy import RouteStamp
from intrafed.services.proxy import StatefulProxy
from intrafed.sip import Request, Response, parse_message, parse_uri
from intrafed.sip.addressing import Listener, next_hop_for_uri, response_hop
from intrafed.sip.decisions import Forward, Reject
from intrafed.sip.header_values import parse_via
from intrafed.sip.transaction import NextHop, Target, TransactionLayer
from tests.messages import request, response_to
from tests.services.routers import Decide, TableRouter

LISTENERS = {
    "TCP": Listener("TCP", "127.0.0.2", 5060),
    "TLS": Listener("TLS", "imp1.example.com", 5061),
}
OCS = NextHop("TLS", "ocs1.example.com", 5061)
CLIENT_FLOW = 1


def decide(message: Request, flow: int) -> Forward | Reject:
    if message.uri.host == "example.com":  # type: ignore[union-attr]
        return Forward(OCS)
    return Reject(404, "no static route for the domain")


class Harness:
    def __init__(self, route: Decide = decide, stamp: RouteStamp | None = None) -> None:
        self.layer = TransactionLayer()
        self.proxy = StatefulProxy(
            self.layer,
            name="imp1.example.com",
            listeners=LISTENERS,
            router=TableRouter(route),
            route_stamp=stamp,
        )
        self.now = 0.0

    def pump(self) -> list[tuple[Target, Request | Response]]:
        while (event := self.layer.next_event()) is not None:
            self.proxy.handle(event, self.now)
        return [
            (target, parse_message(data, stream=True)) for target, data in self.layer.outgoing()
        ]

    def client_sends(self, message: Request) -> list[tuple[Target, Request | Response]]:
        self.layer.receive_request(message, CLIENT_FLOW, self.now)
        return self.pump()

    def downstream_answers(
        self, forwarded: Request, status: int
    ) -> list[tuple[Target, Request | Response]]:
        self.layer.receive_response(response_to(forwarded.to_bytes(), status), 2, self.now)
        return self.pump()


def only_request(sent: list[tuple[Target, Request | Response]]) -> tuple[Target, Request]:
    requests = [(target, m) for target, m in sent if isinstance(m, Request)]
    assert len(requests) == 1, sent
    return requests[0]  # type: ignore[return-value]


def responses(sent: list[tuple[Target, Request | Response]]) -> list[tuple[Target, int]]:
    return [(target, m.status) for target, m in sent if isinstance(m, Response)]


def test_message_is_forwarded_with_our_via_and_one_hop_less() -> None:
    harness = Harness()
    target, forwarded = only_request(harness.client_sends(request()))
    assert target == OCS
    top = forwarded.top_via
    assert (top.transport, top.sent_by, top.alias) == ("TLS", "imp1.example.com:5061", True)
    assert top.branch is not None
    assert top.branch.startswith("z9hG4bK")
    assert forwarded.vias[1].branch == "z9hG4bK-client-1"
    assert forwarded.max_forwards == 69
    assert "record-route" not in forwarded.headers


def test_final_response_goes_upstream_without_our_via() -> None:
    harness = Harness()
    _, forwarded = only_request(harness.client_sends(request()))
    [(target, relayed)] = harness.downstream_answers(forwarded, 200)
    assert target == CLIENT_FLOW
    assert isinstance(relayed, Response)
    assert relayed.status == 200
    assert [via.branch for via in relayed.vias] == ["z9hG4bK-client-1"]
    assert harness.layer.pending == 0


def test_invite_is_record_routed_on_both_sides_when_transports_differ() -> None:
    harness = Harness()
    sent = harness.client_sends(request("INVITE"))
    assert responses(sent) == [(CLIENT_FLOW, 100)]
    _, forwarded = only_request(sent)
    assert forwarded.headers.get_all("record-route") == [
        "<sip:imp1.example.com:5061;transport=tls;lr>",
        "<sip:127.0.0.2:5060;transport=tcp;lr>",
    ]
    assert responses(harness.downstream_answers(forwarded, 180)) == [(CLIENT_FLOW, 180)]
    assert responses(harness.downstream_answers(forwarded, 200)) == [(CLIENT_FLOW, 200)]


def test_a_tls_client_and_the_mtls_peer_each_get_their_own_listener_in_record_route() -> None:
    harness = Harness()
    harness.proxy = StatefulProxy(
        harness.layer,
        name="imp1.example.com",
        listeners={
            "MTLS": Listener("TLS", "imp1.example.com", 5061),
            "TLS": Listener("TLS", "imp1.example.com", 5062),
        },
        router=TableRouter(decide, "TLS"),
    )
    _, forwarded = only_request(harness.client_sends(request("INVITE")))
    # Toward the peer partition over TLS: the MTLS listener (it presents a certificate).
    assert forwarded.top_via.sent_by == "imp1.example.com:5061"
    assert forwarded.headers.get_all("record-route") == [
        "<sip:imp1.example.com:5061;transport=tls;lr>",
        "<sip:imp1.example.com:5062;transport=tls;lr>",
    ]


def test_a_response_whose_connection_is_gone_goes_to_the_tls_name_not_the_received_ip() -> None:
    tls = parse_via("SIP/2.0/TLS ocs1.example.com:5061;branch=z9hG4bK1;received=127.0.0.3")
    assert response_hop(tls) == NextHop("TLS", "ocs1.example.com", 5061)
    tcp = parse_via("SIP/2.0/TCP client.example.com:5070;branch=z9hG4bK2;received=127.0.0.9")
    assert response_hop(tcp) == NextHop("TCP", "127.0.0.9", 5070)


def test_max_forwards_zero_gets_483_with_a_warning() -> None:
    harness = Harness()
    message = request(extra="")
    message = Request(message.method, message.uri, message.headers.replace("Max-Forwards", "0"))
    [(target, answer)] = harness.client_sends(message)
    assert isinstance(answer, Response)
    assert (target, answer.status) == (CLIENT_FLOW, 483)
    assert answer.headers.get("warning") == '399 imp1.example.com "Max-Forwards reached 0"'


def test_a_request_that_comes_back_unchanged_is_a_loop() -> None:
    harness = Harness()
    _, forwarded = only_request(harness.client_sends(request()))
    [(_, answer)] = harness.client_sends(forwarded)
    assert isinstance(answer, Response)
    assert answer.status == 482
    assert "request already passed imp1.example.com:5061" in (answer.headers.get("warning") or "")


def test_a_spiral_with_a_new_request_uri_is_not_a_loop() -> None:
    harness = Harness()
    _, forwarded = only_request(harness.client_sends(request()))
    spiral = Request(
        forwarded.method, parse_uri("sip:bob2@example.com"), forwarded.headers, forwarded.body
    )
    target, _ = only_request(harness.client_sends(spiral))
    assert target == OCS


def test_unsupported_proxy_require_gets_420_listing_it() -> None:
    harness = Harness()
    [(_, answer)] = harness.client_sends(request(extra="Proxy-Require: noProxiesSupportThis\r\n"))
    assert isinstance(answer, Response)
    assert answer.status == 420
    assert answer.headers.get("unsupported") == "noProxiesSupportThis"


def test_a_rejecting_decision_answers_with_its_rule() -> None:
    harness = Harness()
    [(_, answer)] = harness.client_sends(request(uri="sip:carol@elsewhere.test"))
    assert isinstance(answer, Response)
    assert answer.status == 404
    assert answer.to_addr.tag is not None
    assert "no static route for the domain" in (answer.headers.get("warning") or "")


def test_unreachable_next_hop_becomes_500_with_the_reason() -> None:
    harness = Harness()
    sent = harness.client_sends(request())
    [(_, forwarded)] = sent
    assert isinstance(forwarded, Request)
    key = (forwarded.top_via.branch or "", "MESSAGE")
    harness.layer.transport_failed(key, "connection refused by 127.0.0.3:5061", harness.now)
    [(target, answer)] = harness.pump()
    assert isinstance(answer, Response)
    assert (target, answer.status) == (CLIENT_FLOW, 500)
    assert "connection refused by 127.0.0.3:5061" in (answer.headers.get("warning") or "")


def test_no_answer_becomes_408_after_timer_f() -> None:
    harness = Harness()
    harness.client_sends(request())
    harness.now = 32.0
    harness.layer.handle_timer(harness.now)
    [(_, answer)] = harness.pump()
    assert isinstance(answer, Response)
    assert answer.status == 408
    assert "timer F" in (answer.headers.get("warning") or "")


def test_cancel_after_ringing_cancels_the_branch_and_relays_487() -> None:
    harness = Harness()
    _, forwarded = only_request(harness.client_sends(request("INVITE")))
    harness.downstream_answers(forwarded, 180)
    sent = harness.client_sends(request("CANCEL"))
    assert responses(sent) == [(CLIENT_FLOW, 200)]
    target, cancel = only_request(sent)
    assert (target, cancel.method, cancel.top_via.branch) == (
        OCS,
        "CANCEL",
        forwarded.top_via.branch,
    )
    assert responses(harness.downstream_answers(forwarded, 487)) == [(CLIENT_FLOW, 487)]


def test_cancel_before_any_provisional_waits_for_one() -> None:
    harness = Harness()
    _, forwarded = only_request(harness.client_sends(request("INVITE")))
    assert [m for _, m in harness.client_sends(request("CANCEL")) if isinstance(m, Request)] == []
    sent = harness.downstream_answers(forwarded, 180)
    _, cancel = only_request(sent)
    assert cancel.method == "CANCEL"


def test_cancel_for_nothing_gets_481() -> None:
    harness = Harness()
    [(_, answer)] = harness.client_sends(request("CANCEL"))
    assert isinstance(answer, Response)
    assert answer.status == 481


def test_loose_route_to_us_is_popped_and_the_next_route_followed() -> None:
    harness = Harness()
    routed = request(
        "BYE",
        uri="sip:bob@127.0.0.9:5070;transport=tcp",
        to="<sip:bob@example.com>;tag=bob-tag",
        extra="Route: <sip:127.0.0.2:5060;transport=tcp;lr>, <sip:127.0.0.8:5080;lr>\r\n",
    )
    target, forwarded = only_request(harness.client_sends(routed))
    assert target == NextHop("TCP", "127.0.0.8", 5080)
    assert forwarded.headers.get_list("route") == ["<sip:127.0.0.8:5080;lr>"]


def test_in_dialog_request_whose_only_route_is_ours_goes_to_the_request_uri() -> None:
    harness = Harness()
    in_dialog = request(
        "BYE",
        uri="sip:bob@127.0.0.9:5070;transport=tcp",
        to="<sip:bob@example.com>;tag=x",
        extra="Route: <sip:127.0.0.2:5060;transport=tcp;lr>\r\n",
    )
    target, _ = only_request(harness.client_sends(in_dialog))
    assert target == NextHop("TCP", "127.0.0.9", 5070)


def test_in_dialog_request_without_our_route_is_routed_not_relayed() -> None:
    harness = Harness()
    stray = request(
        "BYE", uri="sip:bob@127.0.0.9:5070;transport=tcp", to="<sip:bob@example.com>;tag=x"
    )
    sent = harness.client_sends(stray)
    assert [m.status for _, m in sent if isinstance(m, Response)] == [404]


def test_strict_router_rewrite_is_undone() -> None:
    harness = Harness()
    strict = request(
        "BYE",
        uri="sip:127.0.0.2:5060;transport=tcp",
        to="<sip:bob@example.com>;tag=x",
        extra="Route: <sip:bob@127.0.0.9:5070;transport=tcp>\r\n",
    )
    target, forwarded = only_request(harness.client_sends(strict))
    assert target == NextHop("TCP", "127.0.0.9", 5070)
    assert str(forwarded.uri) == "sip:bob@127.0.0.9:5070;transport=tcp"
    assert "route" not in forwarded.headers


def test_ack_of_a_2xx_is_forwarded_statelessly_along_its_route() -> None:
    harness = Harness()
    ack = request(
        "ACK",
        branch="z9hG4bK-ack",
        uri="sip:bob@127.0.0.9:5070;transport=tcp",
        to="<sip:bob@example.com>;tag=bob-tag",
        extra="Route: <sip:127.0.0.2:5060;transport=tcp;lr>\r\n",
    )
    target, forwarded = only_request(harness.client_sends(ack))
    assert target == NextHop("TCP", "127.0.0.9", 5070)
    assert forwarded.max_forwards == 69
    assert len(forwarded.vias) == 2
    assert harness.layer.pending == 0


def test_an_ack_without_our_route_is_not_relayed() -> None:
    harness = Harness()
    for n, extra in enumerate(("", "Route: <sip:127.0.0.66:5060;lr>\r\n")):
        ack = request(
            "ACK",
            branch=f"z9hG4bK-stray-{n}",
            uri="sip:victim@127.0.0.66:5070;transport=tcp",
            to="<sip:bob@example.com>;tag=bob-tag",
            extra=extra,
        )
        assert harness.client_sends(ack) == []


def test_our_record_route_is_signed_and_an_ack_must_carry_the_signature() -> None:
    stamp = RouteStamp(b"a route secret of 32 bytes......")
    harness = Harness(stamp=stamp)
    invite = request("INVITE")
    _, forwarded = only_request(harness.client_sends(invite))
    signed = forwarded.headers.get_all("record-route")[-1]
    assert signed == f"<sip:127.0.0.2:5060;transport=tcp;lr{stamp.params(invite)}>"

    def ack(route: str, n: int) -> Request:
        return request(
            "ACK",
            branch=f"z9hG4bK-ack-{n}",
            uri="sip:bob@127.0.0.9:5070;transport=tcp",
            to="<sip:bob@example.com>;tag=bob-tag",
            extra=f"Route: {route}\r\n",
        )

    assert harness.client_sends(ack("<sip:127.0.0.2:5060;transport=tcp;lr>", 1)) == []
    [(target, _)] = harness.client_sends(ack(signed, 2))
    assert target == NextHop("TCP", "127.0.0.9", 5070)


def test_next_hop_for_uri_follows_transport_and_default_ports() -> None:
    assert next_hop_for_uri(parse_uri("sip:a@host.example")) == NextHop("TCP", "host.example", 5060)
    assert next_hop_for_uri(parse_uri("sips:a@host.example")) == NextHop(
        "TLS", "host.example", 5061
    )
    assert next_hop_for_uri(parse_uri("sip:[::1]:5090;transport=tls")) == NextHop(
        "TLS", "::1", 5090
    )
    assert next_hop_for_uri(parse_uri("sip:a@host;transport=udp")) is None
    assert next_hop_for_uri(parse_uri("tel:+15551234")) is None


def test_an_unreachable_first_route_fails_over_to_the_next_priority() -> None:
    backup = NextHop("TLS", "ocs2.example.com", 5061)
    harness = Harness(lambda message, flow: Forward(OCS, alternatives=(backup,)))
    _, first = only_request(harness.client_sends(request()))
    harness.layer.transport_failed((first.top_via.branch or "", "MESSAGE"), "refused", harness.now)
    target, second = only_request(harness.pump())
    assert target == backup
    assert second.top_via.branch != first.top_via.branch
    assert responses(harness.downstream_answers(second, 200)) == [(CLIENT_FLOW, 200)]


def test_when_every_route_is_unreachable_the_last_reason_goes_upstream() -> None:
    backup = NextHop("TLS", "ocs2.example.com", 5061)
    harness = Harness(lambda message, flow: Forward(OCS, alternatives=(backup,)))
    _, first = only_request(harness.client_sends(request()))
    harness.layer.transport_failed((first.top_via.branch or "", "MESSAGE"), "refused", harness.now)
    _, second = only_request(harness.pump())
    harness.layer.transport_failed(
        (second.top_via.branch or "", "MESSAGE"), "timed out", harness.now
    )
    [(_, answer)] = harness.pump()
    assert isinstance(answer, Response)
    assert answer.status == 500
    assert "timed out" in (answer.headers.get("warning") or "")


def test_a_request_the_node_does_not_authorize_gets_403_with_the_reason() -> None:
    harness = Harness()
    harness.proxy = StatefulProxy(
        harness.layer,
        name="imp1.example.com",
        listeners=LISTENERS,
        router=TableRouter(
            decide,
            "TLS",
            authorize=lambda message, flow: Reject(
                403, "MTLS peer 127.0.0.9 (evil.test) is not trusted"
            ),
        ),
    )
    [(target, answer)] = harness.client_sends(request())
    assert isinstance(answer, Response)
    assert (target, answer.status) == (CLIENT_FLOW, 403)
    assert "MTLS peer 127.0.0.9 (evil.test) is not trusted" in (answer.headers.get("warning") or "")
