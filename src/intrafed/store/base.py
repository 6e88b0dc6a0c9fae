"""What the rest of intrafed may ask of a store, whatever holds it (SQLite on one node; the
Enterprise pool's PostgreSQL later): the configuration documents, and the state that must
survive a restart. Rows cross this interface as the frozen types below, never as tuples.

A pool adds fields at the end of a row, with a default a standalone node keeps (a binding
will name the front end that holds its connection), so the rows a node writes today stay
valid.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Literal, Protocol, Self

from intrafed.config.model import ConfigError, NodeConfig, NodeIdentity

if TYPE_CHECKING:
    from intrafed.store.pool_events import PoolFeed

Kind = Literal["staged", "running"]
StagedEdit = Callable[[NodeConfig], NodeConfig]


class StoreError(ConfigError):
    """A write to the store failed (disk full, read-only, I/O error, busy) and nothing of it
    was stored. ``reason`` is the database's words alone (a SIP Warning may carry them; the
    message names the store, for the administrator). ``unavailable``: the database could
    take no write at all (down, hung, read-only), not merely refused these rows."""

    def __init__(
        self, setting: str, message: str, fix: str, reason: str, unavailable: bool = False
    ) -> None:
        super().__init__(setting, message, fix)
        self.reason = reason
        self.unavailable = unavailable


@dataclass(frozen=True, slots=True, order=True)
class BindingRow:
    """A registration as stored."""

    aor: str
    contact: str
    expires_at: float
    """Epoch seconds."""
    q: float
    call_id: str
    cseq: int
    flow_bound: bool
    """Reachable only over the connection it was registered on."""


@dataclass(frozen=True, slots=True, order=True)
class SubscriptionRow:
    """A presence subscription (RFC 6665 dialog on the notifier side) as stored."""

    id: str
    presentity: str
    watcher: str
    event: str
    """The Event value the NOTIFYs carry (``presence``, with the subscriber's ``id``)."""
    call_id: str
    local_tag: str
    remote_tag: str
    local_party: str
    """The To of the SUBSCRIBE without tag: the From of our NOTIFYs."""
    remote_party: str
    """The From of the SUBSCRIBE, tag included: the To of our NOTIFYs."""
    remote_target: str
    route_set: str
    """The Record-Route values of the SUBSCRIBE in order, one per line."""
    local_contact: str
    expires_at: float
    local_cseq: int
    remote_cseq: int


@dataclass(frozen=True, slots=True, order=True)
class PublicationRow:
    """A PUBLISHed presence state (RFC 3903 event state) as stored."""

    etag: str
    aor: str
    state: str
    """A ``PresenceState`` value."""
    note: str | None
    published_at: float
    expires_at: float


@dataclass(frozen=True, slots=True)
class StateChanges:
    """What one transaction writes: the whole set of bindings of each AOR named (an empty
    set forgets the AOR), subscriptions and publications saved (insert or replace), and
    those ended, by id and entity tag."""

    bindings: Mapping[str, tuple[BindingRow, ...]] = field(default_factory=dict)
    saved_subscriptions: tuple[SubscriptionRow, ...] = ()
    ended_subscriptions: tuple[str, ...] = ()
    saved_publications: tuple[PublicationRow, ...] = ()
    ended_publications: tuple[str, ...] = ()

    def __bool__(self) -> bool:
        return any(
            (
                self.bindings,
                self.saved_subscriptions,
                self.ended_subscriptions,
                self.saved_publications,
                self.ended_publications,
            )
        )


class Configuration(Protocol):
    """The staged configuration (what edits change) and the running one (what the node
    runs with). A refused edit changes nothing."""

    def load(self, kind: Kind = "staged") -> NodeConfig:
        """The staged or running configuration."""
        ...

    def stage(self, edit: StagedEdit) -> NodeConfig:
        """Apply ``edit`` to the staged configuration atomically; return the new one."""
        ...

    def replace_staged(self, config: NodeConfig) -> None:
        """Make ``config`` the staged configuration (an import), keeping the identity."""
        ...

    def promote(self, config: NodeConfig | None = None) -> NodeConfig:
        """Make the staged configuration (or ``config``) the running one."""
        ...

    def restart_pending(self) -> bool:
        """Whether staged and running differ."""
        ...

    def pending_changes(self) -> list[str]:
        """What a restart would change, one phrase per setting (empty when nothing)."""
        ...

    def members_pending(self) -> dict[str, list[str]]:
        """For each member of this node's Enterprise pool or IM&P cluster (this node alone
        outside one), what a restart or reload there would change: the members that still
        run an older configuration have a non-empty list."""
        ...


class StateStore(Protocol):
    """Registrations, subscriptions and publications across restarts: everything answered
    2xx survives (DESIGN §8)."""

    def write(self, changes: StateChanges) -> None:
        """Store ``changes`` in one transaction; ``StoreError`` when that failed and
        nothing of it was stored."""
        ...

    def load_bindings(self, now: float) -> list[BindingRow]:
        """Every stored registration still live at ``now`` (epoch seconds)."""
        ...

    def load_subscriptions(self, now: float) -> list[SubscriptionRow]:
        """Every stored subscription still live at ``now``."""
        ...

    def load_publications(self, now: float) -> list[PublicationRow]:
        """Every stored publication still live at ``now``."""
        ...


class Store(Configuration, StateStore, Protocol):
    """One node's store, as ``open_store`` gives it; close it (or use it as a context
    manager) when done."""

    def other_members(self) -> list[NodeIdentity]:
        """Who the other members of this node's pool or cluster are (none outside one)."""
        ...

    def pool_feed(self) -> PoolFeed | None:
        """The events of the other members of this node's pool or cluster (None for a node
        on its own)."""
        ...

    @property
    def location(self) -> str:
        """Where the store lives, for messages (a file, or a URL without password)."""
        ...

    def close(self) -> None:
        """Release the database."""
        ...

    def __enter__(self) -> Self: ...

    def __exit__(self, *exc_info: object) -> None: ...
