"""What the user agent sends, built without I/O: requests, dialogs, digest answers."""

from __future__ import annotations

import re

import pytest

from intrafed.config.model import ha1
from intrafed.sip import Headers, Request, Response, parse_message, parse_uri
from intrafed.sip.digest import NonceIssuer, challenge, parse_credentials, verify
from intrafed.sip.responses import make_response
from intrafed.ua.requests import (
    Dialog,
    LocalAddress,
    authorization,
    build_request,
    im_session_sdp,
    iscomposing_body,
    sip_uri,
)

LOCAL = LocalAddress("tcp", "127.0.0.81", 40000)
EDGE = "<sip:127.0.0.80:5060;transport=tcp;lr>"
PEER = "<sip:ocs1.example.com:5061;transport=tls;lr>"


def invite() -> Request:
    return build_request(
        "INVITE",
        sip_uri("bob@example.com"),
        via=LOCAL.via("z9hG4bK-1"),
        from_="<sip:alice@example.com>;tag=a1",
        to="<sip:bob@example.com>",
        call_id="c1@127.0.0.81",
        cseq=5,
        headers=[("Contact", LOCAL.contact("alice"))],
        body=im_session_sdp(LOCAL.host),
    )


def test_a_built_request_survives_the_wire_and_names_the_connection() -> None:
    request = invite()
    parsed = parse_message(request.to_bytes(), stream=True)
    assert parsed == request
    via = parsed.top_via
    assert (via.transport, via.sent_by, via.branch) == ("TCP", "127.0.0.81:40000", "z9hG4bK-1")
    assert via.alias
    assert via.wants_rport
    contact = parsed.contacts[0].uri
    assert str(contact) == "sip:alice@127.0.0.81:40000;transport=tcp;ob"
    assert parsed.max_forwards == 70


def test_a_2xx_makes_the_uac_dialog_with_the_record_route_reversed() -> None:
    request = invite()
    ok = make_response(
        request,
        200,
        to_tag="b1",
        headers=[
            ("Record-Route", PEER),
            ("Record-Route", EDGE),
            ("Contact", "<sip:bob@127.0.0.82:41000;transport=tcp;ob>"),
        ],
    )
    dialog = Dialog.as_uac(request, ok)
    assert dialog.route_set == (EDGE, PEER)
    assert (dialog.local_tag, dialog.remote_tag, dialog.local_cseq) == ("a1", "b1", 5)
    ack = dialog.request("ACK", LOCAL.via("z9hG4bK-2"), cseq=5)
    bye = dialog.request("BYE", LOCAL.via("z9hG4bK-3"))
    assert str(ack.uri) == "sip:bob@127.0.0.82:41000;transport=tcp;ob"
    assert ack.headers.get_all("route") == [EDGE, PEER]
    assert (str(ack.cseq), str(bye.cseq)) == ("5 ACK", "6 BYE")
    assert (bye.from_addr.tag, bye.to_addr.tag, bye.call_id) == ("a1", "b1", "c1@127.0.0.81")


def test_a_request_makes_the_uas_dialog_with_the_record_route_in_order() -> None:
    request = invite()
    routed = Request(
        request.method,
        request.uri,
        Headers([("Record-Route", PEER), ("Record-Route", EDGE), *request.headers]),
        request.body,
    )
    dialog = Dialog.as_uas(routed, "b1", local_cseq=100)
    message = dialog.request("MESSAGE", LOCAL.via("z9hG4bK-4"), body=b"hi")
    assert dialog.route_set == (PEER, EDGE)
    assert str(message.uri) == "sip:alice@127.0.0.81:40000;transport=tcp;ob"
    assert str(message.from_addr.uri) == "sip:bob@example.com"
    assert message.from_addr.tag == "b1"
    assert message.to_addr.tag == "a1"
    assert str(message.cseq) == "101 MESSAGE"


def challenged(
    status: int = 401, algorithms: tuple[str, ...] = ("SHA-256", "MD5")
) -> tuple[Request, Response, str]:
    request = build_request(
        "REGISTER",
        parse_uri("sip:example.com"),
        via=LOCAL.via("z9hG4bK-5"),
        from_="<sip:alice@example.com>;tag=a",
        to="<sip:alice@example.com>",
        call_id="r1",
        cseq=1,
    )
    nonce = NonceIssuer(b"k" * 16).issue(0.0)
    header = "WWW-Authenticate" if status == 401 else "Proxy-Authenticate"
    fields = [(header, challenge("example.com", nonce, algorithm)) for algorithm in algorithms]
    return request, make_response(request, status, headers=fields), nonce


@pytest.mark.parametrize(
    ("supported", "expected"),
    [(("SHA-256", "MD5"), "SHA-256"), (("MD5", "SHA-256"), "SHA-256"), (("MD5",), "MD5")],
)
def test_the_answer_takes_the_servers_first_challenge_the_client_supports(
    supported: tuple[str, ...], expected: str
) -> None:
    request, response, nonce = challenged()
    answer = authorization(request, response, "alice", "pw", supported)
    assert answer is not None
    assert (answer.name, answer.stale) == ("Authorization", False)
    credentials = parse_credentials(answer.value)
    assert (credentials.algorithm, credentials.nonce) == (expected, nonce)
    assert verify(credentials, ha1("alice", "example.com", "pw", expected), "REGISTER")


def test_a_407_is_answered_with_proxy_authorization() -> None:
    request, response, _ = challenged(407)
    answer = authorization(request, response, "alice", "pw", ("SHA-256",))
    assert answer is not None
    assert answer.name == "Proxy-Authorization"


def test_no_answer_when_no_offered_algorithm_is_supported() -> None:
    request, response, _ = challenged(algorithms=("MD5",))
    assert authorization(request, response, "alice", "pw", ("SHA-256",)) is None


def test_session_bodies() -> None:
    sdp = im_session_sdp("127.0.0.81").decode()
    assert "m=message 5060 sip null\r\n" in sdp
    assert "a=accept-types:text/plain" in sdp
    assert b"<state>active</state>" in iscomposing_body()
    assert b"<state>idle</state>" in iscomposing_body(active=False)


@pytest.mark.parametrize("text", ["sip:", "sip:@", "tel:+15551234", "mailto:bob@example.com"])
def test_what_is_not_a_sip_address_is_named(text: str) -> None:
    with pytest.raises(ValueError, match=re.escape(repr(text))):
        sip_uri(text)
