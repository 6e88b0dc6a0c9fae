"""Building responses: from a parsed request (RFC 3261 §8.2.6) or from the raw head of one
that could not be parsed, so that bad input still gets an answer that says what is wrong.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Iterable

from intrafed.sip import _abnf
from intrafed.sip.headers import COMPACT_FORMS, Headers, canonical_name
from intrafed.sip.message import Request, Response

REASON_PHRASES = {
    100: "Trying",
    180: "Ringing",
    181: "Call Is Being Forwarded",
    182: "Queued",
    183: "Session Progress",
    200: "OK",
    202: "Accepted",
    400: "Bad Request",
    401: "Unauthorized",
    403: "Forbidden",
    404: "Not Found",
    405: "Method Not Allowed",
    407: "Proxy Authentication Required",
    408: "Request Timeout",
    413: "Request Entity Too Large",
    415: "Unsupported Media Type",
    416: "Unsupported URI Scheme",
    420: "Bad Extension",
    480: "Temporarily Unavailable",
    481: "Call/Transaction Does Not Exist",
    482: "Loop Detected",
    483: "Too Many Hops",
    487: "Request Terminated",
    488: "Not Acceptable Here",
    489: "Bad Event",
    500: "Server Internal Error",
    501: "Not Implemented",
    503: "Service Unavailable",
    504: "Server Time-out",
    505: "Version Not Supported",
    513: "Message Too Large",
    603: "Decline",
}

# Headers a response copies from its request (RFC 3261 §8.2.6.2).
_COPIED = frozenset({"via", "from", "to", "call-id", "cseq"})
_TEXT_UNSAFE_RE = re.compile(r"[\x00-\x1f\x7f]")


def local_tag(*parts: str) -> str:
    """A To tag for a response we generate, the same for the same request (so a
    retransmitted request gets the same tag)."""
    material = "|".join(parts).encode("utf-8", "surrogateescape")
    return hashlib.blake2s(material, digest_size=5).hexdigest()


def reason_phrase(status: int) -> str:
    """The standard reason phrase for ``status``."""
    return REASON_PHRASES.get(status, "Unknown")


def warning_value(agent: str, text: str) -> str:
    """A ``Warning: 399 agent "text"`` value (RFC 3261 §20.43) naming the rule that fired."""
    quoted = _TEXT_UNSAFE_RE.sub(" ", text).replace("\\", "\\\\").replace('"', '\\"')
    return f'399 {agent} "{quoted}"'


def safe_reason(text: str) -> str:
    """``text`` made fit for a Reason-Phrase (no control characters)."""
    return _TEXT_UNSAFE_RE.sub(" ", text).strip()


def make_response(
    request: Request,
    status: int,
    reason: str | None = None,
    *,
    to_tag: str | None = None,
    headers: Iterable[tuple[str, str]] = (),
    body: bytes = b"",
) -> Response:
    """A response to ``request``: Via, From, To, Call-ID and CSeq copied, a To tag added
    when given and absent (never on 100 Trying), then ``headers``."""
    fields: list[tuple[str, str]] = []
    for name, value in request.headers:
        canonical = canonical_name(name)
        if canonical not in _COPIED:
            continue
        if canonical == "to" and to_tag and status > 100 and request.to_addr.tag is None:
            value = f"{value};tag={to_tag}"
        fields.append((name, value))
    fields += headers
    return Response(
        status, safe_reason(reason) if reason else reason_phrase(status), Headers(fields), body
    )


_RAW_COPIED_FIELD_RE = re.compile(
    rb"^(via|v|from|f|to|t|call-id|i|cseq)[ \t]*:[^\r\n]*(?=\r?$)", re.MULTILINE | re.IGNORECASE
)
"""A whole header line of a field a response copies: the others are not even looked at."""
_RAW_COPIED_NAMES = {
    name.encode(): COMPACT_FORMS.get(name, name)
    for name in ("via", "v", "from", "f", "to", "t", "call-id", "i", "cseq")
}


def response_to_unparsable(
    head: bytes, status: int, reason: str, warning_agent: str
) -> bytes | None:
    """Best-effort response bytes for a request the parser rejected, or None when none can
    be built (a response, or no Via): RFC 3261 §18.2.2 routes responses by Via, so without
    it nothing can be answered. Whichever of From, To, Call-ID and CSeq are there are copied.
    """
    first_line, _, _ = head.partition(b"\n")
    if first_line[:4].upper() == b"SIP/" or not _abnf.START_LINE_SHAPE_RE.match(first_line):
        return None
    return _raw_response(head, len(first_line) + 1, status, reason, warning_agent, reason)


def refusal_unparsed(
    frame: bytes, status: int, reason: str, warning_agent: str, warning: str, retry_after: str
) -> bytes | None:
    """``status`` (with Retry-After) for a new request outside a dialog, built from the
    raw ``frame`` without parsing it: what a node too busy to parse answers. None when
    ``frame`` is not such a request (a response, ACK, CANCEL, a request with a To tag,
    one with folded header lines or no Via): it must take the full path."""
    end = frame.find(b"\r\n\r\n")
    head = frame if end < 0 else frame[: end + 2]
    first_line, _, _ = head.partition(b"\r\n")
    method = first_line.partition(b" ")[0]
    if (
        method in _NEVER_REFUSED_UNPARSED
        or first_line[:4].upper() == b"SIP/"
        or b"\n " in head
        or b"\n\t" in head
        or not _abnf.START_LINE_SHAPE_RE.match(first_line)
    ):
        return None
    return _raw_response(
        head,
        len(first_line) + 2,
        status,
        reason,
        warning_agent,
        warning,
        to_tag=local_tag(head.decode("latin-1")),
        extra=(f"Retry-After: {retry_after}".encode(),),
    )


_NEVER_REFUSED_UNPARSED = frozenset((b"ACK", b"CANCEL"))
_TAG_RE = re.compile(rb";[ \t]*tag[ \t]*=", re.IGNORECASE)


def _raw_response(
    head: bytes,
    fields_start: int,
    status: int,
    reason: str,
    warning_agent: str,
    warning: str,
    *,
    to_tag: str | None = None,
    extra: tuple[bytes, ...] = (),
) -> bytes | None:
    """Response bytes copying the header fields of RFC 3261 §8.2.6.2 from the raw ``head``
    of a request; with ``to_tag``, None when the To already has a tag (the request is in a
    dialog). None without a Via."""
    copied: list[bytes] = []
    via = False
    for match in _RAW_COPIED_FIELD_RE.finditer(head, fields_start):
        canonical = _RAW_COPIED_NAMES[match.group(1).lower()]
        line = match.group(0)
        if canonical == "via":
            via = True
        elif canonical == "to" and to_tag is not None:
            if _TAG_RE.search(line):
                return None
            line += f";tag={to_tag}".encode()
        copied.append(line)
    if not via:
        return None
    lines = [
        f"SIP/2.0 {status} {safe_reason(reason)}".encode("utf-8", "replace"),
        *copied,
        *extra,
        f"Warning: {warning_value(warning_agent, warning)}".encode("utf-8", "replace"),
        b"Content-Length: 0",
        b"",
        b"",
    ]
    return b"\r\n".join(lines)
