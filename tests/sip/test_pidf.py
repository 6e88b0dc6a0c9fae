"""PIDF/RPID codec: the six states round trip, other clients' documents are understood, and
bad or hostile bodies get a 400 that names the fault."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from intrafed.sip.errors import RemoteSipError
from intrafed.sip.pidf import (
    ENCODINGS,
    MAX_PIDF_BYTES,
    Presence,
    PresenceState,
    build_pidf,
    parse_pidf,
)

ENTITY = "sip:alice@example.com"
# XML 1.0 Char, which is all a note can carry (others are replaced when building).
XML_TEXT = st.text(
    alphabet=st.characters(
        exclude_categories=["Cs"],
        exclude_characters=[chr(c) for c in range(32) if chr(c) not in "\t\n\r"]
        + ["\ufffe", "\uffff"],
    ),
    min_size=1,
)


def document(inner: str, entity: str = ENTITY) -> bytes:
    return (
        '<?xml version="1.0" encoding="UTF-8"?>'
        '<presence xmlns="urn:ietf:params:xml:ns:pidf" '
        'xmlns:dm="urn:ietf:params:xml:ns:pidf:data-model" '
        'xmlns:rpid="urn:ietf:params:xml:ns:pidf:rpid" '
        f'entity="{entity}">{inner}</presence>'
    ).encode()


def error_for(body: bytes) -> RemoteSipError | None:
    """What parsing ``body`` raised, failing on anything but RemoteSipError."""
    try:
        parse_pidf(body)
    except RemoteSipError as exc:
        return exc
    return None


def reason_for(body: bytes) -> str:
    with pytest.raises(RemoteSipError) as error:
        parse_pidf(body)
    assert error.value.status == 400
    return error.value.reason


@given(st.sampled_from(PresenceState), st.none() | XML_TEXT)
@settings(max_examples=300)
def test_every_state_and_note_round_trips(state: PresenceState, note: str | None) -> None:
    assert parse_pidf(build_pidf(ENTITY, state, note)) == Presence(ENTITY, state, note)


@given(st.binary(max_size=2048))
@settings(max_examples=500)
def test_arbitrary_bytes_raise_only_remote_sip_error(body: bytes) -> None:
    error = error_for(body)
    if error is not None:
        assert error.status == 400
        assert error.reason


@given(st.sampled_from(PresenceState), XML_TEXT, st.integers(0, 400), st.binary(max_size=8))
@settings(max_examples=300)
def test_damaged_documents_raise_only_remote_sip_error(
    state: PresenceState, note: str, at: int, junk: bytes
) -> None:
    body = build_pidf(ENTITY, state, note)
    damaged = body[:at] + junk + body[at + len(junk) :]
    error = error_for(damaged)
    assert error is None or error.reason


def test_the_table_covers_every_state_and_the_refined_rows_degrade_to_rfc_4480() -> None:
    assert set(ENCODINGS) == set(PresenceState)
    assert ENCODINGS[PresenceState.BE_RIGHT_BACK].activity == "away"
    assert ENCODINGS[PresenceState.DO_NOT_DISTURB].activity == "busy"
    assert ENCODINGS[PresenceState.OFFLINE].basic == "closed"


def test_appear_offline_is_offline_and_labels_read_well() -> None:
    assert PresenceState("appear-offline") is PresenceState.OFFLINE
    assert PresenceState.BE_RIGHT_BACK.label == "Be Right Back"
    assert PresenceState.DO_NOT_DISTURB.label == "Do Not Disturb"


def test_note_characters_xml_cannot_carry_are_replaced() -> None:
    body = build_pidf(ENTITY, PresenceState.AWAY, "tea\x00 & <biscuits>")
    assert parse_pidf(body).note == "tea\ufffd & <biscuits>"


def test_basic_only_documents_of_plain_clients() -> None:
    open_doc = document('<tuple id="a"><status><basic>open</basic></status></tuple>')
    closed_doc = document('<tuple id="a"><status><basic>closed</basic></status></tuple>')
    assert parse_pidf(open_doc).state is PresenceState.AVAILABLE
    assert parse_pidf(closed_doc).state is PresenceState.OFFLINE


def test_any_open_tuple_means_open_and_closed_ignores_activities() -> None:
    body = document(
        '<tuple id="a"><status><basic>closed</basic></status></tuple>'
        '<tuple id="b"><status><basic>open</basic></status></tuple>'
        "<dm:person id='p'><rpid:activities><rpid:busy/></rpid:activities></dm:person>"
    )
    assert parse_pidf(body).state is PresenceState.BUSY
    closed = document(
        '<tuple id="a"><status><basic>closed</basic></status></tuple>'
        "<dm:person id='p'><rpid:activities><rpid:busy/></rpid:activities></dm:person>"
    )
    assert parse_pidf(closed).state is PresenceState.OFFLINE


@pytest.mark.parametrize(
    ("activity", "state"),
    [
        ("<rpid:on-the-phone/>", PresenceState.BUSY),
        ("<rpid:meeting/>", PresenceState.BUSY),
        ("<rpid:lunch/>", PresenceState.AWAY),
        ("<rpid:away/><rpid:other>Be-Right-Back</rpid:other>", PresenceState.BE_RIGHT_BACK),
        ("<rpid:other>be-right-back</rpid:other>", PresenceState.AVAILABLE),
        ("<rpid:unknown/>", PresenceState.AVAILABLE),
    ],
)
def test_other_clients_activities(activity: str, state: PresenceState) -> None:
    in_person = document(
        '<tuple id="a"><status><basic>open</basic></status></tuple>'
        f"<dm:person id='p'><rpid:activities>{activity}</rpid:activities></dm:person>"
    )
    in_status = document(
        '<tuple id="a"><status><basic>open</basic>'
        f"<rpid:activities>{activity}</rpid:activities></status></tuple>"
    )
    assert parse_pidf(in_person).state is state
    assert parse_pidf(in_status).state is state


def test_a_tuple_note_is_used_when_the_presence_has_none() -> None:
    body = document(
        '<tuple id="a"><status><basic>open</basic></status><note>at my desk</note></tuple>'
    )
    assert parse_pidf(body).note == "at my desk"


def test_billion_laughs_is_refused_before_expansion() -> None:
    entities = "".join(f'<!ENTITY lol{n} "{f"&lol{n - 1};" * 10}">' for n in range(1, 10))
    body = (
        '<?xml version="1.0"?>'
        f'<!DOCTYPE presence [<!ENTITY lol0 "lol">{entities}]>'
        '<presence xmlns="urn:ietf:params:xml:ns:pidf" entity="sip:a@example.com">'
        "<tuple id='t'><status><basic>open</basic></status><note>&lol9;</note></tuple>"
        "</presence>"
    ).encode()
    assert "DTD" in reason_for(body)


def test_external_entities_and_bare_dtds_are_refused() -> None:
    external = (
        b'<?xml version="1.0"?><!DOCTYPE presence [<!ENTITY x SYSTEM "file:///etc/passwd">]>'
        b'<presence xmlns="urn:ietf:params:xml:ns:pidf" entity="sip:a@example.com">&x;</presence>'
    )
    assert "DTD" in reason_for(external)
    bare = b'<!DOCTYPE presence><presence xmlns="urn:ietf:params:xml:ns:pidf" entity="x"/>'
    assert "DTD" in reason_for(bare)


@pytest.mark.parametrize(
    ("body", "reason"),
    [
        (b"hello", "not well-formed XML"),
        (b"", "not well-formed XML"),
        (b"<presence entity='sip:a@example.com'/>", "not presence in urn:ietf:params:xml:ns:pidf"),
        (b'<x xmlns="urn:ietf:params:xml:ns:pidf"/>', "not presence in"),
        (b'<presence xmlns="urn:ietf:params:xml:ns:pidf"/>', "no entity attribute"),
        (document(""), "has no tuple"),
        (document('<tuple id="a"/>'), "tuple 'a' has no status"),
        (document('<tuple id="a"><status/></tuple>'), "no tuple with a basic status"),
        (
            document('<tuple id="a"><status><basic>ajar</basic></status></tuple>'),
            "'ajar' is not open or closed",
        ),
        (b"\xff\xfe<\x00", "PIDF body"),
    ],
)
def test_bad_documents_get_a_reason(body: bytes, reason: str) -> None:
    assert reason in reason_for(body)


def test_oversized_bodies_are_refused_before_parsing() -> None:
    body = build_pidf(ENTITY, PresenceState.AWAY, "x" * MAX_PIDF_BYTES)
    assert f"larger than {MAX_PIDF_BYTES}" in reason_for(body)
