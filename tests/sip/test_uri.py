"""URIs: parsing sip/sips/tel/other schemes, serialization and RFC 3261 §19.1.4 comparison."""

from __future__ import annotations

import pytest

from intrafed.sip import (
    AbsoluteUri,
    RemoteSipError,
    SipUri,
    TelUri,
    parse_uri,
    uri_equivalent,
)
from intrafed.sip import uri as uri_module


def sip(text: str) -> SipUri:
    uri = parse_uri(text)
    assert isinstance(uri, SipUri)
    return uri


# --- parsing --------------------------------------------------------------------------------


def test_parse_full_sip_uri_into_its_components() -> None:
    uri = sip("sip:alice:secret@atlanta.com:5061;transport=tcp;lr?subject=hi&priority=urgent")
    assert uri.scheme == "sip"
    assert (uri.user, uri.password, uri.host, uri.port) == ("alice", "secret", "atlanta.com", 5061)
    assert uri.param("transport") == "tcp"
    assert uri.param("lr") == ""
    assert uri.has_param("lr")
    assert uri.param("maddr") is None
    assert not uri.has_param("maddr")
    assert uri.headers == (("subject", "hi"), ("priority", "urgent"))


def test_parse_sips_uri_and_lower_cases_the_scheme() -> None:
    uri = sip("SIPS:Bob@Biloxi.COM")
    assert (uri.scheme, uri.user, uri.host) == ("sips", "Bob", "Biloxi.COM")


def test_parse_host_only_uri_has_no_user() -> None:
    uri = sip("sip:example.com;lr")
    assert (uri.user, uri.password, uri.host, uri.port) == (None, None, "example.com", None)
    assert uri.lr


def test_parse_ipv4_host() -> None:
    uri = sip("sip:192.0.2.4:5060")
    assert (uri.host, uri.port) == ("192.0.2.4", 5060)


def test_parse_ipv6_reference_with_port_outside_the_brackets() -> None:
    # RFC 5118 §4.4 port-unambiguous
    uri = sip("sip:[2001:db8::10]:5070")
    assert (uri.host, uri.port) == ("[2001:db8::10]", 5070)


def test_parse_ipv6_reference_with_port_like_tail_inside_the_brackets_has_no_port() -> None:
    # RFC 5118 §4.3 port-ambiguous: 5070 is part of the address
    uri = sip("sip:user@[2001:db8::10:5070]")
    assert (uri.host, uri.port) == ("[2001:db8::10:5070]", None)


@pytest.mark.parametrize(
    "host", ["[2001:db8::192.0.2.1]", "[2001:db8:::192.0.2.1]", "[::ffff:192.0.2.10]", "[::1]"]
)
def test_parse_ipv6_reference_forms_of_rfc_5118(host: str) -> None:
    assert sip(f"sip:user@{host};transport=tcp").host == host


def test_escaped_user_keeps_its_spelling_and_aor_unescapes_it() -> None:
    # RFC 4475 §3.1.1.3 esc01
    uri = sip("sip:sips%3Auser%40example.com@example.net")
    assert uri.user == "sips%3Auser%40example.com"
    assert uri.host == "example.net"
    assert uri.aor == "sips:user@example.com@example.net"


def test_escapes_are_decoded_once_never_recursively() -> None:
    # RFC 4475 esc01: %25%34%31 is "%41", not "A"
    assert sip("sip:value%25%34%31@example.com").aor == "value%41@example.com"


def test_escaped_nul_survives_in_the_aor() -> None:
    # RFC 4475 §3.1.1.4 escnull
    assert sip("sip:null-%00-null@example.com").aor == "null-\x00-null@example.com"


def test_params_with_and_without_values_keep_order_and_spelling() -> None:
    uri = sip("sip:a@example.com;Transport=TCP;lr;maddr=[2001:db8::1];x-flag;n%61me=v%61lue")
    assert [name for name, _ in uri.params] == ["Transport", "lr", "maddr", "x-flag", "n%61me"]
    assert uri.param("transport") == "TCP"
    assert uri.param("TRANSPORT") == "TCP"
    assert uri.param("maddr") == "[2001:db8::1]"
    assert uri.param("x-flag") == ""
    assert uri.param("n%61me") == "v%61lue"


def test_repeated_param_lookup_does_not_depend_on_the_spelling_of_the_name() -> None:
    # Parameter names are case-insensitive (RFC 3261 §7.3.1): ";Transport=udp;transport=tcp"
    # names one parameter twice, and every spelling of a lookup must see the same value.
    uri = sip("sip:a@example.com;Transport=udp;transport=tcp")
    assert uri.param("transport") == uri.param("Transport") == uri.param("TRANSPORT")


def test_uri_headers_are_split_at_ampersands() -> None:
    uri = sip("sip:biloxi.com;method=REGISTER?to=sip:bob%40biloxi.com&x=&y=z")
    assert uri.headers == (("to", "sip:bob%40biloxi.com"), ("x", ""), ("y", "z"))


def test_user_may_hold_semicolons_and_question_marks() -> None:
    # RFC 4475 §3.1.1.9 semiuri: the user part is "user;par=u%40example.net"
    uri = sip("sip:user;par=u%40example.net@example.com")
    assert (uri.user, uri.host, uri.params) == ("user;par=u%40example.net", "example.com", ())


def test_parse_tel_uri() -> None:
    uri = parse_uri("tel:+1-201-555-0123;phone-context=example.com;isub=1411")
    assert isinstance(uri, TelUri)
    assert uri.number == "+1-201-555-0123"
    assert uri.param("phone-context") == "example.com"
    assert uri.param("isub") == "1411"
    assert uri.scheme == "tel"


@pytest.mark.parametrize("text", ["tel:-", "tel:()", "tel:.", "tel:+-.()", "tel:+"])
def test_tel_uri_without_a_digit_is_rejected(text: str) -> None:
    # RFC 3966: global-number-digits = "+" *phonedigit DIGIT *phonedigit;
    # local-number-digits = *phonedigit-hex (HEXDIG / "*" / "#") *phonedigit-hex
    with pytest.raises(RemoteSipError, match="tel"):
        parse_uri(text)


@pytest.mark.parametrize(
    ("text", "scheme", "rest"),
    [
        ("im:alice@example.com", "im", "alice@example.com"),
        ("pres:alice@example.com", "pres", "alice@example.com"),
        (
            "nobodyKnowsThisScheme:totallyopaquecontent",
            "nobodyKnowsThisScheme",
            "totallyopaquecontent",
        ),
        ("soap.beep://192.0.2.103:3002", "soap.beep", "//192.0.2.103:3002"),
    ],
)
def test_parse_other_schemes_as_opaque_absolute_uris(text: str, scheme: str, rest: str) -> None:
    # RFC 4475 §3.3.2 unkscm, §3.3.3 novelsc
    uri = parse_uri(text)
    assert uri == AbsoluteUri(scheme, rest)
    assert not uri.is_phone


@pytest.mark.parametrize(
    ("text", "reason"),
    [
        ("sip:alice@atlanta.com:99999", "99999"),
        ("sip:alice@atlanta.com:0", "port"),
        ("sip:alice@atlanta.com:65536", "65536"),
        ("sip:2001:db8::10", "2001:db8::10"),
        ("sip:user@2001:db8::10", "2001:db8::10"),
        ("sip:alice smith@atlanta.com", "alice smith"),
        ("sip:alice@atlanta.com ;lr", "atlanta.com"),
        (" sip:alice@atlanta.com", "alice"),
        ("<sip:alice@atlanta.com>", "sip:alice@atlanta.com"),
        ("sip:al%G1ce@atlanta.com", "%"),
        ("sip:alice@atlanta.com;x=%4", "%"),
        ("tel:+1%zz", "tel"),
        ("sip:", "sip:"),
        ("sip:alice@", "alice@"),
        ("sip:@atlanta.com", "atlanta.com"),
        ("sip:alice@atlanta.com;", "atlanta.com"),
        ("sip:alice@atlanta.com?", "atlanta.com"),
        ("sip:alice@atlanta.com?subject", "subject"),
        ("sip:alice@[2001:db8::1", "2001:db8::1"),
        ("alice@atlanta.com", "scheme"),
        ("tel:", "tel"),
        ("", ""),
    ],
)
def test_malformed_uri_raises_remote_sip_error_naming_it(text: str, reason: str) -> None:
    with pytest.raises(RemoteSipError) as caught:
        parse_uri(text)
    assert caught.value.status == 400
    assert reason in caught.value.reason


@pytest.mark.parametrize(
    "text",
    [
        "sip:alice@atlanta.com",
        "sips:alice:pw@atlanta.com:5061;transport=tcp;lr",
        "sip:sips%3Auser%40example.com@example.net",
        "sip:[2001:db8::10]:5070;maddr=[2001:db8::1]",
        "sip:user;par=u%40example.net@example.com",
        "sip:biloxi.com;method=REGISTER;transport=tcp?to=sip:bob%40biloxi.com",
        "sip:alice@atlanta.com?subject=project%20x&priority=urgent",
        "sip:alice:@atlanta.com",
        "tel:+1-201-555-0123;phone-context=example.com",
        "tel:7042;phone-context=example.com",
        "im:alice@example.com",
    ],
)
def test_str_round_trips_canonical_uris(text: str) -> None:
    uri = parse_uri(text)
    assert str(uri) == text
    assert parse_uri(str(uri)) == uri


def test_str_of_a_non_canonical_uri_parses_back_to_the_same_value() -> None:
    uri = parse_uri("SIP:alice@atlanta.com:05060;LR")
    assert str(uri) == "sip:alice@atlanta.com:5060;LR"
    assert parse_uri(str(uri)) == uri


def test_constructed_sip_uri_serializes_flags_without_equals() -> None:
    uri = sip("sip:proxy.example.com;lr;transport=tcp")
    assert str(uri._replace(port=5061)) == "sip:proxy.example.com:5061;lr;transport=tcp"


# --- accessors ------------------------------------------------------------------------------


def test_aor_is_unescaped_user_at_lower_case_host() -> None:
    assert sip("sip:Alice%20Smith@AtLanTa.CoM:5060;transport=tcp").aor == "Alice Smith@atlanta.com"
    assert sip("sip:EXAMPLE.com").aor == "example.com"


@pytest.mark.parametrize(
    ("text", "is_phone"),
    [
        ("sip:+12125551212@gw.example.com;user=phone", True),
        ("sip:+12125551212@gw.example.com;USER=Phone", True),
        ("sip:+12125551212@gw.example.com", False),
        ("sip:+12125551212@gw.example.com;user=ip", False),
        ("tel:+12125551212", True),
        ("im:alice@example.com", False),
    ],
)
def test_is_phone_means_tel_or_user_phone(text: str, is_phone: bool) -> None:
    assert parse_uri(text).is_phone is is_phone


@pytest.mark.parametrize(
    ("text", "transport"),
    [
        ("sip:a@example.com;transport=TCP", "tcp"),
        ("sip:a@example.com;Transport=tls", "tls"),
        ("sip:a@example.com", None),
    ],
)
def test_transport_is_the_lower_case_parameter(text: str, transport: str | None) -> None:
    assert sip(text).transport == transport


@pytest.mark.parametrize(
    ("text", "lr"),
    [
        ("sip:proxy.example.com;lr", True),
        ("sip:proxy.example.com;LR", True),
        ("sip:proxy.example.com;lr=on", True),
        ("sip:proxy.example.com;transport=tcp", False),
        ("sip:lr@proxy.example.com", False),
    ],
)
def test_lr_is_the_loose_routing_flag(text: str, lr: bool) -> None:
    assert sip(text).lr is lr


# --- RFC 3261 §19.1.4 comparison ------------------------------------------------------------

RFC_EQUAL = [
    ("sip:%61lice@atlanta.com;transport=TCP", "sip:alice@AtLanTa.CoM;Transport=tcp"),
    ("sip:carol@chicago.com", "sip:carol@chicago.com;newparam=5"),
    ("sip:carol@chicago.com", "sip:carol@chicago.com;security=on"),
    ("sip:carol@chicago.com;newparam=5", "sip:carol@chicago.com;security=on"),
    (
        "sip:biloxi.com;transport=tcp;method=REGISTER?to=sip:bob%40biloxi.com",
        "sip:biloxi.com;method=REGISTER;transport=tcp?to=sip:bob%40biloxi.com",
    ),
    (
        "sip:alice@atlanta.com?subject=project%20x&priority=urgent",
        "sip:alice@atlanta.com?priority=urgent&subject=project%20x",
    ),
]

RFC_NOT_EQUAL = [
    # different usernames (userinfo compares case-sensitively)
    ("SIP:ALICE@AtLanTa.CoM;Transport=udp", "sip:alice@AtLanTa.CoM;Transport=UDP"),
    # can resolve to different ports
    ("sip:bob@biloxi.com", "sip:bob@biloxi.com:5060"),
    # can resolve to different transports
    ("sip:bob@biloxi.com", "sip:bob@biloxi.com;transport=udp"),
    # can resolve to different port and transports
    ("sip:bob@biloxi.com", "sip:bob@biloxi.com:6000;transport=tcp"),
    # different header component
    ("sip:carol@chicago.com", "sip:carol@chicago.com?Subject=next%20meeting"),
    # even though that's what phone21.boxesbybob.com resolves to
    ("sip:bob@phone21.boxesbybob.com", "sip:bob@192.0.2.4"),
    # both have security but with different values
    ("sip:carol@chicago.com;security=on", "sip:carol@chicago.com;security=off"),
]


@pytest.mark.parametrize(("a", "b"), RFC_EQUAL)
def test_rfc_3261_equivalent_uris_compare_equal_both_ways(a: str, b: str) -> None:
    assert uri_equivalent(parse_uri(a), parse_uri(b))
    assert uri_equivalent(parse_uri(b), parse_uri(a))


@pytest.mark.parametrize(("a", "b"), RFC_NOT_EQUAL)
def test_rfc_3261_non_equivalent_uris_compare_unequal_both_ways(a: str, b: str) -> None:
    assert not uri_equivalent(parse_uri(a), parse_uri(b))
    assert not uri_equivalent(parse_uri(b), parse_uri(a))


@pytest.mark.parametrize(
    ("a", "b"),
    [
        ("sip:a@example.com", "sips:a@example.com"),
        ("sip:a:x@example.com", "sip:a@example.com"),
        ("sip:a@example.com;user=phone", "sip:a@example.com"),
        ("sip:a@example.com;ttl=1", "sip:a@example.com"),
        ("sip:a@example.com;method=INVITE", "sip:a@example.com"),
        ("sip:a@example.com;maddr=192.0.2.1", "sip:a@example.com"),
        ("sip:a@example.com?subject=x", "sip:a@example.com?subject=y"),
    ],
)
def test_scheme_password_strict_params_and_header_values_must_match(a: str, b: str) -> None:
    assert not uri_equivalent(parse_uri(a), parse_uri(b))
    assert not uri_equivalent(parse_uri(b), parse_uri(a))


@pytest.mark.parametrize(
    ("a", "b"),
    [
        ("sip:%61lice@example.com", "sip:alice@example.com"),
        ("sip:a%3ab@example.com", "sip:a%3Ab@example.com"),
        ("sip:a@example.com;maddr=X.EXAMPLE.COM", "sip:a@example.com;maddr=x.example.com"),
        ("sip:a@example.com;transport=%74cp", "sip:a@example.com;transport=tcp"),
        ("sip:a@example.com?Subject=x", "sip:a@example.com?subject=x"),
        ("sip:a@example.com?subject=%61", "sip:a@example.com?subject=a"),
    ],
)
def test_escapes_of_unreserved_characters_and_case_are_ignored_where_rfc_allows(
    a: str, b: str
) -> None:
    assert uri_equivalent(parse_uri(a), parse_uri(b))


def test_escaped_parameter_name_equals_the_unescaped_name() -> None:
    # RFC 3261 §19.1.4: "Characters other than those in the 'reserved' set are equivalent
    # to their '%' HEX HEX encoding" -- parameter names included.
    a = parse_uri("sip:bob@biloxi.com;transport=tcp")
    b = parse_uri("sip:bob@biloxi.com;tr%61nsport=tcp")
    assert uri_equivalent(a, b)


def test_tel_uris_compare_ignoring_visual_separators() -> None:
    # RFC 3966 §4
    assert uri_equivalent(parse_uri("tel:+1-201-555-0123"), parse_uri("tel:+1.201.555.0123"))
    assert not uri_equivalent(parse_uri("tel:+1-201-555-0123"), parse_uri("tel:+1-201-555-0124"))


def test_uris_of_different_kinds_are_never_equivalent() -> None:
    assert not uri_equivalent(
        parse_uri("sip:+12015550123@example.com"), parse_uri("tel:+12015550123")
    )
    assert not uri_equivalent(parse_uri("im:alice@example.com"), parse_uri("sip:alice@example.com"))
    assert uri_equivalent(parse_uri("IM:alice@example.com"), parse_uri("im:alice@example.com"))


def test_the_cache_of_parsed_uris_never_grows_past_its_limit() -> None:
    for number in range(uri_module._URI_CACHE_LIMIT * 2 + 5):
        assert sip(f"sip:user{number}@example.com").user == f"user{number}"
        assert len(uri_module._URI_CACHE) <= uri_module._URI_CACHE_LIMIT


def test_a_cached_uri_is_the_one_parsed_and_a_bad_one_is_refused_every_time() -> None:
    assert parse_uri("sip:alice@example.com;transport=tcp") is parse_uri(
        "sip:alice@example.com;transport=tcp"
    )
    for _ in range(2):
        with pytest.raises(RemoteSipError):
            parse_uri("sip:alice@exa mple.com")
