"""Hypothesis strategies for valid SIP messages, shared by the round-trip and framing tests.

Every generated message comes with the values its typed accessors must return, built from
the same choices that produced the text, so the tests check the parser against the
generator and not only against itself.

Strategies are built once at import time and composites draw few, coarse values (one
bitmask for letter case, one ``Random`` for shuffles): generating a message must stay cheap
for the property tests to run in seconds.
"""

from __future__ import annotations

import random
import string
from dataclasses import dataclass

from hypothesis import strategies as st

from intrafed.sip import Headers, Request, Response, parse_uri

# token = 1*(alphanum / "-" / "." / "!" / "%" / "*" / "_" / "+" / "`" / "'" / "~" )
TOKEN_CHARS = string.ascii_letters + string.digits + "-.!%*_+`'~"
# unreserved = alphanum / mark
UNRESERVED = string.ascii_letters + string.digits + "-_.!~*'()"
# user-unreserved = "&" / "=" / "+" / "$" / "," / ";" / "?" / "/"
USER_CHARS = UNRESERVED + "&=+$,;?/"
PASSWORD_CHARS = UNRESERVED + "&=+$,"
# param-unreserved = "[" / "]" / "/" / ":" / "&" / "+" / "$"
PARAM_CHARS = UNRESERVED + "[]/:&+$"
# hnv-unreserved = "[" / "]" / "/" / "?" / ":" / "+" / "$"
HNV_CHARS = UNRESERVED + "[]/?:+$"
# word (Call-ID) = 1*(alphanum / "-" / "." / "!" / "%" / "*" / "_" / "+" / "`" / "'" / "~" /
#   "(" / ")" / "<" / ">" / ":" / "\" / DQUOTE / "/" / "[" / "]" / "?" / "{" / "}" )
WORD_CHARS = TOKEN_CHARS + '()<>:\\"/[]?{}'

# Header names the generator fills in itself, as canonical long names; an extension header
# must not collide with any of them (or with a compact form of any registered header).
KNOWN_HEADERS = frozenset(
    {
        "via",
        "to",
        "from",
        "call-id",
        "cseq",
        "max-forwards",
        "content-length",
        "contact",
        "route",
        "record-route",
        "content-type",
        "expires",
        "event",
        "subscription-state",
        "accept-contact",
        "referred-by",
        "request-disposition",
        "content-encoding",
        "reject-contact",
        "supported",
        "refer-to",
        "subject",
        "allow-events",
        "session-expires",
        "identity",
    }
)
COMPACT_LETTERS = frozenset("abcdefijklmorstuvxy")

# The spellings of the headers the generator writes: long form and (where one exists) the
# compact form of RFC 3261 §7.3.3; each is also drawn in random letter case.
SPELLINGS = {
    "via": ("Via", "v"),
    "to": ("To", "t"),
    "from": ("From", "f"),
    "call-id": ("Call-ID", "i"),
    "cseq": ("CSeq",),
    "max-forwards": ("Max-Forwards",),
    "contact": ("Contact", "m"),
    "route": ("Route",),
    "record-route": ("Record-Route",),
    "content-length": ("Content-Length", "l"),
}

Params = tuple[tuple[str, str | None], ...]

# Shuffles and group sizes come from one drawn Random (cheaper than a draw per choice).
randoms = st.randoms(use_true_random=False, note_method_calls=False)


# --- small pieces ---------------------------------------------------------------------------


def _text(alphabet: str, min_size: int = 1, max_size: int = 8) -> st.SearchStrategy[str]:
    return st.text(st.sampled_from(alphabet), min_size=min_size, max_size=max_size)


def _insert_escapes(text: str, escapes: list[tuple[int, int, bool]]) -> str:
    pieces = list(text)
    for position, byte, upper in escapes:
        escape = f"%{byte:02X}" if upper else f"%{byte:02x}"
        pieces.insert(position % (len(pieces) + 1), escape)
    return "".join(pieces)


_escape_list = st.lists(
    st.tuples(st.integers(0, 64), st.integers(0, 255), st.booleans()), max_size=2
)


def escaped_text(alphabet: str, min_size: int = 1, max_size: int = 8) -> st.SearchStrategy[str]:
    """Characters of ``alphabet`` with a few ``%HH`` escapes (either hex case) mixed in."""
    return st.builds(_insert_escapes, _text(alphabet, 0, max_size), _escape_list).filter(
        lambda text: len(text) >= min_size
    )


def _apply_case(text: str, mask: int) -> str:
    return "".join(c.swapcase() if mask >> i & 1 else c for i, c in enumerate(text))


def random_case(text: str) -> st.SearchStrategy[str]:
    """``text`` with the case of any of its letters flipped."""
    return st.integers(0, 2 ** len(text) - 1).map(lambda mask: _apply_case(text, mask))


# One spelling of a known header: long or compact form, as written or in random case.
HEADER_NAMES = {
    canonical: st.one_of(*(st.one_of(st.just(s), random_case(s)) for s in spellings))
    for canonical, spellings in SPELLINGS.items()
}

tokens = _text(TOKEN_CHARS, max_size=10)
methods = st.one_of(
    st.sampled_from(["INVITE", "ACK", "BYE", "CANCEL", "OPTIONS", "REGISTER", "MESSAGE"]),
    tokens,
)
# domainlabel = alphanum / alphanum *( alphanum / "-" ) alphanum
_label = st.builds(
    lambda first, rest: first + rest.rstrip("-") if rest.rstrip("-") else first,
    st.sampled_from(string.ascii_letters + string.digits),
    _text(string.ascii_letters + string.digits + "-", 0, 6),
)
hostnames = st.lists(_label, min_size=1, max_size=3).map(".".join)
ipv4_addresses = st.ip_addresses(v=4).map(str)
ipv6_addresses = st.ip_addresses(v=6).map(str)
ipv6_references = ipv6_addresses.map(lambda address: f"[{address}]")
hosts = st.one_of(hostnames, ipv4_addresses, ipv6_references)
ports = st.one_of(st.none(), st.integers(1, 65535))
lws = st.sampled_from(["", " ", "  ", "\t"])


def quote(text: str) -> str:
    """``text`` as a quoted-string, escaping only DQUOTE and backslash."""
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'


# Text of a quoted-string: printable ASCII (quotes and backslashes get escaped), SP, HTAB
# and a few non-ASCII characters sent as UTF-8.
quoted_content = st.text(st.sampled_from(string.printable[:95] + " \täöü€中文"), max_size=12)
# Characters a display name can hold only as a quoted-pair: DQUOTE, backslash and the
# controls of RFC 4475 intmeth (NUL, BEL, DEL).
QUOTED_PAIR_ONLY = '"\\\x00\x07\x7f'
display_contents = st.one_of(
    quoted_content,
    st.builds(
        lambda a, control, b: a + control + b,
        quoted_content,
        st.sampled_from("\x00\x07\x7f"),
        quoted_content,
    ),
)


# --- URIs -----------------------------------------------------------------------------------


@dataclass(frozen=True)
class SipUriSpec:
    """What a generated SIP/SIPS URI text must parse to."""

    text: str
    scheme: str
    user: str | None
    password: str | None
    host: str
    port: int | None
    params: Params
    headers: tuple[tuple[str, str], ...]


@dataclass(frozen=True)
class TelUriSpec:
    """What a generated tel URI text must parse to."""

    text: str
    number: str
    params: Params


@dataclass(frozen=True)
class AbsoluteUriSpec:
    """What a generated URI of another scheme must parse to."""

    text: str
    scheme: str
    rest: str


UriSpec = SipUriSpec | TelUriSpec | AbsoluteUriSpec


def format_params(params: Params) -> str:
    """``;name=value`` / ``;name`` with no LWS."""
    return "".join(f";{n}" if v is None else f";{n}={v}" for n, v in params)


# Parameter names are case-insensitive, so no list holds one name twice (what a lookup
# returns for a repeated name is tested on its own in test_uri.py).
uri_params = st.lists(
    st.tuples(
        escaped_text(PARAM_CHARS, max_size=6),
        st.one_of(st.none(), escaped_text(PARAM_CHARS, max_size=6)),
    ),
    max_size=3,
    unique_by=lambda param: param[0].lower(),
).map(tuple)
uri_headers = st.lists(
    st.tuples(escaped_text(HNV_CHARS, max_size=6), escaped_text(HNV_CHARS, 0, 6)),
    max_size=2,
).map(tuple)
_userinfo = st.one_of(
    st.none(),
    st.tuples(
        escaped_text(USER_CHARS, max_size=10),
        st.one_of(st.none(), escaped_text(PASSWORD_CHARS, 0, 6)),
    ),
)
_scheme_spellings = {s: st.one_of(st.just(s), random_case(s)) for s in ("sip", "sips")}
_sip_or_sips = st.sampled_from(["sip", "sips"]).flatmap(
    lambda s: _scheme_spellings[s].map(lambda spelled: (s, spelled))
)


def _build_sip_uri(
    scheme: tuple[str, str],
    userinfo: tuple[str, str | None] | None,
    host: str,
    port: tuple[int, int] | None,
    params: Params,
    headers: tuple[tuple[str, str], ...],
) -> SipUriSpec:
    text = f"{scheme[1]}:"
    user = password = None
    if userinfo is not None:
        user, password = userinfo
        text += user + (f":{password}" if password is not None else "") + "@"
    text += host
    if port is not None:
        # leading zeros are allowed (port = 1*DIGIT); five digits at most
        text += f":{port[0]:0{port[1]}d}"
    text += format_params(params)
    if headers:
        text += "?" + "&".join(f"{n}={v}" for n, v in headers)
    return SipUriSpec(
        text, scheme[0], user, password, host, None if port is None else port[0], params, headers
    )


def sip_uris(*, headers: bool = True) -> st.SearchStrategy[SipUriSpec]:
    """A SIP or SIPS URI with optional user, password, port, parameters and headers."""
    return st.builds(
        _build_sip_uri,
        _sip_or_sips,
        _userinfo,
        hosts,
        st.one_of(st.none(), st.tuples(st.integers(1, 65535), st.integers(1, 5))),
        uri_params,
        uri_headers if headers else st.just(()),
    )


_global_number = st.builds(
    lambda digits, separators: (
        "+" + "".join(d + s for d, s in zip(digits, separators, strict=False))
    ),
    _text(string.digits, max_size=12),
    st.lists(st.sampled_from(["", "", "-", ".", "(", ")"]), min_size=12, max_size=12),
)
_local_number = _text(string.hexdigits + "*#-.", max_size=10).filter(
    lambda number: any(c in string.hexdigits + "*#" for c in number)
)
tel_params = st.lists(
    st.tuples(
        _text(string.ascii_letters + string.digits + "-", max_size=8),
        st.one_of(st.none(), escaped_text(PARAM_CHARS, max_size=6)),
    ),
    max_size=2,
    unique_by=lambda param: param[0].lower(),
).map(tuple)
tel_uris = st.builds(
    lambda number, params: TelUriSpec(f"tel:{number}{format_params(params)}", number, params),
    st.one_of(_global_number, _local_number),
    tel_params,
)
absolute_uris = st.builds(
    lambda scheme, rest: AbsoluteUriSpec(f"{scheme}:{rest}", scheme, rest),
    st.one_of(
        st.sampled_from(["im", "pres", "http", "urn"]),
        st.builds(
            lambda first, rest: first + rest,
            st.sampled_from(string.ascii_letters),
            _text(string.ascii_letters + string.digits + "+-.", 0, 6),
        ).filter(lambda s: s.lower() not in ("sip", "sips", "tel")),
    ),
    escaped_text(UNRESERVED + ";/?:@&=+$,", max_size=12),
)
request_uris = st.one_of(sip_uris(), tel_uris)
any_uris = st.one_of(sip_uris(), sip_uris(), tel_uris, absolute_uris)


# --- header values --------------------------------------------------------------------------

# gen-value = token / host / quoted-string
generic_values = st.one_of(tokens, ipv4_addresses, ipv6_references, quoted_content.map(quote))


def generic_params(reserved: frozenset[str] = frozenset()) -> st.SearchStrategy[Params]:
    """``*( SEMI generic-param )`` with names outside ``reserved`` (compared ignoring case)."""
    name = tokens.filter(lambda n: n.lower() not in reserved)
    return st.lists(
        st.tuples(name, st.one_of(st.none(), generic_values)),
        max_size=3,
        unique_by=lambda param: param[0].lower(),
    ).map(tuple)


# LWS around ";" and "=" (RFC 4475 wsinv), one style per parameter list.
_param_styles = st.sampled_from([("", "", ""), (" ", " ", " "), ("  ", "", "\t"), ("", " ", "")])


def params_text(params: Params, style: tuple[str, str, str]) -> str:
    """Parameters as text with the LWS of ``style`` around ``;`` and ``=``."""
    before, after, around = style
    return "".join(
        f"{before};{after}{n}" + ("" if v is None else f"{around}={around}{v}") for n, v in params
    )


@dataclass(frozen=True)
class ViaSpec:
    """What a generated via-parm must parse to."""

    text: str
    transport: str
    host: str
    port: int | None
    branch: str | None
    received: str | None
    rport: int | None
    wants_rport: bool
    alias: bool


VIA_RESERVED = frozenset({"branch", "received", "rport", "alias", "ttl", "maddr"})
_via_params = generic_params(VIA_RESERVED)
_transports = st.one_of(st.sampled_from(["UDP", "TCP", "TLS", "SCTP", "WS"]), tokens)
_branches = st.one_of(st.none(), tokens.map(lambda t: "z9hG4bK" + t))
_received = st.one_of(st.none(), ipv4_addresses, ipv6_addresses, ipv6_references)
_rports = st.one_of(st.none(), st.just(0), st.integers(1, 65535))
_protocol_names = st.one_of(st.just("SIP"), random_case("SIP"))
# LWS around the two slashes, before host, around the sent-by colon
_via_styles = st.sampled_from(
    [("", "", " ", ""), (" ", "  ", "\t", " "), ("  ", "", "   ", ""), ("\t", " ", " ", "\t")]
)


@st.composite
def vias(draw: st.DrawFn) -> ViaSpec:
    """One via-parm: any transport, IPv4/IPv6/name sent-by, branch, received, rport, alias."""
    transport = draw(_transports)
    host = draw(hosts)
    port = draw(ports)
    branch = draw(_branches)
    received = draw(_received)
    rport_choice = draw(_rports)
    alias = draw(st.booleans())
    params: list[tuple[str, str | None]] = list(draw(_via_params))
    if branch is not None:
        params.append(("branch", branch))
    if received is not None:
        params.append(("received", received))
    if rport_choice is not None:
        params.append(("rport", str(rport_choice) if rport_choice else None))
    if alias:
        params.append(("alias", None))
    draw(randoms).shuffle(params)
    slash, slash2, before_host, colon = draw(_via_styles)
    text = f"{draw(_protocol_names)}{slash}/{slash2}2.0{slash}/{slash2}{transport}{before_host}"
    text += host
    if port is not None:
        text += f"{colon}:{colon}{port}"
    text += params_text(tuple(params), draw(_param_styles))
    return ViaSpec(
        text,
        transport,
        host,
        port,
        branch,
        received,
        rport_choice or None,
        rport_choice is not None,
        alias,
    )


@dataclass(frozen=True)
class NameAddrSpec:
    """What a generated name-addr / addr-spec with parameters must parse to."""

    text: str
    uri: UriSpec
    display_name: str | None
    params: Params


NO_PARAMS: st.SearchStrategy[Params] = st.just(())
_display_kinds = st.sampled_from(["quoted", "tokens", "none", "addr-spec"])
_token_displays = st.lists(tokens, min_size=1, max_size=3).map(" ".join)
_needless_pairs = st.integers(0, 2**16 - 1)


def _quote_display(display: str, needless: int) -> str:
    """Quote a display name; bit i of ``needless`` also escapes ASCII character i."""
    pieces = []
    for i, char in enumerate(display):
        if char in QUOTED_PAIR_ONLY or (char.isascii() and needless >> (i % 16) & 1):
            pieces.append("\\" + char)
        else:
            pieces.append(char)
    return '"' + "".join(pieces) + '"'


def name_addrs(
    uris: st.SearchStrategy[UriSpec] = any_uris,
    *,
    reserved: frozenset[str] = frozenset(),
    extra: st.SearchStrategy[Params] = NO_PARAMS,
    brackets_required: bool = False,
) -> st.SearchStrategy[NameAddrSpec]:
    """``( name-addr / addr-spec ) *( SEMI generic-param )``.

    Display names are quoted strings (with escaped quotes and backslashes, sometimes a
    needless quoted-pair), tokens, or absent; ``<`` follows them with or without LWS.
    """
    params_strategy = generic_params(reserved)

    @st.composite
    def build(draw: st.DrawFn) -> NameAddrSpec:
        uri = draw(uris)
        params = list(draw(params_strategy) + draw(extra))
        draw(randoms).shuffle(params)
        kind = draw(_display_kinds)
        if kind == "addr-spec" and (brackets_required or any(c in uri.text for c in ",;?")):
            kind = "none"
        display: str | None = None
        if kind == "addr-spec":
            text = uri.text
        else:
            if kind == "quoted":
                display = draw(display_contents)
                text = _quote_display(display, draw(_needless_pairs)) + draw(lws)
            elif kind == "tokens":
                display = draw(_token_displays)
                # RFC 4475 lwsdisp: no LWS between the display name and "<"
                text = display + draw(st.sampled_from(["", " "]))
            else:
                text = ""
            text += f"<{uri.text}>"
        text += params_text(tuple(params), draw(_param_styles))
        return NameAddrSpec(text, uri, display, tuple(params))

    return build()


qvalues = st.one_of(
    st.just("1"),
    st.just("1.000"),
    st.builds(lambda digits: "0." + digits, _text(string.digits, 0, 3)),
    st.just("0"),
)
contact_extra = st.tuples(
    st.one_of(st.just(()), qvalues.map(lambda q: (("q", q),))),
    st.one_of(st.just(()), st.integers(0, 2**32 - 1).map(lambda e: (("expires", str(e)),))),
).map(lambda pair: pair[0] + pair[1])
contacts = name_addrs(reserved=frozenset({"q", "expires"}), extra=contact_extra)
route_uris = (
    sip_uris(headers=False).filter(lambda spec: all(n.lower() != "lr" for n, _ in spec.params))
).map(
    lambda spec: SipUriSpec(
        spec.text + ";lr",
        spec.scheme,
        spec.user,
        spec.password,
        spec.host,
        spec.port,
        (*spec.params, ("lr", None)),
        spec.headers,
    )
)
routes = name_addrs(route_uris, brackets_required=True)
from_to = name_addrs(
    reserved=frozenset({"tag"}), extra=st.one_of(st.just(()), tokens.map(lambda t: (("tag", t),)))
)
call_ids = st.builds(
    lambda word, host: word if host is None else f"{word}@{host}",
    _text(WORD_CHARS, max_size=16),
    st.one_of(st.none(), _text(WORD_CHARS, max_size=10)),
)
# Extension header values: any printable text, SP and HTAB inside, none at either end.
# (The categories str.isprintable() refuses, minus SP, plus HTAB.)
extension_values = st.text(
    st.characters(
        codec="utf-8",
        exclude_categories=("Cc", "Cf", "Cs", "Co", "Cn", "Zl", "Zp", "Zs"),
        include_characters=" \t",
    ),
    max_size=30,
).map(lambda value: value.strip(" \t"))
extension_names = tokens.filter(
    lambda name: name.lower() not in KNOWN_HEADERS and name.lower() not in COMPACT_LETTERS
)
extension_headers = st.lists(st.tuples(extension_names, extension_values), max_size=4)
bodies = st.one_of(st.just(b""), st.binary(max_size=40), st.binary(min_size=100, max_size=400))


# --- messages -------------------------------------------------------------------------------


@dataclass(frozen=True)
class Expected:
    """The typed values a generated message must report."""

    vias: tuple[ViaSpec, ...]
    from_addr: NameAddrSpec
    to_addr: NameAddrSpec
    call_id: str
    cseq: tuple[int, str]
    max_forwards: int | None
    contacts: tuple[NameAddrSpec, ...]
    contact_is_star: bool
    routes: tuple[NameAddrSpec, ...]
    record_routes: tuple[NameAddrSpec, ...]
    request_uri: UriSpec | None


@dataclass(frozen=True)
class Generated:
    """A message built from generated fields, and what its accessors must return."""

    message: Request | Response
    expected: Expected
    # The Content-Length values the caller put in the Headers (often wrong on purpose).
    given_lengths: tuple[str, ...]


_JOINERS = (",", ", ", " , ", ",\t")


def _spread(rng: random.Random, texts: list[str]) -> list[tuple[str, list[int]]]:
    """Spread list elements over field lines: (joined value, indexes of its elements)."""
    lines: list[tuple[str, list[int]]] = []
    index = 0
    while index < len(texts):
        size = rng.randint(1, len(texts) - index)
        joiner = rng.choice(_JOINERS)
        lines.append((joiner.join(texts[index : index + size]), list(range(index, index + size))))
        index += size
    return lines


_cseq_gaps = st.sampled_from([" ", "  ", "\t"])
_max_forwards = st.one_of(st.none(), st.tuples(st.integers(0, 255), st.integers(1, 4)))
_given_lengths = st.lists(st.integers(0, 10**6).map(str), max_size=2).map(tuple)
_message_kinds = st.sampled_from(["request", "response"])


@st.composite
def sip_messages(draw: st.DrawFn, kind: str | None = None) -> Generated:
    """A valid request or response (``kind`` "request"/"response"; None draws either)."""
    if kind is None:
        kind = draw(_message_kinds)
    rng = draw(randoms)
    method = draw(methods)
    request_uri = draw(request_uris) if kind == "request" else None

    # (name, value, canonical name, specs of the list elements in this line)
    fields: list[tuple[str, str, str, list[object]]] = []

    def add_list(canonical: str, specs: list[ViaSpec] | list[NameAddrSpec]) -> None:
        for value, indexes in _spread(rng, [spec.text for spec in specs]):
            name = draw(HEADER_NAMES[canonical])
            fields.append((name, value, canonical, [specs[i] for i in indexes]))

    add_list("via", draw(st.lists(vias(), min_size=1, max_size=5)))
    from_spec = draw(from_to)
    to_spec = draw(from_to)
    fields.append((draw(HEADER_NAMES["from"]), from_spec.text, "from", [from_spec]))
    fields.append((draw(HEADER_NAMES["to"]), to_spec.text, "to", [to_spec]))
    call_id = draw(call_ids)
    fields.append((draw(HEADER_NAMES["call-id"]), call_id, "call-id", []))
    cseq_number = draw(st.integers(0, 2**31 - 1))
    cseq_method = method if kind == "request" else draw(methods)
    # CSeq = 1*DIGIT LWS Method; leading zeros allowed (RFC 4475 wsinv "0009")
    cseq_text = f"{cseq_number:0{rng.randint(1, 10)}d}{draw(_cseq_gaps)}{cseq_method}"
    fields.append((draw(HEADER_NAMES["cseq"]), cseq_text, "cseq", []))
    max_forwards = draw(_max_forwards)
    if max_forwards is not None:
        value, width = max_forwards
        name = draw(HEADER_NAMES["max-forwards"])
        fields.append((name, f"{value:0{width}d}", "max-forwards", []))
    star = rng.randint(0, 9) == 0
    if star:
        fields.append((draw(HEADER_NAMES["contact"]), "*", "contact", []))
    else:
        add_list("contact", draw(st.lists(contacts, max_size=3)))
    add_list("route", draw(st.lists(routes, max_size=3)))
    add_list("record-route", draw(st.lists(routes, max_size=2)))
    for name, value in draw(extension_headers):
        fields.append((name, value, "extension", []))
    given_lengths = draw(_given_lengths)
    for length in given_lengths:
        fields.append((draw(HEADER_NAMES["content-length"]), length, "content-length", []))
    rng.shuffle(fields)

    def collected(canonical: str) -> tuple[object, ...]:
        return tuple(spec for _, _, name, specs in fields if name == canonical for spec in specs)

    headers = Headers((name, value) for name, value, _, _ in fields)
    body = draw(bodies)
    message: Request | Response
    if kind == "request":
        assert request_uri is not None
        message = Request(method, parse_uri(request_uri.text), headers, body)
    else:
        message = Response(draw(st.integers(100, 699)), draw(extension_values), headers, body)
    expected = Expected(
        vias=collected("via"),  # type: ignore[arg-type]
        from_addr=from_spec,
        to_addr=to_spec,
        call_id=call_id,
        cseq=(cseq_number, cseq_method),
        max_forwards=None if max_forwards is None else max_forwards[0],
        contacts=collected("contact"),  # type: ignore[arg-type]
        contact_is_star=star,
        routes=collected("route"),  # type: ignore[arg-type]
        record_routes=collected("record-route"),  # type: ignore[arg-type]
        request_uri=request_uri,
    )
    return Generated(message, expected, given_lengths)


sip_requests = sip_messages("request")
sip_responses = sip_messages("response")
