"""The presence agent (RFC 6665 / 3856 notifier, RFC 3903 state compositor) for the users
homed on this node, sans-IO: requests and ``now`` in, responses and NOTIFYs to send out.

A presentity's state is its newest live publication, else Available while it has a
registration, else Offline. Watchers in the presentity's domain may subscribe; a watcher on
the presentity's block list is accepted but always sees Offline (polite blocking).

NOTIFYs are in-dialog requests (RFC 3261 §12.2.1.1) with a Via from the caller's
``via_for(target)`` (the transaction layer wants requests with their Via and a fresh branch).
The caller sends each ``OutgoingNotify`` to its ``target`` and reports the final status with
``notify_outcome``. Persistence is the caller's too: ``take_store_changes`` says which rows
to save and delete, ``restore`` takes saved rows back after a restart. A request whose rows
could not be saved is undone: ``checkpoint`` before it, then ``commit`` or ``rollback``.
"""

from __future__ import annotations

import hashlib
import heapq
import logging
import secrets
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

from intrafed.services.proxy import next_hop_for_uri
from intrafed.sip.errors import LocalSipError, RemoteSipError
from intrafed.sip.header_values import parse_route
from intrafed.sip.headers import Headers
from intrafed.sip.message import Request, Response
from intrafed.sip.pidf import PIDF_CONTENT_TYPE, PresenceState, build_pidf, parse_pidf
from intrafed.sip.responses import local_tag, make_response, warning_value
from intrafed.sip.transaction import FlowId, NextHop, Target
from intrafed.sip.uri import SipUri, Uri, parse_uri
from intrafed.store.sqlite import PublicationRow, SubscriptionRow

logger = logging.getLogger(__name__)

EVENT_PACKAGE = "presence"
# RFC 3856 §6.4: "The default expiration time for subscriptions within this package is
# 3600 seconds"; the minimum keeps a client from refreshing every second.
DEFAULT_SUBSCRIBE_EXPIRES = 3600
MIN_SUBSCRIBE_EXPIRES = 60
MAX_SUBSCRIBE_EXPIRES = 3600
DEFAULT_PUBLISH_EXPIRES = 3600
MIN_PUBLISH_EXPIRES = 60
MAX_PUBLISH_EXPIRES = 3600
RETRY_INTERVAL = 10.0
"""Seconds between NOTIFY attempts while the watcher's side is unreachable (408/503), so
presence is back within a minute of the peer partition's restart (DESIGN §4)."""
# CSeq numbers of NOTIFYs are not saved on every NOTIFY; after a restart each dialog
# continues this far above its saved number, more than a dialog sends between two saves.
RESTORE_CSEQ_STEP = 1 << 16
MAX_FORWARDS = 70
_ACCEPTABLE = frozenset({PIDF_CONTENT_TYPE, "application/*", "*/*"})

View = tuple[PresenceState, str | None]
"""What one watcher is shown: state and note."""
_BLOCKED_VIEW: View = (PresenceState.OFFLINE, None)


@dataclass(frozen=True, slots=True)
class OutgoingNotify:
    """A NOTIFY to send, with where it may go, best first: ``route_hop`` (the route set's
    first hop), else ``flow`` (the connection the SUBSCRIBE came on), else ``contact_hop``
    (the remote target). The Via was made for ``target``."""

    request: Request
    route_hop: NextHop | None
    flow: FlowId | None
    contact_hop: NextHop | None
    subscription: str
    """The subscription id, for ``notify_outcome``."""

    @property
    def target(self) -> Target:
        """The first of ``route_hop``, ``flow``, ``contact_hop`` that is set."""
        target = _first_target(self.route_hop, self.flow, self.contact_hop)
        if target is None:
            raise LocalSipError("an OutgoingNotify needs a route hop, a flow or a contact hop")
        return target


@dataclass(frozen=True, slots=True)
class StoreChanges:
    """Rows to save and keys to delete since the last ``take_store_changes``."""

    saved_subscriptions: tuple[SubscriptionRow, ...] = ()
    deleted_subscriptions: tuple[str, ...] = ()
    saved_publications: tuple[PublicationRow, ...] = ()
    deleted_publications: tuple[str, ...] = ()


def _first_target(
    route_hop: NextHop | None, flow: FlowId | None, contact_hop: NextHop | None
) -> Target | None:
    if route_hop is not None:
        return route_hop
    return flow if flow is not None else contact_hop


@dataclass(frozen=True, slots=True)
class _NewDialog:
    """What an initial SUBSCRIBE fixes for the life of the dialog."""

    event: str
    remote_target: str
    route_set: str
    local_contact: str


@dataclass(slots=True)
class _Subscription:
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
    def from_row(cls, row: SubscriptionRow, flow: FlowId | None) -> _Subscription:
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
        return self.row._replace(local_cseq=self.local_cseq)


@dataclass(slots=True)
class _Undo:
    """What a request changed since ``checkpoint``, as it was before: subscriptions and
    publications by key (None: there was none), the mutable fields of each subscription
    object touched, and the rows waiting to be stored."""

    dirty: tuple[dict[str, SubscriptionRow], set[str], dict[str, PublicationRow], set[str]]
    subscriptions: dict[str, _Subscription | None] = field(default_factory=dict)
    fields: dict[int, tuple[_Subscription, int, View | None, float | None]] = field(
        default_factory=dict
    )
    publications: dict[str, PublicationRow | None] = field(default_factory=dict)


@dataclass(slots=True)
class _Presentity:
    """What the agent knows of one homed user: publications, registration, watchers."""

    publications: dict[str, PublicationRow] = field(default_factory=dict)
    registered: bool = False
    subscriptions: dict[str, _Subscription] = field(default_factory=dict)


class PresenceAgent:
    """Presence server for the users homed on this node."""

    def __init__(
        self,
        name: str,
        *,
        is_homed: Callable[[str], bool],
        is_blocked: Callable[[str, str], bool],
        via_for: Callable[[Target], str],
    ) -> None:
        """``is_blocked(presentity, watcher)`` reads the presentity's block list;
        ``via_for(target)`` gives a Via value with a fresh branch for sending to ``target``."""
        self._name = name
        self._is_homed = is_homed
        self._is_blocked = is_blocked
        self._via_for = via_for
        self._presentities: dict[str, _Presentity] = {}
        self._subscriptions: dict[str, _Subscription] = {}
        self._dialogs: dict[tuple[str, str, str], str] = {}
        self._etags: dict[str, str] = {}
        # (when, kind, key); entries go stale when the deadline moves and are skipped.
        self._deadlines: list[tuple[float, str, str]] = []
        self._saved_subscriptions: dict[str, SubscriptionRow] = {}
        self._deleted_subscriptions: set[str] = set()
        self._saved_publications: dict[str, PublicationRow] = {}
        self._deleted_publications: set[str] = set()
        self._undo: _Undo | None = None

    # -- queries -------------------------------------------------------------------

    def state_of(self, aor: str, now: float) -> PresenceState:
        """The presence state of ``aor`` as an unblocked watcher sees it."""
        return self._presence(aor, now)[0]

    def owns_dialog(self, request: Request) -> bool:
        """Whether ``request`` belongs to one of our subscriptions (Call-ID and tags)."""
        try:
            to_tag, from_tag = request.to_addr.tag, request.from_addr.tag
        except RemoteSipError:
            return False
        if to_tag is None or from_tag is None:
            return False
        return (request.call_id, to_tag, from_tag) in self._dialogs

    def next_deadline(self) -> float | None:
        """When ``expire`` next has work: an expiry or a NOTIFY retry."""
        while self._deadlines and not self._is_due_entry(self._deadlines[0]):
            heapq.heappop(self._deadlines)
        return self._deadlines[0][0] if self._deadlines else None

    # -- SUBSCRIBE -----------------------------------------------------------------

    def subscribe(
        self, request: Request, flow: FlowId, local_contact: str, now: float
    ) -> tuple[Response, list[OutgoingNotify]]:
        """Handle a SUBSCRIBE: a new subscription to a homed user, or a refresh or
        unsubscribe (Expires: 0) within one of ours. ``local_contact`` is our Contact URI."""
        try:
            refusal = self._check_subscribe(request)
            event = str(request.event)
            expires = request.expires
            contacts = request.contacts
            # Parsed to check them; kept as sent (RFC 3261 §12.1.1: parameters preserved).
            record_routes = (
                request.headers.get_list("record-route") if request.record_routes else []
            )
        except RemoteSipError as exc:
            return self._refuse(request, 400, exc.reason), []
        if refusal is not None:
            return refusal, []
        if expires is None:
            expires = DEFAULT_SUBSCRIBE_EXPIRES
        if 0 < expires < MIN_SUBSCRIBE_EXPIRES:
            return self._too_brief(request, MIN_SUBSCRIBE_EXPIRES), []
        expires = min(expires, MAX_SUBSCRIBE_EXPIRES)
        if len(contacts) > 1:
            return self._refuse(request, 400, "a SUBSCRIBE carries one Contact"), []
        if contacts and not isinstance(contacts[0].uri, SipUri):
            return self._refuse(request, 400, f"Contact {contacts[0].uri} is not a SIP URI"), []
        if request.to_addr.tag is not None:
            target = str(contacts[0].uri) if contacts else None
            return self._refresh(request, flow, target, expires, now)
        if not contacts:
            return self._refuse(request, 400, "a SUBSCRIBE must have a Contact"), []
        dialog = _NewDialog(event, str(contacts[0].uri), "\n".join(record_routes), local_contact)
        return self._create(request, flow, dialog, expires, now)

    def _check_subscribe(self, request: Request) -> Response | None:
        bad_event = self._bad_event(request)
        if bad_event is not None:
            return bad_event
        accept = request.headers.get_list("accept")
        if "accept" in request.headers and not any(
            value.partition(";")[0].strip().lower() in _ACCEPTABLE for value in accept
        ):
            return self._refuse(
                request,
                406,
                f"Accept does not include {PIDF_CONTENT_TYPE}",
                reason="Not Acceptable",
                headers=[("Accept", PIDF_CONTENT_TYPE)],
            )
        return None

    def _create(
        self, request: Request, flow: FlowId, dialog: _NewDialog, expires: int, now: float
    ) -> tuple[Response, list[OutgoingNotify]]:
        presentity_uri = request.uri if isinstance(request.uri, SipUri) else request.to_addr.uri
        watcher_uri = request.from_addr.uri
        if not isinstance(presentity_uri, SipUri) or presentity_uri.user is None:
            return self._refuse(request, 404, f"{request.uri} is not a user"), []
        presentity = presentity_uri.aor
        if not self._is_homed(presentity):
            return self._refuse(request, 404, f"{presentity} is not a user of this node"), []
        if not isinstance(watcher_uri, SipUri) or watcher_uri.user is None:
            rule = f"watcher {watcher_uri} is not a SIP address of record"
            return self._refuse(request, 403, rule), []
        watcher = watcher_uri.aor
        if watcher.rpartition("@")[2] != presentity.rpartition("@")[2]:
            rule = f"watchers from other domains may not see {presentity}'s presence"
            return self._refuse(request, 403, rule), []
        remote_tag = request.from_addr.tag or ""
        our_tag = _dialog_tag(request)
        row = SubscriptionRow(
            id=_subscription_id(request.call_id, our_tag, remote_tag),
            presentity=presentity,
            watcher=watcher,
            event=dialog.event,
            call_id=request.call_id,
            local_tag=our_tag,
            remote_tag=remote_tag,
            local_party=request.headers.by_name["to"][0],
            remote_party=request.headers.by_name["from"][0],
            remote_target=dialog.remote_target,
            route_set=dialog.route_set,
            local_contact=dialog.local_contact,
            expires_at=now + expires,
            local_cseq=0,
            remote_cseq=request.cseq.number,
        )
        subscription = _Subscription.from_row(row, flow)
        # RFC 3261 §12.1.1: the response that makes the dialog copies the Record-Route.
        record_routes = [("Record-Route", v) for v in request.headers.get_all("record-route")]
        response = self._accepted(request, our_tag, dialog.local_contact, expires, record_routes)
        if expires == 0:
            # RFC 6665 §4.4.3: a fetch: one NOTIFY of the state and no subscription.
            return response, self._final_notify(subscription, now)
        self._add(subscription)
        return response, self._notify_current(subscription, now)

    def _refresh(
        self,
        request: Request,
        flow: FlowId,
        remote_target: str | None,
        expires: int,
        now: float,
    ) -> tuple[Response, list[OutgoingNotify]]:
        key = (request.call_id, request.to_addr.tag or "", request.from_addr.tag or "")
        subscription = self._subscriptions.get(self._dialogs.get(key, ""))
        if subscription is None or subscription.row.expires_at <= now:
            rule = "no such subscription (it expired or was terminated)"
            return self._refuse(request, 481, rule), []
        row = subscription.row
        # RFC 3261 §12.2.2: a request with a lower CSeq than the last one is out of order.
        if request.cseq.number <= row.remote_cseq:
            rule = "CSeq not higher than the last SUBSCRIBE of this dialog"
            return self._refuse(request, 500, rule), []
        row = row._replace(
            remote_target=remote_target or row.remote_target,
            expires_at=now + expires,
            remote_cseq=request.cseq.number,
        )
        response = self._accepted(request, row.local_tag, row.local_contact, expires)
        refreshed = _Subscription.from_row(row, flow)
        refreshed.local_cseq = subscription.local_cseq
        if expires == 0:
            self._remove(subscription)
            return response, self._final_notify(refreshed, now)
        self._add(refreshed)
        return response, self._notify_current(refreshed, now)

    def _accepted(
        self,
        request: Request,
        tag: str,
        contact: str,
        expires: int,
        record_routes: list[tuple[str, str]] | None = None,
    ) -> Response:
        headers = [*(record_routes or ()), ("Contact", f"<{contact}>"), ("Expires", str(expires))]
        return make_response(request, 200, to_tag=tag, headers=headers)

    # -- PUBLISH -------------------------------------------------------------------

    def publish(self, request: Request, now: float) -> tuple[Response, list[OutgoingNotify]]:
        """Handle a PUBLISH (RFC 3903 §6): initial (a body), refresh (SIP-If-Match), modify
        (SIP-If-Match and a body) or remove (Expires: 0); then NOTIFY whoever sees a change."""
        try:
            bad_event = self._bad_event(request)
            expires = request.expires
            content_type = request.content_type
        except RemoteSipError as exc:
            return self._refuse(request, 400, exc.reason), []
        if bad_event is not None:
            return bad_event, []
        uri = request.uri
        if not isinstance(uri, SipUri) or uri.user is None or not self._is_homed(uri.aor):
            return self._refuse(request, 404, f"{uri} is not a user of this node"), []
        aor = uri.aor
        publisher = request.from_addr.uri
        if not isinstance(publisher, SipUri) or publisher.aor != aor:
            return self._refuse(request, 403, f"only {aor} may publish {aor}'s presence"), []
        if expires is None:
            expires = DEFAULT_PUBLISH_EXPIRES
        if 0 < expires < MIN_PUBLISH_EXPIRES:
            return self._too_brief(request, MIN_PUBLISH_EXPIRES), []
        expires = min(expires, MAX_PUBLISH_EXPIRES)
        published: View | None = None
        if request.body:
            if content_type is None or content_type.mime != PIDF_CONTENT_TYPE:
                shown = content_type.mime if content_type is not None else "no Content-Type"
                return self._refuse(
                    request,
                    415,
                    f"presence documents are {PIDF_CONTENT_TYPE}, not {shown}",
                    headers=[("Accept", PIDF_CONTENT_TYPE)],
                ), []
            try:
                presence = parse_pidf(request.body)
            except RemoteSipError as exc:
                return self._refuse(request, 400, exc.reason, reason=exc.reason), []
            published = (presence.state, presence.note)
        if_match = request.headers.get("sip-if-match")
        if if_match is None:
            if published is None:
                return self._refuse(request, 400, "an initial PUBLISH needs a body"), []
            if expires == 0:
                return self._published(request, None, 0), []
            etag = self._put_publication(aor, published, now, now + expires)
            return self._published(request, etag, expires), self._fan_out(aor, now)
        current = self._publication(aor, if_match, now)
        if current is None:
            rule = f"entity tag {if_match} matches no publication of {aor}"
            return self._refuse(request, 412, rule, reason="Conditional Request Failed"), []
        if expires == 0:
            self._drop_publication(aor, if_match)
            return self._published(request, None, 0), self._fan_out(aor, now)
        if published is None:
            published = (PresenceState(current.state), current.note)
            published_at = current.published_at
        else:
            published_at = now
        self._drop_publication(aor, if_match)
        etag = self._put_publication(aor, published, published_at, now + expires)
        return self._published(request, etag, expires), self._fan_out(aor, now)

    def _published(self, request: Request, etag: str | None, expires: int) -> Response:
        headers = [("SIP-ETag", etag)] if etag is not None else []
        headers.append(("Expires", str(expires)))
        return make_response(request, 200, to_tag=_dialog_tag(request), headers=headers)

    def _publication(self, aor: str, etag: str, now: float) -> PublicationRow | None:
        presentity = self._presentities.get(aor)
        row = presentity.publications.get(etag) if presentity is not None else None
        return row if row is not None and row.expires_at > now else None

    def _put_publication(self, aor: str, view: View, published_at: float, expires_at: float) -> str:
        etag = secrets.token_hex(10)
        state, note = view
        row = PublicationRow(etag, aor, state.value, note, published_at, expires_at)
        self._add_publication(row)
        self._saved_publications[etag] = row
        self._deleted_publications.discard(etag)
        return etag

    def _add_publication(self, row: PublicationRow) -> None:
        self._note_publication(row.etag)
        self._presentity(row.aor).publications[row.etag] = row
        self._etags[row.etag] = row.aor
        heapq.heappush(self._deadlines, (row.expires_at, "publication", row.etag))

    def _drop_publication(self, aor: str, etag: str) -> None:
        self._note_publication(etag)
        self._presentity(aor).publications.pop(etag, None)
        self._etags.pop(etag, None)
        self._saved_publications.pop(etag, None)
        self._deleted_publications.add(etag)

    # -- registration --------------------------------------------------------------

    def registration_changed(self, aor: str, registered: bool, now: float) -> list[OutgoingNotify]:
        """``aor`` now has (or no longer has) a registered contact: without a publication
        that makes it Available (or Offline)."""
        self._presentity(aor).registered = registered
        return self._fan_out(aor, now)

    def block_list_changed(self, presentity: str, now: float) -> list[OutgoingNotify]:
        """The block list of ``presentity`` changed: NOTIFY the watchers whose view did."""
        return self._fan_out(presentity, now)

    # -- NOTIFY outcomes, timers, restart --------------------------------------------

    def notify_outcome(self, subscription: str, status: int, now: float) -> list[OutgoingNotify]:
        """The final status of a NOTIFY we sent (408 or 503 for a timeout or transport
        failure): 2xx keeps the subscription; 408 and 503 retry in ``RETRY_INTERVAL``
        seconds until it expires; any other failure (481 first) ends it."""
        found = self._subscriptions.get(subscription)
        if found is None or status < 200:
            return []
        if status < 300:
            found.retry_at = None
        elif status in (408, 503):
            found.retry_at = now + RETRY_INTERVAL
            found.last_view = None
            heapq.heappush(self._deadlines, (found.retry_at, "retry", subscription))
        else:
            logger.info("subscription %s ends: its NOTIFY got %d", subscription, status)
            self._remove(found)
        return []

    def expire(self, now: float) -> list[OutgoingNotify]:
        """Do what is due at ``now``: end expired subscriptions (terminated;reason=timeout),
        drop expired publications (watchers see the change), resend NOTIFYs to retry."""
        notifies: list[OutgoingNotify] = []
        while self._deadlines and self._deadlines[0][0] <= now:
            entry = heapq.heappop(self._deadlines)
            if not self._is_due_entry(entry):
                continue
            _, kind, key = entry
            if kind == "publication":
                aor = self._etags[key]
                self._drop_publication(aor, key)
                notifies += self._fan_out(aor, now)
                continue
            subscription = self._subscriptions[key]
            if kind == "subscription":
                self._remove(subscription)
                notifies += self._final_notify(subscription, now)
            else:
                subscription.retry_at = None
                notifies += self._notify_current(subscription, now)
        return notifies

    def renotify_all(self, now: float) -> list[OutgoingNotify]:
        """A NOTIFY of the current state for every subscription (after ``restore``, and
        after restoring registrations, whose own NOTIFYs this makes unnecessary)."""
        notifies: list[OutgoingNotify] = []
        for aor, presentity in self._presentities.items():
            presence = self._presence(aor, now)
            bodies: dict[View, bytes] = {}
            for subscription in presentity.subscriptions.values():
                view = self._view(subscription, presence)
                notifies += self._notify(subscription, view, bodies, now)
        return notifies

    def restore(
        self,
        subscriptions: Iterable[SubscriptionRow],
        publications: Iterable[PublicationRow],
    ) -> None:
        """Load saved rows after a restart. Registrations come separately: call
        ``registration_changed`` for each registered user before ``renotify_all``."""
        for publication in publications:
            self._add_publication(publication)
        for row in subscriptions:
            restored = row._replace(local_cseq=row.local_cseq + RESTORE_CSEQ_STEP)
            self._add(_Subscription.from_row(restored, None))

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
            current = self._subscriptions.get(key)
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
            aor = self._etags.pop(etag, None)
            if aor is not None:
                self._presentity(aor).publications.pop(etag, None)
            if row is not None:
                self._add_publication(row)
        (
            self._saved_subscriptions,
            self._deleted_subscriptions,
            self._saved_publications,
            self._deleted_publications,
        ) = undo.dirty

    def _note_subscription(self, key: str) -> None:
        undo = self._undo
        if undo is not None and key not in undo.subscriptions:
            before = undo.subscriptions[key] = self._subscriptions.get(key)
            if before is not None:
                self._note_fields(before)

    def _note_fields(self, subscription: _Subscription) -> None:
        undo = self._undo
        if undo is not None and id(subscription) not in undo.fields:
            undo.fields[id(subscription)] = (
                subscription,
                subscription.local_cseq,
                subscription.last_view,
                subscription.retry_at,
            )

    def _note_publication(self, etag: str) -> None:
        undo = self._undo
        if undo is not None and etag not in undo.publications:
            aor = self._etags.get(etag)
            presentity = self._presentities.get(aor) if aor is not None else None
            undo.publications[etag] = (
                presentity.publications.get(etag) if presentity is not None else None
            )

    # -- internals -----------------------------------------------------------------

    def _presentity(self, aor: str) -> _Presentity:
        presentity = self._presentities.get(aor)
        if presentity is None:
            presentity = self._presentities[aor] = _Presentity()
        return presentity

    def _presence(self, aor: str, now: float) -> View:
        presentity = self._presentities.get(aor)
        if presentity is None:
            return (PresenceState.OFFLINE, None)
        live = [row for row in presentity.publications.values() if row.expires_at > now]
        if live:
            # The newest wins; of two published at once, the later one.
            newest = max(reversed(live), key=lambda row: row.published_at)
            return (PresenceState(newest.state), newest.note)
        return (PresenceState.AVAILABLE if presentity.registered else PresenceState.OFFLINE, None)

    def _view(self, subscription: _Subscription, presence: View) -> View:
        row = subscription.row
        return _BLOCKED_VIEW if self._is_blocked(row.presentity, row.watcher) else presence

    def _add(self, subscription: _Subscription) -> None:
        row = subscription.row
        self._note_subscription(row.id)
        self._index(subscription)
        self._saved_subscriptions[row.id] = subscription.current_row()
        self._deleted_subscriptions.discard(row.id)

    def _remove(self, subscription: _Subscription) -> None:
        row = subscription.row
        self._note_subscription(row.id)
        self._unindex(subscription)
        self._saved_subscriptions.pop(row.id, None)
        self._deleted_subscriptions.add(row.id)

    def _index(self, subscription: _Subscription) -> None:
        row = subscription.row
        self._subscriptions[row.id] = subscription
        self._dialogs[(row.call_id, row.local_tag, row.remote_tag)] = row.id
        self._presentity(row.presentity).subscriptions[row.id] = subscription
        heapq.heappush(self._deadlines, (row.expires_at, "subscription", row.id))

    def _unindex(self, subscription: _Subscription) -> None:
        row = subscription.row
        self._subscriptions.pop(row.id, None)
        self._dialogs.pop((row.call_id, row.local_tag, row.remote_tag), None)
        presentity = self._presentities.get(row.presentity)
        if presentity is not None:
            presentity.subscriptions.pop(row.id, None)

    def _is_due_entry(self, entry: tuple[float, str, str]) -> bool:
        """Whether a deadline entry is still current (not moved or cancelled since)."""
        when, kind, key = entry
        if kind == "publication":
            aor = self._etags.get(key)
            row = self._presentities[aor].publications.get(key) if aor is not None else None
            return row is not None and row.expires_at == when
        subscription = self._subscriptions.get(key)
        if subscription is None:
            return False
        if kind == "subscription":
            return subscription.row.expires_at == when
        return subscription.retry_at == when

    def _fan_out(self, aor: str, now: float) -> list[OutgoingNotify]:
        """NOTIFY every watcher of ``aor`` whose view differs from the last one sent; one
        body per distinct view. Watchers waiting for a retry get the state then."""
        presentity = self._presentities.get(aor)
        if presentity is None:
            return []
        presence = self._presence(aor, now)
        notifies: list[OutgoingNotify] = []
        bodies: dict[View, bytes] = {}
        for subscription in presentity.subscriptions.values():
            if subscription.row.expires_at <= now or subscription.retry_at is not None:
                continue
            view = self._view(subscription, presence)
            if view != subscription.last_view:
                notifies += self._notify(subscription, view, bodies, now)
        return notifies

    def _notify_current(self, subscription: _Subscription, now: float) -> list[OutgoingNotify]:
        view = self._view(subscription, self._presence(subscription.row.presentity, now))
        return self._notify(subscription, view, {}, now)

    def _final_notify(self, subscription: _Subscription, now: float) -> list[OutgoingNotify]:
        view = self._view(subscription, self._presence(subscription.row.presentity, now))
        state = "terminated;reason=timeout"
        return self._notify(subscription, view, {}, now, state)

    def _notify(
        self,
        subscription: _Subscription,
        view: View,
        bodies: dict[View, bytes],
        now: float,
        state: str | None = None,
    ) -> list[OutgoingNotify]:
        """The NOTIFY of ``view`` in ``subscription``'s dialog (RFC 3261 §12.2.1.1, RFC 6665
        §4.2.1.2); ``bodies`` caches the PIDF of each view across one fan-out."""
        row = subscription.row
        target = _first_target(subscription.route_hop, subscription.flow, subscription.contact_hop)
        if target is None:
            logger.info("subscription %s: no way to reach %s", row.id, row.remote_target)
            return []
        body = bodies.get(view)
        if body is None:
            body = bodies[view] = build_pidf(f"sip:{row.presentity}", *view)
        if state is None:
            state = f"active;expires={max(0, int(row.expires_at - now))}"
        self._note_fields(subscription)
        subscription.local_cseq += 1
        subscription.last_view = view
        headers = Headers(
            [
                ("Via", self._via_for(target)),
                ("Max-Forwards", str(MAX_FORWARDS)),
                *(("Route", route) for route in subscription.routes),
                ("From", f"{row.local_party};tag={row.local_tag}"),
                ("To", row.remote_party),
                ("Call-ID", row.call_id),
                ("CSeq", f"{subscription.local_cseq} NOTIFY"),
                ("Contact", f"<{row.local_contact}>"),
                ("Event", row.event),
                ("Subscription-State", state),
                ("Content-Type", PIDF_CONTENT_TYPE),
                ("Content-Length", str(len(body))),
            ]
        )
        request = Request("NOTIFY", subscription.request_uri, headers, body)
        return [
            OutgoingNotify(
                request, subscription.route_hop, subscription.flow, subscription.contact_hop, row.id
            )
        ]

    def _bad_event(self, request: Request) -> Response | None:
        """489 for an Event other than presence (RFC 6665 §8.3.1), else None."""
        event = request.event
        if event is not None and event.token.lower() == EVENT_PACKAGE:
            return None
        shown = event.token if event is not None else "no Event header"
        return self._refuse(
            request,
            489,
            f"event package {shown} is not supported here (only presence)",
            headers=[("Allow-Events", EVENT_PACKAGE)],
        )

    def _too_brief(self, request: Request, minimum: int) -> Response:
        return self._refuse(
            request,
            423,
            f"Expires below the minimum of {minimum} s",
            reason="Interval Too Brief",
            headers=[("Min-Expires", str(minimum))],
        )

    def _refuse(
        self,
        request: Request,
        status: int,
        rule: str,
        *,
        reason: str | None = None,
        headers: Iterable[tuple[str, str]] = (),
    ) -> Response:
        fields = [("Warning", warning_value(self._name, rule)), *headers]
        return make_response(request, status, reason, to_tag=_dialog_tag(request), headers=fields)


def _dialog_tag(request: Request) -> str:
    """Our To tag: the same for a retransmission of the same request."""
    return local_tag(request.call_id, request.from_addr.tag or "", str(request.cseq.number))


def _subscription_id(call_id: str, local: str, remote: str) -> str:
    material = f"{call_id}\n{local}\n{remote}".encode("utf-8", "surrogateescape")
    return hashlib.blake2s(material, digest_size=12).hexdigest()
