"""Who may send a request (DESIGN §4 "Authorize"), pure: the request, where it came from,
the users' stored HA1s and a nonce issuer in; accepted (with the identity proven, if any)
or the response to send out."""

from __future__ import annotations

from collections.abc import Collection, Mapping
from dataclasses import dataclass

from intrafed.policy.peers import PeerTrust
from intrafed.sip.digest import NonceIssuer, challenge, parse_credentials, verify
from intrafed.sip.errors import RemoteSipError
from intrafed.sip.headers import Headers
from intrafed.sip.message import Request, Response
from intrafed.sip.responses import local_tag, make_response, warning_value
from intrafed.sip.uri import SipUri, unescape

# Requests that cannot be challenged (RFC 3261 §22.1).
_NEVER_CHALLENGED = frozenset({"ACK", "CANCEL"})


@dataclass(frozen=True, slots=True)
class StoredCredentials:
    """A user's digest secrets: HA1 for MD5 and for SHA-256 (the password is never kept)."""

    ha1_md5: str | None
    ha1_sha256: str | None


@dataclass(frozen=True, slots=True)
class Accepted:
    """The request may proceed; ``identity`` is the AOR its digest credentials proved now
    (the caller binds it to the connection), None when nothing was proven. ``request`` is
    the request to go on with: with Proxy-Authorization credentials of our realm
    consumed, since they were for us (the other partition shares the realm, and must
    neither see nor replay them)."""

    identity: str | None = None
    request: Request | None = None


@dataclass(frozen=True, slots=True)
class Directory:
    """What authentication needs to know of this node's users."""

    domains: Collection[str]
    users: Collection[str]
    """AORs provisioned here."""
    credentials: Mapping[str, StoredCredentials]
    algorithms: tuple[str, ...] = ("SHA-256", "MD5")
    """Digest algorithms challenged with, in this order, and the only ones accepted."""


def authenticate(
    request: Request,
    directory: Directory,
    nonces: NonceIssuer,
    now: float,
    agent: str,
    *,
    trust: PeerTrust | None = None,
    from_partition: bool = False,
    connection_identity: str | None = None,
) -> Accepted | Response:
    """Digest authentication (RFC 3261 §22, RFC 8760) of one request.

    A peer treated as authenticated is never challenged, but the other partition
    (``from_partition``) may not send as a user homed here (403): its requests come from
    its own users. REGISTER proves the To user (401); any other out-of-dialog request whose
    From is in one of our domains proves the From user (407), unless its connection already
    proved that user. A client may not assert another user's identity (403). A user
    provisioned without a password is not challenged (the checker flags it).
    """
    if request.method in _NEVER_CHALLENGED:
        return Accepted()
    sender = request.from_addr.uri if from_partition else None
    if isinstance(sender, SipUri) and sender.user is not None and sender.aor in directory.users:
        entry = trust.entry if trust is not None else "the peer partition"
        rule = f"{entry} cannot send as {sender.aor}, who is homed here"
        return _refuse(request, 403, rule, agent)
    if trust is not None and trust.authenticated:
        return Accepted()
    if request.method == "REGISTER":
        claimed = request.to_addr.uri
        if not isinstance(claimed, SipUri) or claimed.user is None:
            return Accepted()
        stored = directory.credentials.get(claimed.aor)
        if not _has_secret(stored):
            return Accepted()
        return _verify(request, claimed, stored, directory, nonces, now, agent, proxy=False)
    if request.to_addr.tag is not None:
        return Accepted()
    claimed = request.from_addr.uri
    if (
        not isinstance(claimed, SipUri)
        or claimed.user is None
        or claimed.host.lower() not in directory.domains
    ):
        return Accepted()
    aor = claimed.aor
    if connection_identity is not None:
        if connection_identity == aor:
            return Accepted()
        return _refuse(
            request,
            403,
            f"this connection authenticated as {connection_identity} and cannot send as {aor}",
            agent,
        )
    stored = directory.credentials.get(aor)
    if trust is None and not _has_secret(stored):
        if aor in directory.users:
            return Accepted()
        return _refuse(request, 403, f"{aor} is not a user of this node", agent)
    return _verify(request, claimed, stored, directory, nonces, now, agent, proxy=True, trust=trust)


def _consumed(request: Request, realm: str) -> Request:
    """``request`` without the Proxy-Authorization values of ``realm`` (RFC 3261 §22.3:
    credentials for this proxy end here; those of other realms go on)."""
    kept = []
    for name, value in request.headers:
        if name.lower() == "proxy-authorization":
            try:
                if parse_credentials(value).realm.lower() == realm:
                    continue
            except RemoteSipError:
                pass
        kept.append((name, value))
    return Request(request.method, request.uri, Headers(kept), request.body)


def _has_secret(stored: StoredCredentials | None) -> bool:
    return stored is not None and (stored.ha1_md5 is not None or stored.ha1_sha256 is not None)


def _verify(
    request: Request,
    claimed: SipUri,
    stored: StoredCredentials | None,
    directory: Directory,
    nonces: NonceIssuer,
    now: float,
    agent: str,
    *,
    proxy: bool,
    trust: PeerTrust | None = None,
) -> Accepted | Response:
    realm = claimed.host.lower()
    stale = False
    header = "proxy-authorization" if proxy else "authorization"
    for value in request.headers.get_all(header):
        try:
            offered = parse_credentials(value)
        except RemoteSipError as exc:
            return _refuse(request, 400, exc.reason, agent, reason=exc.reason)
        if (
            offered.realm.lower() != realm
            or stored is None
            or offered.algorithm not in directory.algorithms
        ):
            continue
        state = nonces.check(offered.nonce, now)
        if state != "valid":
            stale = stale or state == "stale"
            continue
        ha1 = stored.ha1_sha256 if offered.algorithm == "SHA-256" else stored.ha1_md5
        if ha1 is None or not verify(offered, ha1, request.method):
            continue
        if offered.username != unescape(claimed.user or ""):
            verb = "register" if not proxy else "send as"
            rule = f"credentials of {offered.username} cannot {verb} {claimed.aor}"
            return _refuse(request, 403, rule, agent)
        return Accepted(claimed.aor, _consumed(request, realm) if proxy else None)
    nonce = nonces.issue(now)
    name = "Proxy-Authenticate" if proxy else "WWW-Authenticate"
    headers = [
        (name, challenge(realm, nonce, algorithm, stale=stale))
        for algorithm in directory.algorithms
    ]
    if trust is not None:
        rule = f"{trust.entry} is not treated as authenticated: {claimed.aor} must prove itself"
        headers.append(("Warning", warning_value(agent, rule)))
    return make_response(request, 407 if proxy else 401, to_tag=_tag(request), headers=headers)


def _refuse(
    request: Request, status: int, rule: str, agent: str, reason: str | None = None
) -> Response:
    warning = ("Warning", warning_value(agent, rule))
    return make_response(request, status, reason, to_tag=_tag(request), headers=[warning])


def _tag(request: Request) -> str:
    return local_tag(request.call_id, str(request.cseq.number))
