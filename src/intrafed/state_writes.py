"""The node's state (registrations, subscriptions, publications) written to the store, and
what a failed write does: the request gets ``503`` with Retry-After and a Warning saying the
store failed, memory stays as it was (the store and the node never disagree about what was
answered 2xx), and the log gets one line per burst of failures.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from typing import Protocol

from intrafed.burst_log import BurstLog
from intrafed.services.presence import OutgoingNotify, PresenceAgent, StoreChanges
from intrafed.services.registrar import Registrar, Registration
from intrafed.sip import Request, Response
from intrafed.sip.responses import local_tag, make_response, warning_value
from intrafed.sip.transaction import FlowId
from intrafed.store import StoreError
from intrafed.store.sqlite import BindingRow, PublicationRow, SubscriptionRow

logger = logging.getLogger(__name__)

STORE_RETRY_AFTER = 10
"""Seconds a client is asked to wait after a write to the store failed (Retry-After)."""

NO_CHANGES = StoreChanges()
PresenceChange = Callable[[], tuple[Response, list[OutgoingNotify]]]


class StateStore(Protocol):
    """Where registrations, subscriptions and publications are kept across restarts
    (``ConfigStore`` is one): everything answered 2xx survives (DESIGN §8). A write that
    fails raises ``StoreError`` and stores nothing."""

    def save_bindings(self, aor: str, rows: Sequence[BindingRow]) -> None: ...

    def load_bindings(self, now: float) -> list[BindingRow]: ...

    def write_presence(
        self,
        subscriptions: Sequence[SubscriptionRow] = (),
        ended_subscriptions: Sequence[str] = (),
        publications: Sequence[PublicationRow] = (),
        ended_publications: Sequence[str] = (),
    ) -> None: ...

    def load_subscriptions(self, now: float) -> list[SubscriptionRow]: ...

    def load_publications(self, now: float) -> list[PublicationRow]: ...


class StateWriter:
    """Runs the registrar and the presence agent for requests, storing what they changed
    before the answer leaves (or undoing it when the store fails)."""

    def __init__(
        self,
        store: StateStore | None,
        agent: str,
        registrar: Registrar,
        presence: PresenceAgent,
    ) -> None:
        self._store = store
        self._agent = agent
        self._registrar = registrar
        self._presence = presence
        self.faults = BurstLog(logger, "writing to the state store")

    def register(
        self, request: Request, flow: FlowId, now: float, source: tuple[str, int] | None
    ) -> Registration:
        """A REGISTER that came on ``flow`` from ``source`` (IP, port): the registrar's
        answer once the bindings are stored; ``503`` and the bindings as before when they
        could not be."""
        registrar = self._registrar
        registration = registrar.register(request, flow, now, source)
        if self._store is None or not registration.changed:
            return registration
        try:
            for aor in registration.changed:
                rows = [
                    (b.aor, b.contact, b.expires_at, b.q, b.call_id, b.cseq, b.flow_bound)
                    for b in registrar.bindings(aor, now)
                ]
                self._store.save_bindings(aor, rows)
        except StoreError as exc:
            registrar.rollback(registration)
            return Registration(self._store_failed(request, "registration", exc))
        self.faults.succeeded()
        return registration

    def presence_request(
        self, request: Request, change: PresenceChange
    ) -> tuple[Response, list[OutgoingNotify]]:
        """A SUBSCRIBE or PUBLISH handled by ``change``: its answer and NOTIFYs once its
        rows are stored; ``503`` and no NOTIFY (the agent as before) when they could not
        be."""
        presence = self._presence
        presence.checkpoint()
        try:
            response, notifies = change()
            self._write_presence(presence.take_store_changes())
        except StoreError as exc:
            presence.rollback()
            return self._store_failed(request, "subscription or publication", exc), []
        except Exception:
            presence.rollback()  # half a change is no change (STYLE 17)
            raise
        presence.commit()
        return response, notifies

    def save_presence(self) -> bool:
        """Store what expiries and NOTIFY outcomes changed; when the store fails the rows
        wait for the next attempt (the node carries on) and False is returned."""
        changes = self._presence.take_store_changes()
        try:
            self._write_presence(changes)
        except StoreError as exc:
            self._presence.requeue_store_changes(changes)
            self.faults.failed(exc.message)
            return False
        return True

    def _write_presence(self, changes: StoreChanges) -> None:
        store = self._store
        if store is None or changes == NO_CHANGES:
            return
        store.write_presence(
            changes.saved_subscriptions,
            changes.deleted_subscriptions,
            changes.saved_publications,
            changes.deleted_publications,
        )
        self.faults.succeeded()

    def _store_failed(self, request: Request, what: str, error: StoreError) -> Response:
        self.faults.failed(error.message)
        # SQLite's words only: the client learns nothing of the server's file system.
        rule = f"the state store failed ({error.reason}): the {what} was not changed"
        return make_response(
            request,
            503,
            "Store Unavailable",
            to_tag=local_tag(request.call_id, str(request.cseq.number)),
            headers=[
                ("Retry-After", str(STORE_RETRY_AFTER)),
                ("Warning", warning_value(self._agent, rule)),
            ],
        )
