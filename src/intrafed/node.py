"""One running node: the asyncio runner of a ``NodeCore``.

The node is the only place where the sans-IO core meets asyncio: it owns the listeners
and connections, feeds the core every frame and flow event with the loop's time, carries
out the core's actions, and keeps exactly one timer armed at the core's deadline.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import socket
import ssl
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path

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
from intrafed.core import Alias, Connect, LogEvent, NodeCore, Peer, Persist, Send
from intrafed.core.meter import Meter
from intrafed.core.node_core import Schedule, Settle
from intrafed.core.pool_view import PoolView
from intrafed.pki import CertificateStores, PkiError, TlsContexts, pool_names
from intrafed.policy import PeerTrust, StoredCredentials, TrustTable
from intrafed.policy.admission import AdmissionLimits
from intrafed.routing.health import ProbeTimings
from intrafed.services.presence import PresenceAgent
from intrafed.services.proxy import describe_failure
from intrafed.services.registrar import Registrar
from intrafed.sip.errors import FramingError
from intrafed.sip.transaction import TimerConfig, TransactionLayer
from intrafed.state_writes import (
    StateWriter,
    StoredState,
    WriterThread,
    inline,
    load_state,
    read_when_reachable,
    restore,
)
from intrafed.store import StateStore, Store, StoreError
from intrafed.store.pool_events import (
    MemberBindings,
    MemberGone,
    MemberListening,
    MemberPublished,
    MemberUnpublished,
    PoolEvent,
    PoolFeed,
)
from intrafed.store.sqlite import SqliteStore
from intrafed.transport import (
    DRAIN_IDLE_WAIT,
    Destination,
    Flow,
    ListenerSpec,
    TransportError,
    TransportLayer,
    TransportLimits,
)

logger = logging.getLogger(__name__)


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
    """Other names the node answers to as itself: its pool's or cluster's (``pool_names``)."""
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
    pool: str | None = None
    """The Enterprise pool (its FQDN) or IM&P cluster (its name) of the node, if any."""
    pool_certificate: str | None = None
    """The name every member's certificate shows (an Enterprise pool's FQDN); None when
    each member shows its own FQDN."""


def listener_specs(config: NodeConfig) -> list[ListenerSpec]:
    """The listening sockets ``config`` asks for: an OCS node's connections, or an IM&P
    node's three ports."""
    if config.role is Role.OCS:
        return [ListenerSpec(c.ip, c.transport, c.port) for c in config.connections]
    ports = config.listeners or ImpListeners()
    ip = config.identity.ip
    return [
        ListenerSpec(ip, "TCP", ports.tcp),
        ListenerSpec(ip, "MTLS", ports.peer_auth),
        ListenerSpec(ip, "TLS", ports.server_auth),
    ]


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
    contexts = {"TCP": True, "TLS": server_ssl is not None, "MTLS": mtls_ssl is not None}
    listeners = []
    for spec in listener_specs(config):
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
        aliases=pool_names(identity),
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
        pool=identity.pool,
        pool_certificate=identity.pool_fqdn,
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


Trace = Callable[[str, str, tuple[str, int], bytes], None]
"""Called with (node name, "received" | "sent", the other end's address, the message)."""
Wire = Callable[[str, Flow, bytes], None]
"""Called with ("in" | "out", the flow, the message) for each message on a connection."""


class _SystemClock:
    """Wall time for the core's stored expiries."""

    @staticmethod
    def wall() -> float:
        return time.time()


class Node:
    """A running node; ``start()`` binds the listeners, ``stop()`` shuts down gracefully."""

    def __init__(
        self,
        settings: NodeSettings,
        state: StateStore | None = None,
        trace: Trace | None = None,
        meter: Meter | None = None,
        pool: PoolFeed | None = None,
    ) -> None:
        """``pool``: the events of the other members of the node's pool, if in one."""
        self.settings = settings
        self._trace = trace
        self._state = state
        # A database over the network may hang: its writes go through a thread of their
        # own. An embedded file's take microseconds, on the event loop.
        off_loop = state is not None and not isinstance(state, SqliteStore)
        self._writer_thread = WriterThread(self._wake) if off_loop else None
        self._clock = _SystemClock()
        self._pool = pool
        self.state_writer: StateWriter | None = None
        view = PoolView(settings.pool, settings.pool_certificate, settings.client_ssl is not None)
        self.core = NodeCore(settings, self._clock, self._make_writer, meter, view)
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
        if meter is not None:
            self.transport.on_tls_failure(meter.tls_failed)
        self.wire: Wire | None = None
        """Sees every message received or sent on a flow (the SIP trace), when set."""
        self._peers: dict[int, Peer] = {}
        self._timer: asyncio.TimerHandle | None = None
        self._timer_deadline: float | None = None
        self._stopped = self._draining = False
        self._loop: asyncio.AbstractEventLoop | None = None
        self._loading: asyncio.Task[None] | None = None

    def _make_writer(
        self, registrar: Registrar, presence: PresenceAgent, settle: Settle, schedule: Schedule
    ) -> StateWriter:
        self.state_writer = StateWriter(
            self._state,
            self.settings.name,
            registrar,
            presence,
            settle,
            schedule,
            self._writer_thread or inline,
        )
        return self.state_writer

    def _wake(self) -> None:
        if self._loop is not None and not self._stopped:
            self._run()

    @property
    def registrar(self) -> Registrar:
        """The bindings of the users homed here."""
        return self.core.registrar

    @property
    def presence(self) -> PresenceAgent:
        """The presence agent of the users homed here."""
        return self.core.presence

    @property
    def transactions(self) -> TransactionLayer:
        """The core's transaction layer."""
        return self.core.transactions

    @classmethod
    def from_home(
        cls, home: Path, store: Store, trace: Trace | None = None, meter: Meter | None = None
    ) -> Node:
        """The node a home's running configuration describes, keeping its state in
        ``store`` (what ``intrafed serve`` runs)."""
        config = store.load("running")
        settings = settings_with_tls(config, tls_contexts_of(home, config))
        return cls(settings, store, trace, meter, store.pool_feed())

    async def start(
        self, inherited: Mapping[ListenerSpec, socket.socket] | None = None
    ) -> dict[str, tuple[str, int]]:
        """Bind every listener (or accept on the ``inherited`` socket of its spec, handed
        over by the process this one replaces); return the bound address per transport."""
        self._loop = asyncio.get_running_loop()
        restored: set[str] = set()
        if self._state is not None:
            try:
                restored = restore(self.registrar, self.presence, self._load())
            except StoreError as exc:
                if self._writer_thread is None:
                    raise
                self._degrade(exc)
        bound: dict[str, tuple[str, int]] = {}
        for spec in self.settings.listeners:
            bound[spec.transport] = await self.transport.listen(spec, (inherited or {}).get(spec))
        if self._pool is not None:
            restored |= self._join_pool(self._pool, self._loop)
        self.core.start(bound, restored, self._now(), took_over=inherited is not None)
        self._run()
        return bound

    def _join_pool(self, feed: PoolFeed, loop: asyncio.AbstractEventLoop) -> set[str]:
        """Learn the other members and whom they hold before the core starts (watchers see
        those users online at once), and hand it their changes from then on; returns the
        users registered at another member."""

        def deliver(event: PoolEvent) -> None:  # in the feed's thread
            loop.call_soon_threadsafe(self._pool_changed, event)

        elsewhere: set[str] = set()
        view = self.core.pool
        for event in feed.start(deliver):
            if isinstance(event, MemberListening):
                view.member_listening(event.member, event.ip, event.listeners)
            elif isinstance(event, MemberBindings):
                view.bindings_changed(event.aor, event.member, event.expires_at)
                elsewhere.add(event.aor)
        return elsewhere

    def _pool_changed(self, event: PoolEvent) -> None:
        """What another member of the pool changed, handed to the core."""
        if self._stopped or self._draining:
            return
        core, now, presence = self.core, self._now(), self.presence
        if isinstance(event, MemberListening):
            core.pool.member_listening(event.member, event.ip, event.listeners)
        elif isinstance(event, MemberBindings):
            core.member_bindings(event.aor, event.member, event.expires_at, now)
        elif isinstance(event, MemberPublished):
            row = event.row
            core.member_presence(row.aor, lambda wall: presence.member_published(row, wall), now)
        elif isinstance(event, MemberUnpublished):
            aor, etag = event.aor, event.etag
            core.member_presence(
                aor, lambda wall: presence.member_unpublished(aor, etag, wall), now
            )
        elif isinstance(event, MemberGone):
            core.member_gone(event.member, now)
        else:
            rows = tuple(
                dataclasses.replace(
                    row, local_contact=core.router.contact_taken_over(row.local_contact)
                )
                for row in event.rows
            )
            core.adopted(lambda wall: presence.adopt(rows, wall), now)
        self._run()

    def _degrade(self, error: StoreError) -> None:
        """The stored state cannot be read: serve what needs no write, refuse writes (a
        write now could not be told from the state not yet read), read it once it can be."""
        logger.error("degraded: %s; writes are refused until it can be read", error.message)
        assert self.state_writer is not None
        self.state_writer.refusing = error
        self._loading = asyncio.get_running_loop().create_task(self._read_when_reachable())

    async def _read_when_reachable(self) -> None:
        assert self._writer_thread is not None
        assert self.state_writer is not None
        loaded = await read_when_reachable(self._writer_thread, self._load, self.state_writer)
        self.core.restored(restore(self.registrar, self.presence, loaded), self._now())
        logger.info("ready: the stored state is read, writes are stored again")
        self._run()

    def _load(self) -> StoredState:
        assert self._state is not None
        return load_state(self._state, self._clock.wall())

    @property
    def degraded(self) -> str | None:
        """Why the node refuses writes (its stored state could not be read yet), or None."""
        refusing = None if self.state_writer is None else self.state_writer.refusing
        return None if refusing is None else refusing.message

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
        self.core.reload(self.settings, self._now() if self._loop is not None else 0.0)
        if self._loop is not None:
            self._run()
        return None

    def end_user(self, aor: str) -> int:
        """End the presence subscriptions of ``aor``, who moved (``NodeCore.end_user``)."""
        ended = self.core.end_user(aor, self._now())
        self._run()
        return ended

    async def drain(self, grace: float) -> None:
        """Another process accepts from now on and owns the member's subscriptions (this
        one no longer NOTIFYs for the other members' changes): ``TransportLayer.drain``,
        then stop."""
        self._draining = True
        await self.transport.drain(grace, idle=lambda: self.core.idle)
        await self.stop(grace=DRAIN_IDLE_WAIT)

    async def stop(self, grace: float = 5.0) -> None:
        """Stop accepting, let pending transactions finish (up to ``grace`` s), close."""
        if self._pool is not None:
            await asyncio.to_thread(self._pool.close)
        await self.transport.close(grace, idle=lambda: self.core.idle)
        self._stopped = True
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        if self._loading is not None:
            self._loading.cancel()
        if self._writer_thread is not None:
            await asyncio.to_thread(self._writer_thread.close)

    # -- the transport's callbacks ---------------------------------------------------------

    def _peer(self, flow: Flow) -> Peer:
        peer = self._peers.get(flow.id)
        if peer is None:
            identity = flow.peer
            peer = Peer(
                identity.ip, identity.port, identity.transport, identity.fqdns, flow.outbound
            )
            self._peers[flow.id] = peer
        return peer

    def _on_message(self, flow: Flow, frame: bytes) -> None:
        if self._trace is not None:
            self._trace(self.settings.name, "received", flow.remote, frame)
        if self.wire is not None:
            self.wire("in", flow, frame)
        now = self._now()
        self.core.receive(frame, flow.id, self._peer(flow), now, now - flow.read_at)
        self._run()

    def _on_bad_stream(self, flow: Flow, error: FramingError) -> bytes | None:
        return self.core.bad_stream(error)

    def _flow_closed(self, flow: Flow) -> None:
        self._peers.pop(flow.id, None)
        if self._loop is not None:
            self.core.flow_closed(flow.id, self._now(), flow.closed_cleanly)
            self._loop.call_soon(self._run)

    # -- the sans-IO loop ----------------------------------------------------------------

    def _now(self) -> float:
        assert self._loop is not None
        return self._loop.time()

    def _run(self) -> None:
        """Carry out the core's actions, then arm the one timer at its deadline."""
        core = self.core
        while (action := core.next_action()) is not None:
            if isinstance(action, Send):
                try:
                    self._send(action)
                except Exception as exc:  # one message's failure, not the node's
                    logger.warning("cannot send on flow %d: %s", action.flow, describe_failure(exc))
            elif isinstance(action, Connect):
                try:
                    self._connect(action)
                except Exception as exc:
                    core.undeliverable(action, describe_failure(exc), self._now())
            elif isinstance(action, Alias):
                flow = self.transport.flow(action.flow)
                if flow is not None:
                    self.transport.register_alias(flow, action.host, action.port)
            elif isinstance(action, LogEvent):
                logger.log(action.level, "%s", action.message)
            elif isinstance(action, Persist):
                assert self._loop is not None
                self._loop.call_soon(self._persist)
        deadline = None if self._stopped else core.get_timer()
        if deadline == self._timer_deadline:
            return
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        self._timer_deadline = deadline
        if deadline is not None:
            assert self._loop is not None
            self._timer = self._loop.call_at(deadline, self._on_timer)

    def _persist(self) -> None:
        self.core.persist(self._now())
        self._run()

    def _on_timer(self) -> None:
        self._timer = None
        self._timer_deadline = None
        self.core.handle_timer(self._now())
        self._run()

    def _send(self, action: Send) -> None:
        flow = self.transport.flow(action.flow)
        if flow is not None and flow.send(action.data):
            if self._trace is not None:
                self._trace(self.settings.name, "sent", flow.remote, action.data)
            if self.wire is not None:
                self.wire("out", flow, action.data)
            return
        self.core.undeliverable(action, "the flow is gone", self._now())

    def _connect(self, action: Connect) -> None:
        hop, data = action.hop, action.data
        destination = Destination(hop.transport, action.ip, hop.port, action.server_name)
        if self._trace is not None:
            self._trace(self.settings.name, "sent", (destination.host, destination.port), data)
        pooled = self.transport.pooled(destination)
        if pooled is not None and pooled.send(data):
            self.core.sent_on(hop, pooled.id, self._peer(pooled))
            if self.wire is not None:
                self.wire("out", pooled, data)
            return
        assert self._loop is not None
        self._loop.create_task(self._connect_and_send(action, destination))

    async def _connect_and_send(self, action: Connect, destination: Destination) -> None:
        try:
            flow = await self.transport.connect(destination)
            if flow.send(action.data):
                self.core.sent_on(action.hop, flow.id, self._peer(flow))
                if self.wire is not None:
                    self.wire("out", flow, action.data)
                return
            reason = f"connection to {destination.host}:{destination.port} closed"
        except TransportError as exc:
            reason = str(exc)
        self.core.undeliverable(action, reason, self._now())
        self._run()
