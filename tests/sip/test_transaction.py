"""The transaction layer (RFC 3261 §17) driven with plain messages and a fake clock."""

from __future__ import annotations

import pytest

from intrafed.sip import LocalSipError, Request, Response, parse_message
from intrafed.sip.header_values import Via, parse_via
from intrafed.sip.responses import make_response
from intrafed.sip.transaction import (
    RESENDS_AFTER_CLEAN_CLOSE,
    AckReceived,
    ClientTimedOut,
    ClientTransportFailed,
    NextHop,
    RequestReceived,
    ResponseReceived,
    ServerTimedOut,
    State,
    StrayResponse,
    TimerConfig,
    TransactionEvent,
    TransactionLayer,
)
from tests.messages import request, response_to

HOP = NextHop("TCP", "127.0.0.3", 5060)


def events(layer: TransactionLayer) -> list[TransactionEvent]:
    found = []
    while (event := layer.next_event()) is not None:
        found.append(event)
    return found


def sent_messages(layer: TransactionLayer) -> list[str]:
    return [parse_message(data, stream=True).start_line() for _, data in layer.outgoing()]


def test_timers_derive_from_t1() -> None:
    timers = TimerConfig(t1=0.25)
    assert (timers.timer_b, timers.timer_f, timers.timer_h) == (16.0, 16.0, 16.0)
    assert TimerConfig().timer_b == 32.0


def test_non_invite_server_answers_once_and_absorbs_retransmissions() -> None:
    layer = TransactionLayer()
    message = request()
    layer.receive_request(message, flow=7, now=0.0)
    [event] = events(layer)
    assert isinstance(event, RequestReceived)
    assert event.flow == 7
    layer.receive_request(message, flow=7, now=0.1)
    assert events(layer) == []
    assert layer.outgoing() == []
    layer.send_response(event.transaction, make_response(message, 200, to_tag="t"), now=0.2)
    assert [target for target, _ in layer.outgoing()] == [7]
    # Over a reliable transport timer J is zero: the transaction is gone at once.
    assert layer.server_state(event.transaction) is State.TERMINATED
    assert layer.pending == 0


def test_invite_server_sends_100_trying_at_once() -> None:
    layer = TransactionLayer()
    layer.receive_request(request("INVITE"), flow=1, now=0.0)
    assert sent_messages(layer) == ["SIP/2.0 100 Trying"]


def test_invite_retransmission_in_proceeding_resends_the_last_provisional() -> None:
    layer = TransactionLayer()
    invite = request("INVITE")
    layer.receive_request(invite, flow=1, now=0.0)
    [event] = events(layer)
    layer.outgoing()
    layer.send_response(event.transaction, make_response(invite, 180, to_tag="t"), now=0.1)
    layer.outgoing()
    layer.receive_request(invite, flow=1, now=0.2)
    assert sent_messages(layer) == ["SIP/2.0 180 Ringing"]
    assert events(layer) == []


def test_ack_for_non_2xx_is_absorbed_and_ends_the_transaction() -> None:
    layer = TransactionLayer()
    invite = request("INVITE")
    layer.receive_request(invite, flow=1, now=0.0)
    [event] = events(layer)
    layer.send_response(event.transaction, make_response(invite, 486, to_tag="t"), now=0.1)
    assert layer.server_state(event.transaction) is State.COMPLETED
    ack = request("ACK", cseq=1, to="<sip:bob@example.com>;tag=t")
    layer.receive_request(ack, flow=1, now=0.2)
    assert events(layer) == []
    assert layer.server_state(event.transaction) is State.TERMINATED


def test_timer_h_fires_when_the_ack_never_comes() -> None:
    layer = TransactionLayer(TimerConfig(t1=0.5))
    invite = request("INVITE")
    layer.receive_request(invite, flow=1, now=0.0)
    [event] = events(layer)
    layer.send_response(event.transaction, make_response(invite, 404, to_tag="t"), now=1.0)
    assert layer.get_timer() == 33.0
    layer.handle_timer(32.9)
    assert events(layer) == []
    layer.handle_timer(33.0)
    assert events(layer) == [ServerTimedOut(event.transaction)]
    assert layer.pending == 0
    assert layer.get_timer() is None


def test_ack_for_2xx_matches_no_transaction_and_goes_to_the_user() -> None:
    layer = TransactionLayer()
    invite = request("INVITE")
    layer.receive_request(invite, flow=1, now=0.0)
    [event] = events(layer)
    layer.send_response(event.transaction, make_response(invite, 200, to_tag="t"), now=0.1)
    ack = request("ACK", branch="z9hG4bK-ack-2", to="<sip:bob@example.com>;tag=t")
    layer.receive_request(ack, flow=1, now=0.2)
    assert events(layer) == [AckReceived(ack, 1)]


def test_cancel_names_the_invite_it_cancels() -> None:
    layer = TransactionLayer()
    layer.receive_request(request("INVITE"), flow=1, now=0.0)
    [invite_event] = events(layer)
    layer.receive_request(request("CANCEL"), flow=1, now=0.1)
    [cancel_event] = events(layer)
    assert isinstance(cancel_event, RequestReceived)
    assert cancel_event.cancels == invite_event.transaction
    layer.receive_request(request("CANCEL", branch="z9hG4bK-other"), flow=1, now=0.2)
    [orphan] = events(layer)
    assert isinstance(orphan, RequestReceived)
    assert orphan.cancels is None


def test_client_non_invite_timer_f_fires_without_response() -> None:
    layer = TransactionLayer(TimerConfig(t1=0.5))
    key = layer.send_request(request(), HOP, now=10.0)
    assert [target for target, _ in layer.outgoing()] == [HOP]
    assert layer.get_timer() == 42.0
    layer.handle_timer(42.0)
    assert events(layer) == [ClientTimedOut(key, "F")]
    assert layer.client_state(key) is State.TERMINATED


def test_client_invite_timer_b_then_timer_c_after_a_provisional() -> None:
    layer = TransactionLayer(TimerConfig(t1=0.5, timer_c=180.0))
    invite = request("INVITE")
    key = layer.send_request(invite, HOP, now=0.0)
    [(_, sent)] = layer.outgoing()
    layer.receive_response(response_to(sent, 180), flow=3, now=1.0)
    [event] = events(layer)
    assert isinstance(event, ResponseReceived)
    # A provisional stops timer B (32 s) and starts timer C.
    layer.handle_timer(40.0)
    assert events(layer) == []
    layer.handle_timer(181.0)
    assert events(layer) == [ClientTimedOut(key, "C")]
    assert layer.client_state(key) is State.PROCEEDING


def test_client_invite_timer_b_fires_in_calling() -> None:
    layer = TransactionLayer()
    key = layer.send_request(request("INVITE"), HOP, now=0.0)
    layer.handle_timer(32.0)
    assert events(layer) == [ClientTimedOut(key, "B")]


def test_client_invite_acks_a_failure_itself_and_absorbs_the_retransmission() -> None:
    layer = TransactionLayer()
    key = layer.send_request(request("INVITE"), HOP, now=0.0)
    [(_, sent)] = layer.outgoing()
    busy = response_to(sent, 486)
    layer.receive_response(busy, flow=3, now=0.5)
    [event] = events(layer)
    assert event == ResponseReceived(key, busy)
    [(target, ack_bytes)] = layer.outgoing()
    ack = parse_message(ack_bytes, stream=True)
    assert isinstance(ack, Request)
    assert (target, ack.method, ack.cseq.method, ack.to_addr.tag) == (HOP, "ACK", "ACK", "bob-tag")
    assert ack.top_via.branch == "z9hG4bK-client-1"
    layer.receive_response(busy, flow=3, now=0.6)
    assert events(layer) == [StrayResponse(busy, 3)]


def test_response_retransmission_after_final_is_stray() -> None:
    layer = TransactionLayer()
    layer.send_request(request(), HOP, now=0.0)
    [(_, sent)] = layer.outgoing()
    ok = response_to(sent, 200)
    layer.receive_response(ok, flow=3, now=0.1)
    assert len(events(layer)) == 1
    layer.receive_response(ok, flow=3, now=0.2)
    assert events(layer) == [StrayResponse(ok, 3)]


def test_transport_failure_is_reported_once() -> None:
    layer = TransactionLayer()
    key = layer.send_request(request(), HOP, now=0.0)
    layer.transport_failed(key, "connection refused", now=0.1)
    layer.transport_failed(key, "connection refused", now=0.2)
    assert events(layer) == [ClientTransportFailed(key, "connection refused")]


def test_requests_written_to_a_connection_that_closes_fail_at_once_not_at_timer_f() -> None:
    layer = TransactionLayer()
    over_hop = layer.send_request(request(branch="z9hG4bK-hop"), HOP, now=0.0)
    over_flow = layer.send_request(request("INVITE", branch="z9hG4bK-flow"), 4, now=0.0)
    answered = layer.send_request(request(branch="z9hG4bK-done"), HOP, now=0.0)
    elsewhere = layer.send_request(request(branch="z9hG4bK-other"), 5, now=0.0)
    for target, _data in layer.outgoing():
        layer.sent_on(target, 4 if target in (HOP, 4) else 5)
    layer.receive_response(response_to(request(branch=answered[0]).to_bytes(), 200), 4, now=0.1)
    assert len(events(layer)) == 1
    layer.flow_closed(4, now=0.2)
    reason = "the connection closed before a final response"
    assert events(layer) == [
        ClientTransportFailed(over_hop, reason, written=True),
        ClientTransportFailed(over_flow, reason, written=True),
    ]
    assert layer.client_state(elsewhere) is State.TRYING
    # Nothing is left to time out later.
    layer.handle_timer(now=40.0)
    assert events(layer) == [ClientTimedOut(elsewhere, "F")]


def test_requests_a_cleanly_closed_connection_left_unanswered_go_again_to_the_same_hop() -> None:
    """The peer proved it read nothing after its last response (TLS close_notify from a
    draining intrafed node): what got no response at all is sent again, same branch, to
    the same next hop; what got a provisional one, or went to a flow, fails as before."""
    layer = TransactionLayer()
    unread = layer.send_request(request(branch="z9hG4bK-unread"), HOP, now=0.0)
    invite = layer.send_request(request("INVITE", branch="z9hG4bK-calling"), HOP, now=0.0)
    trying = layer.send_request(request("INVITE", branch="z9hG4bK-trying"), HOP, now=0.0)
    over_flow = layer.send_request(request(branch="z9hG4bK-flow"), 4, now=0.0)
    for target, _data in layer.outgoing():
        layer.sent_on(target, 4)
    layer.receive_response(response_to(request("INVITE", branch=trying[0]).to_bytes(), 100), 4, 0.1)
    assert len(events(layer)) == 1
    layer.flow_closed(4, now=0.2, clean=True)
    reason = "the connection closed before a final response"
    assert events(layer) == [
        ClientTransportFailed(trying, reason, written=True),
        ClientTransportFailed(over_flow, reason, written=True),
    ]
    again = layer.outgoing()
    assert [
        (target, parse_message(data, stream=True).top_via.branch) for target, data in again
    ] == [
        (HOP, "z9hG4bK-unread"),
        (HOP, "z9hG4bK-calling"),
    ]
    assert layer.client_state(unread) is State.TRYING
    assert layer.client_state(invite) is State.CALLING
    # The new connection carries them; their answers end the transactions as usual.
    layer.sent_on(HOP, 9)
    layer.receive_response(response_to(request(branch=unread[0]).to_bytes(), 200), 9, 0.3)
    assert [type(event) for event in events(layer)] == [ResponseReceived]


def test_a_request_is_sent_again_only_a_few_times_then_fails_as_written() -> None:
    layer = TransactionLayer()
    key = layer.send_request(request(branch="z9hG4bK-again"), HOP, now=0.0)
    for flow in range(1, RESENDS_AFTER_CLEAN_CLOSE + 2):
        assert len(layer.outgoing()) == 1
        layer.sent_on(HOP, flow)
        layer.flow_closed(flow, now=0.1 * flow, clean=True)
    assert layer.outgoing() == []
    reason = "the connection closed before a final response"
    assert events(layer) == [ClientTransportFailed(key, reason, written=True)]


def test_a_request_left_unanswered_by_a_connection_that_died_is_not_sent_again() -> None:
    layer = TransactionLayer()
    key = layer.send_request(request(branch="z9hG4bK-died"), HOP, now=0.0)
    layer.sent_on(HOP, 4)
    layer.outgoing()
    layer.flow_closed(4, now=0.1, clean=False)
    assert layer.outgoing() == []
    reason = "the connection closed before a final response"
    assert events(layer) == [ClientTransportFailed(key, reason, written=True)]


def test_send_response_in_the_wrong_state_is_a_local_error() -> None:
    layer = TransactionLayer()
    message = request()
    layer.receive_request(message, flow=1, now=0.0)
    [event] = events(layer)
    layer.send_response(event.transaction, make_response(message, 200, to_tag="t"), now=0.1)
    with pytest.raises(LocalSipError, match="no server transaction"):
        layer.send_response(event.transaction, make_response(message, 200, to_tag="t"), now=0.2)


def test_rfc2543_request_without_branch_still_matches_its_retransmission() -> None:
    layer = TransactionLayer()
    old = request(branch="1234")
    layer.receive_request(old, flow=1, now=0.0)
    layer.receive_request(old, flow=1, now=0.5)
    assert len(events(layer)) == 1


def test_cancel_race_final_response_before_cancel_reaches_the_server() -> None:
    """A CANCEL arriving after the INVITE was answered finds no pending INVITE."""
    layer = TransactionLayer()
    invite = request("INVITE")
    layer.receive_request(invite, flow=1, now=0.0)
    [event] = events(layer)
    layer.send_response(event.transaction, make_response(invite, 200, to_tag="t"), now=0.1)
    layer.receive_request(request("CANCEL"), flow=1, now=0.2)
    [cancel] = events(layer)
    assert isinstance(cancel, RequestReceived)
    assert cancel.cancels is None


def test_forwarded_copy_keeps_every_other_line_and_serializes_consistently() -> None:
    original = request(
        extra="X-Custom:   spaced value\r\nRecord-Route: <sip:earlier.example.com;lr>\r\n"
    )
    via = Via("TLS", "imp1.example.com", 5061, (("branch", "z9hG4bK-fwd"), ("alias", "")))
    forwarded = original.forwarded(via, ["<sip:imp1.example.com;lr>"], 69)
    assert forwarded.max_forwards == 69
    assert forwarded.headers.get_all("via")[0] == (
        "SIP/2.0/TLS imp1.example.com:5061;branch=z9hG4bK-fwd;alias"
    )
    assert forwarded.top_via == via == parse_via(forwarded.headers.get_all("via")[0])
    assert [via.branch for via in forwarded.vias] == ["z9hG4bK-fwd", "z9hG4bK-client-1"]
    assert forwarded.headers.get_list("record-route") == [
        "<sip:imp1.example.com;lr>",
        "<sip:earlier.example.com;lr>",
    ]
    assert parse_message(forwarded.to_bytes(), stream=True) == forwarded
    assert b"X-Custom:   spaced value\r\n" in forwarded.to_bytes()
    relayed = parse_message(response_to(forwarded.to_bytes(), 200).to_bytes(), stream=True)
    assert isinstance(relayed, Response)
    upstream = relayed.without_top_via()
    assert [via.branch for via in upstream.vias] == ["z9hG4bK-client-1"]
    assert parse_message(upstream.to_bytes(), stream=True) == upstream
