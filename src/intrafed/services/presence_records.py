"""The presence agent's records, sans-IO: subscriptions and publications indexed by dialog,
entity tag and presentity, their deadlines, the rows to store since the last
``take_store_changes``, and what a request changed since ``checkpoint`` (for ``rollback``).
"""

from __future__ import annotations

import heapq
import secrets
from dataclasses import dataclass, field, replace

from intrafed.sip.addressing import next_hop_for_uri
from intrafed.sip.errors import LocalSipError
from intrafed.sip.header_values import parse_route
from intrafed.sip.pidf import PresenceState
from intrafed.sip.transaction import FlowId, NextHop
from intrafed.sip.uri import SipUri, Uri, parse_uri
from intrafed.store.base import PublicationRow, SubscriptionRow

View = tuple[PresenceState, str | None]
"""What one watcher is shown: state and note."""


@dataclass(frozen=True, slots=True)
class StoreChanges:
    """Rows to save and keys to delete since the last ``take_store_changes``."""

    saved_subscriptions: tuple[SubscriptionRow, ...] = ()
    deleted_subscriptions: tuple[str, ...] = ()
    saved_publications: tuple[PublicationRow, ...] = ()
    deleted_publications: tuple[str, ...] = ()


@dataclass(slots=True)
class Subscription:
    """One subscription dialog: its row, its path, and what its watcher was last shown."""

    row: SubscriptionRow
    flow: FlowId | None
    request_uri: Uri
    routes: tuple[str, ...]
    route_hop: NextHop | None
    contact_hop: NextHop | None
    local_cseq: int
    last_view: View | None = None
    retry_at: float | None = None

    @classmethod
    def from_row(cls, row: SubscriptionRow, flow: FlowId | None) -> Subscription:
        """The dialog's path (RFC 3261 §12.2.1.1), computed once: with a loose first route
        the Request-URI is the remote target; a strict one takes the Request-URI."""
        target = parse_uri(row.remote_target)
        routes = tuple(row.route_set.splitlines())
        request_uri = target
        if routes:
            first = parse_route(routes[0]).uri
            if isinstance(first, SipUri) and not first.lr:
                request_uri = first
                routes = (*routes[1:], f"<{row.remote_target}>")
            route_hop = next_hop_for_uri(first)
        else:
            route_hop = None
        return cls(
            row, flow, request_uri, routes, route_hop, next_hop_for_uri(target), row.local_cseq
        )

    def current_row(self) -> SubscriptionRow:
        """The row with the CSeq number of the last NOTIFY."""
        return replace(self.row, local_cseq=self.local_cseq)


@dataclass(slots=True)
class _Undo:
    """What a request changed since ``checkpoint``, as it was before: subscriptions and
    publications by key (None: there was none), the mutable fields of each subscription
    object touched, and the rows waiting to be stored."""

    dirty: tuple[dict[str, SubscriptionRow], set[str], dict[str, PublicationRow], set[str]]
    subscriptions: dict[str, Subscription | None] = field(default_factory=dict)
    fields: dict[int, tuple[Subscription, int, View | None, float | None]] = field(
        default_factory=dict
    )
    publications: dict[str, PublicationRow | None] = field(default_factory=dict)


@dataclass(slots=True)
class Presentity:
    """What the agent knows of one homed user: publications, registration, watchers."""

    publications: dict[str, PublicationRow] = field(default_factory=dict)
    registered: bool = False
    subscriptions: dict[str, Subscription] = field(default_factory=dict)


class PresenceRecords:
    """The subscriptions and publications of the users homed on this node. Change them
    only through the methods, which keep the indexes, deadlines, rows to store and undo."""

    def __init__(self) -> None:
        self.presentities: dict[str, Presentity] = {}
        self.subscriptions: dict[str, Subscription] = {}
        self.dialogs: dict[tuple[str, str, str], str] = {}
        """Subscription ids by (Call-ID, our tag, their tag)."""
        self.etags: dict[str, str] = {}
        """The presentity of each publication, by entity tag."""
        # (when, kind, key); entries go stale when the deadline moves and are skipped.
        self._deadlines: list[tuple[float, str, str]] = []
        self._saved_subscriptions: dict[str, SubscriptionRow] = {}
        self._deleted_subscriptions: set[str] = set()
        self._saved_publications: dict[str, PublicationRow] = {}
        self._deleted_publications: set[str] = set()
        self._undo: _Undo | None = None

    def presentity(self, aor: str) -> Presentity:
        """The record of ``aor``, made empty the first time."""
        presentity = self.presentities.get(aor)
        if presentity is None:
            presentity = self.presentities[aor] = Presentity()
        return presentity

    # -- deadlines -----------------------------------------------------------------

    def next_deadline(self) -> float | None:
        """When ``pop_due`` next has work: an expiry or a NOTIFY retry."""
        while self._deadlines and not self._is_due_entry(self._deadlines[0]):
            heapq.heappop(self._deadlines)
        return self._deadlines[0][0] if self._deadlines else None

    def pop_due(self, now: float) -> tuple[str, str] | None:
        """The next (kind, key) due at ``now``, off the schedule: kind "publication" (key:
        the entity tag), "subscription" or "retry" (key: the subscription id); else None."""
        while self._deadlines and self._deadlines[0][0] <= now:
            entry = heapq.heappop(self._deadlines)
            if self._is_due_entry(entry):
                return entry[1], entry[2]
        return None

    def schedule_retry(self, subscription: Subscription, when: float) -> None:
        """NOTIFY ``subscription`` again at ``when``."""
        subscription.retry_at = when
        heapq.heappush(self._deadlines, (when, "retry", subscription.row.id))

    def _is_due_entry(self, entry: tuple[float, str, str]) -> bool:
        """Whether a deadline entry is still current (not moved or cancelled since)."""
        when, kind, key = entry
        if kind == "publication":
            aor = self.etags.get(key)
            row = self.presentities[aor].publications.get(key) if aor is not None else None
            return row is not None and row.expires_at == when
        subscription = self.subscriptions.get(key)
        if subscription is None:
            return False
        if kind == "subscription":
            return subscription.row.expires_at == when
        return subscription.retry_at == when

    # -- subscriptions -------------------------------------------------------------

    def add(self, subscription: Subscription) -> None:
        """Add (or replace) a subscription; its row is to be saved."""
        row = subscription.row
        self._note_subscription(row.id)
        self._index(subscription)
        self._saved_subscriptions[row.id] = subscription.current_row()
        self._deleted_subscriptions.discard(row.id)

    def remove(self, subscription: Subscription) -> None:
        """Remove a subscription; its row is to be deleted."""
        row = subscription.row
        self._note_subscription(row.id)
        self._unindex(subscription)
        self._saved_subscriptions.pop(row.id, None)
        self._deleted_subscriptions.add(row.id)

    def _index(self, subscription: Subscription) -> None:
        row = subscription.row
        self.subscriptions[row.id] = subscription
        self.dialogs[(row.call_id, row.local_tag, row.remote_tag)] = row.id
        self.presentity(row.presentity).subscriptions[row.id] = subscription
        heapq.heappush(self._deadlines, (row.expires_at, "subscription", row.id))

    def _unindex(self, subscription: Subscription) -> None:
        row = subscription.row
        self.subscriptions.pop(row.id, None)
        self.dialogs.pop((row.call_id, row.local_tag, row.remote_tag), None)
        presentity = self.presentities.get(row.presentity)
        if presentity is not None:
            presentity.subscriptions.pop(row.id, None)

    # -- publications --------------------------------------------------------------

    def publication(self, aor: str, etag: str, now: float) -> PublicationRow | None:
        """The live publication of ``aor`` with entity tag ``etag``, if any."""
        presentity = self.presentities.get(aor)
        row = presentity.publications.get(etag) if presentity is not None else None
        return row if row is not None and row.expires_at > now else None

    def put_publication(self, aor: str, view: View, published_at: float, expires_at: float) -> str:
        """Add a publication under a new entity tag, to be saved; returns the tag."""
        etag = secrets.token_hex(10)
        state, note = view
        row = PublicationRow(etag, aor, state.value, note, published_at, expires_at)
        self.add_publication(row)
        self._saved_publications[etag] = row
        self._deleted_publications.discard(etag)
        return etag

    def add_publication(self, row: PublicationRow) -> None:
        """Index a publication (a new one, or a saved one after a restart)."""
        self._note_publication(row.etag)
        self.presentity(row.aor).publications[row.etag] = row
        self.etags[row.etag] = row.aor
        heapq.heappush(self._deadlines, (row.expires_at, "publication", row.etag))

    def forget_publication(self, aor: str, etag: str) -> None:
        """Remove a publication whose row another member deleted."""
        self.presentity(aor).publications.pop(etag, None)
        self.etags.pop(etag, None)

    def drop_publication(self, aor: str, etag: str) -> None:
        """Remove a publication; its row is to be deleted."""
        self._note_publication(etag)
        self.presentity(aor).publications.pop(etag, None)
        self.etags.pop(etag, None)
        self._saved_publications.pop(etag, None)
        self._deleted_publications.add(etag)

    # -- store rows and undo -------------------------------------------------------

    @property
    def unsaved(self) -> bool:
        """Whether changes wait to be taken (a failed write put them back)."""
        return bool(
            self._saved_subscriptions
            or self._deleted_subscriptions
            or self._saved_publications
            or self._deleted_publications
        )

    def take_store_changes(self) -> StoreChanges:
        """What to save and delete since the last call (every 2xx survives a restart)."""
        changes = StoreChanges(
            tuple(self._saved_subscriptions.values()),
            tuple(sorted(self._deleted_subscriptions)),
            tuple(self._saved_publications.values()),
            tuple(sorted(self._deleted_publications)),
        )
        self._saved_subscriptions.clear()
        self._deleted_subscriptions.clear()
        self._saved_publications.clear()
        self._deleted_publications.clear()
        return changes

    def requeue_store_changes(self, changes: StoreChanges) -> None:
        """Take back changes that could not be stored, to be taken again later; a row
        changed since then keeps its newer change."""
        for row in changes.saved_subscriptions:
            if row.id not in self._deleted_subscriptions:
                self._saved_subscriptions.setdefault(row.id, row)
        for key in changes.deleted_subscriptions:
            if key not in self._saved_subscriptions:
                self._deleted_subscriptions.add(key)
        for publication in changes.saved_publications:
            if publication.etag not in self._deleted_publications:
                self._saved_publications.setdefault(publication.etag, publication)
        for key in changes.deleted_publications:
            if key not in self._saved_publications:
                self._deleted_publications.add(key)

    def checkpoint(self) -> None:
        """Start remembering what the next request changes, for ``rollback``."""
        self._undo = _Undo(
            (
                dict(self._saved_subscriptions),
                set(self._deleted_subscriptions),
                dict(self._saved_publications),
                set(self._deleted_publications),
            )
        )

    def commit(self) -> None:
        """Keep what was done since ``checkpoint``."""
        self._undo = None

    def rollback(self) -> None:
        """Undo everything since ``checkpoint`` (its rows could not be stored): the
        subscriptions, publications and what each watcher was last shown are as before."""
        undo, self._undo = self._undo, None
        if undo is None:
            raise LocalSipError("rollback without a checkpoint")
        for key, before in undo.subscriptions.items():
            current = self.subscriptions.get(key)
            if current is not None:
                self._unindex(current)
            if before is not None:
                self._index(before)
        for subscription, cseq, view, retry_at in undo.fields.values():
            subscription.local_cseq, subscription.last_view = cseq, view
            subscription.retry_at = retry_at
            if retry_at is not None:
                heapq.heappush(self._deadlines, (retry_at, "retry", subscription.row.id))
        for etag, row in undo.publications.items():
            aor = self.etags.pop(etag, None)
            if aor is not None:
                self.presentity(aor).publications.pop(etag, None)
            if row is not None:
                self.add_publication(row)
        (
            self._saved_subscriptions,
            self._deleted_subscriptions,
            self._saved_publications,
            self._deleted_publications,
        ) = undo.dirty

    def note_fields(self, subscription: Subscription) -> None:
        """Remember the NOTIFY fields of ``subscription`` before a change, for ``rollback``."""
        undo = self._undo
        if undo is not None and id(subscription) not in undo.fields:
            undo.fields[id(subscription)] = (
                subscription,
                subscription.local_cseq,
                subscription.last_view,
                subscription.retry_at,
            )

    def _note_subscription(self, key: str) -> None:
        undo = self._undo
        if undo is not None and key not in undo.subscriptions:
            before = undo.subscriptions[key] = self.subscriptions.get(key)
            if before is not None:
                self.note_fields(before)

    def _note_publication(self, etag: str) -> None:
        undo = self._undo
        if undo is not None and etag not in undo.publications:
            aor = self.etags.get(etag)
            presentity = self.presentities.get(aor) if aor is not None else None
            undo.publications[etag] = (
                presentity.publications.get(etag) if presentity is not None else None
            )
