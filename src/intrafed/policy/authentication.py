"""Digest authentication of REGISTER (DESIGN §4 "Authorize"), pure: the request, the
users' stored HA1s and a nonce issuer in; nothing (accepted) or the response to send out."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from intrafed.sip.digest import NonceIssuer, challenge, parse_credentials, verify
from intrafed.sip.errors import RemoteSipError
from intrafed.sip.message import Request, Response
from intrafed.sip.responses import local_tag, make_response, warning_value
from intrafed.sip.uri import SipUri, unescape


@dataclass(frozen=True, slots=True)
class StoredCredentials:
    """A user's digest secrets: HA1 for MD5 and for SHA-256 (the password is never kept)."""

    ha1_md5: str | None
    ha1_sha256: str | None


def check_register(
    request: Request,
    credentials: Mapping[str, StoredCredentials],
    nonces: NonceIssuer,
    now: float,
    agent: str,
) -> Response | None:
    """None when the REGISTER may proceed; else 401 (challenge), 403 or 400.

    A user provisioned without credentials is not challenged (the checker flags it).
    """
    to_uri = request.to_addr.uri
    if not isinstance(to_uri, SipUri) or to_uri.user is None:
        return None
    stored = credentials.get(to_uri.aor)
    if stored is None or (stored.ha1_md5 is None and stored.ha1_sha256 is None):
        return None
    realm = to_uri.host.lower()
    tag = local_tag(request.call_id, str(request.cseq.number))
    stale = False
    for value in request.headers.get_all("authorization"):
        try:
            offered = parse_credentials(value)
        except RemoteSipError as exc:
            warning = ("Warning", warning_value(agent, exc.reason))
            return make_response(request, 400, exc.reason, to_tag=tag, headers=[warning])
        if offered.realm.lower() != realm:
            continue
        state = nonces.check(offered.nonce, now)
        if state != "valid":
            stale = stale or state == "stale"
            continue
        ha1 = stored.ha1_sha256 if offered.algorithm == "SHA-256" else stored.ha1_md5
        if ha1 is None or not verify(offered, ha1, request.method):
            continue
        user = unescape(to_uri.user)
        if offered.username != user:
            rule = f"credentials of {offered.username} cannot register {to_uri.aor}"
            return make_response(
                request, 403, to_tag=tag, headers=[("Warning", warning_value(agent, rule))]
            )
        return None
    nonce = nonces.issue(now)
    challenges = [
        ("WWW-Authenticate", challenge(realm, nonce, algorithm, stale=stale))
        for algorithm in ("SHA-256", "MD5")
    ]
    return make_response(request, 401, to_tag=tag, headers=challenges)
