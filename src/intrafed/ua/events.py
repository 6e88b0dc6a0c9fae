"""What a user agent reports: replies, failures and the events the node's requests make,
and the queue they wait in until the application takes them."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, TypeVar

from intrafed.sip import Response
from intrafed.sip.pidf import PresenceState

if TYPE_CHECKING:
    from intrafed.ua.dialogs import ImSession, Subscription


class UaError(Exception):
    """The user agent could not do what was asked (connection, TLS, timeout, refusal)."""


class SipError(UaError):
    """A request ended with a failure response (or a local 408 when none came in time)."""

    def __init__(
        self, method: str, uri: str, status: int, reason: str, warning: str | None
    ) -> None:
        self.method, self.uri = method, uri
        self.status, self.reason, self.warning = status, reason, warning
        text = f"{method} {uri}: {status} {reason}"
        super().__init__(text + (f" ({warning})" if warning else ""))


@dataclass(frozen=True, slots=True)
class Reply:
    """The final response to a request: status, reason, the Warning text if any."""

    status: int
    reason: str
    warning: str | None
    response: Response = field(repr=False)

    @classmethod
    def of(cls, response: Response) -> Reply:
        """The reply a response makes."""
        return cls(response.status, response.reason, response.headers.get("warning"), response)


@dataclass(frozen=True, slots=True)
class MessageReceived:
    """An instant message: pager mode (``session`` None) or inside an IM session."""

    sender: str
    text: str
    content_type: str
    session: ImSession | None = None


@dataclass(frozen=True, slots=True)
class TypingReceived:
    """An is-composing notice (INFO) inside an IM session."""

    sender: str
    session: ImSession


@dataclass(frozen=True, slots=True)
class SessionStarted:
    """Someone invited us to an IM session; the agent accepted it."""

    sender: str
    session: ImSession


@dataclass(frozen=True, slots=True)
class SessionEnded:
    """The other side ended an IM session (BYE)."""

    sender: str
    session: ImSession


@dataclass(frozen=True, slots=True)
class PresenceNotified:
    """A NOTIFY of a presence subscription (``state`` None when it carried no PIDF)."""

    presentity: str
    state: PresenceState | None
    note: str | None
    subscription_state: str
    subscription: Subscription


Event = MessageReceived | TypingReceived | SessionStarted | SessionEnded | PresenceNotified
E = TypeVar("E", bound=Event)


class EventQueue:
    """Events in arrival order; ``take`` waits for one (of a kind), and fails with
    ``UaError`` once the connection is gone and none is left."""

    def __init__(self) -> None:
        self._events: list[Event] = []
        self._arrived = asyncio.Event()
        self.closed_reason: str | None = None
        """Why the connection is gone (None while it is open)."""

    def put(self, event: Event) -> None:
        """Queue ``event`` and wake a waiting ``take``."""
        self._events.append(event)
        self._arrived.set()

    def close(self, reason: str) -> None:
        """The connection is gone (the first reason given stays)."""
        if self.closed_reason is None:
            self.closed_reason = reason
        self._arrived.set()

    def reopen(self) -> None:
        """A new connection is open."""
        self.closed_reason = None

    async def take(self, kind: type[object] | None) -> Event:
        """The oldest event (of ``kind`` when given), waiting for one."""
        while True:
            for index, event in enumerate(self._events):
                if kind is None or isinstance(event, kind):
                    del self._events[index]
                    return event
            if self.closed_reason is not None:
                raise UaError(self.closed_reason)
            self._arrived.clear()
            await self._arrived.wait()
