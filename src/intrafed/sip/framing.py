"""Cutting a TCP/TLS byte stream into SIP messages (RFC 3261 §18.3, RFC 5626 §3.5.1).

The framer only finds message boundaries: it reads the start line's shape and the
Content-Length, never the rest. ``parse_message(frame, stream=True)`` does the parsing.
"""

from __future__ import annotations

import re

from intrafed.sip import _abnf
from intrafed.sip.errors import FramingError

# DESIGN §8: header section 64 KiB (Kamailio and OpenSIPS read buffers are 64 KiB too).
MAX_HEADER_BYTES = 64 * 1024
# DESIGN §8: body 256 KiB, enough for any PIDF or IM; larger bodies get 513 (pjsip PR#5211).
MAX_BODY_BYTES = 256 * 1024

KEEPALIVE_PING = b"\r\n\r\n"
KEEPALIVE_PONG = b"\r\n"

# Content-Length = ( "Content-Length" / "l" ) HCOLON 1*DIGIT
# (Every header line follows a line feed: anchoring on it lets the regex engine skip to line
# starts. The value, folded lines included, is cut by _field_value: a regex that trims LWS
# around it backtracks over long runs of blanks.)
_CONTENT_LENGTH_RE = re.compile(rb"\n(?:content-length|l)[ \t]*:", re.IGNORECASE)
# What the first line can look like before its LF arrives: a token character first, then no
# control characters. A TLS ClientHello (0x16) or binary junk fails at once instead of
# waiting for a line feed that never comes.
# (Bytes already checked are not checked again: a start line trickled in a byte at a time
# costs linear work, not quadratic.)
_PARTIAL_START_LINE_RE = re.compile(rb"[A-Za-z0-9\-.!%*_+`'~][^\x00-\x08\x0a-\x1f\x7f]*\r?")
_START_LINE_REST_RE = re.compile(rb"[^\x00-\x08\x0a-\x1f\x7f]*\r?")
# Prefixes of a keepalive ping: wait for the rest before deciding.
_PING_PREFIXES = (b"\r", b"\r\n", b"\r\n\r")
_COMPACT_AFTER = 64 * 1024


def _field_value(buffer: bytearray, position: int, end: int) -> bytes:
    """The header value from ``position`` up to ``end`` or the end of its field (folded
    lines joined by one space), without the LWS around it."""
    parts: list[bytes] = []
    while True:
        line_end = buffer.find(b"\n", position, end)
        if line_end < 0:
            line_end = end
        part = bytes(buffer[position:line_end]).strip(b" \t\r")
        if part:
            parts.append(part)
        position = line_end + 1
        if position >= end or buffer[position] not in b" \t":
            return b" ".join(parts)


def _find_empty_line(buffer: bytearray, start: int) -> tuple[int, int] | None:
    """Where the first ``\\r?\\n\\r?\\n`` at or after ``start`` begins and ends, or None
    (two finds: a regex with a leading optional byte is scanned a position at a time)."""
    crlf = buffer.find(b"\n\r\n", start)
    bare = buffer.find(b"\n\n", start, crlf + 1 if crlf >= 0 else len(buffer))
    if bare >= 0:
        line_feed, end = bare, bare + 2
    elif crlf >= 0:
        line_feed, end = crlf, crlf + 3
    else:
        return None
    if line_feed > start and buffer[line_feed - 1] == 13:
        return line_feed - 1, end
    return line_feed, end


class StreamFramer:
    """Sans-IO framer for one connection.

    Feed bytes with ``receive_data``; take messages with ``next_frame`` until it returns
    None; write ``data_to_send()`` (keepalive pongs) to the peer. When framing is lost,
    ``next_frame`` raises ``FramingError`` (now and on every later call): the transport
    answers it if it can and closes the connection.
    """

    def __init__(
        self, max_header_bytes: int = MAX_HEADER_BYTES, max_body_bytes: int = MAX_BODY_BYTES
    ) -> None:
        self.max_header_bytes = max_header_bytes
        self.max_body_bytes = max_body_bytes
        self._buffer = bytearray()
        self._start = 0
        self._scan_from = 0
        self._start_line_seen = False
        self._frame_end: int | None = None
        self._pongs = 0
        self._error: FramingError | None = None

    def receive_data(self, data: bytes) -> None:
        """Append bytes read from the connection."""
        if self._error is None:
            self._buffer += data

    def data_to_send(self) -> bytes:
        """Bytes owed to the peer: one CRLF pong per CRLFCRLF ping received."""
        pongs, self._pongs = self._pongs, 0
        return KEEPALIVE_PONG * pongs

    @property
    def has_partial_message(self) -> bool:
        """Whether bytes of an incomplete message are waiting (for the read deadline)."""
        waiting = len(self._buffer) - self._start
        if waiting == 0:
            return False
        return waiting > 3 or bytes(self._buffer[self._start :]) not in _PING_PREFIXES

    def next_frame(self) -> bytes | None:
        """The next complete message, or None until more bytes arrive."""
        if self._error is not None:
            raise self._error
        try:
            frame = self._next_frame()
        except FramingError as exc:
            self._error = exc
            self._buffer = bytearray()
            self._start = 0
            raise
        if self._start >= _COMPACT_AFTER or (self._start and self._start == len(self._buffer)):
            del self._buffer[: self._start]
            self._scan_from = max(0, self._scan_from - self._start)
            if self._frame_end is not None:
                self._frame_end -= self._start
            self._start = 0
        return frame

    def _fail(self, reason: str, status: int = 400) -> FramingError:
        head = bytes(self._buffer[self._start : self._start + self.max_header_bytes])
        return FramingError(reason, status, head)

    def _skip_keepalives(self) -> bool:
        """Consume pings and stray CRLFs; False when what is left may still become a ping."""
        buffer = self._buffer
        position = self._start
        end = len(buffer)
        while position < end:
            if buffer.startswith(KEEPALIVE_PING, position):
                self._pongs += 1
                position += 4
            elif buffer[position] in b"\r\n":
                if end - position <= 3 and bytes(buffer[position:]) in _PING_PREFIXES:
                    self._start = position
                    return False
                # RFC 3261 §7.5: CRLFs before a start line are ignored (RFC 5626 pongs).
                position += 2 if buffer.startswith(b"\r\n", position) else 1
            else:
                break
        self._start = position
        return position < end

    def _next_frame(self) -> bytes | None:
        buffer = self._buffer
        if self._frame_end is None:
            if not self._start_line_seen:
                if not self._skip_keepalives():
                    return None
                start = self._start
                checked = max(start, self._scan_from)
                newline = buffer.find(b"\n", checked, start + self.max_header_bytes)
                if newline < 0:
                    shape = _PARTIAL_START_LINE_RE if checked == start else _START_LINE_REST_RE
                    if not shape.fullmatch(buffer, checked):
                        raise self._fail("unreadable start line: the stream is out of step")
                    if len(buffer) - start > self.max_header_bytes:
                        raise self._fail(
                            f"start line longer than {self.max_header_bytes} bytes", 513
                        )
                    # a final CR is checked again: only a LF may follow it
                    self._scan_from = len(buffer) - buffer.endswith(b"\r")
                    return None
                if not _abnf.START_LINE_SHAPE_RE.match(buffer, start, newline):
                    raise self._fail("unreadable start line: the stream is out of step")
                self._start_line_seen = True
                self._scan_from = start
            start = self._start
            empty_line = _find_empty_line(buffer, self._scan_from)
            if empty_line is None or empty_line[1] - start > self.max_header_bytes:
                if len(buffer) - start > self.max_header_bytes:
                    raise self._fail(f"header section exceeds {self.max_header_bytes} bytes", 513)
                self._scan_from = max(start, len(buffer) - 3)
                return None
            headers_end, header_end = empty_line
            lengths = [
                _field_value(buffer, match.end(), headers_end)
                for match in _CONTENT_LENGTH_RE.finditer(buffer, start, headers_end)
            ]
            if len(lengths) > 1:
                raise self._fail(
                    f"{len(lengths)} Content-Length headers: the message cannot be framed"
                )
            if not lengths:
                # DESIGN §8: a stream message without Content-Length is treated as body-less
                # (the parser then answers 400 for the missing header).
                body_length = 0
            else:
                text = lengths[0]
                if not text.isdigit():
                    raise self._fail(
                        f"Content-Length {text[:32].decode('latin-1')!r} is not a number"
                    )
                if len(text.lstrip(b"0")) > 10 or int(text) > self.max_body_bytes:
                    shown = text[:32].decode("latin-1")
                    raise self._fail(
                        f"Content-Length {shown} exceeds the {self.max_body_bytes}-byte body limit",
                        513,
                    )
                body_length = int(text)
            self._frame_end = header_end + body_length
        frame_end = self._frame_end
        if len(buffer) < frame_end:
            return None
        frame = bytes(memoryview(buffer)[self._start : frame_end])
        self._start = frame_end
        self._frame_end = None
        self._start_line_seen = False
        return frame
