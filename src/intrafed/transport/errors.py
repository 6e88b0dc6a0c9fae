"""The one error the transport layer raises to its caller."""

from __future__ import annotations


class TransportError(Exception):
    """A connection could not be opened or a listener could not start.

    ``reason`` is one line an administrator can act on, e.g. "connection refused by
    127.0.0.3:5061"; ``kind`` words a failed TLS handshake from a small fixed set
    (``transport.tls.failure_kind``).
    """

    def __init__(self, reason: str, kind: str = "other") -> None:
        super().__init__(reason)
        self.reason = reason
        self.kind = kind
