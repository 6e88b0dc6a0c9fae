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
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

from intrafed import __version__
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
    Directory,
    PartitionHops,
    PeerTrust,
    StoredCredentials,
    TokenBuckets,
    TrustTable,
    authenticate,
    retry_after,
)
from intrafed.routing import HopHealth, Local, RoutingTables, ToPeer, decide
from intrafed.services.presence import OutgoingNotify, PresenceAgent
from intrafed.services.proxy import (
    Answer,
    Decision,
    Fork,
    Forward,
    Listener,
    Reject,
    StatefulProxy,
    describe_failure,
    next_hop_for_uri,
    response_hop,
)
from intrafed.services.registrar import Binding, Registrar
from intrafed.sip import RemoteSipError, Request, Response, SipUri, Uri, parse_message, parse_uri
from intrafed.sip.digest import NonceIssuer
from intrafed.sip.errors import FramingError
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
)
from intrafed.store import ConfigStore
from intrafed.store.sqlite import BindingRow, PublicationRow, SubscriptionRow
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
                "%s listener on port %d not started: no certificate selected "
                "(intrafed pki select THUMBPRINT)",
                spec.transport,
                spec.port,
            )
    return NodeSettings(
        name=identity.fqdn,
        address=identity.ip,
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
        logger.warning("no TLS: %s", exc)
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
    return Directory(
        settings.domains, settings.users, settings.credentials, settings.digest_algorithms
    )


def _partition_hops(settings: NodeSettings) -> PartitionHops:
    return PartitionHops.of(settings.routes, settings.domains, settings.hosts)


Trace = Callable[[str, str, tuple[str, int], bytes], None]
"""Called with (node name, "received" | "sent", the other end's address, the message)."""


class StateStore(Protocol):
    """Where registrations, subscriptions and publications are kept across restarts
    (``ConfigStore`` is one): everything answered 2xx survives (DESIGN §8)."""

    def save_bindings(self, aor: str, rows: Sequence[BindingRow]) -> None: ...

    def load_bindings(self, now: float) -> list[BindingRow]: ...

    def save_subscription(self, row: SubscriptionRow) -> None: ...

    def delete_subscription(self, subscription_id: str) -> None: ...

    def load_subscriptions(self, now: float) -> list[SubscriptionRow]: ...

    def save_publication(self, row: PublicationRow) -> None: ...

    def delete_publication(self, etag: str) -> None: ...

    def load_publications(self, now: float) -> list[PublicationRow]: ...


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
        self._notifies: dict[ClientKey, str] = {}
        """Our own NOTIFY transactions -> the subscription each one serves."""
        self._outbox: list[OutgoingNotify] = []
        self._registered: set[str] = set()
        self._branches = itertools.count(1)
        self._branch_prefix = f"{MAGIC_COOKIE}n{os.urandom(4).hex()}."
        self._nonces = NonceIssuer(os.urandom(32))
        self._directory = _directory(settings)
        self._tables = _routing_tables(settings)
        self._partition = _partition_hops(settings)
        self._buckets = TokenBuckets(settings.rate_limits)
        self._hops = HopHealth()
        self.transactions = TransactionLayer(settings.timers)
        self.transport = TransportLayer(
            on_message=self._on_message,
            on_bad_stream=self._on_bad_stream,
            server_ssl=settings.server_ssl,
            mtls_ssl=settings.mtls_ssl,
            client_ssl=settings.client_ssl,
            limits=settings.limits,
            source_ip=settings.address,
        )
        self.proxy: StatefulProxy | None = None
        self._housekeeping: asyncio.Task[None] | None = None
        self._timer: asyncio.TimerHandle | None = None
        self._timer_deadline: float | None = None
        self._loop: asyncio.AbstractEventLoop | None = None

    @classmethod
    def from_home(cls, home: Path, store: ConfigStore, trace: Trace | None = None) -> Node:
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
            restored = {row[0] for row in rows}
            self.registrar.restore(Binding(*row) for row in rows)
            self.presence.restore(
                self._state.load_subscriptions(wall), self._state.load_publications(wall)
            )
        bound: dict[str, tuple[str, int]] = {}
        for spec in self.settings.listeners:
            bound[spec.transport] = await self.transport.listen(spec)
        listeners: dict[str, Listener] = {}
        for transport, (_, port) in bound.items():
            # MTLS is TLS on the wire; peers address TLS legs by name, TCP legs by address.
            wire = "TCP" if transport == "TCP" else "TLS"
            host = self.settings.address if wire == "TCP" else self.settings.name
            listeners.setdefault(wire, Listener(wire, host, port))
        self.proxy = StatefulProxy(
            self.transactions,
            name=self.settings.name,
            listeners=listeners,
            decide=self._decide,
            authorize=self._authorize,
            flow_transport=self._flow_transport,
            dialog_target=self._dialog_target,
            hop_outcome=self._hop_outcome,
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
        if self._housekeeping is not None:
            self._housekeeping.cancel()
        await self.transport.close(grace, idle=lambda: self.transactions.pending == 0)
        if self._timer is not None:
            self._timer.cancel()

    # -- routing (the federation routing of DESIGN §4 grows here) -----------------------

    def _trust(self, flow: Flow) -> PeerTrust | None:
        peer = flow.peer
        return self.settings.peers(peer.ip, peer.fqdns, flow.outbound)

    def _authorize(self, request: Request, flow_id: FlowId) -> Reject | Answer | Request | None:
        """DESIGN §4 "Authorize", per request (in-dialog ones included, DESIGN §8): a
        verified MTLS peer matching no trust entry gets 403; then the rate class of the
        peer; then digest authentication of clients."""
        flow = self.transport.flow(flow_id)
        if flow is None:
            return None
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
        )
        if isinstance(verdict, Response):
            return Answer(verdict)
        if verdict.identity is not None:
            flow.authenticated_as = verdict.identity
        return verdict.request

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
                registration = self.registrar.register(request, flow, now)
                for aor in registration.changed:
                    if self._state is not None:
                        self._state.save_bindings(aor, self._rows(aor, now))
                    self._registration_changed(aor, now)
                return Answer(registration.response)
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
            hops = [NextHop(r.transport, r.next_hop, r.port) for r in decision.routes]
            usable = self._hops.usable(hops, self._now())
            if not usable:
                return self._all_hops_down(request, hops)
            return Forward(usable[0], decision.request_uri, tuple(usable[1:]))
        return Reject(decision.status, decision.rule)

    def _all_hops_down(self, request: Request, hops: list[NextHop]) -> Answer:
        """Every next hop of the route failed lately: 503 at once, not a timeout per
        request (reliability matrix C1/C2)."""
        now = self._now()
        downs = [(hop, self._hops.down_reason(hop, now)) for hop in hops]
        wait = min(down[0] for _, down in downs if down is not None)
        reasons = "; ".join(
            f"{hop.transport} {hop.host}:{hop.port}: {down[1]}"
            for hop, down in downs
            if down is not None
        )
        return self._unavailable(
            request, "Next Hop Down", wait, f"static route next hops are down ({reasons})"
        )

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

    def _hop_outcome(self, target: Target, failure: str | None, refused: bool) -> None:
        if not isinstance(target, NextHop):
            return
        if failure is None:
            self._hops.answered(target)
        else:
            self._hops.failed(target, failure, self._now(), refused=refused)

    # -- presence ---------------------------------------------------------------------

    def _subscribe(self, request: Request, flow: FlowId, now: float) -> Decision:
        """A SUBSCRIBE for a homed user (or within one of our subscriptions): the presence
        agent answers; its NOTIFYs leave after the answer."""
        uri = request.uri
        user = uri.user if isinstance(uri, SipUri) else None
        listener = self._listener_for(self._flow_transport(flow))
        userinfo = f"{user}@" if user else ""
        transport = listener.transport.lower()
        contact = f"sip:{userinfo}{listener.host}:{listener.port};transport={transport}"
        response, notifies = self.presence.subscribe(request, flow, contact, now)
        self._outbox += notifies
        self._save_presence()
        return Answer(response)

    def _publish(self, request: Request, aor: str, now: float) -> Decision:
        """RFC 3903: only the user publishes the user's presence."""
        publisher = request.from_addr.uri
        if not isinstance(publisher, SipUri) or publisher.aor != aor:
            return Reject(403, f"only {aor} may publish the presence of {aor}")
        response, notifies = self.presence.publish(request, now)
        self._outbox += notifies
        self._save_presence()
        return Answer(response)

    def _registration_changed(self, aor: str, now: float) -> None:
        registered = bool(self.registrar.bindings(aor, now))
        if registered == (aor in self._registered):
            return
        if registered:
            self._registered.add(aor)
        else:
            self._registered.discard(aor)
        self._outbox += self.presence.registration_changed(aor, registered, now)

    def _save_presence(self) -> None:
        changes = self.presence.take_store_changes()
        state = self._state
        if state is None:
            return
        for subscription in changes.saved_subscriptions:
            state.save_subscription(subscription)
        for subscription_id in changes.deleted_subscriptions:
            state.delete_subscription(subscription_id)
        for publication in changes.saved_publications:
            state.save_publication(publication)
        for etag in changes.deleted_publications:
            state.delete_publication(etag)

    async def _keep_house(self) -> None:
        """Once a second: presence deadlines (expiries, NOTIFY retries) and registrations
        that lapsed without a REGISTER (the user goes Offline)."""
        while True:
            await asyncio.sleep(HOUSEKEEPING_INTERVAL)
            wall = time.time()
            for aor in list(self._registered):
                self._registration_changed(aor, wall)
            deadline = self.presence.next_deadline()
            if deadline is not None and deadline <= wall:
                self._outbox += self.presence.expire(wall)
            if self._outbox:
                self._save_presence()
                self._pump(self._now())

    def _send_notifies(self, now: float) -> None:
        outbox, self._outbox = self._outbox, []
        for notify in outbox:
            target = notify.target
            if isinstance(target, int) and self.transport.flow(target) is None:
                # The watcher's connection is gone: a re-registered client is reached
                # over its new one, anyone else at the contact address.
                target = self._dialog_target(notify.request.uri) or target
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
        self._save_presence()
        return True

    def _via_for(self, target: Target) -> str:
        transport = (
            target.transport if isinstance(target, NextHop) else self._flow_transport(target)
        )
        listener = self._listener_for(transport)
        branch = f"{self._branch_prefix}{next(self._branches):x}"
        return f"SIP/2.0/{listener.transport} {listener.host}:{listener.port};branch={branch};alias"

    def _listener_for(self, transport: str) -> Listener:
        assert self.proxy is not None
        listeners = self.proxy.listeners
        return listeners.get(transport) or next(iter(listeners.values()))

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
        settings = self.settings
        return host in settings.domains or host in (settings.name.lower(), settings.address)

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

    def _dialog_target(self, uri: Uri) -> Target | None:
        """An in-dialog request to a remote target: over the client's own connection when
        the target is a contact registered here, else to the address the URI names."""
        binding = self.registrar.binding_of_contact(str(uri), time.time())
        if binding is not None and binding.flow is not None:
            flow = self.transport.flow(binding.flow)
            if flow is not None:
                return flow.id
        return next_hop_for_uri(uri)

    def _rows(self, aor: str, now: float) -> list[BindingRow]:
        return [
            (b.aor, b.contact, b.expires_at, b.q, b.call_id, b.cseq)
            for b in self.registrar.bindings(aor, now)
        ]

    def _to_contacts(self, aor: str, now: float) -> Decision:
        """A homed user: every registered contact at once, over the registering flow when
        it is still open; offline → 480, never a trip to the other side (DESIGN §4)."""
        forwards = []
        for binding in self.registrar.bindings(aor, now):
            contact = parse_uri(binding.contact)
            flow = self.transport.flow(binding.flow) if binding.flow is not None else None
            target: Target | None = flow.id if flow is not None else next_hop_for_uri(contact)
            if target is not None:
                forwards.append(Forward(target, contact))
        if not forwards:
            return Reject(
                480, f"{aor} is provisioned here but not registered", "Temporarily Unavailable"
            )
        return Fork(tuple(forwards))

    # -- inbound --------------------------------------------------------------------

    def _flow_transport(self, flow_id: FlowId) -> str:
        flow = self.transport.flow(flow_id)
        if flow is None or flow.transport == "TCP":
            return "TCP"
        return "TLS"

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
        if via.alias:
            self.transport.register_alias(flow, via.host.strip("[]"), via.port or 5060)
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
                if not (self._notifies and self._on_notify_event(event)):
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
            return
        assert self._loop is not None
        self._loop.create_task(self._connect_and_send(destination, data))

    def _response_fallback(self, data: bytes) -> NextHop | None:
        """RFC 3261 §18.2.2: when the request's connection is gone, a response goes to the
        Via's received address (and rport) over a new connection."""
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

    async def _connect_and_send(self, destination: Destination, data: bytes) -> None:
        try:
            flow = await self.transport.connect(destination)
            if flow.send(data):
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
