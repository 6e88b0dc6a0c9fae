"""Trace records: JSON lines round trip, filters, the ladder between traced nodes."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from intrafed.observe.trace import TraceFilter, TraceFormatError, TraceRecord, ladder

OCS, IMP = ("127.0.0.2", 5060), ("127.0.0.3", 5061)


def sip_message(method: str = "MESSAGE", call_id: str = "c1", user: str = "alice") -> bytes:
    return (
        f"{method} sip:{user}@example.com SIP/2.0\r\n"
        "Via: SIP/2.0/TCP 127.0.0.2:5060;branch=z9hG4bK-1\r\nMax-Forwards: 70\r\n"
        f"From: <sip:bob@example.com>;tag=b\r\nTo: <sip:{user}@example.com>\r\n"
        f"Call-ID: {call_id}\r\nCSeq: 1 {method}\r\nContent-Length: 0\r\n\r\n"
    ).encode()


def response(status: int, reason: str, call_id: str = "c1") -> bytes:
    return (
        f"SIP/2.0 {status} {reason}\r\n"
        "Via: SIP/2.0/TCP 127.0.0.2:5060;branch=z9hG4bK-1\r\n"
        "From: <sip:bob@example.com>;tag=b\r\nTo: <sip:alice@example.com>;tag=a\r\n"
        f"Call-ID: {call_id}\r\nCSeq: 1 MESSAGE\r\nContent-Length: 0\r\n\r\n"
    ).encode()


def record(
    node: str, direction: str, local: tuple[str, int], remote: tuple[str, int], data: bytes
) -> TraceRecord:
    return TraceRecord(1_800_000_000.25, node, direction, "TCP", local, remote, data)  # type: ignore[arg-type]


@given(st.binary(max_size=300), st.sampled_from(["in", "out"]))
def test_any_message_survives_the_json_line_round_trip(data: bytes, direction: str) -> None:
    original = record("ocs1.example.com", direction, OCS, IMP, data)
    assert TraceRecord.from_json_line(original.to_json_line()) == original


@pytest.mark.parametrize(
    "line",
    [
        "",
        "{}",
        "[1]",
        '{"at": 1, "node": "n", "dir": "sideways", "transport": "TCP", '
        '"local": ["a", 1], "remote": ["b", 2], "message": ""}',
        "not json",
    ],
)
def test_a_line_that_is_not_a_record_says_so(line: str) -> None:
    with pytest.raises(TraceFormatError):
        TraceRecord.from_json_line(line)


def test_filters_keep_only_the_messages_asked_for() -> None:
    alice = sip_message(user="alice", call_id="c1")
    carol_subscribe = sip_message("SUBSCRIBE", call_id="c2", user="carol")
    ok = response(200, "OK", call_id="c1")
    garbage = b"\x00\x01 not sip"
    assert TraceFilter().matches(garbage)
    assert [TraceFilter(user="alice").matches(m) for m in (alice, carol_subscribe, ok)] == [
        True,
        False,
        True,
    ]
    assert TraceFilter(user="carol@example.com").matches(carol_subscribe)
    assert TraceFilter(user="bob").matches(carol_subscribe)
    assert [TraceFilter(method="message").matches(m) for m in (alice, carol_subscribe, ok)] == [
        True,
        False,
        True,
    ]
    assert not TraceFilter(call_id="c2").matches(alice)
    assert not TraceFilter(user="alice").matches(garbage)


def test_the_ladder_shows_each_crossing_once_on_the_receiving_side() -> None:
    request, answer = sip_message(), response(200, "OK")
    client = ("127.0.0.9", 40000)
    records = [
        record("ocs1.example.com", "in", OCS, client, request),  # from a client: not a crossing
        record("ocs1.example.com", "out", OCS, IMP, request),
        TraceRecord(1_800_000_000.5, "imp1.example.com", "in", "TCP", IMP, OCS, request),
        TraceRecord(1_800_000_000.7, "imp1.example.com", "out", "TCP", IMP, OCS, answer),
        TraceRecord(1_800_000_000.8, "ocs1.example.com", "in", "TCP", OCS, IMP, answer),
    ]
    rows = ladder(records)
    assert [(row.sender, row.receiver, row.first_line) for row in rows] == [
        ("ocs1.example.com", "imp1.example.com", "MESSAGE sip:alice@example.com"),
        ("imp1.example.com", "ocs1.example.com", "200 OK (MESSAGE)"),
    ]
