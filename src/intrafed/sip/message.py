"""SIP requests and responses: validated on construction, typed header access, serialization."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any, NamedTuple

from intrafed.sip import _abnf
from intrafed.sip.errors import LocalSipError, RemoteSipError
from intrafed.sip.header_values import (
    CSeq,
    MediaType,
    NameAddr,
    TokenWithParams,
    Via,
    parse_contact,
    parse_content_length,
    parse_cseq,
    parse_event,
    parse_expires,
    parse_max_forwards,
    parse_media_type,
    parse_name_addr,
    parse_route,
    parse_subscription_state,
    parse_via,
)
from intrafed.sip.headers import Headers, canonical_name, split_list
from intrafed.sip.uri import Uri

SIP_VERSION = "SIP/2.0"

# RFC 3261 §8.1.1: "A valid SIP request formulated by a UAC MUST, at a minimum, contain the
# following header fields: To, From, CSeq, Call-ID, Max-Forwards, and Via". Max-Forwards is
# left out: RFC 4475 §3.4.1 (inv2543) has an RFC 2543 request without it that must parse.
MANDATORY_HEADERS = (
    ("via", "Via"),
    ("to", "To"),
    ("from", "From"),
    ("call-id", "Call-ID"),
    ("cseq", "CSeq"),
)
# Headers that may appear once only (RFC 4475 §3.3.8 multi01, §3.3.9 mcl01).
SINGLE_HEADERS = (
    ("to", "To"),
    ("from", "From"),
    ("call-id", "Call-ID"),
    ("cseq", "CSeq"),
    ("max-forwards", "Max-Forwards"),
    ("content-length", "Content-Length"),
)
_MISSING: Any = object()


class CheckedFields(NamedTuple):
    """The header values every message is checked for when it is made."""

    cseq: CSeq
    max_forwards: int | None
    content_length: int | None


def check_mandatory_headers(
    fields: Mapping[str, Sequence[str]], method: str | None
) -> CheckedFields:
    """Check what RFC 3261 makes mandatory in every message; return the values it parsed.

    ``fields`` is ``Headers.by_name``; ``method`` is the request method, or None for a
    response.
    """
    try:
        call_ids = fields["call-id"]
        cseqs = fields["cseq"]
        single = len(fields["to"]) + len(fields["from"]) + len(call_ids) + len(cseqs) == 4
        has_via = bool(fields["via"])
    except KeyError:
        for name, shown in MANDATORY_HEADERS:
            if name not in fields:
                raise RemoteSipError(f"missing {shown} header") from None
        raise
    max_forwards = fields.get("max-forwards")
    content_length = fields.get("content-length")
    if not has_via:
        raise RemoteSipError("missing Via header")
    if (
        not single
        or (max_forwards is not None and len(max_forwards) > 1)
        or (content_length is not None and len(content_length) > 1)
    ):
        for name, shown in SINGLE_HEADERS:
            values = fields.get(name)
            if values is not None and len(values) > 1:
                raise RemoteSipError(
                    f"{len(values)} {shown} header fields where exactly one is allowed"
                )
    call_id = call_ids[0]
    # callid = word [ "@" word ]
    if not call_id or " " in call_id or "\t" in call_id:
        raise RemoteSipError(f"Call-ID {call_id!r} is empty or contains spaces")
    cseq = parse_cseq(cseqs[0])
    # RFC 3261 §8.1.1.5: "The method MUST match that of the request."
    if method is not None and cseq.method != method:
        raise RemoteSipError(f"CSeq method {cseq.method} does not match request method {method}")
    return CheckedFields(
        cseq,
        parse_max_forwards(max_forwards[0]) if max_forwards is not None else None,
        parse_content_length(content_length[0]) if content_length is not None else None,
    )


class Message:
    """What requests and responses share: headers, body and typed header access.

    Typed values are parsed on first access and cached; a malformed header raises
    ``RemoteSipError`` at that point. ``validate()`` parses all of them at once.
    """

    __slots__ = ("_checked", "_typed", "body", "headers")

    headers: Headers
    body: bytes

    _checked: CheckedFields
    _typed: dict[str, Any]

    def _first(self, name: str) -> str | None:
        values = self.headers.by_name.get(name)
        return values[0] if values else None

    @property
    def vias(self) -> tuple[Via, ...]:
        """The Via values, topmost first."""
        cached = self._typed.get("via")
        if cached is not None:
            return cached  # type: ignore[no-any-return]
        fields = self.headers.by_name["via"]
        elements = split_list(fields[0]) if len(fields) == 1 else self.headers.get_list("via")
        value = self._typed["via"] = tuple(parse_via(v) for v in elements)
        return value

    @property
    def top_via(self) -> Via:
        """The topmost Via (the one a response is routed by); the others stay unparsed."""
        typed = self._typed
        vias = typed.get("via")
        if vias is not None:
            return vias[0]  # type: ignore[no-any-return]
        top = typed.get("top_via")
        if top is None:
            first = self.headers.by_name["via"][0]
            top = typed["top_via"] = parse_via(split_list(first)[0] if "," in first else first)
        return top

    @property
    def from_addr(self) -> NameAddr:
        """The From header."""
        cached = self._typed.get("from")
        if cached is not None:
            return cached  # type: ignore[no-any-return]
        value = self._typed["from"] = parse_name_addr(self.headers.by_name["from"][0], "From")
        return value

    @property
    def to_addr(self) -> NameAddr:
        """The To header."""
        cached = self._typed.get("to")
        if cached is not None:
            return cached  # type: ignore[no-any-return]
        value = self._typed["to"] = parse_name_addr(self.headers.by_name["to"][0], "To")
        return value

    @property
    def call_id(self) -> str:
        """The Call-ID."""
        return self.headers.by_name["call-id"][0]

    @property
    def cseq(self) -> CSeq:
        """The CSeq (parsed and checked when the message was made)."""
        return self._checked.cseq

    @property
    def max_forwards(self) -> int | None:
        """Max-Forwards, or None when absent (checked when the message was made)."""
        return self._checked.max_forwards

    @property
    def content_length(self) -> int | None:
        """Content-Length as sent, or None when absent."""
        return self._checked.content_length

    @property
    def contact_is_star(self) -> bool:
        """Whether the Contact is ``*`` (remove all bindings, RFC 3261 §10.2.2)."""
        values = self.headers.get_list("contact")
        return len(values) == 1 and values[0] == "*"

    @property
    def contacts(self) -> tuple[NameAddr, ...]:
        """The Contact values (empty for ``Contact: *``)."""
        cached = self._typed.get("contact")
        if cached is not None:
            return cached  # type: ignore[no-any-return]
        elements = self.headers.get_list("contact")
        if "*" in elements:
            if len(elements) > 1:
                raise RemoteSipError("Contact: * must be the only Contact value")
            value: tuple[NameAddr, ...] = ()
        else:
            value = tuple(parse_contact(element) for element in elements)
        self._typed["contact"] = value
        return value

    @property
    def routes(self) -> tuple[NameAddr, ...]:
        """The Route values, first hop first."""
        cached = self._typed.get("route")
        if cached is not None:
            return cached  # type: ignore[no-any-return]
        if "route" not in self.headers.by_name:
            return ()
        value = self._typed["route"] = tuple(parse_route(r) for r in self.headers.get_list("route"))
        return value

    @property
    def record_routes(self) -> tuple[NameAddr, ...]:
        """The Record-Route values, topmost first."""
        cached = self._typed.get("record-route")
        if cached is not None:
            return cached  # type: ignore[no-any-return]
        if "record-route" not in self.headers.by_name:
            return ()
        value = self._typed["record-route"] = tuple(
            parse_route(r, "Record-Route") for r in self.headers.get_list("record-route")
        )
        return value

    def _optional(self, name: str, parse: Callable[[str], Any]) -> Any:
        cached = self._typed.get(name, _MISSING)
        if cached is not _MISSING:
            return cached
        raw = self._first(name)
        value = self._typed[name] = parse(raw) if raw is not None else None
        return value

    @property
    def content_type(self) -> MediaType | None:
        """Content-Type, or None when absent."""
        return self._optional("content-type", parse_media_type)  # type: ignore[no-any-return]

    @property
    def expires(self) -> int | None:
        """The Expires header in seconds, or None when absent."""
        return self._optional("expires", parse_expires)  # type: ignore[no-any-return]

    @property
    def event(self) -> TokenWithParams | None:
        """The Event header (RFC 6665), or None when absent."""
        return self._optional("event", parse_event)  # type: ignore[no-any-return]

    @property
    def subscription_state(self) -> TokenWithParams | None:
        """The Subscription-State header (RFC 6665), or None when absent."""
        return self._optional("subscription-state", parse_subscription_state)  # type: ignore[no-any-return]

    def validate(self) -> None:
        """Parse every typed header now; raise ``RemoteSipError`` on the first bad one."""
        _ = (self.vias, self.from_addr, self.to_addr, self.contacts, self.routes)
        _ = (self.record_routes, self.content_type, self.expires, self.event)
        _ = self.subscription_state

    def start_line(self) -> str:
        """The Request-Line or Status-Line, without CRLF."""
        raise NotImplementedError

    def to_bytes(self) -> bytes:
        """The message on the wire; Content-Length always equals the body's length."""
        body_length = str(len(self.body))
        if self.headers.by_name.get("content-length") == [body_length]:
            lines = [self.start_line(), *self.headers.lines(), "\r\n"]
        else:
            lines = [self.start_line()]
            for raw, value in self.headers:
                if canonical_name(raw) != "content-length":
                    lines.append(f"{raw}: {value}")
            lines += [f"Content-Length: {body_length}", "\r\n"]
        return "\r\n".join(lines).encode("utf-8", "surrogateescape") + self.body


_VIA_KEYS = frozenset({"via", "top_via"})
# What ``Request.forwarded`` changes among the typed values (Max-Forwards is in _checked).
_FORWARD_EDITS = frozenset({"via", "top_via", "record-route"})


_SERVER_PARAMS = frozenset(("received", "rport"))
"""Via parameters a server writes (RFC 3261 §18.2.1, RFC 3581): never the sender's."""


def _with_right_length(headers: Headers, body: bytes) -> Headers:
    length = str(len(body))
    if headers.get_all("content-length") == [length]:
        return headers
    return headers.replace("Content-Length", length)


class Request(Message):
    """A SIP request. Constructing one checks what RFC 3261 makes mandatory."""

    __slots__ = ("_start_line", "method", "uri")

    def __init__(self, method: str, uri: Uri, headers: Headers, body: bytes = b"") -> None:
        # Method = INVITEm / ACKm / OPTIONSm / BYEm / CANCELm / REGISTERm / extension-method
        if not _abnf.TOKEN_RE.fullmatch(method):
            raise LocalSipError(f"method {method!r} is not a token")
        headers = _with_right_length(headers, body)
        try:
            checked = check_mandatory_headers(headers.by_name, method)
        except RemoteSipError as exc:
            raise LocalSipError(exc.reason) from None
        self.method = method
        self.uri = uri
        self.headers = headers
        self.body = body
        self._checked = checked
        self._typed = {}
        self._start_line: str | None = None

    @classmethod
    def _parsed(
        cls,
        method: str,
        uri: Uri,
        headers: Headers,
        body: bytes,
        checked: CheckedFields,
        start_line: str | None = None,
    ) -> Request:
        """A request from values already checked; ``start_line``, when given, is the
        request line as received (it is sent again as is while the URI stays)."""
        request = cls.__new__(cls)
        request.method = method
        request.uri = uri
        request.headers = headers
        request.body = body
        request._checked = checked
        request._typed = {}
        request._start_line = start_line
        return request

    def forwarded(
        self, via: Via, record_routes: Sequence[str], max_forwards: int, uri: Uri | None = None
    ) -> Request:
        """The copy a proxy sends on (RFC 3261 §16.6): ``via`` on top, ``record_routes``
        first among the Record-Route values, Max-Forwards set, the Request-URI replaced
        when ``uri`` is given. The mandatory fields are those already checked, and the
        copy's ``top_via`` is ``via`` itself (the transaction layer reads its branch)."""
        top = [("Via", str(via)), *(("Record-Route", value) for value in record_routes)]
        headers = self.headers.forwarded(top, str(max_forwards))
        # Built directly: NamedTuple._replace costs more than the rest of this method.
        checked = CheckedFields(self._checked.cseq, max_forwards, self._checked.content_length)
        if uri is not None:
            request = Request._parsed(self.method, uri, headers, self.body, checked)
        else:
            request = Request._parsed(
                self.method, self.uri, headers, self.body, checked, self._start_line
            )
        typed = {name: value for name, value in self._typed.items() if name not in _FORWARD_EDITS}
        typed["top_via"] = via
        request._typed = typed
        return request

    def received_from(self, ip: str, port: int) -> Request:
        """The request as a server notes where it came from: ``received`` on the top Via
        when its host is not ``ip`` or it asks for ``rport`` (RFC 3261 §18.2.1), and the
        ``rport`` value filled in (RFC 3581). The other fields are reused as they are."""
        via = self.top_via
        if via.host.strip("[]") == ip and not via.wants_rport:
            return self
        # Built from the parsed value, any received or rport the sender wrote dropped: a
        # peer cannot choose where a response goes (the first of two would win), and no
        # text edit can be fooled by a parameter whose name starts alike (";rportx").
        kept = tuple(
            (name, value) for name, value in via.params if name.lower() not in _SERVER_PARAMS
        )
        noted = (("rport", str(port)),) if via.wants_rport else ()
        top = Via(
            via.transport, via.host, via.port, (*kept, *noted, ("received", ip)), via.protocol
        )
        headers = self.headers.replace_first_element("via", str(top))
        request = Request._parsed(
            self.method, self.uri, headers, self.body, self._checked, self._start_line
        )
        # The values parsed so far stay; the new top Via is built, not parsed again.
        typed = {name: value for name, value in self._typed.items() if name not in _VIA_KEYS}
        typed["top_via"] = top
        request._typed = typed
        return request

    def start_line(self) -> str:
        """``METHOD Request-URI SIP/2.0``."""
        line = self._start_line
        if line is None:
            line = self._start_line = f"{self.method} {self.uri} {SIP_VERSION}"
        return line

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Request):
            return NotImplemented
        return (
            self.method == other.method
            and self.uri == other.uri
            and self.headers == other.headers
            and self.body == other.body
        )

    __hash__ = None  # type: ignore[assignment]

    def __repr__(self) -> str:
        return f"<Request {self.method} {self.uri} call-id={self.call_id!r}>"


class Response(Message):
    """A SIP response. Constructing one checks the status code and mandatory headers."""

    __slots__ = ("reason", "status")

    def __init__(self, status: int, reason: str, headers: Headers, body: bytes = b"") -> None:
        # Status-Code = 3DIGIT; RFC 3261 §21 defines the classes 1xx-6xx.
        if not 100 <= status <= 699:
            raise LocalSipError(f"status {status} is not between 100 and 699")
        if "\r" in reason or "\n" in reason:
            raise LocalSipError("reason phrase contains a line break")
        headers = _with_right_length(headers, body)
        try:
            checked = check_mandatory_headers(headers.by_name, None)
        except RemoteSipError as exc:
            raise LocalSipError(exc.reason) from None
        self.status = status
        self.reason = reason
        self.headers = headers
        self.body = body
        self._checked = checked
        self._typed = {}

    @classmethod
    def _parsed(
        cls, status: int, reason: str, headers: Headers, body: bytes, checked: CheckedFields
    ) -> Response:
        response = cls.__new__(cls)
        response.status = status
        response.reason = reason
        response.headers = headers
        response.body = body
        response._checked = checked
        response._typed = {}
        return response

    def without_top_via(self) -> Response:
        """The response as the next hop upstream gets it: our Via removed (§16.7 step 3)."""
        return Response._parsed(
            self.status,
            self.reason,
            self.headers.pop_first_element("via"),
            self.body,
            self._checked,
        )

    def start_line(self) -> str:
        """``SIP/2.0 CODE Reason``."""
        return f"{SIP_VERSION} {self.status} {self.reason}"

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Response):
            return NotImplemented
        return (
            self.status == other.status
            and self.reason == other.reason
            and self.headers == other.headers
            and self.body == other.body
        )

    __hash__ = None  # type: ignore[assignment]

    def __repr__(self) -> str:
        return f"<Response {self.status} {self.reason} call-id={self.call_id!r}>"
