"""The client side of digest: parsing challenges and answering them (RFC 7616 example)."""

from __future__ import annotations

import pytest

from intrafed.config.model import ha1
from intrafed.sip import LocalSipError, RemoteSipError
from intrafed.sip.digest import (
    DigestChallenge,
    NonceIssuer,
    answer_challenge,
    challenge,
    format_credentials,
    parse_challenge,
    parse_credentials,
    verify,
)

# RFC 7616 §3.9.1 (HTTP; the arithmetic is the same for SIP).
NONCE = "7ypf/xlj9XXwfDPEoM4URrv/xwf94BcCAzFZH4GiTo0v"
CNONCE = "f2/wE4q74E6zIJEtWaHKaf5wv/H5QzzpXusqGemxURZJ"
OPAQUE = "FQhe/qaU925kfnzjCev0ciny7QMkPqMAFRtzCUYo5tdS"
REALM = "http-auth@example.org"


@pytest.mark.parametrize(
    ("algorithm", "response"),
    [
        ("SHA-256", "753927fa0e85d155564e2e272a28d1802ca10daf4496794697cf8db5856cb6c1"),
        ("MD5", "8ca523f5e9506fed4657c9700eebdbec"),
    ],
)
def test_answering_the_rfc_7616_challenge_gives_the_rfcs_response(
    algorithm: str, response: str
) -> None:
    offered = parse_challenge(
        f'Digest realm="{REALM}", qop="auth, auth-int", algorithm={algorithm}, '
        f'nonce="{NONCE}", opaque="{OPAQUE}"'
    )
    secret = ha1("Mufasa", REALM, "Circle of Life", algorithm)
    credentials = answer_challenge(
        offered, "Mufasa", secret, "GET", "/dir/index.html", cnonce=CNONCE
    )
    assert credentials.response == response
    assert (credentials.qop, credentials.nc, credentials.opaque) == ("auth", "00000001", OPAQUE)


def test_a_formatted_answer_verifies_at_the_server_that_challenged() -> None:
    nonce = NonceIssuer(b"0123456789abcdef").issue(100.0)
    offered = parse_challenge(challenge("example.com", nonce, "SHA-256"))
    secret = ha1('bo"b', "example.com", "pw", "SHA-256")
    answer = answer_challenge(
        offered, 'bo"b', secret, "REGISTER", "sip:example.com", cnonce="c1", nc=7
    )
    parsed = parse_credentials(format_credentials(answer))
    assert parsed == answer
    assert parsed.nc == "00000007"
    assert verify(parsed, secret, "REGISTER")
    assert not verify(parsed, secret, "MESSAGE")


def test_without_qop_the_answer_is_the_rfc_2069_form() -> None:
    offered = DigestChallenge("example.com", "n1", "MD5")
    answer = answer_challenge(offered, "bob", "0" * 32, "REGISTER", "sip:example.com", cnonce="c")
    assert (answer.qop, answer.nc, answer.cnonce) == (None, None, None)
    assert "qop" not in format_credentials(answer)


def test_a_challenge_keeps_stale_qop_options_and_an_algorithm_it_cannot_compute() -> None:
    offered = parse_challenge(
        'Digest realm="example.com", nonce="n", algorithm=SHA-512-256, qop="auth,auth-int", '
        "stale=TRUE"
    )
    assert offered == DigestChallenge(
        "example.com", "n", "SHA-512-256", ("auth", "auth-int"), None, True
    )
    with pytest.raises(LocalSipError, match="SHA-512-256 is not supported"):
        answer_challenge(offered, "bob", "0" * 32, "REGISTER", "sip:example.com", cnonce="c")


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ('Basic realm="example.com"', "challenge scheme 'Basic' is not Digest"),
        ('Digest realm="example.com"', "lacks nonce"),
        ('Digest realm="example.com", nonce=', "malformed Digest parameter"),
    ],
)
def test_a_bad_challenge_is_named(value: str, message: str) -> None:
    with pytest.raises(RemoteSipError, match=message):
        parse_challenge(value)
