"""SIP addressing in one place: default ports, URI and Via addresses, the next hop of a
URI, the response hop of a Via, aliases, name resolution and the listener to advertise."""

from __future__ import annotations

from intrafed.sip.addressing import (
    Listener,
    alias_address,
    choose_listener,
    default_port,
    hop_kind,
    listener_kind,
    listeners_of,
    next_hop_for_uri,
    resolve,
    response_hop,
    uri_address,
    via_address,
)
from intrafed.sip.header_values import parse_via
from intrafed.sip.transaction import NextHop
from intrafed.sip.uri import SipUri, parse_uri

HOSTS = {"ocs1.example.com": "127.0.0.3"}


def sip(text: str) -> SipUri:
    uri = parse_uri(text)
    assert isinstance(uri, SipUri)
    return uri


def test_tls_defaults_to_5061_and_everything_else_to_5060() -> None:
    assert (default_port("TLS"), default_port("tls"), default_port("TCP")) == (5061, 5061, 5060)
    assert uri_address(sip("sips:Ocs1.Example.com")) == ("ocs1.example.com", 5061)
    assert uri_address(sip("sip:ocs1.example.com;transport=tls")) == ("ocs1.example.com", 5061)
    assert uri_address(sip("sip:127.0.0.3")) == ("127.0.0.3", 5060)
    assert via_address(parse_via("SIP/2.0/TLS ocs1.example.com;branch=z9hG4bK1")) == (
        "ocs1.example.com",
        5061,
    )
    assert via_address(parse_via("SIP/2.0/TCP [::1];branch=z9hG4bK1")) == ("::1", 5060)


def test_a_tls_alias_without_a_port_is_offered_for_5061_by_address() -> None:
    via = parse_via("SIP/2.0/TLS ocs1.example.com;branch=z9hG4bK1;alias")
    assert alias_address(via, HOSTS) == ("127.0.0.3", 5061)
    tcp = parse_via("SIP/2.0/TCP 127.0.0.9:5070;branch=z9hG4bK1;alias")
    assert alias_address(tcp, HOSTS) == ("127.0.0.9", 5070)


def test_the_next_hop_of_a_uri_and_where_it_resolves() -> None:
    assert next_hop_for_uri(sip("sips:ocs1.example.com")) == NextHop(
        "TLS", "ocs1.example.com", 5061
    )
    assert next_hop_for_uri(sip("sip:a@h.example;maddr=127.0.0.8")) == NextHop(
        "TCP", "127.0.0.8", 5060
    )
    assert next_hop_for_uri(sip("sip:h.example;transport=udp")) is None
    assert resolve(NextHop("TLS", "ocs1.example.com", 5061), HOSTS) == (
        "127.0.0.3",
        "ocs1.example.com",
    )
    assert resolve(NextHop("TCP", "127.0.0.9", 5060), HOSTS) == ("127.0.0.9", None)


def test_a_response_goes_to_the_tls_name_or_the_tcp_received_address() -> None:
    tls = parse_via("SIP/2.0/TLS ocs1.example.com;branch=z9hG4bK1;received=127.0.0.3")
    assert response_hop(tls) == NextHop("TLS", "ocs1.example.com", 5061)
    tcp = parse_via("SIP/2.0/TCP client.example;branch=z9hG4bK1;received=127.0.0.9;rport=4000")
    assert response_hop(tcp) == NextHop("TCP", "127.0.0.9", 4000)
    assert response_hop(parse_via("SIP/2.0/UDP h.example;branch=z9hG4bK1")) is None


def test_the_listener_advertised_toward_a_flow_or_a_hop() -> None:
    listeners = listeners_of(
        {"TCP": ("127.0.0.2", 5060), "MTLS": ("127.0.0.2", 5061)}, "127.0.0.2", "imp1.example.com"
    )
    assert listeners == {
        "TCP": Listener("TCP", "127.0.0.2", 5060),
        "MTLS": Listener("TLS", "imp1.example.com", 5061),
    }
    assert listener_kind("TLS", outbound=True) == "MTLS"
    assert listener_kind("TLS", outbound=False) == "TLS"
    assert hop_kind(NextHop("TLS", "ocs1.example.com", 5061)) == "MTLS"
    # Toward a TLS client when we have no TLS listener: the first one there is.
    assert choose_listener(listeners, "TLS") == listeners["TCP"]
    assert choose_listener(listeners, "MTLS") == listeners["MTLS"]
    assert choose_listener({"TLS": listeners["MTLS"]}, "MTLS") == listeners["MTLS"]
