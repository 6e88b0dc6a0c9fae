"""Digest authentication (RFC 8760 / RFC 7616) with the RFC's own example."""

from __future__ import annotations

import pytest

from intrafed.config.model import ha1
from intrafed.sip import RemoteSipError
from intrafed.sip.digest import (
    NonceIssuer,
    challenge,
    expected_response,
    parse_credentials,
    verify,
)

# RFC 7616 §3.9.1 (the example is HTTP; the arithmetic is the same for SIP).
NONCE = "7ypf/xlj9XXwfDPEoM4URrv/xwf94BcCAzFZH4GiTo0v"
CNONCE = "f2/wE4q74E6zIJEtWaHKaf5wv/H5QzzpXusqGemxURZJ"


def rfc_credentials(algorithm: str, response: str) -> str:
    return (
        f'Digest username="Mufasa", realm="http-auth@example.org", uri="/dir/index.html", '
        f'algorithm={algorithm}, nonce="{NONCE}", nc=00000001, cnonce="{CNONCE}", qop=auth, '
        f'response="{response}", opaque="FQhe/qaU925kfnzjCev0ciny7QMkPqMAFRtzCUYo5tdS"'
    )


@pytest.mark.parametrize(
    ("algorithm", "response"),
    [
        ("SHA-256", "753927fa0e85d155564e2e272a28d1802ca10daf4496794697cf8db5856cb6c1"),
        ("MD5", "8ca523f5e9506fed4657c9700eebdbec"),
    ],
)
def test_rfc_7616_example_verifies(algorithm: str, response: str) -> None:
    credentials = parse_credentials(rfc_credentials(algorithm, response))
    secret = ha1("Mufasa", "http-auth@example.org", "Circle of Life", algorithm)
    assert expected_response(credentials, secret, "GET") == response
    assert verify(credentials, secret, "GET")
    assert not verify(credentials, secret, "POST")
    wrong = ha1("Mufasa", "http-auth@example.org", "Circle of Death", algorithm)
    assert not verify(credentials, wrong, "GET")


@pytest.mark.parametrize(
    ("value", "reason"),
    [
        ("Basic QWxhZGRpbjpvcGVuIHNlc2FtZQ==", "is not Digest"),
        ('Digest username="a", realm="r"', "lack nonce, uri, response"),
        ('Digest username="a" realm="r"', "malformed Digest parameter"),
        ('Digest username="a, realm="r', "malformed Digest parameter"),
        ('Digest username="a", realm="r", nonce="n", uri="u", response="x", algorithm=SHA-512',
         "SHA-512 is not supported"),
        ('Digest username="a", realm="r", nonce="n", uri="u", response="x", qop=auth',
         "nc and cnonce"),
        ("NoOneKnowsThisScheme opaque-data=here", "is not Digest"),
    ],
)  # fmt: skip
def test_bad_credentials_are_400_with_the_flaw(value: str, reason: str) -> None:
    with pytest.raises(RemoteSipError, match=reason) as raised:
        parse_credentials(value)
    assert raised.value.status == 400


def test_nonces_are_ours_fresh_then_stale_and_forgeries_invalid() -> None:
    issuer = NonceIssuer(b"0123456789abcdef", lifetime=300)
    nonce = issuer.issue(now=1000.0)
    assert issuer.check(nonce, now=1100.0) == "valid"
    assert issuer.check(nonce, now=1301.0) == "stale"
    assert NonceIssuer(b"another secret!!").check(nonce, now=1100.0) == "invalid"
    assert issuer.check("not-base64!", now=1100.0) == "invalid"
    assert issuer.check(nonce[:-4] + "AAA=", now=1100.0) == "invalid"


def test_a_short_secret_is_refused() -> None:
    with pytest.raises(ValueError, match="16 bytes"):
        NonceIssuer(b"short")


def test_challenge_offers_qop_auth_and_stale() -> None:
    assert challenge("example.com", "n1", "SHA-256") == (
        'Digest realm="example.com", nonce="n1", algorithm=SHA-256, qop="auth"'
    )
    assert challenge("example.com", "n1", "MD5", stale=True).endswith(", stale=true")


def test_nonce_use_needs_a_strictly_increasing_nc() -> None:
    issuer = NonceIssuer(b"0123456789abcdef", lifetime=300)
    nonce = issuer.issue(now=1000.0)
    assert issuer.use(nonce, "00000001", now=1001.0)
    assert not issuer.use(nonce, "00000001", now=1002.0)
    assert issuer.use(nonce, "00000003", now=1003.0)
    assert not issuer.use(nonce, "00000002", now=1004.0)
    # Another nonce of the same instant is another nonce.
    assert issuer.issue(now=1000.0) != nonce


def test_a_nonce_without_nc_or_spent_by_last_use_is_not_taken_again() -> None:
    issuer = NonceIssuer(b"0123456789abcdef", lifetime=300)
    rfc2069 = issuer.issue(now=1000.0)
    assert issuer.use(rfc2069, None, now=1001.0)
    assert not issuer.use(rfc2069, None, now=1002.0)
    assert not issuer.use(rfc2069, "ffffffff", now=1002.0)
    register = issuer.issue(now=1000.0)
    assert issuer.use(register, "00000001", now=1001.0, last=True)
    assert not issuer.use(register, "00000002", now=1002.0)


def test_a_nonce_spelled_in_another_base64_form_is_the_same_nonce() -> None:
    issuer = NonceIssuer(b"0123456789abcdef", lifetime=300)
    nonce = issuer.issue(now=1000.0)
    # 32 bytes leave two unused bits in the last base64 digit before the padding.
    alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/"
    last = alphabet.index(nonce[-2])
    twin = nonce[:-2] + alphabet[last ^ 1] + "="
    assert twin != nonce
    assert issuer.check(twin, now=1001.0) == "valid"
    assert issuer.use(nonce, None, now=1001.0)
    assert not issuer.use(twin, None, now=1002.0)


def test_the_nonce_table_forgets_expired_nonces_and_stays_bounded() -> None:
    issuer = NonceIssuer(b"0123456789abcdef", lifetime=10, capacity=3)
    nonces = [issuer.issue(now=100.0 + n) for n in range(5)]
    for n, nonce in enumerate(nonces[:3]):
        assert issuer.use(nonce, None, now=100.0 + n)
    assert len(issuer) == 3
    # Full: the oldest entry is forgotten, and its nonce (and any older) counts as stale,
    # so forgetting never lets a replay in.
    assert issuer.use(nonces[3], None, now=104.0)
    assert len(issuer) == 3
    assert issuer.check(nonces[0], now=104.0) == "stale"
    assert not issuer.use(nonces[0], None, now=104.0)
    assert issuer.check(nonces[4], now=104.0) == "valid"
    # Expired entries go as time passes; their nonces are stale by age anyway.
    assert issuer.use(nonces[4], "00000001", now=112.5)
    assert len(issuer) == 2
    assert issuer.check(nonces[1], now=112.5) == "stale"


def test_a_username_that_is_not_utf8_is_hashed_not_raised() -> None:
    """Bytes that are not UTF-8 reach the parser as surrogates; hashing them never raises."""
    credentials = parse_credentials(
        'Digest username="al\udcffice", realm="example.com", nonce="n", uri="sip:example.com", '
        'response="00000000000000000000000000000000"'
    )
    assert not verify(credentials, "0" * 32, "REGISTER")
