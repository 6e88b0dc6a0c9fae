"""``Request.received_from`` builds the new top Via instead of parsing it again: what it
builds must equal what parsing its own Via header gives, for any Via."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from intrafed.sip import Request, parse_message
from intrafed.sip.header_values import parse_via
from intrafed.sip.headers import split_list
from tests.messages import request
from tests.sip.strategies import sip_messages


def reparsed_top_via(message: Request) -> object:
    return parse_via(split_list(message.headers.get_list("via")[0])[0])


@pytest.mark.parametrize(
    "via",
    [
        "SIP/2.0/TCP 127.0.0.30:40001;branch=z9hG4bK1;rport;alias",
        "SIP/2.0/TCP client.example.com:5070;rport;branch=z9hG4bK2",
        "SIP/2.0/TCP client.example.com;branch=z9hG4bK3;rport=5070",
        "SIP/2.0/TCP client.example.com;branch=z9hG4bK4;RPORT",
        "SIP/2.0/TCP client.example.com;rport;branch=z9hG4bK5;rportal",
        "SIP/2.0/TCP client.example.com;branch=z9hG4bK6; rport",
        'SIP/2.0/TCP client.example.com;branch=z9hG4bK7;x=";rport";rport',
        "SIP/2.0/TCP [2001:db8::1]:5070;branch=z9hG4bK8;rport",
        "SIP/2.0/TCP 192.0.2.7:5070;branch=z9hG4bK9;received=192.0.2.8;rport",
        "SIP/2.0/TCP 192.0.2.7;branch=z9hG4bK10, SIP/2.0/TCP 192.0.2.9;branch=z9hG4bK11",
    ],
)
@pytest.mark.parametrize("source", [("192.0.2.1", 40000), ("2001:db8::2", 5060)])
def test_the_noted_top_via_is_the_one_its_header_now_says(
    via: str, source: tuple[str, int]
) -> None:
    message = request(extra="")
    original = parse_message(
        message.to_bytes().replace(
            b"SIP/2.0/TCP 127.0.0.10:5070;branch=z9hG4bK-client-1", via.encode()
        ),
        stream=True,
    )
    assert isinstance(original, Request)
    _ = (original.top_via, original.from_addr, original.to_addr)
    noted = original.received_from(*source)
    assert noted.top_via == reparsed_top_via(noted)
    assert noted.from_addr == original.from_addr


@settings(max_examples=100, deadline=None)
@given(sip_messages(kind="request"), st.sampled_from(["192.0.2.1", "2001:db8::2"]))
def test_the_noted_top_via_of_any_request_is_the_one_its_header_now_says(
    generated: object, ip: str
) -> None:
    message = generated.message  # type: ignore[attr-defined]
    assert isinstance(message, Request)
    noted = message.received_from(ip, 40000)
    assert noted.top_via == reparsed_top_via(noted)


def test_a_parameter_named_like_rport_leaves_a_well_formed_via() -> None:
    """Regression: ``;rportx=1;rport`` became ``;rport=40000x=1;rport``, which no parser
    (ours included, on the response) accepts."""
    noted = _noted("SIP/2.0/TCP 10.0.0.1:5070;rportx=1;rport;branch=z9hG4bK-r")
    again = parse_message(noted.to_bytes(), stream=True)
    assert isinstance(again, Request)
    assert again.top_via.rport == 40000
    assert again.top_via.received == "192.0.2.1"
    assert ("rportx", "1") in again.top_via.params


def test_a_received_or_rport_written_by_the_sender_is_replaced_not_trusted() -> None:
    """Regression: a client's own ``received=`` stayed first, so a response whose
    connection was gone went where the client said (``find_param`` takes the first)."""
    via = "SIP/2.0/TCP 10.0.0.1:5070;received=203.0.113.66;rport=9;branch=z9hG4bK-s"
    noted = _noted(via)
    assert noted.top_via.received == "192.0.2.1"
    assert noted.top_via.rport == 40000
    assert noted.headers.get_list("via")[0].count("received=") == 1


def _noted(via: str) -> Request:
    message = (
        request()
        .to_bytes()
        .replace(b"SIP/2.0/TCP 127.0.0.10:5070;branch=z9hG4bK-client-1", via.encode())
    )
    parsed = parse_message(message, stream=True)
    assert isinstance(parsed, Request)
    return parsed.received_from("192.0.2.1", 40000)
