"""A user agent's settings: who it is, how it reaches its home node, its TLS context."""

from __future__ import annotations

import ssl
from dataclasses import dataclass
from pathlib import Path

DEFAULT_TIMEOUT = 10.0


@dataclass(frozen=True, slots=True)
class UaSettings:
    """Who the agent is and how it reaches its home node."""

    aor: str
    """The user's address of record, ``alice@example.com``."""
    server: tuple[str, int]
    """The node's address (IP or name) and port."""
    password: str | None = None
    """The digest password; None for a user provisioned without one."""
    transport: str = "tcp"
    """``tcp`` or ``tls``."""
    server_name: str | None = None
    """TLS: the node's FQDN, which its certificate must name (default: the server host)."""
    ca_file: Path | None = None
    """TLS: the CA certificate(s) that verify the node (PEM)."""
    source_ip: str | None = None
    """The local address to connect from (tests give each user its own 127.0.0.x)."""
    timeout: float = DEFAULT_TIMEOUT
    """Seconds to wait for a connection or for the final response to any request."""
    algorithms: tuple[str, ...] = ("SHA-256", "MD5")
    """Digest algorithms this client answers, among those the server offers."""


def user_tls_context(ca_file: Path | None) -> ssl.SSLContext:
    """A TLS 1.2+ client context verifying the node against ``ca_file`` (the system
    roots when None), hostname checked, renegotiation off."""
    context = ssl.create_default_context(cafile=str(ca_file) if ca_file else None)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    context.options |= ssl.OP_NO_RENEGOTIATION
    return context
