"""One node's decisions, sans-IO (the aioquic style of ``sip.transaction``): frames and
flow events in with the monotonic ``now``, typed actions out, one deadline to wake it.

``receive`` parses a frame and feeds the transaction layer; ``handle_timer`` fires what is
due (transactions, presence expiries and NOTIFY retries, lapsed registrations, hop
probes, a failed state write's retry); ``get_timer`` is the one deadline for all of them;
``next_action`` hands out what to do. The runner (``intrafed.node``) does the I/O.
"""

from __future__ import annotations

import itertools
import logging
import os
from collections import deque
from collections.abc import Callable, Iterable, Mapping, Sequence

from intrafed.core.actions import Action, Alias, Clock, Connect, LogEvent, Peer, Persist, Send
from intrafed.core.meter import (
    OTHER,
    PEER_PARTITION,
    Meter,
    MeteredTransactions,
    method_label,
)
from intrafed.core.pool_view import PoolView
from intrafed.core.router import CLIENTS_RETURN_WITHIN, NodeRouter, Settlement, StateWrites
from intrafed.core.settings import CoreSettings
from intrafed.routing.probe import Prober, hop_of
from intrafed.services.delivery import notify_target
from intrafed.services.held import Held
from intrafed.services.presence import OutgoingNotify, PresenceAgent
from intrafed.services.proxy import StatefulProxy
from intrafed.services.registrar import Registrar
from intrafed.sip import RemoteSipError, Request, Response, parse_message
from intrafed.sip.addressing import alias_address, listeners_of, resolve, response_hop
from intrafed.sip.decisions import AwaitRegistration, Decision
from intrafed.sip.errors import FramingError, LocalSipError
from intrafed.sip.responses import response_to_unparsable
from intrafed.sip.transaction import (
    MAGIC_COOKIE,
    ClientKey,
    ClientTimedOut,
    ClientTransportFailed,
    FlowId,
    NextHop,
    ResponseReceived,
    Target,
    TransactionEvent,
    TransactionLayer,
    client_key,
    server_key,
)

STORE_RETRY = 1.0
"""Seconds after a failed background state write before the next attempt."""
LATE_LOG_INTERVAL = 10.0
"""Seconds between two log lines that count the requests refused for waiting too long."""

Settle = Callable[[Sequence[Settlement]], None]
Schedule = Callable[[Callable[[], None]], None]
WritesFactory = Callable[[Registrar, PresenceAgent, Settle, Schedule], StateWrites]
"""Makes the state writer of a node's registrar and presence agent, answering through
``settle`` and asking for its ``flush`` at the end of the turn through ``schedule``."""


class NodeCore:
    """A node's proxy, registrar, presence agent, authorization and routing, driven by
    the runner: ``start``, then ``receive``/``handle_timer`` and the flow events; after
    each call, ``next_action`` until None and re-arm the timer at ``get_timer``."""

    def __init__(
        self,
        settings: CoreSettings,
        clock: Clock,
        writes: WritesFactory,
        meter: Meter | None = None,
        pool: PoolView | None = None,
    ) -> None:
        """``pool``: the other members of the node's pool, when it is in one."""
        self.settings = settings
        self.pool = pool or PoolView(None, None, tls=False)
        self._clock = clock
        self._flows: dict[FlowId, Peer] = {}
        self._actions: deque[Action] = deque()
        self._outbox: list[OutgoingNotify] = []
        self.registrar = Registrar(
            settings.name,
            lambda aor: aor in self.settings.users,
            lambda aor: aor in self.settings.disabled,
        )
        self.presence = PresenceAgent(
            settings.name,
            is_homed=lambda aor: aor in self.settings.users,
            is_blocked=lambda presentity, watcher: (
                watcher in self.settings.blocked.get(presentity, ())
            ),
            via_for=self._via_for,
        )
        self.router = NodeRouter(
            settings, clock, self._flows, self.registrar, self.presence, self._outbox, self._actions
        )
        self.router.pool = self.pool
        self._flush: Callable[[], None] | None = None
        self._writes = writes(self.registrar, self.presence, self._settle, self._schedule)
        self.router.writes = self._writes
        self.router.meter = self.meter = meter
        self.transactions = (
            TransactionLayer(settings.timers)
            if meter is None
            else MeteredTransactions(
                settings.timers, meter, self._party_of_flow, self.router.party_of_hop
            )
        )
        self._prober = Prober(self.router.hops, settings.name, self._via_for)
        self._probe_hops = [hop_of(route) for route in settings.routes]
        self._probe_at: float | None = None
        self._persist_at: float | None = None
        self._house_wall: float | None = None
        self._house_at: float | None = None
        self._notifies: dict[ClientKey, str] = {}
        """Our own NOTIFY transactions -> the subscription each one serves."""
        self._branches = itertools.count(1)
        self._branch_prefix = f"{MAGIC_COOKIE}n{os.urandom(4).hex()}."
        self._now = 0.0
        self.proxy: StatefulProxy | None = None
        self._late_refused = 0
        self._late_logged_at = -LATE_LOG_INTERVAL

    def start(
        self,
        bound: Mapping[str, tuple[str, int]],
        restored: Iterable[str],
        now: float,
        took_over: bool = False,
    ) -> None:
        """The listeners are bound (port per listener kind) and the registrar and presence
        agent restored (``restored``: the users with stored bindings): watchers learn the
        current state at once, not at their next refresh (DESIGN §4). ``took_over``: the
        listeners were handed over by a process of this node, whose clients connect
        again (``NodeRouter.clients_return_until``)."""
        self._now = self.router.now = now
        if took_over:
            self.router.clients_return_until = now + CLIENTS_RETURN_WITHIN
        settings = self.settings
        listeners = listeners_of(bound, settings.address, settings.name)
        self.router.listeners = listeners
        self.proxy = StatefulProxy(
            self.transactions,
            name=settings.name,
            listeners=listeners,
            router=self.router,
            route_stamp=self.router.route_stamp,
            also_known_as=frozenset((settings.address, port) for _, port in bound.values()),
        )
        self.router.is_ours = self.proxy.is_ours
        self._probe_at = self.router.hops.next_due(self._probe_hops, now)
        self.restored(restored, now)

    def restored(self, restored: Iterable[str], now: float) -> None:
        """The registrar and presence agent were restored from the store (``restored``:
        the users with stored bindings): every watcher learns the current state."""
        self._now = self.router.now = now
        wall = self._clock.wall()
        for aor in restored:
            self.router.registration_changed(aor, wall)
        # renotify_all tells every watcher: the NOTIFYs of registration_changed are not needed.
        self._outbox[:] = self.presence.renotify_all(wall)
        self._pump(now)

    def reload(self, settings: CoreSettings, now: float) -> None:
        """Apply new routes, users, trust and limits; a changed block list shows at once
        (the watcher now sees Offline, or again the real state)."""
        current, self.settings = self.settings, settings
        self.router.reload(settings)
        if isinstance(self.transactions, MeteredTransactions):
            self.transactions.forget_parties()
        self._probe_hops = [hop_of(route) for route in settings.routes]
        self._probe_at = self.router.hops.next_due(self._probe_hops, now)
        wall = self._clock.wall()
        for aor in current.blocked.keys() | settings.blocked.keys():
            if current.blocked.get(aor) != settings.blocked.get(aor):
                self._outbox += self.presence.block_list_changed(aor, wall)
        if self.proxy is not None:
            self._pump(now)

    def end_user(self, aor: str, now: float) -> int:
        """``aor`` moved to the other partition: its watchers are told its subscriptions
        ended (reason=deactivated) and subscribe again at its new home; returns how many."""
        notifies = self.presence.deactivate(aor, self._clock.wall())
        self._outbox += notifies
        self._writes.save_presence()
        self._pump(now)
        return len(notifies)

    def member_bindings(self, aor: str, member: str, expires_at: float, now: float) -> None:
        """Another member of the pool holds registrations of ``aor`` until ``expires_at``
        (0: none any more): requests for ``aor`` are relayed there, and the watchers held
        here see the user online (or offline)."""
        self.pool.bindings_changed(aor, member, expires_at)
        if aor in self.settings.users:
            self.router.registration_changed(aor, self._clock.wall())
            self._pump(now)

    def member_gone(self, member: str, now: float) -> None:
        """Another member stopped running: the users only it held go offline for the
        watchers held here (until their clients register again)."""
        wall = self._clock.wall()
        for aor in self.pool.member_gone(member):
            if aor in self.settings.users:
                self.router.registration_changed(aor, wall)
        self._pump(now)

    def adopted(self, adopt: Callable[[float], list[OutgoingNotify]], now: float) -> None:
        """The subscriptions of a member that is gone are this node's now: ``adopt(wall)``
        hands them to the presence agent, whose NOTIFYs of the current state leave."""
        self._outbox += adopt(self._clock.wall())
        self._pump(now)

    def member_presence(
        self, aor: str, change: Callable[[float], list[OutgoingNotify]], now: float
    ) -> None:
        """Another member changed a publication of ``aor``; ``change(wall)`` applies it to
        the presence agent: the watchers held here see it."""
        if aor in self.settings.users:
            self._outbox += change(self._clock.wall())
            self._pump(now)

    @property
    def idle(self) -> bool:
        """Whether no transaction is pending but probes (a graceful stop may end)."""
        return self.transactions.pending <= self._prober.pending

    # -- input ---------------------------------------------------------------------------

    def receive(
        self, frame: bytes, flow: FlowId, peer: Peer, now: float, waited: float = 0.0
    ) -> None:
        """A whole frame arrived on ``flow`` from ``peer``; it was read ``waited`` seconds
        ago (the node was busy with the frames read before it)."""
        self._flows[flow] = peer
        self._now = self.router.now = now
        if waited and self._refused_late(frame, flow, peer, now, waited):
            return
        try:
            message = parse_message(frame, stream=True)
        except RemoteSipError as exc:
            self._answer_unparsable(frame, flow, peer, exc)
            return
        if isinstance(message, Request):
            self.transactions.receive_request(self._note_source(message, flow, peer), flow, now)
        else:
            self.transactions.receive_response(message, flow, now)
        self._pump(now)

    def _refused_late(
        self, frame: bytes, flow: FlowId, peer: Peer, now: float, waited: float
    ) -> bool:
        """Answer 503 from the raw frame when it waited too long (``Admission``)."""
        answer = self.router.refuse_late(frame, waited)
        # The other partition's requests were admitted there: refusing them here would
        # cost it a full relay of the 503 for each, so only the entry sheds.
        if answer is None or self.router.party(peer) == PEER_PARTITION:
            return False
        self._actions.append(Send(flow, answer))
        self._late_refused += 1
        if now >= self._late_logged_at + LATE_LOG_INTERVAL:
            self._log(
                logging.WARNING,
                f"overloaded: {self._late_refused} new request(s) answered 503 since the last "
                f"report, each after waiting over "
                f"{self.settings.admission.max_read_delay * 1000:.0f} ms to be handled",
            )
            self._late_logged_at, self._late_refused = now, 0
        if self.meter is not None:
            method = frame.partition(b" ")[0].decode("ascii", "replace")
            method, party = method_label(method), self.router.party(peer)
            self.meter.requests["in", method, party] += 1
            self.meter.responses["out", method, "5xx", party] += 1
        return True

    def bad_stream(self, error: FramingError) -> bytes | None:
        """Framing was lost on a flow: what to write before it is closed, or None."""
        return response_to_unparsable(error.head, error.status, error.reason, self.settings.name)

    def flow_closed(self, flow: FlowId, now: float, clean: bool = False) -> None:
        """Requests written on ``flow`` fail now (RFC 3261 §16.9), not at timer F; when
        the peer closed it ``clean`` (having read nothing after its last response), those
        it left unanswered to a next hop go there again (``TransactionLayer.flow_closed``)."""
        self._flows.pop(flow, None)
        self.router.flow_closed(flow)
        if self.proxy is not None:
            again = self.transactions.flow_closed(flow, now, clean)
            if again:
                self._log(
                    logging.INFO,
                    f"flow {flow} closed cleanly with {again} request(s) unread: sent again",
                )
            self._pump(now)

    def sent_on(self, hop: NextHop, flow: FlowId, peer: Peer) -> None:
        """A ``Connect`` went out on ``flow`` (to ``peer``)."""
        self._flows[flow] = peer
        self.transactions.sent_on(hop, flow)

    def undeliverable(self, action: Send | Connect, reason: str, now: float) -> None:
        """An action could not be carried out: a response whose flow is gone goes where
        RFC 3261 §18.2.2 says; a request fails its transaction at once."""
        if isinstance(action, Send):
            hop = self._response_fallback(action.data)
            if hop is None:
                self._log(
                    logging.INFO, f"flow {action.flow} is gone; dropping {len(action.data)} bytes"
                )
            else:
                self._actions.append(self._connect(hop, action.data))
            return
        self._log(logging.WARNING, f"cannot deliver to {action.ip}:{action.hop.port}: {reason}")
        try:
            message = parse_message(action.data, stream=True)
        except RemoteSipError:
            return
        if isinstance(message, Request) and message.method != "ACK":
            self.transactions.transport_failed(client_key(message), reason, now)
            self._pump(now)

    def persist(self, now: float) -> None:
        """The turn that asked for ``Persist`` is over: store what the state writer queued
        and answer its requests; rows a failed write put back are tried again later."""
        self._now = self.router.now = now
        flush, self._flush = self._flush, None
        if flush is not None:
            flush()
        if self.presence.unsaved and self._persist_at is None:
            self._persist_at = now + STORE_RETRY
        self._pump(now)

    def _schedule(self, flush: Callable[[], None]) -> None:
        self._flush = flush
        self._actions.append(Persist())

    def _settle(self, settled: Sequence[Settlement]) -> None:
        """Answers whose changes are stored (or refused), with what they cause."""
        now, wall = self._now, self._clock.wall()
        for item in settled:
            for aor in item.registered:
                self.router.registration_changed(aor, wall)
                self._decide_again(self.proxy.held.take(aor) if self.proxy else [], now)
            self._outbox += item.notifies
            try:
                self.transactions.send_response(server_key(item.request), item.response, now)
            except LocalSipError as exc:  # its connection closed meanwhile
                self._log(logging.INFO, f"no answer to {item.request.method}: {exc}")

    def _decide_again(self, held: Iterable[Held], now: float) -> None:
        """Route again the requests held for a user who registered again (or whose wait
        ended: they get the answer they were held from)."""
        proxy = self.proxy
        assert proxy is not None
        for each in held:
            decision: Decision = each.decision
            if each.decision.until > now:
                again = self.router.decide(each.request, each.event.flow)
                if isinstance(again, AwaitRegistration):
                    proxy.held.hold(each)
                    continue
                decision = again
            proxy.carry_out(each.event, each.request, each.loop, decision, now)

    # -- time ----------------------------------------------------------------------------

    def get_timer(self) -> float | None:
        """The one deadline at which ``handle_timer`` has work, or None."""
        deadline = self.transactions.get_timer()
        router = self.router
        if router.probe_soon:
            router.probe_soon = False
            self._probe_at = router.hops.next_due(self._probe_hops, self._now)
        # Written out, not looped: this runs after every message.
        other = self._house_deadline()
        if other is not None and (deadline is None or other < deadline):
            deadline = other
        other = self._probe_at
        if other is not None and (deadline is None or other < deadline):
            deadline = other
        other = self._persist_at
        if other is not None and (deadline is None or other < deadline):
            deadline = other
        other = self.proxy.held.deadline() if self.proxy is not None else None
        if other is not None and (deadline is None or other < deadline):
            deadline = other
        return deadline

    def handle_timer(self, now: float) -> None:
        """Fire everything due at ``now``."""
        self._now = self.router.now = now
        self.transactions.handle_timer(now)
        house = self._house_deadline()
        if house is not None and house <= now:
            # The monotonic deadline says it is time, even if the wall clock lags a hair.
            wall = max(self._clock.wall(), self._house_wall or 0.0)
            lapse = self.router.lapse_at
            if lapse is not None and lapse <= wall:
                self.router.lapse_registrations(wall)
            presence = self.presence.next_deadline()
            if presence is not None and presence <= wall:
                self._outbox += self.presence.expire(wall)
                self._writes.save_presence()
            self._house_wall = None
        if self._persist_at is not None and self._persist_at <= now:
            self._persist_at = None
            self._writes.save_presence()
        if self._probe_at is not None and self._probe_at <= now:
            self._prober.probe(self.transactions, self.settings.routes, now)
            self._probe_at = self.router.hops.next_due(self._probe_hops, now)
        if self.proxy is not None:
            self._decide_again(self.proxy.held.expired(now), now)
        self._pump(now)

    def _house_deadline(self) -> float | None:
        """The monotonic time of the next presence deadline or registration lapse (both
        kept in wall time), converted once per deadline so the timer stays put."""
        wall = self.presence.next_deadline()
        lapse = self.router.lapse_at
        if lapse is not None and (wall is None or lapse < wall):
            wall = lapse
        if wall is None:
            return None
        if wall != self._house_wall:
            self._house_wall = wall
            self._house_at = self._now + (wall - self._clock.wall())
        return self._house_at

    def next_action(self) -> Action | None:
        """The next thing to do, or None."""
        actions = self._actions
        return actions.popleft() if actions else None

    # -- the sans-IO loop ----------------------------------------------------------------

    def _pump(self, now: float) -> None:
        self._now = self.router.now = now
        proxy = self.proxy
        assert proxy is not None
        transactions = self.transactions
        # A failure stays with its event or message: the rest of the batch is other requests'.
        while (event := transactions.next_event()) is not None:
            try:
                if not (self._notifies and self._on_notify_event(event)) and not (
                    self._prober.pending and self._prober.outcome(event, now)
                ):
                    proxy.handle(event, now)
            except Exception as exc:
                self._log(
                    logging.WARNING, f"handling failed: {proxy.answer_failure(event, exc, now)}"
                )
        if self._outbox:
            self._send_notifies(now)
        actions = self._actions
        for target, data in transactions.outgoing():
            if isinstance(target, int):
                actions.append(Send(target, data))
            else:
                actions.append(self._connect(target, data))

    def _connect(self, hop: NextHop, data: bytes) -> Connect:
        member = self.pool.connect_to(hop)
        ip, server_name = member or resolve(hop, self.settings.hosts)
        return Connect(hop, ip, server_name, data)

    def _log(self, level: int, message: str) -> None:
        self._actions.append(LogEvent(level, message))

    def _party_of_flow(self, flow: FlowId) -> str:
        peer = self._flows.get(flow)
        return OTHER if peer is None else self.router.party(peer)

    def _note_source(self, request: Request, flow: FlowId, peer: Peer) -> Request:
        """RFC 3261 §18.2.1 received, RFC 3581 rport and RFC 5923 alias for the top Via."""
        via = request.top_via
        # Only a trusted peer's connection serves its sent-by: a client's would take over
        # whatever address it names (and another user's, from a reused address).
        if via.alias and self.router.trust(peer) is not None:
            self._actions.append(Alias(flow, *alias_address(via, self.settings.hosts)))
        return request.received_from(peer.ip, peer.port)

    def _answer_unparsable(
        self, frame: bytes, flow: FlowId, peer: Peer, error: RemoteSipError
    ) -> None:
        self._log(
            logging.WARNING,
            f"bad message from {peer.ip}:{peer.port} on flow {flow}: {error.status} {error.reason}",
        )
        answer = response_to_unparsable(frame, error.status, error.reason, self.settings.name)
        if answer is not None:
            self._actions.append(Send(flow, answer))

    def _response_fallback(self, data: bytes) -> NextHop | None:
        """RFC 3261 §18.2.2: when the request's connection is gone, a response goes where
        ``response_hop`` says, over a connection open there or a new one."""
        try:
            message = parse_message(data, stream=True)
        except RemoteSipError:
            return None
        if not isinstance(message, Response):
            return None
        hop = response_hop(message.top_via)
        if hop is None:
            self._log(
                logging.INFO, f"dropping a response for Via transport {message.top_via.transport}"
            )
        return hop

    # -- presence ------------------------------------------------------------------------

    def _send_notifies(self, now: float) -> None:
        outbox = self._outbox[:]
        self._outbox.clear()
        for notify in outbox:
            target = notify_target(notify, self._flows.get, self.router.dialog_target)
            if target is None:  # the watcher's flow failed: retried until it registers again
                self.presence.notify_outcome(notify.subscription, 503, self._clock.wall())
                continue
            key = self.transactions.send_request(notify.request, target, now)
            self._notifies[key] = notify.subscription

    def _on_notify_event(self, event: TransactionEvent) -> bool:
        """Outcomes of our own NOTIFYs go to the presence agent; True when it was one."""
        if isinstance(event, ResponseReceived):
            key, status = event.transaction, event.response.status
            if status < 200:
                return key in self._notifies
        elif isinstance(event, ClientTimedOut):
            key, status = event.transaction, 408
        elif isinstance(event, ClientTransportFailed):
            key, status = event.transaction, 503
        else:
            return False
        subscription = self._notifies.pop(key, None)
        if subscription is None:
            return False
        self._outbox += self.presence.notify_outcome(subscription, status, self._clock.wall())
        self._writes.save_presence()
        return True

    def _via_for(self, target: Target) -> str:
        assert self.proxy is not None
        listener = self.proxy.listener_for(target)
        return listener.via(f"{self._branch_prefix}{next(self._branches):x}")
