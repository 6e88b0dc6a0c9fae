"""What ``intrafed probe`` reports, and what every probe of one node shares: its
context, and the words for connection and TLS failures."""

from __future__ import annotations

import asyncio
import contextlib
import ssl
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from intrafed.config.model import NodeConfig
from intrafed.pki import CertificateStores


@dataclass(frozen=True, slots=True)
class ProbeResult:
    """One live check: what was tried, against what, and how it went."""

    check: str
    """``listener``, ``route``, ``resolve``, ``connect``, ``tls``, ``options`` or ``trust``."""
    target: str
    """What was probed (a listener, a route, a trust entry)."""
    ok: bool
    message: str
    fix: str | None = None
    details: Mapping[str, str] = field(default_factory=dict)
    """What was seen (the peer certificate's subject, issuer, EKU, expiry; OPTIONS headers)."""

    def to_json(self) -> dict[str, Any]:
        """A JSON-ready description."""
        return {
            "check": self.check,
            "target": self.target,
            "ok": self.ok,
            "message": self.message,
            "fix": self.fix,
            "details": dict(self.details),
        }


@dataclass(frozen=True, slots=True)
class ProbeReport:
    """Every result of one probe."""

    node: str
    results: tuple[ProbeResult, ...]

    @property
    def ok(self) -> bool:
        """Every check passed."""
        return all(result.ok for result in self.results)

    def failures(self) -> tuple[ProbeResult, ...]:
        """The checks that failed."""
        return tuple(result for result in self.results if not result.ok)

    def to_json(self) -> dict[str, Any]:
        """``{"ok": bool, "node": fqdn, "results": [...]}``."""
        return {
            "ok": self.ok,
            "node": self.node,
            "results": [result.to_json() for result in self.results],
        }


@dataclass
class ProbeContext:
    """What every probe of one node needs."""

    home: Path
    config: NodeConfig
    stores: CertificateStores
    timeout: float
    client: ssl.SSLContext | None
    client_problem: str | None
    seen: dict[tuple[str, str], tuple[str, ...]] = field(default_factory=dict)
    """Peer certificate names seen per route next hop and the address it was reached at."""

    @property
    def home_arg(self) -> str:
        """``--home HOME`` for the fixes."""
        return f"--home {self.home}"


def connect_failure(exc: BaseException, timeout: float) -> str:
    if isinstance(exc, ConnectionRefusedError):
        return "connection refused"
    if isinstance(exc, TimeoutError):
        return f"connection timed out after {timeout:g} s"
    if isinstance(exc, OSError) and exc.strerror:
        return exc.strerror.lower()
    return str(exc) or type(exc).__name__


def ssl_reason(exc: BaseException) -> str:
    if isinstance(exc, ssl.SSLCertVerificationError):
        return exc.verify_message or str(exc)
    if isinstance(exc, ssl.SSLError):
        return exc.reason or str(exc)
    if isinstance(exc, TimeoutError):
        return "timed out"
    return str(exc) or type(exc).__name__


async def close(writer: asyncio.StreamWriter) -> None:
    writer.close()
    with contextlib.suppress(OSError, ssl.SSLError, TimeoutError):
        await asyncio.wait_for(writer.wait_closed(), 1.0)
