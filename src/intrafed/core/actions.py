"""What the node core asks its runner to do, and what it is told about flows and time:
plain frozen values, so the core is driven and observed without sockets."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

from intrafed.sip.transaction import FlowId, NextHop


class Clock(Protocol):
    """Wall time, for expiries that are stored (registrations, subscriptions); timers run
    on the monotonic ``now`` the runner passes to every call."""

    def wall(self) -> float:
        """Seconds since the epoch."""
        ...


@dataclass(frozen=True, slots=True)
class Peer:
    """Who is at the other end of a flow, as the transport proved it."""

    ip: str
    port: int
    transport: str
    """"TCP", "TLS" or "MTLS" (an inbound connection on an MTLS listener)."""
    fqdns: tuple[str, ...] = ()
    """Names proven by the peer's verified certificate."""
    outbound: bool = False
    """Whether we opened the connection."""


@dataclass(frozen=True, slots=True)
class Send:
    """Write ``data`` on flow ``flow``; when it is gone, tell ``NodeCore.undeliverable``."""

    flow: FlowId
    data: bytes


@dataclass(frozen=True, slots=True)
class Connect:
    """Send ``data`` to ``hop`` over an open connection to (``ip``, ``hop.port``), or a
    new one (TLS verifying ``server_name``); then tell ``NodeCore.sent_on`` which flow
    carried it, or ``NodeCore.undeliverable`` why none could."""

    hop: NextHop
    ip: str
    server_name: str | None
    data: bytes


@dataclass(frozen=True, slots=True)
class Alias:
    """RFC 5923: reuse inbound flow ``flow`` for requests to (``host``, ``port``)."""

    flow: FlowId
    host: str
    port: int


@dataclass(frozen=True, slots=True)
class Persist:
    """The state writer has changes queued: call ``NodeCore.persist`` once this turn of
    the event loop has handled what it received (one store transaction per turn)."""


@dataclass(frozen=True, slots=True)
class LogEvent:
    """One line for the node's log, at ``level`` (a ``logging`` level)."""

    level: int
    message: str


Action = Send | Connect | Alias | Persist | LogEvent
