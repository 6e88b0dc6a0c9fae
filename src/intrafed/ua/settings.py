"""A user agent's settings: who it is, how it reaches its home node, its TLS context."""

from __future__ import annotations

import asyncio
import ssl
from dataclasses import dataclass
from pathlib import Path

from intrafed.ua.events import UaError

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
    reconnect: bool = False
    """When the node closes the connection (a node that restarts hands its listeners to a
    new process and closes the old connections at an instant when no request is pending),
    connect again, register the new connection's contact in place of the old one, send
    again the requests no response came for, and refresh the subscriptions."""


def user_tls_context(ca_file: Path | None) -> ssl.SSLContext:
    """A TLS 1.2+ client context verifying the node against ``ca_file`` (the system
    roots when None), hostname checked, renegotiation off."""
    context = ssl.create_default_context(cafile=str(ca_file) if ca_file else None)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    context.options |= ssl.OP_NO_RENEGOTIATION
    return context


async def open_stream(
    settings: UaSettings, context: ssl.SSLContext | None = None
) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    """A connection to the node (over TLS with ``context``, else one verifying against
    the settings' CA file); ``UaError`` saying why there is none."""
    host, port = settings.server
    tls = settings.transport == "tls"
    context = (context or user_tls_context(settings.ca_file)) if tls else None
    local = (settings.source_ip, 0) if settings.source_ip else None
    try:
        return await asyncio.wait_for(
            asyncio.open_connection(
                host,
                port,
                ssl=context,
                server_hostname=(settings.server_name or host) if context else None,
                local_addr=local,
            ),
            settings.timeout,
        )
    except ssl.SSLCertVerificationError as exc:
        raise UaError(
            f"TLS to {host}:{port}: the node's certificate is not trusted ({exc.verify_message})"
        ) from None
    except ssl.SSLError as exc:
        raise UaError(f"TLS to {host}:{port} failed: {exc.reason or exc}") from None
    except TimeoutError:
        raise UaError(
            f"cannot connect to {host}:{port}: no answer in {settings.timeout} s"
        ) from None
    except OSError as exc:
        raise UaError(f"cannot connect to {host}:{port}: {exc.strerror or exc}") from None
