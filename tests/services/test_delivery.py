"""Which registered contacts only their own connection reaches (RFC 5626 flows), and where
a request for them goes once that connection is gone."""

from __future__ import annotations

from intrafed.services.delivery import dialog_target, to_bindings
from intrafed.services.registrar import Binding, Registrar
from intrafed.sip import Request
from intrafed.sip.decisions import Fork, Forward, Reject
from intrafed.sip.transaction import FlowId, NextHop
from intrafed.sip.uri import parse_uri
from tests.messages import request

ALICE = "alice@example.com"
SOURCE = ("127.0.0.10", 40312)


def register(contact: str, via: str = "127.0.0.10:40312") -> Request:
    return request(
        "REGISTER",
        uri="sip:example.com",
        to="<sip:alice@example.com>",
        sent_by=via,
        extra=f"Contact: {contact}\r\n",
    )


def flow_bound(contact: str, via: str = "127.0.0.10:40312") -> bool:
    registrar = Registrar("imp1.example.com", lambda aor: aor == ALICE)
    registrar.register(register(contact, via), 7, 1000.0, SOURCE)
    [binding] = registrar.bindings(ALICE, 1000.0)
    return binding.flow_bound


def test_contacts_only_their_connection_reaches_are_flow_bound() -> None:
    # RFC 5626 outbound, the connection's own source address, the sent-by of an alias Via.
    assert flow_bound("<sip:alice@127.0.0.10:5070;transport=tcp;ob>")
    assert flow_bound("<sip:alice@127.0.0.10:5070;transport=tcp>;reg-id=1")
    assert flow_bound("<sip:alice@127.0.0.10:40312;transport=tcp>")
    assert flow_bound("<sip:alice@127.0.0.10:5071;transport=tcp>", via="127.0.0.10:5071;alias")
    # A listening address of its own is reachable by a new connection.
    assert not flow_bound("<sip:alice@127.0.0.10:5070;transport=tcp>")
    assert not flow_bound("<sip:alice@127.0.0.11;transport=tcp>")


def binding(contact: str, *, bound: bool, flow: FlowId | None = 7) -> Binding:
    return Binding(ALICE, contact, 2000.0, 1.0, "c", 1, bound, flow)


def gone(flow: FlowId) -> object | None:
    return None


def test_a_flow_bound_binding_whose_flow_is_gone_gets_430_never_its_address() -> None:
    decision = to_bindings(ALICE, [binding("sip:alice@127.0.0.10:40312", bound=True)], gone)
    assert isinstance(decision, Reject)
    assert (decision.status, decision.reason) == (430, "Flow Failed")
    nothing = to_bindings(ALICE, [], gone)
    assert isinstance(nothing, Reject)
    assert nothing.status == 480


def test_the_next_binding_is_used_when_one_flow_failed() -> None:
    bindings = [
        binding("sip:alice@127.0.0.10:40312", bound=True),
        binding("sip:alice@127.0.0.10:5070;transport=tcp", bound=False),
        binding("sip:alice@127.0.0.12:40000", bound=True, flow=9),
    ]
    decision = to_bindings(ALICE, bindings, lambda flow: "flow 9" if flow == 9 else None)
    assert isinstance(decision, Fork)
    assert [f.next_hop for f in decision.forwards] == [NextHop("TCP", "127.0.0.10", 5070), 9]
    assert decision.forwards[0] == Forward(
        NextHop("TCP", "127.0.0.10", 5070), parse_uri("sip:alice@127.0.0.10:5070;transport=tcp")
    )


def test_an_in_dialog_request_to_a_flow_bound_contact_whose_flow_is_gone_gets_430() -> None:
    uri = parse_uri("sip:alice@127.0.0.10:40312")
    failed = dialog_target(binding(str(uri), bound=True), uri, gone)
    assert isinstance(failed, Reject)
    assert failed.status == 430
    assert dialog_target(binding(str(uri), bound=True), uri, lambda flow: "flow 7") == 7
    assert dialog_target(None, uri, gone) == NextHop("TCP", "127.0.0.10", 40312)
