"""The two error families of the SIP core.

``LocalSipError`` means our own caller misused the API. ``RemoteSipError`` means the peer
sent something we cannot accept; it carries the status a server should answer and a reason
phrase that names the problem.
"""

from __future__ import annotations


class LocalSipError(Exception):
    """The caller of the SIP core misused it (a bug on our side, never the peer's)."""


class RemoteSipError(Exception):
    """The peer sent garbage: answer ``status`` with ``reason`` (where an answer is possible)."""

    def __init__(self, reason: str, status: int = 400) -> None:
        super().__init__(reason)
        self.reason = reason
        self.status = status

    def __repr__(self) -> str:
        return f"RemoteSipError({self.reason!r}, status={self.status})"


class FramingError(RemoteSipError):
    """The byte stream can no longer be split into messages; the transport must close it.

    ``head`` holds the first bytes of the offending message (at most the header limit) so
    the transport can try to build a response before closing.
    """

    def __init__(self, reason: str, status: int = 400, head: bytes = b"") -> None:
        super().__init__(reason, status)
        self.head = head
