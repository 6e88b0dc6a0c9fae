"""Properties of generated valid messages: serialize, parse back, get the same message.

The strategies in ``tests/sip/strategies.py`` also say what each typed accessor must
return, so the parsed values are checked against the generator, not only against the
original message.
"""

from __future__ import annotations

import csv

import pytest
from hypothesis import HealthCheck, given, settings

from intrafed.sip import (
    AbsoluteUri,
    NameAddr,
    Request,
    Response,
    SipUri,
    TelUri,
    Uri,
    Via,
    parse_message,
)
from tests.paths import CONFORMANCE
from tests.sip.strategies import (
    Generated,
    NameAddrSpec,
    SipUriSpec,
    TelUriSpec,
    UriSpec,
    ViaSpec,
    sip_messages,
    sip_requests,
    sip_responses,
)

SETTINGS = settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def _first(params: tuple[tuple[str, str | None], ...], name: str) -> str | None:
    """What ``param(name)`` must return: the first value, ``""`` for a flag, else None."""
    for key, value in params:
        if key.lower() == name.lower():
            return "" if value is None else value
    return None


def assert_uri_matches(uri: Uri, spec: UriSpec) -> None:
    if isinstance(spec, SipUriSpec):
        assert isinstance(uri, SipUri)
        assert (uri.scheme, uri.user, uri.password, uri.host, uri.port) == (
            spec.scheme,
            spec.user,
            spec.password,
            spec.host,
            spec.port,
        )
        assert len(uri.params) == len(spec.params)
        for name, _ in spec.params:
            assert uri.param(name) == _first(spec.params, name)
        assert uri.headers == spec.headers
    elif isinstance(spec, TelUriSpec):
        assert isinstance(uri, TelUri)
        assert uri.number == spec.number
        assert len(uri.params) == len(spec.params)
        for name, _ in spec.params:
            assert uri.param(name) == _first(spec.params, name)
    else:
        assert isinstance(uri, AbsoluteUri)
        assert (uri.scheme, uri.rest) == (spec.scheme, spec.rest)


def assert_via_matches(via: Via, spec: ViaSpec) -> None:
    assert (via.transport, via.host, via.port) == (spec.transport, spec.host, spec.port)
    assert via.branch == spec.branch
    assert via.received == spec.received
    assert via.rport == spec.rport
    assert via.wants_rport is spec.wants_rport
    assert via.alias is spec.alias


def assert_name_addr_matches(value: NameAddr, spec: NameAddrSpec) -> None:
    assert_uri_matches(value.uri, spec.uri)
    assert value.display_name == spec.display_name
    assert len(value.params) == len(spec.params)
    for name, _ in spec.params:
        assert value.param(name) == _first(spec.params, name)


def _content_length_lines(data: bytes) -> list[bytes]:
    head = data[: data.index(b"\r\n\r\n")]
    values = []
    for line in head.split(b"\r\n")[1:]:
        name, _, value = line.partition(b":")
        if name.strip().lower() in (b"content-length", b"l"):
            values.append(value.strip())
    return values


@SETTINGS
@given(sip_requests)
def test_request_round_trips_through_to_bytes_in_stream_and_datagram_mode(
    generated: Generated,
) -> None:
    message = generated.message
    data = message.to_bytes()
    for stream in (True, False):
        parsed = parse_message(data, stream=stream)
        assert isinstance(parsed, Request)
        assert parsed == message
        assert (parsed.method, parsed.uri, parsed.body) == (
            message.method,  # type: ignore[union-attr]
            message.uri,  # type: ignore[union-attr]
            message.body,
        )
        assert parsed.to_bytes() == data


@SETTINGS
@given(sip_responses)
def test_response_round_trips_through_to_bytes_in_stream_and_datagram_mode(
    generated: Generated,
) -> None:
    message = generated.message
    data = message.to_bytes()
    for stream in (True, False):
        parsed = parse_message(data, stream=stream)
        assert isinstance(parsed, Response)
        assert parsed == message
        assert (parsed.status, parsed.reason, parsed.body) == (
            message.status,  # type: ignore[union-attr]
            message.reason,  # type: ignore[union-attr]
            message.body,
        )
        assert parsed.to_bytes() == data


@SETTINGS
@given(sip_messages())
def test_reparsed_typed_values_equal_the_original_and_the_generated_ones(
    generated: Generated,
) -> None:
    original = generated.message
    expected = generated.expected
    parsed = parse_message(original.to_bytes(), stream=True)
    parsed.validate()
    original.validate()

    assert parsed.vias == original.vias
    assert parsed.top_via == original.vias[0]
    assert parsed.from_addr == original.from_addr
    assert parsed.to_addr == original.to_addr
    assert parsed.call_id == original.call_id == expected.call_id
    assert parsed.cseq == original.cseq
    assert (parsed.cseq.number, parsed.cseq.method) == expected.cseq
    assert parsed.max_forwards == original.max_forwards == expected.max_forwards
    assert parsed.contacts == original.contacts
    assert parsed.contact_is_star is original.contact_is_star is expected.contact_is_star
    assert parsed.routes == original.routes
    assert parsed.record_routes == original.record_routes

    assert len(parsed.vias) == len(expected.vias)
    for via, via_spec in zip(parsed.vias, expected.vias, strict=True):
        assert_via_matches(via, via_spec)
    assert_name_addr_matches(parsed.from_addr, expected.from_addr)
    assert_name_addr_matches(parsed.to_addr, expected.to_addr)
    for name, name_specs in (
        ("contacts", expected.contacts),
        ("routes", expected.routes),
        ("record_routes", expected.record_routes),
    ):
        values = getattr(parsed, name)
        assert len(values) == len(name_specs), name
        for value, spec in zip(values, name_specs, strict=True):
            assert_name_addr_matches(value, spec)
    if expected.request_uri is not None:
        assert isinstance(parsed, Request)
        assert_uri_matches(parsed.uri, expected.request_uri)


@SETTINGS
@given(sip_messages())
def test_serialized_content_length_equals_body_length_even_when_headers_said_otherwise(
    generated: Generated,
) -> None:
    message = generated.message
    body_length = str(len(message.body))
    assert message.headers.get_all("Content-Length") == [body_length]
    assert message.content_length == len(message.body)

    data = message.to_bytes()
    assert _content_length_lines(data) == [body_length.encode()]
    assert data.endswith(b"\r\n\r\n" + message.body)
    parsed = parse_message(data, stream=True)
    assert parsed.content_length == len(message.body)
    assert parsed.body == message.body


def _valid_corpus() -> list[tuple[str, bytes]]:
    files = []
    for suite in ("rfc4475", "rfc5118"):
        with (CONFORMANCE / suite / "VERDICTS.tsv").open(newline="") as table:
            for row in csv.DictReader(table, delimiter="\t"):
                if row["verdict"] == "valid":
                    path = CONFORMANCE / suite / row["file"]
                    files.append((f"{suite}/{row['file']}", path.read_bytes()))
    return files


VALID_CORPUS = _valid_corpus()


@pytest.mark.parametrize(("name", "data"), VALID_CORPUS, ids=[name for name, _ in VALID_CORPUS])
def test_parsed_corpus_message_reserializes_to_an_equal_message(name: str, data: bytes) -> None:
    # Datagram mode, so that inv2543 (no Content-Length) and dblreq (trailing octets) parse;
    # to_bytes() always writes the right Content-Length, the only field it may add or change.
    original = parse_message(data)
    data_out = original.to_bytes()
    parsed = parse_message(data_out, stream=True)
    assert parsed.start_line() == original.start_line()
    assert parsed.body == original.body
    assert parsed.headers.remove("Content-Length") == original.headers.remove("Content-Length")
    assert parsed.content_length == len(parsed.body)
    assert _content_length_lines(data_out) == [str(len(original.body)).encode()]
    assert parsed.to_bytes() == data_out
    parsed.validate()
    assert (parsed.vias, parsed.from_addr, parsed.to_addr, parsed.cseq) == (
        original.vias,
        original.from_addr,
        original.to_addr,
        original.cseq,
    )
    assert (parsed.contacts, parsed.routes, parsed.record_routes) == (
        original.contacts,
        original.routes,
        original.record_routes,
    )
