"""What a user agent sends, built without I/O: requests, dialogs (RFC 3261 §12), digest
answers to challenges, and the bodies of session-mode IM."""

from __future__ import annotations

import secrets
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from intrafed.config.model import ha1
from intrafed.sip import Headers, RemoteSipError, Request, Response, SipUri, Uri, parse_uri
from intrafed.sip.digest import answer_challenge, format_credentials, parse_challenge
from intrafed.sip.transaction import MAGIC_COOKIE

MAX_FORWARDS = 70
ALLOW = "INVITE, ACK, BYE, CANCEL, MESSAGE, INFO, NOTIFY, OPTIONS"
ISCOMPOSING_CONTENT_TYPE = "application/im-iscomposing+xml"

# RFC 3261 §22.2 (401: WWW-Authenticate → Authorization) and §22.3 (407: Proxy-…).
_AUTH_HEADERS = {
    401: ("www-authenticate", "Authorization"),
    407: ("proxy-authenticate", "Proxy-Authorization"),
}

Fields = Sequence[tuple[str, str]]


def new_branch() -> str:
    """A fresh RFC 3261 branch (magic cookie first)."""
    return f"{MAGIC_COOKIE}{secrets.token_hex(8)}"


def new_tag() -> str:
    """A fresh From/To tag."""
    return secrets.token_hex(5)


def sip_uri(address: str) -> SipUri:
    """``alice@example.com`` or ``sip:alice@example.com`` as a SIP URI; ``ValueError``
    says what is wrong with anything else."""
    text = address if ":" in address.partition("@")[0] else f"sip:{address}"
    try:
        uri = parse_uri(text)
    except RemoteSipError as exc:
        raise ValueError(f"{address!r} is not a SIP address: {exc.reason}") from None
    if not isinstance(uri, SipUri):
        raise ValueError(f"{address!r} is not a sip: or sips: address")
    return uri


@dataclass(frozen=True, slots=True)
class LocalAddress:
    """The local end of the connection to the node: what Via and Contact name."""

    transport: str
    """``tcp`` or ``tls``."""
    host: str
    port: int

    def via(self, branch: str) -> str:
        """Our Via: ``rport`` (RFC 3581) and ``alias`` (RFC 5923), since the node reaches us
        over this connection only."""
        return (
            f"SIP/2.0/{self.transport.upper()} {self.host}:{self.port};branch={branch};rport;alias"
        )

    def contact(self, user: str | None) -> str:
        """Our Contact: the connection's local address, with ``ob`` (RFC 5626 §5.4) asking
        the node to use this flow for requests to us."""
        who = f"{user}@" if user else ""
        return f"<sip:{who}{self.host}:{self.port};transport={self.transport};ob>"


def build_request(
    method: str,
    uri: Uri,
    *,
    via: str,
    from_: str,
    to: str,
    call_id: str,
    cseq: int,
    routes: Iterable[str] = (),
    headers: Fields = (),
    body: bytes = b"",
) -> Request:
    """A request as RFC 3261 §8.1.1 lays it out: Via, Max-Forwards, Route, From, To,
    Call-ID, CSeq, then ``headers``."""
    fields: list[tuple[str, str]] = [("Via", via), ("Max-Forwards", str(MAX_FORWARDS))]
    fields += [("Route", route) for route in routes]
    fields += [("From", from_), ("To", to), ("Call-ID", call_id), ("CSeq", f"{cseq} {method}")]
    fields += headers
    return Request(method, uri, Headers(fields), body)


@dataclass(slots=True)
class Dialog:
    """One side of a dialog (RFC 3261 §12): identifiers, remote target, route set, CSeqs."""

    call_id: str
    local_uri: str
    local_tag: str
    remote_uri: str
    remote_tag: str | None
    remote_target: Uri
    route_set: tuple[str, ...]
    local_cseq: int

    @classmethod
    def as_uac(cls, request: Request, response: Response) -> Dialog:
        """The dialog a 2xx (or a NOTIFY's fields, for SUBSCRIBE) makes for the UAC:
        the route set is the Record-Route reversed (§12.1.2)."""
        return cls(
            request.call_id,
            str(request.from_addr.uri),
            request.from_addr.tag or "",
            str(request.to_addr.uri),
            response.to_addr.tag,
            response.contacts[0].uri if response.contacts else request.uri,
            tuple(str(route) for route in reversed(response.record_routes)),
            request.cseq.number,
        )

    @classmethod
    def as_uas(cls, request: Request, local_tag: str, local_cseq: int = 0) -> Dialog:
        """The dialog a request makes for its UAS: the route set is the Record-Route in
        order (§12.1.1); the remote target is the request's Contact."""
        return cls(
            request.call_id,
            str(request.to_addr.uri),
            local_tag,
            str(request.from_addr.uri),
            request.from_addr.tag,
            request.contacts[0].uri if request.contacts else request.from_addr.uri,
            tuple(str(route) for route in request.record_routes),
            local_cseq,
        )

    def request(
        self,
        method: str,
        via: str,
        headers: Fields = (),
        body: bytes = b"",
        cseq: int | None = None,
    ) -> Request:
        """The next request in this dialog (§12.2.1.1), to the remote target through the
        route set (loose routing); ``cseq`` given for ACK, else the next local number."""
        if cseq is None:
            self.local_cseq += 1
            cseq = self.local_cseq
        remote = f"<{self.remote_uri}>" + (f";tag={self.remote_tag}" if self.remote_tag else "")
        return build_request(
            method,
            self.remote_target,
            via=via,
            from_=f"<{self.local_uri}>;tag={self.local_tag}",
            to=remote,
            call_id=self.call_id,
            cseq=cseq,
            routes=self.route_set,
            headers=headers,
            body=body,
        )


@dataclass(frozen=True, slots=True)
class Authorization:
    """An answer to a challenge: the header to add, and whether the challenge was stale."""

    name: str
    value: str
    stale: bool


def authorization(
    request: Request,
    response: Response,
    username: str,
    password: str,
    algorithms: Sequence[str],
    nc: int = 1,
) -> Authorization | None:
    """The (Proxy-)Authorization answering the first challenge of a 401/407 whose algorithm
    is among ``algorithms`` (RFC 8760 §2.4: in the server's order), or None when no
    challenge can be answered."""
    names = _AUTH_HEADERS.get(response.status)
    if names is None:
        return None
    challenge_header, answer_header = names
    for value in response.headers.get_all(challenge_header):
        try:
            challenge = parse_challenge(value)
        except RemoteSipError:
            continue
        if challenge.algorithm not in algorithms:
            continue
        credentials = answer_challenge(
            challenge,
            username,
            ha1(username, challenge.realm, password, challenge.algorithm),
            request.method,
            str(request.uri),
            cnonce=secrets.token_hex(8),
            nc=nc,
        )
        return Authorization(answer_header, format_credentials(credentials), challenge.stale)
    return None


def im_session_sdp(host: str) -> bytes:
    """The SDP of a Microsoft-style IM session: ``m=message 5060 sip null`` offering text."""
    return (
        f"v=0\r\no=- 0 0 IN IP4 {host}\r\ns=session\r\nc=IN IP4 {host}\r\nt=0 0\r\n"
        "m=message 5060 sip null\r\na=accept-types:text/plain\r\n"
    ).encode()


def iscomposing_body(active: bool = True) -> bytes:
    """An RFC 3994 is-composing document: the user is (or stopped) typing text."""
    state = "active" if active else "idle"
    return (
        '<?xml version="1.0" encoding="UTF-8"?>\n'
        '<isComposing xmlns="urn:ietf:params:xml:ns:im-iscomposing">'
        f"<state>{state}</state><contenttype>text/plain</contenttype></isComposing>\n"
    ).encode()
