"""What a member of an Enterprise pool or IM&P cluster learns of the others, as its store
reports it (PostgreSQL ``LISTEN/NOTIFY``): where each member listens, which users' client
flows it holds, and the presence its users published. A member keeps these in memory, so
routing a request never waits for the database.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol

from intrafed.store.base import PublicationRow, SubscriptionRow


@dataclass(frozen=True, slots=True)
class MemberListening:
    """Another member runs at ``ip`` with these listeners ((transport, port), the OCS
    connections or the IM&P application listeners)."""

    member: str
    ip: str
    listeners: tuple[tuple[str, int], ...]


@dataclass(frozen=True, slots=True)
class MemberBindings:
    """Another member holds registrations of ``aor`` until ``expires_at`` (epoch seconds;
    0 when it holds none any more)."""

    aor: str
    member: str
    expires_at: float


@dataclass(frozen=True, slots=True)
class MemberPublished:
    """Another member stored a publication (a PUBLISH of one of its clients)."""

    row: PublicationRow


@dataclass(frozen=True, slots=True)
class MemberUnpublished:
    """Another member ended the publication ``etag`` of ``aor``."""

    aor: str
    etag: str


@dataclass(frozen=True, slots=True)
class MemberGone:
    """Another member stopped running (its process died or was stopped): no request is
    relayed to it, and the users only it held are offline until they register again."""

    member: str


@dataclass(frozen=True, slots=True)
class SubscriptionsAdopted:
    """The subscriptions a member that is gone held are this member's now (stored so):
    it sends their NOTIFYs from now on."""

    rows: tuple[SubscriptionRow, ...]


PoolEvent = (
    MemberListening
    | MemberBindings
    | MemberPublished
    | MemberUnpublished
    | MemberGone
    | SubscriptionsAdopted
)


class PoolFeed(Protocol):
    """The events of the other members, delivered in the order they were committed, from a
    thread of the feed's own (the runner hands them to its event loop). After it connects
    again, the feed first delivers what is true now: every member and their bindings."""

    def start(self, deliver: Callable[[PoolEvent], None]) -> list[PoolEvent]:
        """What is true now (every other member, and their bindings), then deliver the
        changes to ``deliver``."""
        ...

    def close(self) -> None:
        """Stop delivering."""
        ...
