"""Digest authentication of REGISTER: challenge, success, wrong password, stale nonce,
someone else's credentials, malformed credentials."""

from __future__ import annotations

from intrafed.config.model import ha1
from intrafed.policy import StoredCredentials, check_register
from intrafed.sip import Request
from intrafed.sip.digest import DigestCredentials, NonceIssuer, expected_response
from tests.messages import request

NONCES = NonceIssuer(b"a test secret of 32 bytes.......")
ALICE = StoredCredentials(
    ha1("alice", "example.com", "wonderland", "MD5"),
    ha1("alice", "example.com", "wonderland", "SHA-256"),
)
USERS = {"alice@example.com": ALICE, "mallory@example.com": ALICE}


def register(authorization: str = "", to: str = "alice") -> Request:
    extra = f"Authorization: {authorization}\r\n" if authorization else ""
    return request(
        "REGISTER",
        uri="sip:example.com",
        to=f"<sip:{to}@example.com>",
        extra=extra + f"Contact: <sip:{to}@127.0.0.10:5070>\r\n",
    )


def answer(nonce: str, password: str = "wonderland", username: str = "alice") -> str:
    secret = ha1(username, "example.com", password, "SHA-256")
    offered = DigestCredentials(
        username, "example.com", nonce, "sip:example.com", "", "SHA-256", "auth", "00000001", "cn"
    )
    response = expected_response(offered, secret, "REGISTER")
    return (
        f'Digest username="{username}", realm="example.com", nonce="{nonce}", '
        f'uri="sip:example.com", response="{response}", algorithm=SHA-256, qop=auth, '
        'nc=00000001, cnonce="cn"'
    )


def test_no_credentials_get_a_challenge_for_sha256_and_md5() -> None:
    refusal = check_register(register(), USERS, NONCES, 100.0, "imp1")
    assert refusal is not None
    assert refusal.status == 401
    challenges = refusal.headers.get_all("www-authenticate")
    assert [c.split("algorithm=")[1].split(",")[0] for c in challenges] == ["SHA-256", "MD5"]


def test_the_right_password_is_accepted_and_a_wrong_one_challenged_again() -> None:
    nonce = NONCES.issue(100.0)
    assert check_register(register(answer(nonce)), USERS, NONCES, 101.0, "imp1") is None
    wrong = check_register(register(answer(nonce, "guess")), USERS, NONCES, 101.0, "imp1")
    assert wrong is not None
    assert wrong.status == 401


def test_an_old_nonce_is_answered_with_stale_true() -> None:
    nonce = NONCES.issue(100.0)
    refusal = check_register(register(answer(nonce)), USERS, NONCES, 100.0 + 301, "imp1")
    assert refusal is not None
    assert refusal.status == 401
    assert all(c.endswith("stale=true") for c in refusal.headers.get_all("www-authenticate"))


def test_valid_credentials_of_another_user_are_forbidden() -> None:
    nonce = NONCES.issue(100.0)
    refusal = check_register(register(answer(nonce), to="mallory"), USERS, NONCES, 101.0, "imp1")
    assert refusal is not None
    assert refusal.status == 403
    assert "credentials of alice cannot register mallory@example.com" in (
        refusal.headers.get("warning") or ""
    )


def test_malformed_credentials_are_400_and_users_without_a_password_pass() -> None:
    refusal = check_register(register('Digest username="alice'), USERS, NONCES, 1.0, "imp1")
    assert refusal is not None
    assert refusal.status == 400
    unprotected = {"alice@example.com": StoredCredentials(None, None)}
    assert check_register(register(), unprotected, NONCES, 1.0, "imp1") is None
