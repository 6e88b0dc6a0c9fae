"""The node's state (registrations, subscriptions, publications) written to the store, off
the path of each request: the REGISTERs, SUBSCRIBEs and PUBLISHes of one turn of the event
loop are applied together at its end and stored in one transaction, and only then answered.

A write that fails: the requests get ``503`` with Retry-After and a Warning saying the store
failed, memory stays as it was (the store and the node never disagree about what was
answered 2xx), and the log gets one line per burst of failures. When a batch fails, each of
its requests is tried again alone, so only those whose own rows cannot be stored fail;
when the database itself failed (down, hung, locked out), the requests waiting behind the
batch are refused with it at once rather than after a wait of their own.

One write is in flight at a time. A database over the network writes on the runner's
writer thread (``Offload``), so the event loop serves what needs no write meanwhile.
"""

from __future__ import annotations

import asyncio
import logging
from collections import deque
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from typing import TypeVar

from intrafed.burst_log import BurstLog
from intrafed.services.presence import OutgoingNotify, PresenceAgent, StoreChanges
from intrafed.services.proxy import describe_failure
from intrafed.services.registrar import Registrar, Registration
from intrafed.sip import Request, Response
from intrafed.sip.errors import RemoteSipError
from intrafed.sip.responses import local_tag, make_response, warning_value
from intrafed.sip.transaction import FlowId
from intrafed.store import (
    BindingRow,
    PublicationRow,
    StateChanges,
    StateStore,
    StoreError,
    SubscriptionRow,
)

logger = logging.getLogger(__name__)

STATE_LOAD_RETRY = 0.5
"""Seconds between two attempts of a degraded node to read its stored state."""
STORE_RETRY_AFTER = 10
"""Seconds a client is asked to wait after a write to the store failed (Retry-After)."""

_T = TypeVar("_T")
NO_CHANGES = StoreChanges()
PresenceChange = Callable[[], tuple[Response, list[OutgoingNotify]]]
Offload = Callable[[Callable[[], None], Callable[[BaseException | None], None]], None]
"""Runs a store write (the first callable), then calls the second with what it raised
(None: stored) on the event loop's thread; the runner's writer thread, or ``inline``."""


def inline(write: Callable[[], None], done: Callable[[BaseException | None], None]) -> None:
    """Run ``write`` here and now (an embedded store: a write takes microseconds)."""
    try:
        write()
    except Exception as exc:  # handed over, not lost
        done(exc)
        return
    done(None)


class WriterThread:
    """The runner's thread that runs a networked store's writes one at a time, so a
    database that hangs never stalls the event loop (an ``Offload``); ``wake`` runs on the
    loop after each answer is handed over."""

    def __init__(self, wake: Callable[[], None]) -> None:
        self._wake = wake
        self._executor = ThreadPoolExecutor(1, thread_name_prefix="intrafed-store-writer")

    def __call__(
        self, write: Callable[[], None], done: Callable[[BaseException | None], None]
    ) -> None:
        loop = asyncio.get_running_loop()

        def answered(future: Future[None]) -> None:
            loop.call_soon_threadsafe(self._hand_over, future, done)

        self._executor.submit(write).add_done_callback(answered)

    def call(self, work: Callable[[], _T]) -> asyncio.Future[_T]:
        """Run ``work`` between two writes (the store's one connection is not shared)."""
        return asyncio.wrap_future(self._executor.submit(work))

    def _hand_over(
        self, future: Future[None], done: Callable[[BaseException | None], None]
    ) -> None:
        done(future.exception())
        self._wake()

    def close(self) -> None:
        """Let the write in flight end (within the store's own deadline); take no more."""
        self._executor.shutdown(wait=True)


StoredState = tuple[list[BindingRow], list[SubscriptionRow], list[PublicationRow]]


def load_state(store: StateStore, wall: float) -> StoredState:
    """Every stored registration, subscription and publication still live at ``wall``."""
    return (
        store.load_bindings(wall),
        store.load_subscriptions(wall),
        store.load_publications(wall),
    )


def restore(registrar: Registrar, presence: PresenceAgent, loaded: StoredState) -> set[str]:
    """Put ``loaded`` into the registrar and presence agent; the users it registers."""
    bindings, subscriptions, publications = loaded
    registrar.restore(bindings)
    presence.restore(subscriptions, publications)
    return {row.aor for row in bindings}


async def read_when_reachable(
    thread: WriterThread, load: Callable[[], StoredState], writer: StateWriter
) -> StoredState:
    """``load`` on the writer thread every ``STATE_LOAD_RETRY`` s until the database
    answers; meanwhile ``writer`` refuses every write with the latest failure."""
    while True:
        await asyncio.sleep(STATE_LOAD_RETRY)
        try:
            loaded = await thread.call(load)
        except StoreError as exc:
            writer.refusing = exc
            continue
        writer.refusing = None
        return loaded


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


@dataclass(slots=True)
class _Batch:
    """Writes applied in memory whose rows are being stored: undone if that fails."""

    writes: list[_Write]
    applied: list[Registration]
    settled: list[Settled]
    presence: StoreChanges
    done: bool = False
    error: BaseException | None = None


def next_turn(flush: Callable[[], None]) -> None:
    """Run ``flush`` once the event loop has handled what this turn received."""
    asyncio.get_running_loop().call_soon(flush)


class StateWriter:
    """Runs the registrar and the presence agent for requests, storing what they changed
    before the answers leave (or undoing it when the store fails). Answers go to
    ``settle``, a batch at a time.

    One write is in flight at a time: the requests that come meanwhile wait, unapplied,
    for the next one. Through a writer thread (``offload``) the event loop goes on
    serving what needs no write while the store takes its time."""

    def __init__(
        self,
        store: StateStore | None,
        agent: str,
        registrar: Registrar,
        presence: PresenceAgent,
        settle: Callable[[list[Settled]], None],
        schedule: Callable[[Callable[[], None]], None] = next_turn,
        offload: Offload = inline,
    ) -> None:
        self._store = store
        self._agent = agent
        self._registrar = registrar
        self._presence = presence
        self._settle = settle
        self._schedule = schedule
        self._offload = offload
        self._queue: list[_Write] = []
        self._alone: deque[_Write] = deque()
        """Requests of a refused batch, each to be tried again on its own."""
        self._in_flight: _Batch | None = None
        self.refusing: StoreError | None = None
        """Set while the node's stored state is unread: every write is refused with it."""
        self._flushing = False
        self._scheduled = False
        self.faults = BurstLog(logger, "writing to the state store")

    @property
    def writing(self) -> bool:
        """Whether a write is in flight (the store has not answered yet)."""
        return self._in_flight is not None

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
        """Settle the write in flight once the store answered it, then apply the queued
        requests and store what changed in one transaction (settled when it is stored)."""
        self._scheduled = False
        self._flushing = True
        try:
            while True:
                batch = self._in_flight
                if batch is not None:
                    if not batch.done:
                        return  # its end schedules the next flush
                    self._in_flight = None
                    if not self._finish(batch):
                        return  # the rows wait for the core's next attempt
                if self._alone:
                    writes = [self._alone.popleft()]
                else:
                    writes, self._queue = self._queue, []
                if not self._start(writes):
                    return
        finally:
            self._flushing = False

    def _enqueue(self, write: _Write) -> None:
        self._queue.append(write)
        self._flush_soon()

    def _flush_soon(self) -> None:
        if not self._scheduled:
            self._scheduled = True
            self._schedule(self.flush)

    def _start(self, writes: list[_Write]) -> bool:
        """Apply ``writes`` and send their rows (and those waiting) to the store; False
        when there was nothing to do."""
        if self.refusing is not None:
            self._settle([self._refused(write, self.refusing) for write in writes])
            return bool(writes)
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
        except Exception as exc:
            self._undo(applied)
            if len(writes) == 1:
                self._settle([self._refused(writes[0], exc)])
            else:  # only the requests that fail alone fail
                self._alone.extend(writes)
            return True
        changes = presence.take_store_changes()
        store = self._store
        if store is None or (not bindings and changes == NO_CHANGES):
            presence.commit()
            if settled:
                self._settle(settled)
            return bool(writes)
        batch = self._in_flight = _Batch(writes, applied, settled, changes)
        rows = StateChanges(
            bindings,
            changes.saved_subscriptions,
            changes.deleted_subscriptions,
            changes.saved_publications,
            changes.deleted_publications,
        )
        self._offload(lambda: store.write(rows), lambda error: self._written(batch, error))
        return True

    def _written(self, batch: _Batch, error: BaseException | None) -> None:
        """The store answered ``batch``: settle it now, or at the flush this schedules."""
        batch.done, batch.error = True, error
        if not self._flushing:
            self._flush_soon()

    def _finish(self, batch: _Batch) -> bool:
        """Settle ``batch`` as the store answered it; False when only background rows
        failed (no new attempt this turn)."""
        error = batch.error
        if error is None:
            self._presence.commit()
            self.faults.succeeded()
            if batch.settled:
                self._settle(batch.settled)
            return True
        self._undo(batch.applied)
        if not isinstance(error, Exception):
            raise error  # an exit, not a failure of the store
        if not batch.writes:  # the rows wait; nothing else may stop (STYLE 17)
            self._presence.requeue_store_changes(batch.presence)
            if isinstance(error, StoreError):
                self.faults.failed(error.message)
            else:
                self.faults.failed(repr(error), error)
            return bool(self._queue or self._alone)
        if len(batch.writes) > 1 and not (isinstance(error, StoreError) and error.unavailable):
            self._alone.extend(batch.writes)  # only the requests whose own rows fail, fail
            return True
        refused = [*batch.writes]
        if isinstance(error, StoreError) and error.unavailable:
            # They would wait for a store that just failed to answer: refused now, not later.
            refused += [*self._alone, *self._queue]
            self._alone.clear()
            self._queue = []
        self._settle([self._refused(write, error) for write in refused])
        return True

    def _undo(self, applied: list[Registration]) -> None:
        for registration in reversed(applied):
            self._registrar.rollback(registration)
        self._presence.rollback()  # half a change is no change (STYLE 17)

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
