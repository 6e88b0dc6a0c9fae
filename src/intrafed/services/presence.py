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
import logging
from collections.abc import Callable, Iterable
from dataclasses import dataclass, replace

from intrafed.services.presence_notify import OutgoingNotify, PresenceNotifier
from intrafed.services.presence_records import PresenceRecords, StoreChanges, Subscription, View
from intrafed.sip.errors import RemoteSipError
from intrafed.sip.message import Request, Response
from intrafed.sip.pidf import PIDF_CONTENT_TYPE, PresenceState, parse_pidf
from intrafed.sip.responses import local_tag, make_response, warning_value
from intrafed.sip.transaction import FlowId, Target
from intrafed.sip.uri import SipUri
from intrafed.store.base import PublicationRow, SubscriptionRow

__all__ = [
    "MAX_SUBSCRIBE_EXPIRES",
    "MIN_SUBSCRIBE_EXPIRES",
    "RESTORE_CSEQ_STEP",
    "RETRY_INTERVAL",
    "OutgoingNotify",
    "PresenceAgent",
    "StoreChanges",
]

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
_ACCEPTABLE = frozenset({PIDF_CONTENT_TYPE, "application/*", "*/*"})


@dataclass(frozen=True, slots=True)
class _NewDialog:
    """What an initial SUBSCRIBE fixes for the life of the dialog."""

    event: str
    remote_target: str
    route_set: str
    local_contact: str


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
        self._records = PresenceRecords()
        self._notifier = PresenceNotifier(self._records, is_blocked=is_blocked, via_for=via_for)

    # -- queries -------------------------------------------------------------------

    def state_of(self, aor: str, now: float) -> PresenceState:
        """The presence state of ``aor`` as an unblocked watcher sees it."""
        return self._notifier.presence(aor, now)[0]

    def owns_dialog(self, request: Request) -> bool:
        """Whether ``request`` belongs to one of our subscriptions (Call-ID and tags)."""
        try:
            to_tag, from_tag = request.to_addr.tag, request.from_addr.tag
        except RemoteSipError:
            return False
        if to_tag is None or from_tag is None:
            return False
        return (request.call_id, to_tag, from_tag) in self._records.dialogs

    def subscription_rows(self) -> list[SubscriptionRow]:
        """Every live subscription, as stored (the control API lists them)."""
        return [subscription.current_row() for subscription in self._records.subscriptions.values()]

    def publication_rows(self, now: float) -> list[PublicationRow]:
        """Every live publication (the control API lists them)."""
        return [
            row
            for presentity in self._records.presentities.values()
            for row in presentity.publications.values()
            if row.expires_at > now
        ]

    def next_deadline(self) -> float | None:
        """When ``expire`` next has work: an expiry or a NOTIFY retry."""
        return self._records.next_deadline()

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
        subscription = Subscription.from_row(row, flow)
        # RFC 3261 §12.1.1: the response that makes the dialog copies the Record-Route.
        record_routes = [("Record-Route", v) for v in request.headers.get_all("record-route")]
        response = self._accepted(request, our_tag, dialog.local_contact, expires, record_routes)
        if expires == 0:
            # RFC 6665 §4.4.3: a fetch: one NOTIFY of the state and no subscription.
            return response, self._notifier.final_notify(subscription, now)
        self._records.add(subscription)
        return response, self._notifier.notify_current(subscription, now)

    def _refresh(
        self,
        request: Request,
        flow: FlowId,
        remote_target: str | None,
        expires: int,
        now: float,
    ) -> tuple[Response, list[OutgoingNotify]]:
        key = (request.call_id, request.to_addr.tag or "", request.from_addr.tag or "")
        subscription = self._records.subscriptions.get(self._records.dialogs.get(key, ""))
        if subscription is None or subscription.row.expires_at <= now:
            rule = "no such subscription (it expired or was terminated)"
            return self._refuse(request, 481, rule), []
        row = subscription.row
        # RFC 3261 §12.2.2: a request with a lower CSeq than the last one is out of order.
        if request.cseq.number <= row.remote_cseq:
            rule = "CSeq not higher than the last SUBSCRIBE of this dialog"
            return self._refuse(request, 500, rule), []
        row = replace(
            row,
            remote_target=remote_target or row.remote_target,
            expires_at=now + expires,
            remote_cseq=request.cseq.number,
        )
        response = self._accepted(request, row.local_tag, row.local_contact, expires)
        refreshed = Subscription.from_row(row, flow)
        refreshed.local_cseq = subscription.local_cseq
        if expires == 0:
            self._records.remove(subscription)
            return response, self._notifier.final_notify(refreshed, now)
        self._records.add(refreshed)
        return response, self._notifier.notify_current(refreshed, now)

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
            etag = self._records.put_publication(aor, published, now, now + expires)
            return self._published(request, etag, expires), self._notifier.fan_out(aor, now)
        current = self._records.publication(aor, if_match, now)
        if current is None:
            rule = f"entity tag {if_match} matches no publication of {aor}"
            return self._refuse(request, 412, rule, reason="Conditional Request Failed"), []
        if expires == 0:
            self._records.drop_publication(aor, if_match)
            return self._published(request, None, 0), self._notifier.fan_out(aor, now)
        if published is None:
            published = (PresenceState(current.state), current.note)
            published_at = current.published_at
        else:
            published_at = now
        self._records.drop_publication(aor, if_match)
        etag = self._records.put_publication(aor, published, published_at, now + expires)
        return self._published(request, etag, expires), self._notifier.fan_out(aor, now)

    def _published(self, request: Request, etag: str | None, expires: int) -> Response:
        headers = [("SIP-ETag", etag)] if etag is not None else []
        headers.append(("Expires", str(expires)))
        return make_response(request, 200, to_tag=_dialog_tag(request), headers=headers)

    # -- registration --------------------------------------------------------------

    def registration_changed(self, aor: str, registered: bool, now: float) -> list[OutgoingNotify]:
        """``aor`` now has (or no longer has) a registered contact: without a publication
        that makes it Available (or Offline)."""
        self._records.presentity(aor).registered = registered
        return self._notifier.fan_out(aor, now)

    def member_published(self, row: PublicationRow, now: float) -> list[OutgoingNotify]:
        """Another member of the pool stored a publication of ``row.aor``: the watchers held
        here see it."""
        self._records.add_publication(row)
        return self._notifier.fan_out(row.aor, now)

    def member_unpublished(self, aor: str, etag: str, now: float) -> list[OutgoingNotify]:
        """Another member ended the publication ``etag`` of ``aor`` (and deleted its row)."""
        self._records.forget_publication(aor, etag)
        return self._notifier.fan_out(aor, now)

    def adopt(self, rows: Iterable[SubscriptionRow], now: float) -> list[OutgoingNotify]:
        """Take over the subscriptions of a member of the pool that is gone: their
        watchers get a NOTIFY of the current state from here at once."""
        adopted = list(rows)
        self.restore(adopted, ())
        return [
            notify
            for row in adopted
            for notify in self._notifier.notify_current(self._records.subscriptions[row.id], now)
        ]

    def block_list_changed(self, presentity: str, now: float) -> list[OutgoingNotify]:
        """The block list of ``presentity`` changed: NOTIFY the watchers whose view did."""
        return self._notifier.fan_out(presentity, now)

    def deactivate(self, presentity: str, now: float) -> list[OutgoingNotify]:
        """``presentity`` moved to the other partition: end its subscriptions with
        terminated;reason=deactivated (RFC 6665 §4.1.3: the watcher subscribes again at
        once, and the new SUBSCRIBE reaches the new home) and drop its publications."""
        record = self._records.presentities.get(presentity)
        if record is None:
            return []
        notifies: list[OutgoingNotify] = []
        for subscription in list(record.subscriptions.values()):
            self._records.remove(subscription)
            notifies += self._notifier.final_notify(subscription, now, "deactivated")
        for etag in list(record.publications):
            self._records.drop_publication(presentity, etag)
        return notifies

    # -- NOTIFY outcomes, timers, restart --------------------------------------------

    def notify_outcome(self, subscription: str, status: int, now: float) -> list[OutgoingNotify]:
        """The final status of a NOTIFY we sent (408 or 503 for a timeout or transport
        failure): 2xx keeps the subscription; 408 and 503 retry in ``RETRY_INTERVAL``
        seconds until it expires; any other failure (481 first) ends it."""
        found = self._records.subscriptions.get(subscription)
        if found is None or status < 200:
            return []
        if status < 300:
            found.retry_at = None
        elif status in (408, 503):
            self._records.schedule_retry(found, now + RETRY_INTERVAL)
            found.last_view = None
        else:
            logger.info("subscription %s ends: its NOTIFY got %d", subscription, status)
            self._records.remove(found)
        return []

    def expire(self, now: float) -> list[OutgoingNotify]:
        """Do what is due at ``now``: end expired subscriptions (terminated;reason=timeout),
        drop expired publications (watchers see the change), resend NOTIFYs to retry."""
        notifies: list[OutgoingNotify] = []
        while (due := self._records.pop_due(now)) is not None:
            kind, key = due
            if kind == "publication":
                aor = self._records.etags[key]
                self._records.drop_publication(aor, key)
                notifies += self._notifier.fan_out(aor, now)
                continue
            subscription = self._records.subscriptions[key]
            if kind == "subscription":
                self._records.remove(subscription)
                notifies += self._notifier.final_notify(subscription, now)
            else:
                subscription.retry_at = None
                notifies += self._notifier.notify_current(subscription, now)
        return notifies

    def renotify_all(self, now: float) -> list[OutgoingNotify]:
        """A NOTIFY of the current state for every subscription (after ``restore``, and
        after restoring registrations, whose own NOTIFYs this makes unnecessary)."""
        return self._notifier.notify_all(now)

    def restore(
        self,
        subscriptions: Iterable[SubscriptionRow],
        publications: Iterable[PublicationRow],
    ) -> None:
        """Load saved rows after a restart. Registrations come separately: call
        ``registration_changed`` for each registered user before ``renotify_all``."""
        for publication in publications:
            self._records.add_publication(publication)
        for row in subscriptions:
            restored = replace(row, local_cseq=row.local_cseq + RESTORE_CSEQ_STEP)
            self._records.add(Subscription.from_row(restored, None))

    @property
    def unsaved(self) -> bool:
        """Whether changes wait to be stored (a failed write put them back)."""
        return self._records.unsaved

    def take_store_changes(self) -> StoreChanges:
        """What to save and delete since the last call (every 2xx survives a restart)."""
        return self._records.take_store_changes()

    def requeue_store_changes(self, changes: StoreChanges) -> None:
        """Take back changes that could not be stored, to be taken again later; a row
        changed since then keeps its newer change."""
        self._records.requeue_store_changes(changes)

    def checkpoint(self) -> None:
        """Start remembering what the next request changes, for ``rollback``."""
        self._records.checkpoint()

    def commit(self) -> None:
        """Keep what was done since ``checkpoint``."""
        self._records.commit()

    def rollback(self) -> None:
        """Undo everything since ``checkpoint`` (its rows could not be stored): the
        subscriptions, publications and what each watcher was last shown are as before."""
        self._records.rollback()

    # -- responses -----------------------------------------------------------------

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
