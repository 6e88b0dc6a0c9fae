"""Digest authentication of clients: REGISTER (401) and other requests whose From is one
of our users (407), connection-bound identities, peers treated as authenticated or not."""

from __future__ import annotations

import dataclasses

from intrafed.config.model import ha1
from intrafed.policy import Accepted, Directory, PeerTrust, StoredCredentials, authenticate
from intrafed.sip import Request, Response
from intrafed.sip.digest import DigestCredentials, NonceIssuer, expected_response
from tests.messages import request

NONCES = NonceIssuer(b"a test secret of 32 bytes.......")
ALICE = StoredCredentials(
    ha1("alice", "example.com", "wonderland", "MD5"),
    ha1("alice", "example.com", "wonderland", "SHA-256"),
)
DIRECTORY = Directory(
    domains={"example.com"},
    users={"alice@example.com", "mallory@example.com", "carol@example.com"},
    credentials={
        "alice@example.com": ALICE,
        "mallory@example.com": ALICE,
        "carol@example.com": StoredCredentials(None, None),
    },
)
GATEWAY = PeerTrust("host authorization imp1.example.com")
UNAUTHENTICATED_GATEWAY = PeerTrust("host authorization imp1.example.com", authenticated=False)


def register(authorization: str = "", to: str = "alice") -> Request:
    extra = f"Authorization: {authorization}\r\n" if authorization else ""
    return request(
        "REGISTER",
        uri="sip:example.com",
        to=f"<sip:{to}@example.com>",
        extra=extra + f"Contact: <sip:{to}@127.0.0.10:5070>\r\n",
    )


def answer(
    nonce: str,
    password: str = "wonderland",
    username: str = "alice",
    method: str = "REGISTER",
    uri: str = "sip:example.com",
) -> str:
    secret = ha1(username, "example.com", password, "SHA-256")
    offered = DigestCredentials(
        username, "example.com", nonce, uri, "", "SHA-256", "auth", "00000001", "cn"
    )
    response = expected_response(offered, secret, method)
    return (
        f'Digest username="{username}", realm="example.com", nonce="{nonce}", '
        f'uri="{uri}", response="{response}", algorithm=SHA-256, qop=auth, '
        'nc=00000001, cnonce="cn"'
    )


def check(message: Request, now: float = 101.0, **context: object) -> Accepted | Response:
    return authenticate(message, DIRECTORY, NONCES, now, "imp1", **context)  # type: ignore[arg-type]


def refused(verdict: Accepted | Response) -> Response:
    assert isinstance(verdict, Response), verdict
    return verdict


def test_no_credentials_get_a_challenge_for_sha256_and_md5() -> None:
    refusal = refused(check(register()))
    assert refusal.status == 401
    challenges = refusal.headers.get_all("www-authenticate")
    assert [c.split("algorithm=")[1].split(",")[0] for c in challenges] == ["SHA-256", "MD5"]


def test_the_right_password_proves_the_user_and_a_wrong_one_is_challenged_again() -> None:
    nonce = NONCES.issue(100.0)
    assert check(register(answer(nonce))) == Accepted("alice@example.com")
    assert refused(check(register(answer(nonce, "guess")))).status == 401


def test_the_configured_algorithms_are_offered_in_order_and_alone_accepted() -> None:
    md5_first = dataclasses.replace(DIRECTORY, algorithms=("MD5",))
    refusal = refused(authenticate(register(), md5_first, NONCES, 101.0, "imp1"))
    [offered] = refusal.headers.get_all("www-authenticate")
    assert "algorithm=MD5" in offered
    nonce = NONCES.issue(100.0)
    sha256 = authenticate(register(answer(nonce)), md5_first, NONCES, 101.0, "imp1")
    assert refused(sha256).status == 401


def test_an_old_nonce_is_answered_with_stale_true() -> None:
    nonce = NONCES.issue(100.0)
    refusal = refused(check(register(answer(nonce)), now=100.0 + 301))
    assert refusal.status == 401
    assert all(c.endswith("stale=true") for c in refusal.headers.get_all("www-authenticate"))


def test_valid_credentials_of_another_user_are_forbidden() -> None:
    nonce = NONCES.issue(100.0)
    refusal = refused(check(register(answer(nonce), to="mallory")))
    assert refusal.status == 403
    assert "credentials of alice cannot register mallory@example.com" in (
        refusal.headers.get("warning") or ""
    )


def test_malformed_credentials_are_400_and_users_without_a_password_pass() -> None:
    assert refused(check(register('Digest username="alice'))).status == 400
    assert check(register(to="carol")) == Accepted()


def message(proxy_authorization: str = "", sender: str = "alice", **fields: str) -> Request:
    extra = f"Proxy-Authorization: {proxy_authorization}\r\n" if proxy_authorization else ""
    built = request("MESSAGE", extra=extra, **fields)  # type: ignore[arg-type]
    if sender == "alice":
        return built
    headers = built.headers.replace("From", f"<sip:{sender}>;tag=x")
    return Request(built.method, built.uri, headers, built.body)


def test_a_message_from_one_of_our_users_is_challenged_with_407_and_then_accepted() -> None:
    refusal = refused(check(message()))
    assert refusal.status == 407
    assert len(refusal.headers.get_all("proxy-authenticate")) == 2
    nonce = NONCES.issue(100.0)
    credentials = answer(nonce, method="MESSAGE", uri="sip:bob@example.com")
    verdict = check(message(credentials))
    assert isinstance(verdict, Accepted)
    assert verdict.identity == "alice@example.com"


def test_our_realms_credentials_are_consumed_and_other_realms_go_on() -> None:
    nonce = NONCES.issue(100.0)
    ours = answer(nonce, method="MESSAGE", uri="sip:bob@example.com")
    theirs = ours.replace('realm="example.com"', 'realm="partner.example.net"')
    sent = message(ours)
    sent = Request(sent.method, sent.uri, sent.headers.prepend("Proxy-Authorization", theirs))
    verdict = check(sent)
    assert isinstance(verdict, Accepted)
    assert verdict.request is not None
    assert verdict.request.headers.get_all("proxy-authorization") == [theirs]


def test_a_connection_that_proved_a_user_may_send_as_that_user_only() -> None:
    assert check(message(), connection_identity="alice@example.com") == Accepted()
    refusal = refused(check(message(), connection_identity="mallory@example.com"))
    assert refusal.status == 403
    assert "authenticated as mallory@example.com and cannot send as alice@example.com" in (
        refusal.headers.get("warning") or ""
    )


def test_proving_someone_else_is_forbidden() -> None:
    nonce = NONCES.issue(100.0)
    credentials = answer(nonce, method="MESSAGE", uri="sip:bob@example.com")
    refusal = refused(check(message(credentials, sender="mallory@example.com")))
    assert refusal.status == 403
    assert "credentials of alice cannot send as mallory@example.com" in (
        refusal.headers.get("warning") or ""
    )


def test_a_peer_treated_as_authenticated_is_never_challenged() -> None:
    assert check(message(), trust=GATEWAY) == Accepted()
    assert check(register(), trust=GATEWAY) == Accepted()


def test_the_other_partition_cannot_send_as_a_user_homed_here() -> None:
    refusal = refused(check(message(), trust=GATEWAY, from_partition=True))
    assert refusal.status == 403
    assert "cannot send as alice@example.com, who is homed here" in (
        refusal.headers.get("warning") or ""
    )
    assert check(message(sender="bob@example.com"), trust=GATEWAY, from_partition=True) == (
        Accepted()
    )
    assert check(message(), trust=GATEWAY) == Accepted()


def test_a_peer_not_treated_as_authenticated_is_challenged_and_told_why() -> None:
    refusal = refused(check(message(sender="bob@example.com"), trust=UNAUTHENTICATED_GATEWAY))
    assert refusal.status == 407
    assert "is not treated as authenticated" in (refusal.headers.get("warning") or "")


def test_an_unknown_user_of_our_domain_is_forbidden_and_foreign_senders_pass() -> None:
    refusal = refused(check(message(sender="eve@example.com")))
    assert refusal.status == 403
    assert "eve@example.com is not a user of this node" in (refusal.headers.get("warning") or "")
    assert check(message(sender="dave@partner.example.net")) == Accepted()
    assert check(message(sender="carol@example.com")) == Accepted()


def test_in_dialog_requests_ack_and_cancel_are_not_challenged() -> None:
    assert check(message(to="<sip:bob@example.com>;tag=b1")) == Accepted()
    assert check(request("ACK")) == Accepted()
    assert check(request("CANCEL")) == Accepted()
