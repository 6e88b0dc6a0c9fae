"""The node's state (registrations, subscriptions, publications) written to the store, off
the path of each request: the REGISTERs, SUBSCRIBEs and PUBLISHes of one turn of the event
loop are applied together at its end and stored in one transaction, and only then answered.

A write that fails: the requests get ``503`` with Retry-After and a Warning saying the store
failed, memory stays as it was (the store and the node never disagree about what was
answered 2xx), and the log gets one line per burst of failures. When a batch fails, each of
its requests is tried again alone, so only those whose own rows cannot be stored fail.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from dataclasses import dataclass

from intrafed.burst_log import BurstLog
from intrafed.services.presence import OutgoingNotify, PresenceAgent, StoreChanges
from intrafed.services.proxy import describe_failure
from intrafed.services.registrar import Registrar, Registration
from intrafed.sip import Request, Response
from intrafed.sip.errors import RemoteSipError
from intrafed.sip.responses import local_tag, make_response, warning_value
from intrafed.sip.transaction import FlowId
from intrafed.store import BindingRow, StateChanges, StateStore, StoreError

logger = logging.getLogger(__name__)

STORE_RETRY_AFTER = 10
"""Seconds a client is asked to wait after a write to the store failed (Retry-After)."""

NO_CHANGES = StoreChanges()
PresenceChange = Callable[[], tuple[Response, list[OutgoingNotify]]]


@dataclass(frozen=True, slots=True)
class Settled:
    """A request whose changes are stored (or refused): the answer to send, the NOTIFYs it
    causes, and the AORs whose registrations changed."""

    request: Request
    response: Response
    notifies: tuple[OutgoingNotify, ...] = ()
    registered: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class _Register:
    request: Request
    flow: FlowId
    now: float
    source: tuple[str, int] | None


@dataclass(frozen=True, slots=True)
class _Presence:
    request: Request
    change: PresenceChange


_Write = _Register | _Presence


def next_turn(flush: Callable[[], None]) -> None:
    """Run ``flush`` once the event loop has handled what this turn received."""
    asyncio.get_running_loop().call_soon(flush)


class StateWriter:
    """Runs the registrar and the presence agent for requests, storing what they changed
    before the answers leave (or undoing it when the store fails). Answers go to
    ``settle``, a batch at a time."""

    def __init__(
        self,
        store: StateStore | None,
        agent: str,
        registrar: Registrar,
        presence: PresenceAgent,
        settle: Callable[[list[Settled]], None],
        schedule: Callable[[Callable[[], None]], None] = next_turn,
    ) -> None:
        self._store = store
        self._agent = agent
        self._registrar = registrar
        self._presence = presence
        self._settle = settle
        self._schedule = schedule
        self._queue: list[_Write] = []
        self._scheduled = False
        self.faults = BurstLog(logger, "writing to the state store")

    def register(
        self, request: Request, flow: FlowId, now: float, source: tuple[str, int] | None
    ) -> None:
        """A REGISTER that came on ``flow`` from ``source`` (IP, port): the registrar's
        answer is settled once the bindings are stored; ``503`` and the bindings as before
        when they could not be."""
        self._enqueue(_Register(request, flow, now, source))

    def presence_request(self, request: Request, change: PresenceChange) -> None:
        """A SUBSCRIBE or PUBLISH handled by ``change``: its answer and NOTIFYs are settled
        once its rows are stored; ``503`` and no NOTIFY (the agent as before) when they
        could not be."""
        self._enqueue(_Presence(request, change))

    def save_presence(self) -> None:
        """Store what expiries and NOTIFY outcomes changed, at the end of this turn; when
        the store fails the rows wait for the next attempt (the node carries on)."""
        self._flush_soon()

    def flush(self) -> None:
        """Apply the queued requests and store what changed in one transaction, then
        settle their answers."""
        self._scheduled = False
        writes, self._queue = self._queue, []
        if not writes:
            self._save_background()
            return
        try:
            settled = self._together(writes)
        except Exception as exc:
            if len(writes) == 1:
                settled = [self._refused(writes[0], exc)]
            else:  # only the requests whose own rows cannot be stored fail
                settled = [self._alone(write) for write in writes]
        self._settle(settled)

    def _enqueue(self, write: _Write) -> None:
        self._queue.append(write)
        self._flush_soon()

    def _flush_soon(self) -> None:
        if not self._scheduled:
            self._scheduled = True
            self._schedule(self.flush)

    def _alone(self, write: _Write) -> Settled:
        try:
            [settled] = self._together([write])
        except Exception as exc:
            return self._refused(write, exc)
        return settled

    def _together(self, writes: list[_Write]) -> list[Settled]:
        """Apply ``writes`` in order and store their changes (and those waiting) in one
        transaction; on any failure undo them all and raise."""
        registrar, presence = self._registrar, self._presence
        presence.checkpoint()
        applied: list[Registration] = []
        bindings: dict[str, tuple[BindingRow, ...]] = {}
        settled: list[Settled] = []
        try:
            for write in writes:
                if isinstance(write, _Register):
                    registration = registrar.register(
                        write.request, write.flow, write.now, write.source
                    )
                    applied.append(registration)
                    for aor in registration.changed:
                        bindings[aor] = tuple(registrar.bindings(aor, write.now))
                    settled.append(
                        Settled(write.request, registration.response, (), registration.changed)
                    )
                else:
                    response, notifies = write.change()
                    settled.append(Settled(write.request, response, tuple(notifies)))
            self._write(bindings, presence.take_store_changes())
        except BaseException:
            for registration in reversed(applied):
                registrar.rollback(registration)
            presence.rollback()  # half a change is no change (STYLE 17)
            raise
        presence.commit()
        return settled

    def _save_background(self) -> None:
        changes = self._presence.take_store_changes()
        try:
            self._write({}, changes)
        except Exception as exc:  # the rows wait; nothing else may stop (STYLE 17)
            self._presence.requeue_store_changes(changes)
            if isinstance(exc, StoreError):
                self.faults.failed(exc.message)
            else:
                self.faults.failed(repr(exc), exc)

    def _write(self, bindings: dict[str, tuple[BindingRow, ...]], presence: StoreChanges) -> None:
        store = self._store
        if store is None or (not bindings and presence == NO_CHANGES):
            return
        store.write(
            StateChanges(
                bindings,
                presence.saved_subscriptions,
                presence.deleted_subscriptions,
                presence.saved_publications,
                presence.deleted_publications,
            )
        )
        self.faults.succeeded()

    def _refused(self, write: _Write, error: Exception) -> Settled:
        """The answer to a request whose changes were undone: 503 when the store failed,
        the status of a ``RemoteSipError`` (the request is bad), else 500."""
        request = write.request
        if isinstance(error, StoreError):
            what = "registration" if isinstance(write, _Register) else "subscription or publication"
            return Settled(request, self._store_failed(request, what, error))
        if isinstance(error, RemoteSipError):
            status, reason, rule = error.status, error.reason, error.reason
        else:
            status = 500
            rule = reason = (
                f"internal error ({type(error).__name__}) while handling {request.method}"
            )
        logger.warning(
            "handling failed: %s %s (Call-ID %r): %s, answered %d",
            request.method,
            request.uri,
            request.call_id,
            describe_failure(error),
            status,
        )
        return Settled(request, self._answer(request, status, reason, [], rule))

    def _store_failed(self, request: Request, what: str, error: StoreError) -> Response:
        self.faults.failed(error.message)
        # The database's words only: the client learns nothing of the server's file system.
        rule = f"the state store failed ({error.reason}): the {what} was not changed"
        retry = [("Retry-After", str(STORE_RETRY_AFTER))]
        return self._answer(request, 503, "Store Unavailable", retry, rule)

    def _answer(
        self,
        request: Request,
        status: int,
        reason: str | None,
        headers: list[tuple[str, str]],
        rule: str,
    ) -> Response:
        return make_response(
            request,
            status,
            reason,
            to_tag=local_tag(request.call_id, str(request.cseq.number)),
            headers=[*headers, ("Warning", warning_value(self._agent, rule))],
        )
