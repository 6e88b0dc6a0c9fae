"""A 503 built from a request's raw bytes, unparsed (what a node too busy to parse sends):
a valid response that copies Via, From, To (tagged), Call-ID and CSeq, or None wherever the
full path must decide."""

from __future__ import annotations

import time

from hypothesis import given
from hypothesis import strategies as st

from intrafed.sip import Response, parse_message
from intrafed.sip.responses import refusal_unparsed
from tests.messages import request


def refuse(frame: bytes) -> bytes | None:
    return refusal_unparsed(frame, 503, "Overloaded", "ocs1.example.com", "overloaded", "5")


def raw(text: str) -> bytes:
    return text.replace("\n", "\r\n").encode()


def test_a_new_message_gets_a_503_that_parses_and_matches_the_request() -> None:
    message = request(extra="Via: SIP/2.0/TCP 10.0.0.9:5060;branch=z9hG4bK-2\r\n", body=b"hi")
    answer = refuse(message.to_bytes())
    assert answer is not None
    response = parse_message(answer)
    assert isinstance(response, Response)
    assert (response.status, response.reason) == (503, "Overloaded")
    assert response.headers.get_all("via") == message.headers.get_all("via")
    assert response.call_id == message.call_id
    assert response.cseq == message.cseq
    assert response.from_addr.tag == "alice-tag"
    assert response.to_addr.tag
    assert response.headers.get("retry-after") == "5"
    assert response.headers.get("warning") == '399 ocs1.example.com "overloaded"'


def test_compact_header_names_are_copied() -> None:
    frame = raw(
        "MESSAGE sip:bob@example.com SIP/2.0\n"
        "v: SIP/2.0/TCP 10.0.0.1:5070;branch=z9hG4bK-c\nf: <sip:a@example.com>;tag=x\n"
        "t: <sip:bob@example.com>\ni: c1\nCSeq: 7 MESSAGE\nl: 0\n\n"
    )
    answer = refuse(frame)
    assert answer is not None
    response = parse_message(answer)
    assert isinstance(response, Response)
    assert response.top_via.branch == "z9hG4bK-c"
    assert response.to_addr.tag


def test_what_the_full_path_must_decide_gets_none() -> None:
    assert refuse(request("ACK").to_bytes()) is None
    assert refuse(request("CANCEL").to_bytes()) is None
    assert refuse(request(to="<sip:bob@example.com>;TAG=b1").to_bytes()) is None
    assert refuse(raw("SIP/2.0 200 OK\nVia: SIP/2.0/TCP h;branch=z9hG4bK-1\n\n")) is None
    no_via = raw("MESSAGE sip:b@example.com SIP/2.0\nCall-ID: x\nCSeq: 1 MESSAGE\n\n")
    assert refuse(no_via) is None
    head, _, tail = request().to_bytes().partition(b"Max-Forwards: 70\r\n")
    assert refuse(head + b"Max-Forwards: 70\r\n" + tail) is not None
    assert refuse(head + b"To: <sip:bob@example.com>\r\n ;tag=b1\r\n" + tail) is None
    assert refuse(b"not sip at all\r\n\r\n") is None


@given(st.binary(max_size=2000))
def test_any_bytes_give_a_response_or_none_never_an_exception(frame: bytes) -> None:
    answer = refuse(frame)
    assert answer is None or answer.startswith(b"SIP/2.0 503 ")


def test_a_huge_head_is_refused_in_linear_time() -> None:
    frame = request(extra="X-Pad: " + "a;" * 200_000 + "\r\n" + "Via: x\r\n" * 2000).to_bytes()
    started = time.process_time()
    refuse(frame)
    assert time.process_time() - started < 2.0
