"""One running node: listeners, the transaction layer and the stateful proxy, wired.

The node is the only place where the sans-IO layers meet asyncio: it feeds frames from the
transport to the parser and the transaction layer, lets the proxy act on the events, sends
what comes out, and keeps exactly one timer armed for the transaction layer.
"""

from __future__ import annotations

import asyncio
import dataclasses
import itertools
import logging
import os
import ssl
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path

from intrafed import __version__
from intrafed.burst_log import BurstLog
from intrafed.config.model import (
    DIGEST_ALGORITHMS,
    ConfigError,
    ImpListeners,
    NodeConfig,
    RateLimits,
    Role,
    RoutingMode,
    StaticRoute,
)
from intrafed.pki import CertificateStores, PkiError, TlsContexts
from intrafed.policy import (
    Accepted,
    Challenge,
    Directory,
    PartitionHops,
    PeerTrust,
    RouteStamp,
    StoredCredentials,
    TokenBuckets,
    TrustTable,
    Unanswered,
    authenticate,
    in_our_dialog,
    retry_after,
)
from intrafed.policy.admission import Admission, AdmissionLimits
from intrafed.routing import HopHealth, Local, RoutingTables, ToPeer, decide
from intrafed.routing.health import ProbeTimings
from intrafed.routing.probe import PROBE_TICK, Prober, hop_of
from intrafed.services.delivery import dialog_target, notify_target, to_bindings
from intrafed.services.presence import OutgoingNotify, PresenceAgent
from intrafed.services.proxy import (
    Answer,
    Decision,
    Deferred,
    Forward,
    Listener,
    Reject,
    StatefulProxy,
    describe_failure,
    response_hop,
)
from intrafed.services.registrar import Registrar
from intrafed.sip import RemoteSipError, Request, Response, SipUri, Uri, parse_message
from intrafed.sip.digest import NonceIssuer
from intrafed.sip.errors import FramingError, LocalSipError
from intrafed.sip.responses import local_tag, make_response, response_to_unparsable, warning_value
from intrafed.sip.transaction import (
    MAGIC_COOKIE,
    ClientKey,
    ClientTimedOut,
    ClientTransportFailed,
    FlowId,
    NextHop,
    ResponseReceived,
    Target,
    TimerConfig,
    TransactionEvent,
    TransactionLayer,
    client_key,
    server_key,
)
from intrafed.state_writes import Settled, StateWriter
from intrafed.store import StateStore, Store
from intrafed.transport import (
    Destination,
    Flow,
    ListenerSpec,
    TransportError,
    TransportLayer,
    TransportLimits,
)

logger = logging.getLogger(__name__)

HOUSEKEEPING_INTERVAL = 1.0
"""Seconds between checks of presence deadlines and lapsed registrations."""
ALLOWED_METHODS = (
    "INVITE, ACK, CANCEL, BYE, OPTIONS, REGISTER, MESSAGE, INFO, SUBSCRIBE, NOTIFY, PUBLISH"
)


@dataclass(frozen=True, slots=True)
class NodeSettings:
    """What one node needs to run as a stateful proxy."""

    name: str
    """The node's FQDN: Warning agent, and the host in Via and Record-Route of TLS legs."""
    address: str
    """The node's IP address: the host in Via and Record-Route of TCP legs."""
    listeners: tuple[ListenerSpec, ...]
    """The "connections": (ip All|address, transport TCP|TLS|MTLS, port)."""
    aliases: tuple[str, ...] = ()
    """Other names the node answers to as itself: an Enterprise front end's pool FQDN."""
    routes: tuple[StaticRoute, ...] = ()
    """Static routes (Matching URI, next hop, priority, phone URI, replace host)."""
    routing_mode: RoutingMode = RoutingMode.BASIC
    """IM&P: forward every user not homed here, or only those of the peer directory."""
    peer_directory: frozenset[str] = frozenset()
    """IM&P advanced routing mode: the OCS side's users, the only ones forwarded."""
    peers: Callable[[str, tuple[str, ...], bool], PeerTrust | None] = field(
        default=lambda ip, names, outbound: None
    )
    """Who the peer partition is: (source IP, verified names, whether we opened the
    connection) -> the trust it gets, or None."""
    hosts: Mapping[str, str] = field(default_factory=dict)
    """Static name resolution: FQDN -> IP address (the seed's lab has no DNS)."""
    domains: frozenset[str] = frozenset()
    """The SIP domains this side serves."""
    users: frozenset[str] = frozenset()
    """Addresses of record provisioned here (enabled or not): the registrar's users."""
    disabled: frozenset[str] = frozenset()
    """Provisioned users who are disabled: still homed here, but they cannot register."""
    credentials: Mapping[str, StoredCredentials] = field(default_factory=dict)
    """Digest HA1s of the users that have a password."""
    blocked: Mapping[str, frozenset[str]] = field(default_factory=dict)
    """Per user, the watchers who always see the user Offline (polite blocking)."""
    digest_algorithms: tuple[str, ...] = DIGEST_ALGORITHMS
    """Digest algorithms challenged with, most preferred first (and accepted)."""
    rate_limits: RateLimits = field(default_factory=RateLimits)
    """Requests per second of the client and server classes."""
    timers: TimerConfig = field(default_factory=TimerConfig)
    """RFC 3261 timer base values."""
    limits: TransportLimits = field(default_factory=TransportLimits)
    """Connection limits and timeouts."""
    server_ssl: ssl.SSLContext | None = None
    """Server context for TLS listeners (no client certificate asked)."""
    mtls_ssl: ssl.SSLContext | None = None
    """Server context for MTLS listeners (client certificate required)."""
    client_ssl: ssl.SSLContext | None = None
    """Client context for outbound TLS (hostname verification on)."""
    admission: AdmissionLimits = field(default_factory=AdmissionLimits)
    """When new requests are shed with 503 (overload)."""
    probes: ProbeTimings = field(default_factory=ProbeTimings)
    """How often static-route next hops are probed with OPTIONS."""


def settings_from_config(
    config: NodeConfig,
    *,
    server_ssl: ssl.SSLContext | None = None,
    mtls_ssl: ssl.SSLContext | None = None,
    client_ssl: ssl.SSLContext | None = None,
) -> NodeSettings:
    """The settings a node runs with, from its configuration. TLS and MTLS listeners need
    the matching context; without one they are left out and the reason is logged."""
    identity = config.identity
    if config.role is Role.OCS:
        wanted = [ListenerSpec(c.ip, c.transport, c.port) for c in config.connections]
    else:
        ports = config.listeners or ImpListeners()
        wanted = [
            ListenerSpec(identity.ip, "TCP", ports.tcp),
            ListenerSpec(identity.ip, "MTLS", ports.peer_auth),
            ListenerSpec(identity.ip, "TLS", ports.server_auth),
        ]
    contexts = {"TCP": True, "TLS": server_ssl is not None, "MTLS": mtls_ssl is not None}
    listeners = []
    for spec in wanted:
        if contexts[spec.transport]:
            listeners.append(spec)
        else:
            logger.warning(
                "%s listener on port %d not started: no TLS (the line 'no TLS' says why)",
                spec.transport,
                spec.port,
            )
    return NodeSettings(
        name=identity.fqdn,
        address=identity.ip,
        aliases=(identity.pool_fqdn,) if identity.pool_fqdn is not None else (),
        listeners=tuple(listeners),
        routes=config.routes,
        routing_mode=config.routing_mode,
        peer_directory=frozenset(config.peer_directory),
        rate_limits=config.rate_limits,
        digest_algorithms=config.digest_algorithms,
        peers=TrustTable.of(config).lookup,
        hosts={entry.fqdn: entry.ip for entry in config.hosts},
        domains=frozenset(config.domains),
        users=frozenset(user.aor for user in config.users),
        disabled=frozenset(user.aor for user in config.users if not user.enabled),
        credentials={
            user.aor: StoredCredentials(user.ha1_md5, user.ha1_sha256) for user in config.users
        },
        blocked={user.aor: frozenset(user.blocked) for user in config.users if user.blocked},
        server_ssl=server_ssl,
        mtls_ssl=mtls_ssl,
        client_ssl=client_ssl,
    )


def tls_contexts_of(home: Path, config: NodeConfig) -> TlsContexts | None:
    """The TLS contexts of the home's selected certificate, or None (TLS listeners stay
    off; the reason is logged)."""
    try:
        return TlsContexts(CertificateStores.of_home(home), config)
    except (PkiError, ConfigError) as exc:
        logger.error("no TLS: %s", exc)
        return None


def settings_with_tls(config: NodeConfig, tls: TlsContexts | None) -> NodeSettings:
    """``settings_from_config`` with the contexts of ``tls`` (when there are any)."""
    if tls is None:
        return settings_from_config(config)
    snapshot = tls.current
    return settings_from_config(
        config, server_ssl=snapshot.server, mtls_ssl=snapshot.mtls, client_ssl=snapshot.client
    )


def _routing_tables(settings: NodeSettings) -> RoutingTables:
    return RoutingTables(
        settings.domains,
        settings.users,
        settings.routes,
        settings.routing_mode,
        settings.peer_directory,
    )


def _directory(settings: NodeSettings) -> Directory:
    names = (settings.name.lower(), settings.address, *settings.aliases)
    return Directory(
        settings.domains, settings.users, settings.credentials, settings.digest_algorithms, names
    )


def _partition_hops(settings: NodeSettings) -> PartitionHops:
    return PartitionHops.of(settings.routes, settings.domains, settings.hosts)


Trace = Callable[[str, str, tuple[str, int], bytes], None]
"""Called with (node name, "received" | "sent", the other end's address, the message)."""


class Node:
    """A running node; ``start()`` binds the listeners, ``stop()`` shuts down gracefully."""

    def __init__(
        self, settings: NodeSettings, state: StateStore | None = None, trace: Trace | None = None
    ) -> None:
        self.settings = settings
        self._trace = trace
        self.registrar = Registrar(
            settings.name,
            lambda aor: aor in self.settings.users,
            lambda aor: aor in self.settings.disabled,
        )
        self._state = state
        self.presence = PresenceAgent(
            settings.name,
            is_homed=lambda aor: aor in self.settings.users,
            is_blocked=lambda presentity, watcher: (
                watcher in self.settings.blocked.get(presentity, ())
            ),
            via_for=self._via_for,
        )
        self._writes = StateWriter(
            state, settings.name, self.registrar, self.presence, self._settled
        )
        self._house_faults = BurstLog(logger, "housekeeping")
        self._notifies: dict[ClientKey, str] = {}
        """Our own NOTIFY transactions -> the subscription each one serves."""
        self._outbox: list[OutgoingNotify] = []
        self._registered: set[str] = set()
        self._branches = itertools.count(1)
        self._branch_prefix = f"{MAGIC_COOKIE}n{os.urandom(4).hex()}."
        self._nonces = NonceIssuer(os.urandom(32))
        self._route_stamp = RouteStamp(os.urandom(32))
        self._unanswered = Unanswered()
        self._directory = _directory(settings)
        self._tables = _routing_tables(settings)
        self._partition = _partition_hops(settings)
        self._buckets = TokenBuckets(settings.rate_limits)
        self._hops = HopHealth(timings=settings.probes)
        self._prober = Prober(self._hops, settings.name, self._via_for)
        self.transactions = TransactionLayer(settings.timers)
        self.transport = TransportLayer(
            on_message=self._on_message,
            on_bad_stream=self._on_bad_stream,
            on_closed=self._flow_closed,
            server_ssl=settings.server_ssl,
            mtls_ssl=settings.mtls_ssl,
            client_ssl=settings.client_ssl,
            limits=settings.limits,
            source_ip=settings.address,
        )
        self.proxy: StatefulProxy | None = None
        self._housekeeping: asyncio.Task[None] | None = None
        self._probing: asyncio.Task[None] | None = None
        self._timer: asyncio.TimerHandle | None = None
        self._timer_deadline: float | None = None
        self._loop: asyncio.AbstractEventLoop | None = None

    @classmethod
    def from_home(cls, home: Path, store: Store, trace: Trace | None = None) -> Node:
        """The node a home's running configuration describes, keeping its state in
        ``store`` (what ``intrafed serve`` runs)."""
        config = store.load("running")
        return cls(settings_with_tls(config, tls_contexts_of(home, config)), store, trace)

    async def start(self) -> dict[str, tuple[str, int]]:
        """Bind every listener; return the bound address per transport."""
        self._loop = asyncio.get_running_loop()
        wall = time.time()
        restored: set[str] = set()
        if self._state is not None:
            rows = self._state.load_bindings(wall)
            restored = {row.aor for row in rows}
            self.registrar.restore(rows)
            self.presence.restore(
                self._state.load_subscriptions(wall), self._state.load_publications(wall)
            )
        bound: dict[str, tuple[str, int]] = {}
        for spec in self.settings.listeners:
            bound[spec.transport] = await self.transport.listen(spec)
        listeners: dict[str, Listener] = {}
        for transport, (_, port) in bound.items():
            # MTLS is TLS on the wire; peers address TLS legs by name, TCP legs by address.
            host = self.settings.address if transport == "TCP" else self.settings.name
            listeners[transport] = Listener("TCP" if transport == "TCP" else "TLS", host, port)
        self.proxy = StatefulProxy(
            self.transactions,
            name=self.settings.name,
            listeners=listeners,
            decide=self._decide,
            authorize=self._authorize,
            route_stamp=self._route_stamp,
            flow_transport=self._flow_transport,
            dialog_target=self._dialog_target,
            hop_outcome=lambda hop, failure, refused: self._hops.outcome(
                hop, failure, self._now(), refused=refused
            ),
            shed=Admission(self.settings.admission, self.settings.name, self._trusted_flow).shed,
            also_known_as=frozenset((self.settings.address, port) for _, port in bound.values()),
        )
        # Watchers learn the current state at once, not at their next refresh (DESIGN §4);
        # renotify_all tells every watcher, so the NOTIFYs of registration_changed are
        # not needed.
        for aor in restored:
            if self.registrar.bindings(aor, wall):
                self._registered.add(aor)
                self.presence.registration_changed(aor, True, wall)
        self._outbox += self.presence.renotify_all(wall)
        self._pump(self._now())
        self._housekeeping = self._loop.create_task(self._keep_house())
        self._probing = self._loop.create_task(self._probe_hops())
        return bound

    def reload(self, settings: NodeSettings) -> str | None:
        """Apply new routes, hosts and TLS contexts without dropping connections (open
        flows keep their contexts); a change of listeners needs a restart and is refused
        (the reason is returned)."""
        current = self.settings
        if (settings.name, settings.address, settings.listeners) != (
            current.name,
            current.address,
            current.listeners,
        ):
            return "listeners or node identity changed: use intrafed service restart"
        self.transport.use_contexts(
            server_ssl=settings.server_ssl,
            mtls_ssl=settings.mtls_ssl,
            client_ssl=settings.client_ssl,
        )
        self.settings = dataclasses.replace(
            current,
            routes=settings.routes,
            routing_mode=settings.routing_mode,
            peer_directory=settings.peer_directory,
            peers=settings.peers,
            hosts=settings.hosts,
            domains=settings.domains,
            users=settings.users,
            disabled=settings.disabled,
            credentials=settings.credentials,
            blocked=settings.blocked,
            rate_limits=settings.rate_limits,
            digest_algorithms=settings.digest_algorithms,
            server_ssl=settings.server_ssl or current.server_ssl,
            mtls_ssl=settings.mtls_ssl or current.mtls_ssl,
            client_ssl=settings.client_ssl or current.client_ssl,
        )
        self._directory = _directory(self.settings)
        self._tables = _routing_tables(self.settings)
        self._partition = _partition_hops(self.settings)
        self._buckets.limits = settings.rate_limits
        # A block list that changed shows at once: the watcher now sees Offline, or again
        # the real state.
        wall = time.time()
        for aor in current.blocked.keys() | settings.blocked.keys():
            if current.blocked.get(aor) != settings.blocked.get(aor):
                self._outbox += self.presence.block_list_changed(aor, wall)
        if self._outbox and self.proxy is not None:
            self._pump(self._now())
        return None

    async def stop(self, grace: float = 5.0) -> None:
        """Stop accepting, let pending transactions finish (up to ``grace`` s), close."""
        for task in (self._housekeeping, self._probing):
            if task is not None:
                task.cancel()
        await self.transport.close(
            grace, idle=lambda: self.transactions.pending <= self._prober.pending
        )
        if self._timer is not None:
            self._timer.cancel()

    # -- routing (the federation routing of DESIGN §4 grows here) -----------------------

    def _trust(self, flow: Flow) -> PeerTrust | None:
        peer = flow.peer
        return self.settings.peers(peer.ip, peer.fqdns, flow.outbound)

    def _authorize(self, request: Request, flow_id: FlowId) -> Accepted | Reject | Answer:
        """DESIGN §4 "Authorize", per request (in-dialog ones included, DESIGN §8): a
        verified MTLS peer matching no trust entry gets 403; then the rate class of the
        peer; then digest authentication of clients."""
        flow = self.transport.flow(flow_id)
        if flow is None:
            return Reject(503, f"the connection of flow {flow_id} is gone")
        settings = self.settings
        trust = self._trust(flow)
        if trust is None and flow.transport == "MTLS":
            names = ", ".join(flow.peer.fqdns) or "no name"
            return Reject(
                403,
                f"MTLS peer {flow.peer.ip} ({names}) matches no host authorization "
                "or TLS peer subject",
            )
        now = time.time()
        server_class = trust is not None and trust.server_class
        wait = self._buckets.admit(
            trust.entry if trust is not None and server_class else flow.peer.ip, server_class, now
        )
        if wait is not None:
            rule = f"{'server' if server_class else 'client'} rate limit of {flow.peer.ip} exceeded"
            return self._unavailable(request, "Rate Limit Exceeded", wait, rule)
        verdict = authenticate(
            request,
            self._directory,
            self._nonces,
            now,
            settings.name,
            trust=trust,
            from_partition=self._is_partition(flow, trust),
            connection_identity=flow.authenticated_as,
            in_dialog=self.proxy is not None
            and in_our_dialog(
                request, self._route_stamp, self.proxy.is_ours, self.presence.owns_dialog
            ),
            unanswered=self._unanswered,
        )
        if isinstance(verdict, Challenge) and verdict.failed is not None:
            logger.warning(
                "authentication failed: %s from %s:%d (%s): wrong credentials",
                verdict.failed,
                *flow.remote,
                request.method,
            )
        if not isinstance(verdict, Accepted):
            return Answer(verdict.response)
        if verdict.identity is not None:
            flow.authenticated_as = verdict.identity
        return verdict

    def _decide(self, request: Request, flow: FlowId) -> Decision:
        """DESIGN §4: OPTIONS to the node itself, the registrar for our domains, local
        users to their contacts, the rest along the static routes (never back to the peer
        partition it came from)."""
        settings = self.settings
        uri = request.uri
        now = time.time()
        if isinstance(uri, SipUri):
            if request.method == "OPTIONS" and uri.user is None and self._addresses_us(uri.host):
                return Answer(self._options_answer(request))
            if request.method == "REGISTER" and uri.host.lower() in settings.domains:
                source = self.transport.flow(flow)
                self._writes.register(
                    request, flow, now, source.remote if source is not None else None
                )
                return Deferred()
        if request.to_addr.tag is not None and self.proxy is not None:
            if request.method == "SUBSCRIBE" and self.presence.owns_dialog(request):
                return self._subscribe(request, flow, now)
            if self.proxy.is_ours(uri):
                return Reject(
                    481,
                    "no dialog of this node matches the request",
                    "Call/Transaction Does Not Exist",
                )
        decision = decide(uri, self._tables, from_peer=self._from_peer_partition(flow))
        if isinstance(decision, Local):
            if request.method == "SUBSCRIBE":
                return self._subscribe(request, flow, now)
            if request.method == "PUBLISH":
                return self._publish(request, decision.aor, now)
            return self._to_contacts(decision.aor, now)
        if isinstance(decision, ToPeer):
            hops = [hop_of(route) for route in decision.routes]
            usable = self._hops.usable(hops, self._now())
            if not usable:
                # Every next hop failed lately: 503 at once, not a timeout per request.
                wait, rule = self._hops.all_down(hops, self._now())
                return self._unavailable(request, "Next Hop Down", wait, rule)
            return Forward(usable[0], decision.request_uri, tuple(usable[1:]))
        return Reject(decision.status, decision.rule)

    def _unavailable(self, request: Request, reason: str, wait: float, rule: str) -> Answer:
        """503 with Retry-After and the rule in the Warning."""
        return Answer(
            make_response(
                request,
                503,
                reason,
                to_tag=local_tag(request.call_id, str(request.cseq.number)),
                headers=[
                    ("Retry-After", retry_after(wait)),
                    ("Warning", warning_value(self.settings.name, rule)),
                ],
            )
        )

    def _trusted_flow(self, flow_id: FlowId) -> bool:
        flow = self.transport.flow(flow_id)
        return flow is not None and self._trust(flow) is not None

    # -- presence ---------------------------------------------------------------------

    def _subscribe(self, request: Request, flow: FlowId, now: float) -> Decision:
        """A SUBSCRIBE for a homed user (or within one of our subscriptions): the presence
        agent answers; its NOTIFYs leave after the answer."""
        uri = request.uri
        user = uri.user if isinstance(uri, SipUri) else None
        assert self.proxy is not None
        contact = self.proxy.listener_for(flow).contact(user)
        self._writes.presence_request(
            request, lambda: self.presence.subscribe(request, flow, contact, now)
        )
        return Deferred()

    def _publish(self, request: Request, aor: str, now: float) -> Decision:
        """RFC 3903: only the user publishes the user's presence."""
        publisher = request.from_addr.uri
        if not isinstance(publisher, SipUri) or publisher.aor != aor:
            return Reject(403, f"only {aor} may publish the presence of {aor}")
        self._writes.presence_request(request, lambda: self.presence.publish(request, now))
        return Deferred()

    def _settled(self, settled: list[Settled]) -> None:
        """Answers whose changes are stored (or refused), with what they cause."""
        now, wall = self._now(), time.time()
        for item in settled:
            for aor in item.registered:
                self._registration_changed(aor, wall)
            self._outbox += item.notifies
            try:
                self.transactions.send_response(server_key(item.request), item.response, now)
            except LocalSipError as exc:  # its connection closed meanwhile
                logger.info("no answer to %s: %s", item.request.method, exc)
        self._pump(now)

    def _registration_changed(self, aor: str, now: float) -> None:
        registered = bool(self.registrar.bindings(aor, now))
        if registered == (aor in self._registered):
            return
        if registered:
            self._registered.add(aor)
        else:
            self._registered.discard(aor)
        self._outbox += self.presence.registration_changed(aor, registered, now)

    async def _keep_house(self) -> None:
        """Once a second: presence deadlines (expiries, NOTIFY retries) and registrations
        that lapsed without a REGISTER (the user goes Offline)."""
        while True:
            await asyncio.sleep(HOUSEKEEPING_INTERVAL)
            try:
                wall = time.time()
                for aor in list(self._registered):
                    self._registration_changed(aor, wall)
                deadline = self.presence.next_deadline()
                if deadline is not None and deadline <= wall:
                    self._outbox += self.presence.expire(wall)
                self._writes.save_presence()
                if self._outbox:
                    self._pump(self._now())
            except Exception as exc:  # nothing may end housekeeping (STYLE 17)
                self._house_faults.failed(repr(exc), exc)
            else:
                self._house_faults.succeeded()

    async def _probe_hops(self) -> None:
        """OPTIONS to the static routes' next hops when routing/health.py says so."""
        while True:  # a down hop comes back only by a probe: this loop must survive
            await asyncio.sleep(PROBE_TICK)
            try:
                if self._prober.probe(self.transactions, self.settings.routes, self._now()):
                    self._pump(self._now())
            except Exception:
                logger.exception("probing the static routes' next hops failed")

    def _send_notifies(self, now: float) -> None:
        outbox, self._outbox = self._outbox, []
        for notify in outbox:
            target = notify_target(notify, self.transport.flow, self._dialog_target)
            if target is None:  # the watcher's flow failed: retried until it registers again
                self.presence.notify_outcome(notify.subscription, 503, time.time())
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
        self._outbox += self.presence.notify_outcome(subscription, status, time.time())
        self._writes.save_presence()
        return True

    def _via_for(self, target: Target) -> str:
        assert self.proxy is not None
        listener = self.proxy.listener_for(target)
        return listener.via(f"{self._branch_prefix}{next(self._branches):x}")

    def _from_peer_partition(self, flow_id: FlowId) -> bool:
        """Whether the request on ``flow_id`` came from the other partition."""
        flow = self.transport.flow(flow_id)
        return flow is not None and self._is_partition(flow, self._trust(flow))

    def _is_partition(self, flow: Flow, trust: PeerTrust | None) -> bool:
        """A trusted peer that is the next hop of one of our static routes is the other
        partition (other trusted hosts, such as gateways, are not)."""
        peer = flow.peer
        return trust is not None and self._partition.route_for(peer.ip, peer.fqdns) is not None

    def _addresses_us(self, host: str) -> bool:
        """Whether a Request-URI host without a user part names this node or its domain."""
        host = host.lower().strip("[]")
        return host in self.settings.domains or host in self._directory.node_names

    def _options_answer(self, request: Request) -> Response:
        """OPTIONS to the node (RFC 3261 §11): what it does (the probe and keepalives)."""
        return make_response(
            request,
            200,
            to_tag=local_tag(request.call_id, str(request.cseq.number)),
            headers=[
                ("Allow", ALLOWED_METHODS),
                ("Accept", "application/sdp, application/pidf+xml, text/plain"),
                ("Supported", "path, outbound"),
                ("Server", f"intrafed/{__version__}"),
            ],
        )

    def _dialog_target(self, uri: Uri) -> Target | Reject | None:
        """An in-dialog request to a remote target: over the connection of a contact
        registered here (430 when that is gone), else to the address the URI names."""
        binding = self.registrar.binding_of_contact(str(uri), time.time())
        return dialog_target(binding, uri, self.transport.flow)

    def _to_contacts(self, aor: str, now: float) -> Decision:
        """A homed user: every registered contact at once, over the registering flow (430
        when it is gone); offline → 480, never a trip to the other side (DESIGN §4)."""
        return to_bindings(aor, self.registrar.bindings(aor, now), self.transport.flow)

    # -- inbound --------------------------------------------------------------------

    def _flow_transport(self, flow_id: FlowId) -> str:
        """The listener a flow arrived on; our own TLS connections advertise MTLS."""
        flow = self.transport.flow(flow_id)
        if flow is None:
            return "TCP"
        return "MTLS" if flow.outbound and flow.transport == "TLS" else flow.transport

    def _on_message(self, flow: Flow, frame: bytes) -> None:
        if self._trace is not None:
            self._trace(self.settings.name, "received", flow.remote, frame)
        try:
            message = parse_message(frame, stream=True)
        except RemoteSipError as exc:
            self._answer_unparsable(flow, frame, exc)
            return
        now = self._now()
        if isinstance(message, Request):
            message = self._note_source(message, flow)
            self.transactions.receive_request(message, flow.id, now)
        else:
            self.transactions.receive_response(message, flow.id, now)
        self._pump(now)

    def _note_source(self, request: Request, flow: Flow) -> Request:
        """RFC 3261 §18.2.1 received, RFC 3581 rport and RFC 5923 alias for the top Via."""
        via = request.top_via
        # Only a trusted peer's connection serves its sent-by: a client's would take over
        # whatever address it names (and another user's, from a reused address).
        if via.alias and self._trust(flow) is not None:
            host = via.host.strip("[]")
            host = self.settings.hosts.get(host.lower(), host)  # as _destination resolves it
            self.transport.register_alias(flow, host, via.port or 5060)
        return request.received_from(*flow.remote)

    def _answer_unparsable(self, flow: Flow, frame: bytes, error: RemoteSipError) -> None:
        logger.warning(
            "bad message from %s:%d on flow %d: %d %s",
            *flow.remote,
            flow.id,
            error.status,
            error.reason,
        )
        answer = response_to_unparsable(frame, error.status, error.reason, self.settings.name)
        if answer is not None:
            flow.send(answer)

    def _on_bad_stream(self, flow: Flow, error: FramingError) -> bytes | None:
        return response_to_unparsable(error.head, error.status, error.reason, self.settings.name)

    def _flow_closed(self, flow: Flow) -> None:
        """Requests written on ``flow`` fail now (RFC 3261 §16.9), not at timer F."""
        if self.proxy is not None and self._loop is not None:
            self.transactions.flow_closed(flow.id, self._now())
            self._loop.call_soon(lambda: self._pump(self._now()))

    # -- the sans-IO loop -----------------------------------------------------------

    def _now(self) -> float:
        assert self._loop is not None
        return self._loop.time()

    def _pump(self, now: float) -> None:
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
                logger.warning("handling failed: %s", proxy.answer_failure(event, exc, now))
        if self._outbox:
            self._send_notifies(now)
        for target, data in transactions.outgoing():
            try:
                self._deliver(target, data)
            except Exception as exc:
                logger.warning("cannot send to %s: %s", target, describe_failure(exc))
                self._report_failure(data, describe_failure(exc))
        self._arm_timer()

    def _arm_timer(self) -> None:
        deadline = self.transactions.get_timer()
        if deadline == self._timer_deadline:
            return
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        self._timer_deadline = deadline
        if deadline is not None:
            assert self._loop is not None
            self._timer = self._loop.call_at(deadline, self._on_timer)

    def _on_timer(self) -> None:
        self._timer = None
        self._timer_deadline = None
        now = self._now()
        self.transactions.handle_timer(now)
        self._pump(now)

    # -- outbound -------------------------------------------------------------------

    def _deliver(self, target: Target, data: bytes) -> None:
        if isinstance(target, int):
            flow = self.transport.flow(target)
            if flow is not None and flow.send(data):
                if self._trace is not None:
                    self._trace(self.settings.name, "sent", flow.remote, data)
                return
            fallback = self._response_fallback(data)
            if fallback is None:
                logger.info("flow %d is gone; dropping %d bytes", target, len(data))
                return
            target = fallback
        destination = self._destination(target)
        if self._trace is not None:
            self._trace(self.settings.name, "sent", (destination.host, destination.port), data)
        pooled = self.transport.pooled(destination)
        if pooled is not None and pooled.send(data):
            self.transactions.sent_on(target, pooled.id)
            return
        assert self._loop is not None
        self._loop.create_task(self._connect_and_send(target, destination, data))

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
            logger.info("dropping a response for Via transport %s", message.top_via.transport)
        return hop

    def _destination(self, hop: NextHop) -> Destination:
        ip = self.settings.hosts.get(hop.host.lower(), hop.host)
        server_name = hop.host if hop.transport == "TLS" else None
        return Destination(hop.transport, ip, hop.port, server_name)

    async def _connect_and_send(self, hop: NextHop, destination: Destination, data: bytes) -> None:
        try:
            flow = await self.transport.connect(destination)
            if flow.send(data):
                self.transactions.sent_on(hop, flow.id)
                return
            reason = f"connection to {destination.host}:{destination.port} closed"
        except TransportError as exc:
            reason = str(exc)
        logger.warning("cannot deliver to %s:%d: %s", destination.host, destination.port, reason)
        self._report_failure(data, reason)

    def _report_failure(self, data: bytes, reason: str) -> None:
        try:
            message = parse_message(data, stream=True)
        except RemoteSipError:
            return
        if isinstance(message, Request) and message.method != "ACK":
            now = self._now()
            self.transactions.transport_failed(client_key(message), reason, now)
            self._pump(now)
