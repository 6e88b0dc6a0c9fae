"""Typed values of the headers the SIP core reads: Via, CSeq, name-addr, media type, Event…

Each ``parse_*`` function takes one unfolded header value (one list element for list
headers) and raises ``RemoteSipError`` naming the header and the problem.
"""

from __future__ import annotations

import re
from typing import NamedTuple

from intrafed.sip import _abnf
from intrafed.sip.errors import RemoteSipError
from intrafed.sip.uri import Params, SipUri, Uri, find_param, format_params, parse_uri

MAX_CSEQ = 2**31 - 1  # RFC 3261 §8.1.1.5: "MUST be less than 2**31"
MAX_DELTA_SECONDS = 2**32 - 1  # RFC 3261 §25.1 delta-seconds; RFC 4475 scalar02
MAX_MAX_FORWARDS = 255  # RFC 3261 §20.22 treats Max-Forwards as a hop count of 0-255
_COMMON_METHODS = frozenset(
    (
        *("INVITE", "ACK", "BYE", "CANCEL", "OPTIONS", "REGISTER", "MESSAGE", "INFO"),
        *("SUBSCRIBE", "NOTIFY", "PUBLISH", "REFER", "PRACK", "UPDATE"),
    )
)
_QVALUE_RE = re.compile(r"0(?:\.[0-9]{0,3})?|1(?:\.0{0,3})?")


def parse_params(text: str, what: str, one: re.Pattern[str] = _abnf.GENERIC_PARAM_RE) -> Params:
    """Parse ``*( SEMI generic-param )``; values keep their spelling (quotes included)."""
    if not text:
        return ()
    params: list[tuple[str, str]] = []
    position = 0
    while (match := one.match(text, position)) is not None:
        name, value = match.groups("")
        params.append((name, value))
        position = match.end()
    if position < len(text) and text[position:].strip(" \t"):
        raise RemoteSipError(f"{what}: malformed parameter at {text[position : position + 32]!r}")
    return tuple(params)


def unquote(value: str) -> str:
    """The text of a quoted-string with its quoted-pairs resolved; a token is returned as is."""
    if len(value) >= 2 and value[0] == '"' and value[-1] == '"':
        inner = value[1:-1]
        return _abnf.QUOTED_PAIR_RE.sub(r"\1", inner) if "\\" in inner else inner
    return value


def _parse_delta_seconds(text: str, what: str) -> int:
    if not (text.isascii() and text.isdigit()):
        raise RemoteSipError(f"{what} {text[:32]!r} is not a number of seconds")
    if len(text.lstrip("0")) > 10 or int(text) > MAX_DELTA_SECONDS:
        raise RemoteSipError(f"{what} {text[:32]} is larger than 2**32-1")
    return int(text)


class Via(NamedTuple):
    """One Via value: sent-protocol, sent-by and parameters."""

    transport: str
    host: str
    port: int | None = None
    params: Params = ()
    protocol: str = "SIP/2.0"

    @property
    def sent_by(self) -> str:
        """``host[:port]`` as sent."""
        return self.host if self.port is None else f"{self.host}:{self.port}"

    @property
    def branch(self) -> str | None:
        """The transaction identifier, or None."""
        return find_param(self.params, "branch")

    @property
    def received(self) -> str | None:
        """The source address a server recorded (RFC 3261 §18.2.1)."""
        return find_param(self.params, "received")

    @property
    def rport(self) -> int | None:
        """The ``rport`` value a server filled in (RFC 3581), None when absent or empty."""
        value = find_param(self.params, "rport")
        return int(value) if value else None

    @property
    def wants_rport(self) -> bool:
        """Whether the client asked for symmetric response routing (RFC 3581)."""
        return find_param(self.params, "rport") is not None

    @property
    def alias(self) -> bool:
        """Whether the sender offers the connection for reuse (RFC 5923 ``alias``)."""
        return find_param(self.params, "alias") is not None

    @property
    def maddr(self) -> str | None:
        """The ``maddr`` parameter, or None."""
        return find_param(self.params, "maddr")

    @property
    def ttl(self) -> int | None:
        """The ``ttl`` parameter, or None."""
        value = find_param(self.params, "ttl")
        return int(value) if value else None

    def __str__(self) -> str:
        return f"{self.protocol}/{self.transport} {self.sent_by}{format_params(self.params)}"


def parse_via(value: str) -> Via:
    """Parse one via-parm."""
    match = _abnf.VIA_RE.fullmatch(value)
    if match is None:
        head = _abnf.VIA_HEAD_RE.match(value)
        if head is None:
            raise RemoteSipError(f"Via {value[:64]!r} is malformed")
        parse_params(value[head.end() :], "Via", _abnf.VIA_PARAM_RE)
        raise RemoteSipError(f"Via {value[:64]!r} is malformed")
    # (the last two groups belong to the repeated parameter inside "params")
    protocol, version, transport, host, port_text, params_text, _, _ = match.groups()
    if (protocol != "SIP" or version != "2.0") and f"{protocol}/{version}".upper() != "SIP/2.0":
        raise RemoteSipError(f"Via protocol {protocol}/{version} is not SIP/2.0")
    port = None
    if port_text is not None:
        port = int(port_text) if len(port_text.lstrip("0")) <= 5 else 0
        if not 0 < port <= 65535:
            raise RemoteSipError(f"Via port {port_text} is out of range 1-65535")
    params: Params = ()
    if params_text:
        params = parse_params(params_text, "Via", _abnf.VIA_PARAM_RE)
        lowered = params_text.lower()
        if "ttl" in lowered or "rport" in lowered:
            _check_via_numbers(params)
    return Via(transport, host, port, params, "SIP/2.0")


def _check_via_numbers(params: Params) -> None:
    for name, value in params:
        lowered = name.lower()
        if lowered == "ttl" and (not value.isdigit() or int(value) > 255):
            raise RemoteSipError(f"Via ttl {value!r} is not 0-255")
        if lowered == "rport" and value and (not value.isdigit() or not 0 < int(value) <= 65535):
            raise RemoteSipError(f"Via rport {value!r} is not a port")


class CSeq(NamedTuple):
    """The CSeq header: sequence number and method."""

    number: int
    method: str

    def __str__(self) -> str:
        return f"{self.number} {self.method}"


def parse_cseq(value: str) -> CSeq:
    """Parse ``1*DIGIT LWS Method``."""
    # The common spelling ("number SP method", a method of RFC 3261 and its extensions)
    # is read without the regex; anything else takes it.
    number_text, _, method = value.partition(" ")
    if (
        method in _COMMON_METHODS
        and len(number_text) <= 10
        and number_text.isascii()
        and number_text.isdigit()
        and int(number_text) <= MAX_CSEQ
    ):
        return CSeq(int(number_text), method)
    match = _abnf.CSEQ_RE.fullmatch(value)
    if match is None:
        raise RemoteSipError(f"CSeq {value[:64]!r} is not 'number method'")
    number_text = match.group("number")
    if len(number_text.lstrip("0")) > 10 or int(number_text) > MAX_CSEQ:
        raise RemoteSipError(f"CSeq number {number_text[:32]} is not less than 2**31")
    return CSeq(int(number_text), match.group("method"))


def parse_max_forwards(value: str) -> int:
    """Parse ``1*DIGIT`` as a hop count (leading zeros allowed, RFC 4475 wsinv)."""
    if not (value.isascii() and value.isdigit()):
        raise RemoteSipError(f"Max-Forwards {value[:32]!r} is not a number")
    if len(value.lstrip("0")) > 10 or int(value) > MAX_MAX_FORWARDS:
        raise RemoteSipError(f"Max-Forwards {value[:32]} is larger than {MAX_MAX_FORWARDS}")
    return int(value)


def parse_content_length(value: str) -> int:
    """Parse ``1*DIGIT`` as a body size."""
    if not (value.isascii() and value.isdigit()):
        raise RemoteSipError(f"Content-Length {value[:32]!r} is not a number")
    if len(value.lstrip("0")) > 10:
        raise RemoteSipError(f"Content-Length {value[:32]} is absurdly large")
    return int(value)


def parse_expires(value: str) -> int:
    """Parse the Expires header (delta-seconds)."""
    return _parse_delta_seconds(value, "Expires")


class NameAddr(NamedTuple):
    """A name-addr or addr-spec with its header parameters (From, To, Contact, Route…)."""

    uri: Uri
    display_name: str | None = None
    params: Params = ()

    @property
    def tag(self) -> str | None:
        """The dialog ``tag`` parameter, or None."""
        return find_param(self.params, "tag")

    def param(self, name: str) -> str | None:
        """The value of header parameter ``name``; ``""`` for a flag with no value."""
        return find_param(self.params, name)

    def __str__(self) -> str:
        text = f"<{self.uri}>"
        if self.display_name:
            escaped = self.display_name.replace("\\", "\\\\").replace('"', '\\"')
            text = f'"{escaped}" {text}'
        return text + format_params(self.params)


def parse_name_addr(value: str, what: str, *, require_brackets: bool = False) -> NameAddr:
    """Parse ``( name-addr / addr-spec ) *( SEMI generic-param )``.

    RFC 3261 §20: "if the URI contains a comma, question mark or semicolon, the URI MUST
    be enclosed in angle brackets" (RFC 4475 regbadct).
    """
    stripped = value.lstrip(" \t")
    display: str | None = None
    if stripped.startswith("<"):
        close = stripped.find(">")
        if close < 0:
            raise RemoteSipError(f"{what}: '<' without '>'")
        uri = _parse_uri_in(stripped[1:close], what)
        return NameAddr(uri, None, parse_params(stripped[close + 1 :].rstrip(" \t"), what))
    if stripped.startswith('"'):
        match = _abnf.NAME_ADDR_QUOTED_RE.match(stripped)
        if match is None:
            raise RemoteSipError(f"{what}: unterminated quoted display name or missing <URI>")
        display = unquote(match.group("display"))
    elif "<" in stripped.partition(";")[0]:
        match = _abnf.NAME_ADDR_TOKENS_RE.match(stripped)
        if match is None:
            shown = stripped.partition("<")[0].strip()
            raise RemoteSipError(
                f"{what}: display name {shown!r} must be tokens or a quoted string"
            )
        display = match.group("display")
    else:
        if require_brackets:
            raise RemoteSipError(f"{what}: {stripped[:64]!r} must be a name-addr in <>")
        uri_text, semicolon, rest = stripped.partition(";")
        uri_text = uri_text.rstrip(" \t")
        if "?" in uri_text:
            raise RemoteSipError(
                f"{what}: URI {uri_text[:64]!r} with headers must be enclosed in <>"
            )
        params = parse_params(semicolon + rest.rstrip(" \t"), what)
        return NameAddr(_parse_uri_in(uri_text, what), None, params)
    uri = _parse_uri_in(match.group("uri"), what)
    return NameAddr(uri, display, parse_params(stripped[match.end() :].rstrip(" \t"), what))


def _parse_uri_in(text: str, what: str) -> Uri:
    try:
        return parse_uri(text)
    except RemoteSipError as exc:
        raise RemoteSipError(f"{what}: {exc.reason}") from None


def parse_contact(value: str) -> NameAddr:
    """Parse one Contact value and check its ``q`` and ``expires`` parameters."""
    contact = parse_name_addr(value, "Contact")
    q = contact.param("q")
    # qvalue = ( "0" [ "." 0*3DIGIT ] ) / ( "1" [ "." 0*3("0") ] )
    if q is not None and not _QVALUE_RE.fullmatch(q):
        raise RemoteSipError(f"Contact q={q!r} is not a qvalue between 0 and 1")
    expires = contact.param("expires")
    if expires is not None:
        _parse_delta_seconds(expires, "Contact expires")
    return contact


def parse_route(value: str, what: str = "Route") -> NameAddr:
    """Parse one Route or Record-Route value (``name-addr *( SEMI rr-param )``)."""
    route = parse_name_addr(value, what, require_brackets=True)
    if not isinstance(route.uri, SipUri):
        raise RemoteSipError(f"{what}: {route.uri.scheme}: URI cannot be a route")
    return route


class MediaType(NamedTuple):
    """A Content-Type value: type, subtype and parameters."""

    type: str
    subtype: str
    params: Params = ()

    @property
    def mime(self) -> str:
        """``type/subtype`` in lower case."""
        return f"{self.type}/{self.subtype}".lower()

    def __str__(self) -> str:
        return f"{self.type}/{self.subtype}{format_params(self.params)}"


def parse_media_type(value: str) -> MediaType:
    """Parse ``m-type SLASH m-subtype *(SEMI m-parameter)``."""
    match = _abnf.MEDIA_TYPE_RE.match(value)
    if match is None:
        raise RemoteSipError(f"Content-Type {value[:64]!r} is not type/subtype")
    params = parse_params(value[match.end() :], "Content-Type")
    return MediaType(match.group("type"), match.group("subtype"), params)


class TokenWithParams(NamedTuple):
    """A token followed by parameters: the Event and Subscription-State values."""

    token: str
    params: Params = ()

    def param(self, name: str) -> str | None:
        """The value of parameter ``name``; ``""`` for a flag with no value."""
        return find_param(self.params, name)

    def __str__(self) -> str:
        return f"{self.token}{format_params(self.params)}"


def parse_event(value: str) -> TokenWithParams:
    """Parse the Event header: ``event-type *( SEMI event-param )`` (RFC 6665 §8.4)."""
    match = _abnf.TOKEN_HEAD_RE.match(value)
    if match is None:
        raise RemoteSipError(f"Event {value[:64]!r} has no event package")
    return TokenWithParams(match.group("token"), parse_params(value[match.end() :], "Event"))


def parse_subscription_state(value: str) -> TokenWithParams:
    """Parse Subscription-State (RFC 6665 §8.4) and check its expires/retry-after."""
    match = _abnf.TOKEN_HEAD_RE.match(value)
    if match is None:
        raise RemoteSipError(f"Subscription-State {value[:64]!r} has no state")
    state = TokenWithParams(
        match.group("token"), parse_params(value[match.end() :], "Subscription-State")
    )
    for name in ("expires", "retry-after"):
        param = state.param(name)
        if param is not None:
            _parse_delta_seconds(param, f"Subscription-State {name}")
    return state
