"""Who may send a request (DESIGN §4 "Authorize"), pure: the request, where it came from,
the users' stored HA1s and a nonce issuer in; a verdict out in ``sip.decisions``' words:
``Accepted`` (with the identity proven, if any) or an ``Answer`` to send instead (a
``Challenge`` for a 401/407; a 403, or 400 for malformed credentials, naming its rule)."""

from __future__ import annotations

from collections.abc import Collection, Mapping
from dataclasses import dataclass

from intrafed.policy.peers import PeerTrust
from intrafed.sip.decisions import Accepted, Answer
from intrafed.sip.digest import (
    NONCE_LIFETIME,
    NonceIssuer,
    challenge,
    parse_credentials,
    verify,
)
from intrafed.sip.errors import RemoteSipError
from intrafed.sip.headers import Headers
from intrafed.sip.message import Request
from intrafed.sip.responses import local_tag, make_response, warning_value
from intrafed.sip.uri import SipUri, Uri, parse_uri, unescape, uri_equivalent

# Requests that cannot be challenged (RFC 3261 §22.1).
_NEVER_CHALLENGED = frozenset({"ACK", "CANCEL"})


@dataclass(frozen=True, slots=True)
class StoredCredentials:
    """A user's digest secrets: HA1 for MD5 and for SHA-256 (the password is never kept)."""

    ha1_md5: str | None
    ha1_sha256: str | None


@dataclass(frozen=True, slots=True)
class Challenge(Answer):
    """The sender must prove who it is: the 401/407 to send (one challenge per algorithm).
    ``failed`` names the user whose credentials were offered and did not match (a wrong
    password), for the node's log."""

    failed: str | None = None


Verdict = Accepted | Answer
"""What ``authenticate`` decides; nothing passes without an explicit ``Accepted``."""


@dataclass(frozen=True, slots=True)
class Directory:
    """What authentication needs to know of this node's users."""

    domains: Collection[str]
    users: Collection[str]
    """AORs provisioned here."""
    credentials: Mapping[str, StoredCredentials]
    algorithms: tuple[str, ...] = ("SHA-256", "MD5")
    """Digest algorithms challenged with, in this order, and the only ones accepted."""
    node_names: Collection[str] = ()
    """The node's own FQDN and address (lower case): OPTIONS to them is the node's."""


class Unanswered:
    """The users challenged lately whose client never answered (bounded, pure: fed
    ``now``). A client that cannot compute any algorithm offered (libre when SHA-256 is
    offered at all) shows as the same user challenged again without an answer."""

    def __init__(self, window: float = NONCE_LIFETIME, capacity: int = 4096) -> None:
        self.window = window
        self.capacity = capacity
        self._last: dict[str, float] = {}

    def challenged(self, aor: str, now: float) -> bool:
        """Note a challenge for ``aor`` that came without credentials; True when the
        previous one, within the window, got no answer either."""
        previous = self._last.pop(aor, None)
        while len(self._last) >= self.capacity:
            del self._last[next(iter(self._last))]
        self._last[aor] = now
        return previous is not None and now - previous <= self.window

    def answered(self, aor: str) -> None:
        """``aor``'s client answered a challenge."""
        self._last.pop(aor, None)


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
    in_dialog: bool = False,
    unanswered: Unanswered | None = None,
) -> Verdict:
    """Who may send ``request`` (RFC 3261 §22, RFC 8760 digest): accepted, challenged
    (401/407) or refused (403, 400 for malformed credentials or a digest uri that is not
    the Request-URI).

    OPTIONS to the node itself is always answered. The other partition
    (``from_partition``) speaks only for users of our domains who are not homed here. A
    peer treated as authenticated is never challenged. REGISTER proves the To user (401).
    A request within a dialog of this node (``in_dialog``, see ``policy.dialogs``) is not
    challenged; any other request whose From is in one of our domains proves the From
    user (407), unless its connection already proved that user. A client may not assert
    another user's identity, and one that is neither a trusted peer nor a user of ours
    may not send at all (403). A user provisioned without a password is not challenged
    (the checker flags it).
    """
    if request.method in _NEVER_CHALLENGED or _to_the_node(request, directory):
        return Accepted(request)
    sender = request.from_addr.uri
    if from_partition:
        refusal = _partition_refusal(request, sender, directory, trust, agent)
        if refusal is not None:
            return refusal
    if trust is not None and trust.authenticated:
        return Accepted(request)
    if request.method == "REGISTER":
        return _register(request, directory, nonces, now, agent, trust, unanswered)
    if in_dialog:
        return Accepted(request)
    user = _user_of(sender, directory)
    if user is None and trust is not None:
        return Accepted(request)
    aor = _who(sender)
    if connection_identity is not None:
        if connection_identity == aor:
            return Accepted(request)
        return _refuse(
            request,
            403,
            f"this connection authenticated as {connection_identity} and cannot send as {aor}",
            agent,
        )
    if user is None:
        domains = ", ".join(sorted(directory.domains))
        rule = (
            f"only trusted peers and authenticated users of {domains} may send here; "
            f"{aor} is neither"
        )
        return _refuse(request, 403, rule, agent)
    stored = directory.credentials.get(aor)
    if trust is None and not _has_secret(stored):
        if aor in directory.users:
            return Accepted(request)
        return _refuse(request, 403, f"{aor} is not a user of this node", agent)
    return _verify(
        request,
        user,
        stored,
        directory,
        nonces,
        now,
        agent,
        proxy=True,
        trust=trust,
        unanswered=unanswered,
    )


def _to_the_node(request: Request, directory: Directory) -> bool:
    """OPTIONS to the node itself (RFC 3261 §11: probes, keepalives), answered by it."""
    uri = request.uri
    if request.method != "OPTIONS" or not isinstance(uri, SipUri) or uri.user is not None:
        return False
    host = uri.host.lower().strip("[]")
    named = host in directory.domains or host in directory.node_names
    return named and not request.headers.get_all("route")


def _partition_refusal(
    request: Request,
    sender: Uri,
    directory: Directory,
    trust: PeerTrust | None,
    agent: str,
) -> Answer | None:
    """403 when the other partition claims a sender who is not a user of the shared
    domains, or one who is homed here (its requests come from its own users)."""
    entry = trust.entry if trust is not None else "the peer partition"
    user = _user_of(sender, directory)
    if user is None:
        domains = ", ".join(sorted(directory.domains))
        rule = f"{entry} speaks only for users of {domains} not homed here, not {_who(sender)}"
        return _refuse(request, 403, rule, agent)
    if user.aor in directory.users:
        rule = f"{entry} cannot send as {user.aor}, who is homed here"
        return _refuse(request, 403, rule, agent)
    return None


def _register(
    request: Request,
    directory: Directory,
    nonces: NonceIssuer,
    now: float,
    agent: str,
    trust: PeerTrust | None,
    unanswered: Unanswered | None,
) -> Verdict:
    """REGISTER proves the To user; only users of our domains register through us."""
    claimed = request.to_addr.uri
    if not isinstance(claimed, SipUri) or claimed.user is None:
        return Accepted(request)
    if trust is None and claimed.host.lower() not in directory.domains:
        domains = ", ".join(sorted(directory.domains))
        rule = f"only users of {domains} register here, not {claimed.aor}"
        return _refuse(request, 403, rule, agent)
    stored = directory.credentials.get(claimed.aor)
    if not _has_secret(stored):
        return Accepted(request)
    return _verify(
        request,
        claimed,
        stored,
        directory,
        nonces,
        now,
        agent,
        proxy=False,
        unanswered=unanswered,
    )


def _user_of(sender: Uri, directory: Directory) -> SipUri | None:
    """``sender`` when it names a user of one of our domains."""
    if isinstance(sender, SipUri) and sender.user is not None:
        return sender if sender.host.lower() in directory.domains else None
    return None


def _who(sender: Uri) -> str:
    return sender.aor if isinstance(sender, SipUri) else str(sender)


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
    unanswered: Unanswered | None = None,
) -> Verdict:
    realm = claimed.host.lower()
    stale = False
    offered_any = False
    refused_algorithms: list[str] = []
    mismatched = False
    header = "proxy-authorization" if proxy else "authorization"
    for value in request.headers.get_all(header):
        try:
            offered = parse_credentials(value)
        except RemoteSipError as exc:
            return _refuse(request, 400, exc.reason, agent, reason=exc.reason)
        if offered.realm.lower() != realm or stored is None:
            continue
        offered_any = True
        if offered.algorithm not in directory.algorithms:
            refused_algorithms.append(offered.algorithm)
            continue
        state = nonces.check(offered.nonce, now)
        if state != "valid":
            stale = stale or state == "stale"
            continue
        if not _same_resource(offered.uri, request.uri, directory.node_names):
            # RFC 2617 §3.2.2.5: the credentials must be for this Request-URI.
            rule = f"Digest uri {offered.uri[:128]} does not match the Request-URI {request.uri}"
            reason = "Digest uri does not match the Request-URI"
            return _refuse(request, 400, rule, agent, reason=reason)
        ha1 = stored.ha1_sha256 if offered.algorithm == "SHA-256" else stored.ha1_md5
        if ha1 is None or not verify(offered, ha1, request.method):
            mismatched = True
            continue
        if offered.username != unescape(claimed.user or ""):
            verb = "register" if not proxy else "send as"
            rule = f"credentials of {offered.username} cannot {verb} {claimed.aor}"
            return _refuse(request, 403, rule, agent)
        if not nonces.use(offered.nonce, offered.nc, now, last=request.method == "REGISTER"):
            # A replay (nc not increasing, or a spent nonce): a new nonce, stale=true.
            stale = True
            continue
        return Accepted(_consumed(request, realm) if proxy else request, claimed.aor)
    nonce = nonces.issue(now)
    name = "Proxy-Authenticate" if proxy else "WWW-Authenticate"
    headers = [
        (name, challenge(realm, nonce, algorithm, stale=stale))
        for algorithm in directory.algorithms
    ]
    if trust is not None:
        rule = f"{trust.entry} is not treated as authenticated: {claimed.aor} must prove itself"
        headers.append(("Warning", warning_value(agent, rule)))
    hint = _algorithm_hint(
        directory.algorithms,
        refused_algorithms,
        repeated=unanswered is not None and _unanswered(unanswered, claimed.aor, offered_any, now),
    )
    if hint is not None:
        headers.append(("Warning", warning_value(agent, hint)))
    if mismatched:
        rule = f"the credentials offered for {claimed.aor} did not match (wrong password?)"
        headers.append(("Warning", warning_value(agent, rule)))
    status = 407 if proxy else 401
    response = make_response(request, status, to_tag=_tag(request), headers=headers)
    return Challenge(response, claimed.aor if mismatched else None)


def _unanswered(unanswered: Unanswered, aor: str, offered_any: bool, now: float) -> bool:
    if offered_any:
        unanswered.answered(aor)
        return False
    return unanswered.challenged(aor, now)


def _algorithm_hint(
    algorithms: tuple[str, ...], refused: list[str], *, repeated: bool
) -> str | None:
    """What the administrator can change when a client seems unable to use the digest
    algorithms offered (the ``intrafed config digest`` setting)."""
    if refused:
        wanted = " ".join([*algorithms, *dict.fromkeys(refused)])
        return (
            f"Digest algorithm {refused[0]} is not accepted here ({', '.join(algorithms)}); "
            f"to accept it: intrafed config digest {wanted} --home DIR"
        )
    if repeated and algorithms[0] != "MD5":
        return (
            "the previous challenge got no answer: clients that compute only MD5 cannot "
            f"answer while {algorithms[0]} is offered (baresip/libre needs MD5 alone, "
            "SIPp MD5 first): intrafed config digest MD5 SHA-256 --home DIR, or "
            "intrafed config digest MD5 --home DIR"
        )
    return None


def _same_resource(uri: str, request_uri: Uri, node_names: Collection[str]) -> bool:
    """Whether the digest ``uri`` names the Request-URI (RFC 3261 §19.1.4 comparison), or
    this node itself: SIPp always answers with the address it sent to."""
    if uri == str(request_uri):
        return True
    try:
        named = parse_uri(uri)
    except RemoteSipError:
        return False
    if isinstance(named, SipUri) and named.user is None:
        return named.host.lower().strip("[]") in node_names or uri_equivalent(named, request_uri)
    return uri_equivalent(named, request_uri)


def _refuse(
    request: Request, status: int, rule: str, agent: str, reason: str | None = None
) -> Answer:
    warning = ("Warning", warning_value(agent, rule))
    return Answer(make_response(request, status, reason, to_tag=_tag(request), headers=[warning]))


def _tag(request: Request) -> str:
    return local_tag(request.call_id, str(request.cseq.number))
