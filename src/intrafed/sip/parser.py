"""Bytes to ``Request`` / ``Response``.

The parser splits the header section once, keeps every field's raw name and value, and
checks only what every message must satisfy (start line, the mandatory headers, CSeq,
Max-Forwards, Content-Length). Other headers are parsed when first read.
"""

from __future__ import annotations

import re

from intrafed.sip import _abnf
from intrafed.sip.errors import RemoteSipError
from intrafed.sip.headers import _CANONICAL_CACHE, Headers, canonical_name
from intrafed.sip.message import SIP_VERSION, Request, Response, check_mandatory_headers
from intrafed.sip.uri import parse_uri

# Control characters other than HTAB, CR and LF; inside a header value they are legal
# only as quoted-pairs in a quoted-string (RFC 4475 intmeth).
# Deleting every byte that may appear anywhere in a header section leaves line ends and
# control characters; a section whose leftovers are only CRLF pairs takes the fast path.
_PLAIN_BYTES = bytes([9, *range(0x20, 0x7F), *range(0x80, 0x100)])
_QUOTED_RE = re.compile(_abnf.QUOTED_STRING)


def _find_header_end(data: bytes, stream: bool) -> tuple[int, int]:
    """(end of the header section, start of the body)."""
    end = data.find(b"\r\n\r\n")
    # Bare-LF line ends are tolerated (RFC 5118 archive files, pjsip); the earliest empty
    # line of either kind ends the header section.
    bare = data.find(b"\n\n", 0, end if end >= 0 else len(data))
    if bare >= 0:
        # "...\r\n\n": the CR belongs to the last header line's end.
        return (bare - 1 if bare and data[bare - 1] == 13 else bare), bare + 2
    if end >= 0:
        return end, end + 4
    if stream:
        raise RemoteSipError("header section is not terminated by an empty line")
    # A datagram that stops right after its last header line (RFC 4475 baddn as archived)
    # is read as a header section with no body.
    end = len(data)
    while end and data[end - 1] in b"\r\n":
        end -= 1
    return end, len(data)


def _split_lines(head: str) -> list[str]:
    """The lines of the header section, folds undone (RFC 3261 §7.3.1), bare LF tolerated."""
    if "\n " in head or "\n\t" in head:
        parts = _abnf.FOLD_RE.split(head)
        head = " ".join([*(part.rstrip(" \t") for part in parts[:-1]), parts[-1]])
    crlf = head.count("\r\n")
    if head.count("\n") == crlf and head.count("\r") == crlf:
        lines = head.split("\r\n")
    else:
        lines = head.replace("\r\n", "\n").split("\n")
    start_control = _abnf.CONTROL_RE.search(lines[0])
    if start_control is not None:
        code = ord(start_control.group(0))
        raise RemoteSipError(f"control character 0x{code:02X} in the start line")
    for line in lines[1:]:
        if _abnf.CONTROL_RE.search(line):
            _check_controls(line)
    return lines


def _check_controls(line: str) -> None:
    """Control characters in a header line are legal only as quoted-pairs (intmeth)."""
    name, colon, value = line.partition(":")
    match = _abnf.CONTROL_RE.search(name) or _abnf.CONTROL_RE.search(_QUOTED_RE.sub('""', value))
    if match is not None:
        where = f"header {name.strip()[:32]!r}" if colon else f"header line {line[:32]!r}"
        raise RemoteSipError(f"control character 0x{ord(match.group(0)):02X} in {where}")


def _parse_request_line(line: str) -> tuple[str, str]:
    parts = line.split(" ")
    if len(parts) != 3:
        version = parts[-1]
        if (
            len(parts) > 1
            and _abnf.SIP_VERSION_RE.fullmatch(version)
            and version.upper() != "SIP/2.0"
        ):
            raise RemoteSipError(f"SIP version {version} is not supported", 505)
        raise RemoteSipError(f"malformed request line {line[:80]!r}: expected 'METHOD URI SIP/2.0'")
    method, uri_text, version = parts
    if version != "SIP/2.0" and version.upper() != "SIP/2.0":
        if _abnf.SIP_VERSION_RE.fullmatch(version):
            raise RemoteSipError(f"SIP version {version} is not supported", 505)
        raise RemoteSipError(
            f"malformed request line {line[:80]!r}: {version[:16]!r} is not a SIP version"
        )
    if not _abnf.TOKEN_RE.fullmatch(method):
        raise RemoteSipError(f"method {method[:32]!r} is not a token")
    return method, uri_text


def _parse_status_line(line: str) -> tuple[int, str]:
    parts = line.split(" ", 2)
    version = parts[0]
    if version.upper() != "SIP/2.0":
        if _abnf.SIP_VERSION_RE.fullmatch(version):
            raise RemoteSipError(f"SIP version {version} is not supported", 505)
        raise RemoteSipError(f"malformed status line {line[:80]!r}")
    code = parts[1] if len(parts) > 1 else ""
    # Status-Code = 3DIGIT (RFC 4475 bigcode: 4294967301 must not wrap)
    if len(code) != 3 or not code.isascii() or not code.isdigit() or not 100 <= int(code) <= 699:
        raise RemoteSipError(f"status code {code[:16]!r} is not a number between 100 and 699")
    return int(code), parts[2] if len(parts) > 2 else ""


def parse_message(data: bytes, *, stream: bool = False) -> Request | Response:
    """Parse one message (with the top Via, and a request's From and To).

    ``stream=False`` reads ``data`` as a datagram: Content-Length is optional, may not
    exceed the body, and octets after it are discarded (RFC 3261 §18.3). ``stream=True``
    reads a frame cut by ``StreamFramer``: Content-Length is required and exact.
    Raises ``RemoteSipError`` with the status to answer and a reason naming the problem.
    """
    end = data.find(b"\r\n\r\n")
    if end >= 0 and data.find(b"\n\n", 0, end) < 0:
        body_start = end + 4
    else:
        end, body_start = _find_header_end(data, stream)
    head = data[:end]
    leftovers = head.translate(None, _PLAIN_BYTES)
    text = head.decode("utf-8", "surrogateescape")
    pairs = len(leftovers) // 2
    if (
        leftovers == b"\r\n" * pairs
        and head.count(b"\r\n") == pairs
        and "\n " not in text
        and "\n\t" not in text
    ):
        lines = text.split("\r\n")
    else:
        lines = _split_lines(text)
    start = lines[0]
    is_response = start[:4].upper() == "SIP/"
    if is_response:
        status, reason = _parse_status_line(start)
    else:
        method, uri_text = _parse_request_line(start)
        try:
            uri = parse_uri(uri_text)
        except RemoteSipError as exc:
            raise RemoteSipError(f"Request-URI: {exc.reason}") from None

    # message-header = field-name HCOLON field-value CRLF; HCOLON = *( SP / HTAB ) ":" SWS
    header_lines = lines[1:]
    index: dict[str, list[str]] = {}
    cache = _CANONICAL_CACHE
    for line in header_lines:
        name, colon, value = line.partition(":")
        if not colon:
            raise RemoteSipError(f"header line {line[:64]!r} has no colon")
        canonical = cache.get(name)
        if canonical is None:
            # RFC 4475 wsinv: LWS is allowed between the name and the colon ("TO :").
            canonical = canonical_name(name.rstrip(" \t"))
        value = value.strip(" \t")
        values = index.get(canonical)
        if values is None:
            index[canonical] = [value]
        else:
            values.append(value)
    headers = Headers._from_parsed(header_lines, index)
    checked = check_mandatory_headers(index, None if is_response else method)

    body = data[body_start:]
    length = checked.content_length
    if length is None:
        if stream:
            raise RemoteSipError("missing Content-Length (required on TCP and TLS, RFC 3261 §18.3)")
    else:
        if length > len(body):
            raise RemoteSipError(f"Content-Length {length} exceeds the {len(body)} bytes of body")
        if length < len(body):
            if stream:
                raise RemoteSipError(
                    f"Content-Length {length} is less than the {len(body)} bytes of body"
                )
            body = body[:length]
    message: Request | Response
    if is_response:
        message = Response._parsed(status, reason, headers, body, checked)
        _ = message.top_via
        return message
    message = Request._parsed(
        method, uri, headers, body, checked, f"{method} {uri_text} {SIP_VERSION}"
    )
    # What every request handler reads (transaction matching, dialogs, the response) is
    # parsed now, so that a flaw in it is answered here rather than met deep in a handler.
    _ = (message.top_via, message.from_addr, message.to_addr)
    return message
