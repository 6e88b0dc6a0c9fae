"""What the presence agent's watchers are shown, and the NOTIFYs that show it, sans-IO.

A presentity's state is its newest live publication, else Available while it has a
registration, else Offline; a watcher on the presentity's block list always sees Offline.
NOTIFYs are in-dialog requests (RFC 3261 §12.2.1.1) with a Via from the caller's
``via_for(target)`` and a PIDF body.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass

from intrafed.services.presence_records import PresenceRecords, Subscription, View
from intrafed.sip.errors import LocalSipError
from intrafed.sip.headers import Headers
from intrafed.sip.message import Request
from intrafed.sip.pidf import PIDF_CONTENT_TYPE, PresenceState, build_pidf
from intrafed.sip.transaction import FlowId, NextHop, Target

# The agent's logger: one name for all the presence agent says.
logger = logging.getLogger("intrafed.services.presence")

MAX_FORWARDS = 70
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


def _first_target(
    route_hop: NextHop | None, flow: FlowId | None, contact_hop: NextHop | None
) -> Target | None:
    if route_hop is not None:
        return route_hop
    return flow if flow is not None else contact_hop


class PresenceNotifier:
    """Makes the NOTIFYs of the subscriptions in ``records``."""

    def __init__(
        self,
        records: PresenceRecords,
        *,
        is_blocked: Callable[[str, str], bool],
        via_for: Callable[[Target], str],
    ) -> None:
        """``is_blocked(presentity, watcher)`` reads the presentity's block list;
        ``via_for(target)`` gives a Via value with a fresh branch for sending to ``target``."""
        self._records = records
        self._is_blocked = is_blocked
        self._via_for = via_for

    def presence(self, aor: str, now: float) -> View:
        """What an unblocked watcher of ``aor`` is shown."""
        presentity = self._records.presentities.get(aor)
        if presentity is None:
            return (PresenceState.OFFLINE, None)
        live = [row for row in presentity.publications.values() if row.expires_at > now]
        if live:
            # The newest wins; of two published at once, the later one.
            newest = max(reversed(live), key=lambda row: row.published_at)
            return (PresenceState(newest.state), newest.note)
        return (PresenceState.AVAILABLE if presentity.registered else PresenceState.OFFLINE, None)

    def fan_out(self, aor: str, now: float) -> list[OutgoingNotify]:
        """NOTIFY every watcher of ``aor`` whose view differs from the last one sent; one
        body per distinct view. Watchers waiting for a retry get the state then."""
        presentity = self._records.presentities.get(aor)
        if presentity is None:
            return []
        presence = self.presence(aor, now)
        notifies: list[OutgoingNotify] = []
        bodies: dict[View, bytes] = {}
        for subscription in presentity.subscriptions.values():
            if subscription.row.expires_at <= now or subscription.retry_at is not None:
                continue
            view = self._view(subscription, presence)
            if view != subscription.last_view:
                notifies += self._notify(subscription, view, bodies, now)
        return notifies

    def notify_all(self, now: float) -> list[OutgoingNotify]:
        """A NOTIFY of the current view in every subscription."""
        notifies: list[OutgoingNotify] = []
        for aor, presentity in self._records.presentities.items():
            presence = self.presence(aor, now)
            bodies: dict[View, bytes] = {}
            for subscription in presentity.subscriptions.values():
                view = self._view(subscription, presence)
                notifies += self._notify(subscription, view, bodies, now)
        return notifies

    def notify_current(self, subscription: Subscription, now: float) -> list[OutgoingNotify]:
        """A NOTIFY of the current view in ``subscription``."""
        view = self._view(subscription, self.presence(subscription.row.presentity, now))
        return self._notify(subscription, view, {}, now)

    def final_notify(
        self, subscription: Subscription, now: float, reason: str = "timeout"
    ) -> list[OutgoingNotify]:
        """The NOTIFY that ends ``subscription`` (terminated;reason=timeout, or ``reason``)."""
        view = self._view(subscription, self.presence(subscription.row.presentity, now))
        state = f"terminated;reason={reason}"
        return self._notify(subscription, view, {}, now, state)

    def _view(self, subscription: Subscription, presence: View) -> View:
        row = subscription.row
        return _BLOCKED_VIEW if self._is_blocked(row.presentity, row.watcher) else presence

    def _notify(
        self,
        subscription: Subscription,
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
        self._records.note_fields(subscription)
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
