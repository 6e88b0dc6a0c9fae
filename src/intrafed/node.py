"""One running node: listeners, the transaction layer and the stateful proxy, wired.

The node is the only place where the sans-IO layers meet asyncio: it feeds frames from the
transport to the parser and the transaction layer, lets the proxy act on the events, sends
what comes out, and keeps exactly one timer armed for the transaction layer.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import os
import ssl
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Protocol

from intrafed import __version__
from intrafed.config.model import ImpListeners, NodeConfig, Role, RoutingMode, StaticRoute
from intrafed.policy import (
    Directory,
    PeerTrust,
    RateLimits,
    StoredCredentials,
    TokenBuckets,
    authenticate,
    peer_trust,
    retry_after,
)
from intrafed.routing import Local, RoutingTables, ToPeer, decide
from intrafed.services.proxy import (
    Answer,
    Decision,
    Fork,
    Forward,
    Listener,
    Reject,
    StatefulProxy,
    next_hop_for_uri,
)
from intrafed.services.registrar import Binding, Registrar
from intrafed.sip import RemoteSipError, Request, Response, SipUri, Uri, parse_message, parse_uri
from intrafed.sip.digest import NonceIssuer
from intrafed.sip.errors import FramingError
from intrafed.sip.responses import local_tag, make_response, response_to_unparsable, warning_value
from intrafed.sip.transaction import (
    FlowId,
    NextHop,
    Target,
    TimerConfig,
    TransactionLayer,
    client_key,
)
from intrafed.store.sqlite import BindingRow
from intrafed.transport import (
    Destination,
    Flow,
    ListenerSpec,
    TransportError,
    TransportLayer,
    TransportLimits,
)

logger = logging.getLogger(__name__)

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
        peers=lambda ip, names, outbound: peer_trust(config, ip, names, outbound=outbound),
        hosts={entry.fqdn: entry.ip for entry in config.hosts},
        domains=frozenset(config.domains),
        users=frozenset(user.aor for user in config.users),
        disabled=frozenset(user.aor for user in config.users if not user.enabled),
        credentials={
            user.aor: StoredCredentials(user.ha1_md5, user.ha1_sha256) for user in config.users
        },
        server_ssl=server_ssl,
        mtls_ssl=mtls_ssl,
        client_ssl=client_ssl,
    )


class RegistrationStore(Protocol):
    """Where registrations are kept across restarts (``ConfigStore`` is one)."""

    def save_bindings(self, aor: str, rows: Sequence[BindingRow]) -> None: ...

    def load_bindings(self, now: float) -> list[BindingRow]: ...


class Node:
    """A running node; ``start()`` binds the listeners, ``stop()`` shuts down gracefully."""

    def __init__(
        self, settings: NodeSettings, registrations: RegistrationStore | None = None
    ) -> None:
        self.settings = settings
        self.registrar = Registrar(
            settings.name,
            lambda aor: aor in self.settings.users,
            lambda aor: aor in self.settings.disabled,
        )
        self._registrations = registrations
        self._nonces = NonceIssuer(os.urandom(32))
        self._directory = Directory(settings.domains, settings.users, settings.credentials)
        self._buckets = TokenBuckets(settings.rate_limits)
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
        self._timer: asyncio.TimerHandle | None = None
        self._timer_deadline: float | None = None
        self._loop: asyncio.AbstractEventLoop | None = None

    async def start(self) -> dict[str, tuple[str, int]]:
        """Bind every listener; return the bound address per transport."""
        self._loop = asyncio.get_running_loop()
        if self._registrations is not None:
            rows = self._registrations.load_bindings(time.time())
            self.registrar.restore(Binding(*row) for row in rows)
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
            also_known_as=frozenset((self.settings.address, port) for _, port in bound.values()),
        )
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
            peers=settings.peers,
            hosts=settings.hosts,
            domains=settings.domains,
            users=settings.users,
            disabled=settings.disabled,
            credentials=settings.credentials,
            rate_limits=settings.rate_limits,
            server_ssl=settings.server_ssl or current.server_ssl,
            mtls_ssl=settings.mtls_ssl or current.mtls_ssl,
            client_ssl=settings.client_ssl or current.client_ssl,
        )
        self._directory = Directory(settings.domains, settings.users, settings.credentials)
        self._buckets.limits = settings.rate_limits
        return None

    async def stop(self, grace: float = 5.0) -> None:
        """Stop accepting, let pending transactions finish (up to ``grace`` s), close."""
        await self.transport.close(grace, idle=lambda: self.transactions.pending == 0)
        if self._timer is not None:
            self._timer.cancel()

    # -- routing (the federation routing of DESIGN §4 grows here) -----------------------

    def _trust(self, flow: Flow) -> PeerTrust | None:
        peer = flow.peer
        return self.settings.peers(peer.ip, peer.fqdns, flow.outbound)

    def _authorize(self, request: Request, flow_id: FlowId) -> Reject | Answer | None:
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
            return Answer(
                make_response(
                    request,
                    503,
                    "Rate Limit Exceeded",
                    to_tag=local_tag(request.call_id, str(request.cseq.number)),
                    headers=[
                        ("Retry-After", retry_after(wait)),
                        ("Warning", warning_value(settings.name, rule)),
                    ],
                )
            )
        verdict = authenticate(
            request,
            self._directory,
            self._nonces,
            now,
            settings.name,
            trust=trust,
            connection_identity=flow.authenticated_as,
        )
        if isinstance(verdict, Response):
            return Answer(verdict)
        if verdict.identity is not None:
            flow.authenticated_as = verdict.identity
        return None

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
                if self._registrations is not None:
                    for aor in registration.changed:
                        self._registrations.save_bindings(aor, self._rows(aor, now))
                return Answer(registration.response)
        peer = self.transport.flow(flow)
        trust = self._trust(peer) if peer is not None else None
        tables = RoutingTables(
            settings.domains, settings.users, settings.routes, settings.routing_mode
        )
        decision = decide(uri, tables, from_peer=trust is not None)
        if isinstance(decision, Local):
            return self._to_contacts(decision.aor, now)
        if isinstance(decision, ToPeer):
            hops = [NextHop(r.transport, r.next_hop, r.port) for r in decision.routes]
            return Forward(hops[0], decision.request_uri, tuple(hops[1:]))
        return Reject(decision.status, decision.rule)

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
        ip, port = flow.remote
        if via.host.strip("[]") == ip and not via.wants_rport:
            return request
        values = request.headers.get_list("via")
        extra = f";received={ip}"
        top = values[0]
        if via.wants_rport and via.rport is None:
            top = top.replace(";rport", f";rport={port}", 1)
        headers = request.headers.pop_first_element("via").prepend("Via", top + extra)
        return Request(request.method, request.uri, headers, request.body)

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
        while (event := transactions.next_event()) is not None:
            proxy.handle(event, now)
        for target, data in transactions.outgoing():
            self._deliver(target, data)
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
                return
            fallback = self._response_fallback(data)
            if fallback is None:
                logger.info("flow %d is gone; dropping %d bytes", target, len(data))
                return
            target = fallback
        destination = self._destination(target)
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
        via = message.top_via
        transport = via.transport.upper()
        port = via.rport or via.port or (5061 if transport == "TLS" else 5060)
        return NextHop(transport, (via.received or via.host).strip("[]"), port)

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
