"""Digest authentication of clients: REGISTER (401) and other requests whose From is one
of our users (407), connection-bound identities, peers treated as authenticated or not."""

from __future__ import annotations

import dataclasses

from intrafed.config.model import ha1
from intrafed.policy import (
    Accepted,
    Challenge,
    Directory,
    PeerTrust,
    StoredCredentials,
    Unanswered,
    Verdict,
    authenticate,
)
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
    nc: str = "00000001",
    algorithm: str = "SHA-256",
) -> str:
    secret = ha1(username, "example.com", password, algorithm)
    offered = DigestCredentials(
        username, "example.com", nonce, uri, "", algorithm, "auth", nc, "cn"
    )
    response = expected_response(offered, secret, method)
    return (
        f'Digest username="{username}", realm="example.com", nonce="{nonce}", '
        f'uri="{uri}", response="{response}", algorithm={algorithm}, qop=auth, '
        f'nc={nc}, cnonce="cn"'
    )


def check(message: Request, now: float = 101.0, **context: object) -> Verdict:
    return authenticate(message, DIRECTORY, NONCES, now, "imp1", **context)  # type: ignore[arg-type]


def refused(verdict: Verdict) -> Response:
    """The response of a challenge (401/407) or a refusal (403/400)."""
    assert not isinstance(verdict, Accepted), verdict
    assert isinstance(verdict, Challenge) == (verdict.response.status in (401, 407)), verdict
    return verdict.response


def proven(verdict: Verdict) -> str | None:
    """The identity an accepted request proved (fails the test when it was not accepted)."""
    assert isinstance(verdict, Accepted), verdict
    return verdict.identity


def test_no_credentials_get_a_challenge_for_sha256_and_md5() -> None:
    refusal = refused(check(register()))
    assert refusal.status == 401
    challenges = refusal.headers.get_all("www-authenticate")
    assert [c.split("algorithm=")[1].split(",")[0] for c in challenges] == ["SHA-256", "MD5"]


def test_the_right_password_proves_the_user_and_a_wrong_one_is_challenged_again() -> None:
    nonce = NONCES.issue(100.0)
    assert proven(check(register(answer(nonce)))) == "alice@example.com"
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
    assert proven(check(register(to="carol"))) is None


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
    assert proven(check(message(), connection_identity="alice@example.com")) is None
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
    assert proven(check(message(), trust=GATEWAY)) is None
    assert proven(check(register(), trust=GATEWAY)) is None


def test_the_other_partition_cannot_send_as_a_user_homed_here() -> None:
    refusal = refused(check(message(), trust=GATEWAY, from_partition=True))
    assert refusal.status == 403
    assert "cannot send as alice@example.com, who is homed here" in (
        refusal.headers.get("warning") or ""
    )
    partner = message(sender="bob@example.com")
    assert proven(check(partner, trust=GATEWAY, from_partition=True)) is None
    assert proven(check(message(), trust=GATEWAY)) is None


def test_the_other_partition_cannot_speak_for_a_third_domain() -> None:
    for sender in ("dave@partner.example.net", "example.com"):
        refusal = refused(check(message(sender=sender), trust=GATEWAY, from_partition=True))
        assert refusal.status == 403
        assert f"speaks only for users of example.com not homed here, not {sender}" in (
            refusal.headers.get("warning") or ""
        )
    # Other trusted hosts (a gateway treated as authenticated) still relay for anyone.
    assert proven(check(message(sender="dave@partner.example.net"), trust=GATEWAY)) is None


def test_a_peer_not_treated_as_authenticated_is_challenged_and_told_why() -> None:
    refusal = refused(check(message(sender="bob@example.com"), trust=UNAUTHENTICATED_GATEWAY))
    assert refusal.status == 407
    assert "is not treated as authenticated" in (refusal.headers.get("warning") or "")


def test_an_unknown_user_of_our_domain_is_forbidden_and_users_without_password_pass() -> None:
    refusal = refused(check(message(sender="eve@example.com")))
    assert refusal.status == 403
    assert "eve@example.com is not a user of this node" in (refusal.headers.get("warning") or "")
    assert proven(check(message(sender="carol@example.com"))) is None


def test_an_untrusted_unauthenticated_foreign_sender_is_forbidden() -> None:
    refusal = refused(check(message(sender="dave@partner.example.net")))
    assert refusal.status == 403
    assert (
        "only trusted peers and authenticated users of example.com may send here; "
        "dave@partner.example.net is neither"
    ) in (refusal.headers.get("warning") or "")
    # A connection that proved alice cannot speak for a foreign user either.
    refusal = refused(
        check(message(sender="dave@partner.example.net"), connection_identity="alice@example.com")
    )
    assert "authenticated as alice@example.com and cannot send as dave@" in (
        refusal.headers.get("warning") or ""
    )
    # A trusted host not treated as authenticated still relays for other domains.
    untrusting = check(message(sender="dave@partner.example.net"), trust=UNAUTHENTICATED_GATEWAY)
    assert proven(untrusting) is None
    foreign = register(to="dave")
    foreign = Request(
        "REGISTER", foreign.uri, foreign.headers.replace("To", "<sip:dave@partner.example.net>")
    )
    assert "only users of example.com register here" in (
        refused(check(foreign)).headers.get("warning") or ""
    )


def test_options_to_the_node_itself_is_answered_for_anyone() -> None:
    directory = dataclasses.replace(DIRECTORY, node_names=("imp1.example.com", "127.0.0.2"))

    def options(uri: str, extra: str = "") -> Request:
        built = request("OPTIONS", uri, extra=extra)
        headers = built.headers.replace("From", "<sip:dave@partner.example.net>;tag=x")
        return Request("OPTIONS", built.uri, headers)

    for uri in ("sip:imp1.example.com:5060;transport=tcp", "sip:127.0.0.2", "sip:example.com"):
        assert isinstance(authenticate(options(uri), directory, NONCES, 101.0, "imp1"), Accepted)
    # Not when it would be forwarded elsewhere.
    routed = options("sip:imp1.example.com", "Route: <sip:evil.example.org;lr>\r\n")
    assert refused(authenticate(routed, directory, NONCES, 101.0, "imp1")).status == 403
    assert (
        refused(
            authenticate(options("sip:bob@example.com"), directory, NONCES, 101.0, "imp1")
        ).status
        == 403
    )


def test_a_to_tag_alone_does_not_spare_the_challenge() -> None:
    in_dialog = message(to="<sip:bob@example.com>;tag=b1")
    assert refused(check(in_dialog)).status == 407
    foreign = message(sender="dave@partner.example.net", to="<sip:bob@example.com>;tag=b1")
    assert refused(check(foreign)).status == 403
    # Within a dialog of this node (see policy.dialogs) it is not challenged.
    assert proven(check(in_dialog, in_dialog=True)) is None
    assert proven(check(foreign, in_dialog=True)) is None


def test_ack_and_cancel_are_not_challenged() -> None:
    assert proven(check(request("ACK"))) is None
    assert proven(check(request("CANCEL"))) is None


def test_a_replayed_answer_is_challenged_again_with_stale_true() -> None:
    nonce = NONCES.issue(100.0)
    credentials = answer(nonce, method="MESSAGE", uri="sip:bob@example.com")
    assert proven(check(message(credentials))) == "alice@example.com"
    replay = refused(check(message(credentials)))
    assert replay.status == 407
    assert all(c.endswith("stale=true") for c in replay.headers.get_all("proxy-authenticate"))
    following = answer(nonce, method="MESSAGE", uri="sip:bob@example.com", nc="00000002")
    assert proven(check(message(following))) == "alice@example.com"


def test_a_register_nonce_is_spent_by_its_first_use() -> None:
    nonce = NONCES.issue(100.0)
    assert proven(check(register(answer(nonce)))) == "alice@example.com"
    again = refused(check(register(answer(nonce, nc="00000002"))))
    assert again.status == 401
    assert "stale=true" in (again.headers.get("www-authenticate") or "")


def test_credentials_for_another_uri_are_400() -> None:
    nonce = NONCES.issue(100.0)
    elsewhere = answer(nonce, method="MESSAGE", uri="sip:carol@example.com")
    refusal = refused(check(message(elsewhere)))
    assert (refusal.status, refusal.reason) == (400, "Digest uri does not match the Request-URI")
    # The same URI spelled differently (RFC 3261 §19.1.4) is the same resource.
    same = answer(NONCES.issue(100.0), method="MESSAGE", uri="sip:bob@EXAMPLE.com")
    assert proven(check(message(same))) == "alice@example.com"


def test_an_algorithm_not_accepted_gets_the_setting_that_accepts_it_in_the_warning() -> None:
    sha256_only = dataclasses.replace(DIRECTORY, algorithms=("SHA-256",))
    md5 = answer(NONCES.issue(100.0), algorithm="MD5")
    refusal = refused(authenticate(register(md5), sha256_only, NONCES, 101.0, "imp1"))
    assert refusal.status == 401
    assert (
        "Digest algorithm MD5 is not accepted here (SHA-256); "
        "to accept it: intrafed config digest SHA-256 MD5 --home DIR"
    ) in (refusal.headers.get("warning") or "")


def test_a_client_that_never_answers_the_challenge_is_told_about_md5() -> None:
    unanswered = Unanswered()
    first = refused(check(register(to="mallory"), unanswered=unanswered))
    assert first.headers.get("warning") is None
    second = refused(check(register(to="mallory"), now=130.0, unanswered=unanswered))
    assert "intrafed config digest MD5 SHA-256 --home DIR" in (second.headers.get("warning") or "")
    # A client that answers (even wrongly) is not a client short of algorithms.
    wrong = answer(NONCES.issue(130.0), password="guess", username="mallory")
    assert (
        refused(check(register(wrong, to="mallory"), unanswered=unanswered)).headers.get("warning")
        is None
    )
    md5_first = dataclasses.replace(DIRECTORY, algorithms=("MD5", "SHA-256"))
    for now in (140.0, 150.0):
        again = refused(
            authenticate(register(), md5_first, NONCES, now, "imp1", unanswered=unanswered)
        )
        assert again.headers.get("warning") is None
