"""Requests held for a user whose client connects again (``AwaitRegistration``), sans-IO.

A process that took over a node's listening sockets (``intrafed service restart``) holds
the bindings its predecessor stored, but not their connections: the predecessor closes
them once the new process serves, and each client connects again and registers. A
request for such a user in between is held until the user registers again (then decided
again) or its wait ends (then refused as it would have been at once).
"""

from __future__ import annotations

from dataclasses import dataclass

from intrafed.sip.decisions import AwaitRegistration
from intrafed.sip.message import Request
from intrafed.sip.transaction import RequestReceived


@dataclass(frozen=True, slots=True)
class Held:
    """A request held: its event, the request as the proxy routes it, its loop hash."""

    event: RequestReceived
    request: Request
    loop: str
    decision: AwaitRegistration


class HeldRequests:
    """The requests held, in the order they came."""

    def __init__(self) -> None:
        self._held: list[Held] = []

    def hold(self, held: Held) -> None:
        self._held.append(held)

    def deadline(self) -> float | None:
        """When the first wait ends (loop time), or None."""
        return min((held.decision.until for held in self._held), default=None)

    def take(self, aor: str) -> list[Held]:
        """The requests held for ``aor`` (no longer held)."""
        taken = [held for held in self._held if held.decision.aor == aor]
        self._held = [held for held in self._held if held.decision.aor != aor]
        return taken

    def expired(self, now: float) -> list[Held]:
        """The requests whose wait ended at ``now`` (no longer held)."""
        ended = [held for held in self._held if held.decision.until <= now]
        self._held = [held for held in self._held if held.decision.until > now]
        return ended
