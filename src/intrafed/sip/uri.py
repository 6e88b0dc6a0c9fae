"""SIP, SIPS, tel and other absolute URIs: parsing, serialization and RFC 3261 comparison."""

from __future__ import annotations

import re
from typing import NamedTuple
from urllib.parse import unquote

from intrafed.sip import _abnf
from intrafed.sip.errors import RemoteSipError

# Parameters in order as (name, value); a flag without a value has the value "" (a
# present value is never empty in the grammar).
Params = tuple[tuple[str, str], ...]

MAX_PORT = 65535

# RFC 3261 §19.1.4: "A URI omitting any component with a default value will not match a
# URI explicitly containing that component"; these parameters must match when either side
# carries them.
_STRICT_URI_PARAMS = frozenset({"user", "ttl", "method", "maddr", "transport"})
_UNRESERVED_CHARS = frozenset(
    "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_.!~*'()"
)


def unescape(text: str) -> str:
    """Decode %HH escapes once (never recursively: RFC 4475 esc01 ``%25%34%31`` is ``%41``)."""
    if "%" not in text:
        return text
    return unquote(text, errors="surrogateescape")


def _normalize_escapes(text: str) -> str:
    """Comparison form: escaped unreserved characters decoded, other escapes upper-cased."""

    def fix(match: re.Match[str]) -> str:
        char = chr(int(match.group(0)[1:], 16))
        return char if char in _UNRESERVED_CHARS else match.group(0).upper()

    return _abnf.ESCAPED_RE.sub(fix, text) if "%" in text else text


def format_params(params: Params) -> str:
    """Serialize parameters as ``;name=value`` pairs (``;name`` for a flag)."""
    return "".join(f";{name}={value}" if value else f";{name}" for name, value in params)


def find_param(params: Params, name: str) -> str | None:
    """The value of parameter ``name`` (case-insensitive); ``""`` for a flag with no value."""
    lowered = name.lower()
    for key, value in params:
        if key == lowered or key.lower() == lowered:
            return value
    return None


class SipUri(NamedTuple):
    """A ``sip:`` or ``sips:`` URI; user, password and parameters keep their escaped spelling."""

    scheme: str
    host: str
    user: str | None = None
    password: str | None = None
    port: int | None = None
    params: Params = ()
    headers: tuple[tuple[str, str], ...] = ()

    def param(self, name: str) -> str | None:
        """The value of URI parameter ``name`` (case-insensitive); ``""`` for a flag, else None."""
        return find_param(self.params, name)

    def has_param(self, name: str) -> bool:
        """Whether URI parameter ``name`` is present, with or without a value."""
        return find_param(self.params, name) is not None

    @property
    def is_phone(self) -> bool:
        """A telephone number in SIP form: ``;user=phone`` (RFC 3261 §19.1.1)."""
        user_param = self.param("user")
        return user_param is not None and user_param.lower() == "phone"

    @property
    def transport(self) -> str | None:
        """The ``transport`` parameter in lower case, or None."""
        value = self.param("transport")
        return value.lower() if value is not None else None

    @property
    def lr(self) -> bool:
        """Whether the URI carries the loose-routing ``lr`` parameter (RFC 3261 §19.1.1)."""
        return self.has_param("lr")

    @property
    def aor(self) -> str:
        """The address of record ``user@host`` as a registrar keys it (user unescaped)."""
        host = self.host.lower()
        return f"{unescape(self.user)}@{host}" if self.user is not None else host

    def __str__(self) -> str:
        parts = [self.scheme, ":"]
        if self.user is not None:
            parts.append(self.user)
            if self.password is not None:
                parts += [":", self.password]
            parts.append("@")
        parts.append(self.host)
        if self.port is not None:
            parts.append(f":{self.port}")
        parts.append(format_params(self.params))
        if self.headers:
            parts.append("?" + "&".join(f"{name}={value}" for name, value in self.headers))
        return "".join(parts)


class TelUri(NamedTuple):
    """A ``tel:`` URI (RFC 3966)."""

    number: str
    params: Params = ()

    @property
    def scheme(self) -> str:
        """Always ``tel``."""
        return "tel"

    @property
    def is_phone(self) -> bool:
        """A tel URI always names a telephone number."""
        return True

    def param(self, name: str) -> str | None:
        """The value of parameter ``name`` (case-insensitive); ``""`` for a flag, else None."""
        return find_param(self.params, name)

    def __str__(self) -> str:
        return f"tel:{self.number}{format_params(self.params)}"


class AbsoluteUri(NamedTuple):
    """Any other absolute URI (``im:``, ``pres:``, ``http:``…): kept opaque."""

    scheme: str
    rest: str

    @property
    def is_phone(self) -> bool:
        """Only tel and ``user=phone`` SIP URIs name telephone numbers."""
        return False

    def __str__(self) -> str:
        return f"{self.scheme}:{self.rest}"


Uri = SipUri | TelUri | AbsoluteUri


# Parsed URIs by their text: the same few users and nodes fill the Request-URI, From,
# To and Contact of most messages. Bounded: a peer sending endless distinct URIs only
# makes it start over (URIs are immutable, so sharing one is safe).
_URI_CACHE: dict[str, Uri] = {}
_URI_CACHE_LIMIT = 1024


def parse_uri(text: str) -> Uri:
    """Parse a URI as it appears in a Request-URI or between ``<>``.

    Raises ``RemoteSipError`` (400) naming what is wrong.
    """
    uri = _URI_CACHE.get(text)
    if uri is None:
        uri = _parse_uri(text)
        if len(_URI_CACHE) >= _URI_CACHE_LIMIT:
            _URI_CACHE.clear()
        _URI_CACHE[text] = uri
    return uri


def _parse_uri(text: str) -> Uri:
    match = _abnf.SIP_URI_RE.fullmatch(text)
    if match is not None:
        scheme, user, password, host, port_text, params_text, headers_text = match.groups()
        scheme = scheme.lower()
        if "%" in text and _abnf.BAD_ESCAPE_RE.search(text):
            raise RemoteSipError(f"{scheme.upper()} URI {text!r} has a % that is not an escape")
        port = None
        if port_text is not None:
            port = int(port_text) if len(port_text.lstrip("0")) <= 5 else 0
            if not 0 < port <= MAX_PORT:
                raise RemoteSipError(f"port {port_text} in {text!r} is out of range 1-{MAX_PORT}")
        return SipUri(
            scheme,
            host,
            user,
            password,
            port,
            tuple(_abnf.URI_PARAMETER_RE.findall(params_text)) if params_text else (),
            tuple(
                (name, value)
                for name, _, value in (h.partition("=") for h in headers_text.split("&"))
            )
            if headers_text
            else (),
        )
    scheme, colon, _ = text.partition(":")
    if not colon:
        raise RemoteSipError(f"URI {text!r} has no scheme")
    lowered = scheme.lower()
    if lowered in ("sip", "sips"):
        raise RemoteSipError(f"malformed {lowered.upper()} URI {text!r}")
    if lowered == "tel":
        match = _abnf.TEL_URI_RE.fullmatch(text)
        if match is None or ("%" in text and _abnf.BAD_ESCAPE_RE.search(text)):
            raise RemoteSipError(f"malformed tel URI {text!r}")
        return TelUri(
            match.group("number"), tuple(_abnf.URI_PARAMETER_RE.findall(match.group("params")))
        )
    match = _abnf.ABSOLUTE_URI_RE.fullmatch(text)
    if match is None or ("%" in text and _abnf.BAD_ESCAPE_RE.search(text)):
        raise RemoteSipError(f"malformed URI {text!r}")
    return AbsoluteUri(match.group("scheme"), match.group("rest"))


def _sip_uri_equivalent(a: SipUri, b: SipUri) -> bool:
    # "comparison of the userinfo of SIP and SIPS URIs is case-sensitive"; escapes of
    # unreserved characters equal the characters themselves.
    if a.scheme != b.scheme or a.port != b.port or a.host.lower() != b.host.lower():
        return False
    for left, right in ((a.user, b.user), (a.password, b.password)):
        if (left is None) != (right is None):
            return False
        if (
            left is not None
            and right is not None
            and _normalize_escapes(left) != _normalize_escapes(right)
        ):
            return False
    a_params = {_normalize_escapes(name).lower(): v.lower() for name, v in a.params}
    b_params = {_normalize_escapes(name).lower(): v.lower() for name, v in b.params}
    for name in a_params.keys() | b_params.keys():
        in_both = name in a_params and name in b_params
        if in_both and _normalize_escapes(a_params[name]) != _normalize_escapes(b_params[name]):
            return False
        if not in_both and name in _STRICT_URI_PARAMS:
            return False
    # "URI header components are never ignored."
    a_headers = sorted((_normalize_escapes(n).lower(), _normalize_escapes(v)) for n, v in a.headers)
    b_headers = sorted((_normalize_escapes(n).lower(), _normalize_escapes(v)) for n, v in b.headers)
    return a_headers == b_headers


def uri_equivalent(a: Uri, b: Uri) -> bool:
    """Whether two URIs are equal under RFC 3261 §19.1.4 (tel: RFC 3966 §4)."""
    if isinstance(a, SipUri) and isinstance(b, SipUri):
        return _sip_uri_equivalent(a, b)
    if isinstance(a, TelUri) and isinstance(b, TelUri):
        # RFC 3966 §4: visual separators are ignored; parameters compare in any order.
        def digits(number: str) -> str:
            return re.sub(r"[\-.()]", "", number).lower()

        def params(uri: TelUri) -> list[tuple[str, str]]:
            return sorted((n.lower(), v.lower()) for n, v in uri.params)

        return digits(a.number) == digits(b.number) and params(a) == params(b)
    if isinstance(a, AbsoluteUri) and isinstance(b, AbsoluteUri):
        return a.scheme.lower() == b.scheme.lower() and a.rest == b.rest
    return False
