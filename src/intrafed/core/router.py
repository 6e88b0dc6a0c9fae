"""What a node decides about each request (DESIGN §4): authorization, then OPTIONS to the
node, the registrar, presence, a homed user's contacts, or the static routes. The proxy
asks it through ``services.proxy.Router``; it answers in ``sip.decisions``' vocabulary.
"""

from __future__ import annotations

import logging
import os
from collections import deque
from collections.abc import Callable, Mapping
from typing import Protocol

from intrafed import __version__
from intrafed.config.values import is_ip_address
from intrafed.core.actions import Action, Clock, LogEvent, Peer
from intrafed.core.meter import CLIENT, OTHER, PEER_PARTITION, Meter
from intrafed.core.pool_view import PoolView
from intrafed.core.settings import CoreSettings
from intrafed.policy import (
    Challenge,
    Directory,
    PartitionHops,
    PeerTrust,
    RouteStamp,
    TokenBuckets,
    Unanswered,
    authenticate,
    in_our_dialog,
    retry_after,
)
from intrafed.policy.admission import Admission
from intrafed.routing import HopHealth, Local, RoutingTables, ToPeer, decide
from intrafed.routing.probe import hop_of
from intrafed.services.delivery import FLOW_FAILED, dialog_target, to_bindings
from intrafed.services.presence import OutgoingNotify, PresenceAgent
from intrafed.services.registrar import Registrar
from intrafed.sip import RemoteSipError, Request, Response, SipUri, Uri, parse_uri
from intrafed.sip.addressing import Listener, choose_listener, listener_kind
from intrafed.sip.decisions import (
    Accepted,
    Answer,
    AwaitRegistration,
    Decision,
    Deferred,
    Fork,
    Forward,
    Reject,
    Verdict,
)
from intrafed.sip.digest import NonceIssuer
from intrafed.sip.responses import local_tag, make_response, warning_value
from intrafed.sip.transaction import FlowId, NextHop, Target

ALLOWED_METHODS = (
    "INVITE, ACK, CANCEL, BYE, OPTIONS, REGISTER, MESSAGE, INFO, SUBSCRIBE, NOTIFY, PUBLISH"
)
PresenceChange = Callable[[], tuple[Response, list[OutgoingNotify]]]
CLIENTS_RETURN_WITHIN = 15.0
"""Seconds after taking over the listeners of a process of this node (which serves its
connections until they are idle, at most ``serve.STOP_GRACE``) during which a request for
a user whose connection that process had waits for the user to register again."""
AWAIT_REGISTRATION = 3.0
"""Seconds such a request waits at most."""


class StateWrites(Protocol):
    """Registrar and presence changes stored before their answer leaves
    (``state_writes.StateWriter``): a request is applied and stored with the others of its
    turn, then answered through the core's ``settle``; a failed write answers 503 and
    changes nothing."""

    def register(
        self, request: Request, flow: FlowId, now: float, source: tuple[str, int] | None
    ) -> None: ...

    def presence_request(self, request: Request, change: PresenceChange) -> None: ...

    def save_presence(self) -> None: ...


class Settlement(Protocol):
    """A request whose changes are stored (or refused): its answer and what it causes."""

    @property
    def request(self) -> Request: ...
    @property
    def response(self) -> Response: ...
    @property
    def notifies(self) -> tuple[OutgoingNotify, ...]: ...
    @property
    def registered(self) -> tuple[str, ...]: ...


class NodeRouter:
    """Authorization and routing of one node, over the flows the core knows."""

    def __init__(
        self,
        settings: CoreSettings,
        clock: Clock,
        flows: Mapping[FlowId, Peer],
        registrar: Registrar,
        presence: PresenceAgent,
        outbox: list[OutgoingNotify],
        actions: deque[Action],
    ) -> None:
        self.settings = settings
        self._clock = clock
        self._flows = flows
        self._authenticated: dict[FlowId, str] = {}
        self.registrar = registrar
        self.presence = presence
        self.writes: StateWrites | None = None
        self._outbox = outbox
        """NOTIFYs to send (the core sends them after the answer)."""
        self._actions = actions
        self.listeners: dict[str, Listener] = {}
        self.is_ours: Callable[[Uri], bool] = lambda uri: False
        self.route_stamp = RouteStamp(os.urandom(32))
        self.hops = HopHealth(timings=settings.probes)
        self.probe_soon = False
        """A hop failed: its probes may be due sooner than the core's timer says."""
        self.now = 0.0
        """The monotonic time of the event being handled (hop health runs on it)."""
        self._nonces = NonceIssuer(os.urandom(32))
        self._unanswered = Unanswered()
        self._buckets = TokenBuckets(settings.rate_limits)
        self._admission = Admission(settings.admission, settings.name, self._trusted_flow)
        self.registered: set[str] = set()
        self.lapse_at: float | None = None
        """Wall time at or after which a registered user may have lapsed (early is fine)."""
        self.clients_return_until = 0.0
        """Until when (loop time) the clients of the process this one took over from
        connect again (``AwaitRegistration``)."""
        self.meter: Meter | None = None
        """Counts authorization decisions and rate-limit refusals, when set."""
        self.pool = PoolView(None, None, tls=False)
        """The other members of the node's pool (none outside a pool)."""
        self.reload(settings)

    def reload(self, settings: CoreSettings) -> None:
        """Use new routes, users, trust and limits from now on."""
        self.settings = settings
        names = (settings.name.lower(), settings.address, *settings.aliases)
        self._directory = Directory(
            settings.domains,
            settings.users,
            settings.credentials,
            settings.digest_algorithms,
            names,
        )
        self._tables = RoutingTables(
            settings.domains,
            settings.users,
            settings.routes,
            settings.routing_mode,
            settings.peer_directory,
        )
        self._partition = PartitionHops.of(settings.routes, settings.domains, settings.hosts)
        self._buckets.limits = settings.rate_limits

    # -- flows ---------------------------------------------------------------------------

    def flow_closed(self, flow: FlowId) -> None:
        """Forget what a closed flow proved."""
        self._authenticated.pop(flow, None)

    def trust(self, peer: Peer) -> PeerTrust | None:
        """The trust the peer at the other end of a flow gets (its own entry, else as a
        member of the node's pool), or None."""
        return self.settings.peers(peer.ip, peer.fqdns, peer.outbound) or self.pool.trust(peer)

    def _trusted_flow(self, flow: FlowId) -> bool:
        peer = self._flows.get(flow)
        return peer is not None and self.trust(peer) is not None

    def _is_partition(self, peer: Peer, trust: PeerTrust | None) -> bool:
        """A trusted peer that is the next hop of one of our static routes is the other
        partition (other trusted hosts, such as gateways, are not)."""
        return trust is not None and self._partition.route_for(peer.ip, peer.fqdns) is not None

    def party(self, peer: Peer) -> str:
        """Whom ``peer`` is, for the metrics: the peer partition, a client, or other."""
        trust = self.trust(peer)
        if trust is None:
            return CLIENT
        return PEER_PARTITION if self._is_partition(peer, trust) else OTHER

    def party_of_hop(self, hop: NextHop) -> str:
        """Whom a request sent to ``hop`` goes to, for the metrics."""
        return PEER_PARTITION if self._partition.route_for(hop.host, (hop.host,)) else OTHER

    def listener_kind(self, flow: FlowId) -> str:
        """The listener a flow arrived on; our own TLS connections advertise MTLS."""
        peer = self._flows.get(flow)
        return "TCP" if peer is None else listener_kind(peer.transport, peer.outbound)

    def listener_for_flow(self, flow: FlowId) -> Listener:
        """The listener to advertise toward ``flow``."""
        return choose_listener(self.listeners, self.listener_kind(flow))

    def contact_taken_over(self, contact: str) -> str:
        """Our Contact in place of ``contact``, the one a member that is gone gave a
        dialog this node took over: our listener of its transport (TLS taken as MTLS, as
        toward a next hop), for the same user. The other end's dialog target moves here
        with our next NOTIFY (RFC 6665 §4.1.3), so its refreshes reach us."""
        uri = parse_uri(contact)
        user = uri.user if isinstance(uri, SipUri) else None
        transport = uri.transport if isinstance(uri, SipUri) else None
        return choose_listener(self.listeners, "TCP" if transport == "tcp" else "MTLS").contact(
            user
        )

    # -- authorization -------------------------------------------------------------------

    def authorize(self, request: Request, flow: FlowId) -> Verdict:
        """DESIGN §4 "Authorize", per request (in-dialog ones included, DESIGN §8): a
        verified MTLS peer matching no trust entry gets 403; then the rate class of the
        peer; then digest authentication of clients. A 403 is logged with its rule."""
        peer = self._flows.get(flow)
        if peer is None:
            self._count("reject", "connection_gone")
            return Reject(503, f"the connection of flow {flow} is gone")
        trust = self.trust(peer)
        if trust is None and peer.transport == "MTLS":
            names = ", ".join(peer.fqdns) or "no name"
            rule = (
                f"MTLS peer {peer.ip} ({names}) matches no host authorization or TLS peer subject"
            )
            self._refused(request, peer, rule)
            self._count("reject", "untrusted_mtls_peer")
            return Reject(403, rule)
        wall = self._clock.wall()
        server_class = trust is not None and trust.server_class
        wait = self._buckets.admit(
            trust.entry if trust is not None and server_class else peer.ip, server_class, wall
        )
        if wait is not None:
            rate_class = "server" if server_class else "client"
            if self.meter is not None:
                self.meter.rate_limited[rate_class] += 1
            self._count("reject", "rate_limit")
            rule = f"{rate_class} rate limit of {peer.ip} exceeded"
            return self.unavailable(request, "Rate Limit Exceeded", wait, rule)
        verdict = authenticate(
            request,
            self._directory,
            self._nonces,
            wall,
            self.settings.name,
            trust=trust,
            from_partition=self._is_partition(peer, trust),
            connection_identity=self._authenticated.get(flow),
            in_dialog=in_our_dialog(
                request, self.route_stamp, self.is_ours, self.presence.owns_dialog
            ),
            unanswered=self._unanswered,
        )
        if isinstance(verdict, Accepted):
            if verdict.identity is not None:
                self._authenticated[flow] = verdict.identity
                self._count("accept", "digest")
            else:
                self._count("accept", "no_challenge" if trust is None else "trusted_peer")
            return verdict
        response = verdict.response
        if isinstance(verdict, Challenge):
            if verdict.failed is not None:
                self._log(
                    logging.WARNING,
                    f"authentication failed: {verdict.failed} from {peer.ip}:{peer.port} "
                    f"({request.method}): wrong credentials",
                )
            self._count(
                "challenge",
                "credentials_required" if verdict.failed is None else "wrong_credentials",
            )
        elif response.status == 403:
            warning = response.headers.get("warning") or ""
            self._refused(request, peer, warning.partition(' "')[2].rstrip('"') or warning)
            self._count("reject", "not_authorized")
        else:
            self._count("reject", "bad_credentials")
        return verdict

    def _count(self, decision: str, rule: str) -> None:
        if self.meter is not None:
            self.meter.authorization[decision, rule] += 1

    def _refused(self, request: Request, peer: Peer, rule: str) -> None:
        """One log line per authorization 403: the rule, the source and the user."""
        try:
            sender = request.from_addr.uri
            user = sender.aor if isinstance(sender, SipUri) else str(sender)
        except RemoteSipError:  # a From that does not parse still gets its 403 logged
            user = "an unreadable From"
        self._log(
            logging.WARNING,
            f"403 to {request.method} from {peer.ip}:{peer.port} as {user}: {rule}",
        )

    def _log(self, level: int, message: str) -> None:
        self._actions.append(LogEvent(level, message))

    def shed(self, request: Request, flow: FlowId, pending: int) -> Response | None:
        """The 503 for a request shed under overload (DESIGN §8), or None."""
        return self._admission.shed(request, flow, pending)

    def refuse_late(self, frame: bytes, waited: float) -> bytes | None:
        """The 503 bytes for a raw request that waited too long to be handled, or None."""
        return self._admission.refuse_late(frame, waited, self.now)

    # -- routing -------------------------------------------------------------------------

    def decide(self, request: Request, flow: FlowId) -> Decision:
        """DESIGN §4: OPTIONS to the node itself, the registrar for our domains, local
        users to their contacts, the rest along the static routes (never back to the peer
        partition it came from)."""
        settings = self.settings
        uri = request.uri
        wall = self._clock.wall()
        if isinstance(uri, SipUri):
            if request.method == "OPTIONS" and uri.user is None and self._addresses_us(uri.host):
                return Answer(self._options_answer(request))
            if request.method == "REGISTER" and uri.host.lower() in settings.domains:
                return self._register(request, flow, wall)
        if request.to_addr.tag is not None:
            if request.method == "SUBSCRIBE" and self.presence.owns_dialog(request):
                return self._subscribe(request, flow, wall)
            if self.is_ours(uri):
                return Reject(
                    481,
                    "no dialog of this node matches the request",
                    "Call/Transaction Does Not Exist",
                )
        peer = self._flows.get(flow)
        from_peer = peer is not None and self._is_partition(peer, self.trust(peer))
        decision = decide(uri, self._tables, from_peer=from_peer)
        if isinstance(decision, Local):
            if request.method == "SUBSCRIBE":
                return self._subscribe(request, flow, wall)
            if request.method == "PUBLISH":
                return self._publish(request, decision.aor, wall)
            delivery = to_bindings(
                decision.aor, self.registrar.bindings(decision.aor, wall), self._flows.get
            )
            if peer is not None and self.pool.trust(peer):
                # Relayed by another member: never onward.
                return self._await_client(decision.aor, delivery, wall)
            # Clients of the user held by other members of the pool get it too.
            relays = tuple(
                Forward(member.hop)
                for member in self.pool.holders(decision.aor, wall)
                if member.hop is not None
            )
            if not relays:
                return self._await_client(decision.aor, delivery, wall)
            return Fork((*delivery.forwards, *relays) if isinstance(delivery, Fork) else relays)
        if isinstance(decision, ToPeer):
            hops = [hop_of(route) for route in decision.routes]
            usable = self.hops.usable(hops, self.now)
            if not usable:
                # Every next hop failed lately: 503 at once, not a timeout per request.
                wait, rule = self.hops.all_down(hops, self.now)
                return self.unavailable(request, "Next Hop Down", wait, rule)
            return Forward(usable[0], decision.request_uri, tuple(usable[1:]))
        return decision

    def _await_client(self, aor: str, delivery: Decision, wall: float) -> Decision:
        """``delivery``, or a wait for ``aor`` to register again when it failed for want
        of a connection the process this one took over from had (a binding restored, no
        flow yet) and that process's clients are still connecting again."""
        if (
            isinstance(delivery, Reject)
            and delivery.status == FLOW_FAILED
            and self.now < self.clients_return_until
            and any(b.flow is None for b in self.registrar.bindings(aor, wall) if b.flow_bound)
        ):
            return AwaitRegistration(aor, self.now + AWAIT_REGISTRATION, delivery)
        return delivery

    def explain(self, uri: Uri, source: str | None) -> dict[str, object]:
        """How a request for ``uri`` from ``source`` (an IP address, or an FQDN a peer's
        certificate proves; a client when None) is authorized and routed now, next-hop
        health included: ``decide``'s own path, as JSON data."""
        settings = self.settings
        peer: Peer | None = None
        if source is not None:
            name = source.lower()
            if is_ip_address(name):
                peer = Peer(name, 0, "TCP")
            else:
                peer = Peer(settings.hosts.get(name, ""), 0, "MTLS", (name,))
        trust = self.trust(peer) if peer is not None else None
        if peer is None:
            authorization = "a client: users of our domains authenticate by digest"
        elif trust is not None:
            rate = "server" if trust.server_class else "client"
            authorization = f"trusted by {trust.entry} ({rate} rate class)"
        elif peer.transport == "MTLS":
            authorization = f"403: {source} matches no host authorization or TLS peer subject"
        else:
            authorization = f"{source} is not trusted: it is served as a client (digest)"
        from_peer = peer is not None and self._is_partition(peer, trust)
        decision = decide(uri, self._tables, from_peer=from_peer, explain=True)
        verdict: dict[str, object] = {
            "uri": str(uri),
            "source": source or "a client",
            "authorization": authorization,
            "from_peer_partition": from_peer,
        }
        if isinstance(decision, Local):
            wall = self._clock.wall()
            bindings = self.registrar.bindings(decision.aor, wall)
            verdict |= {"decision": "local", "aor": decision.aor, "contacts": len(bindings)}
            if self.pool.pool is not None:
                members = self.pool.holders(decision.aor, wall)
                verdict["relayed_to_members"] = [member.name for member in members]
        elif isinstance(decision, ToPeer):
            hops = []
            for route in decision.routes:
                hop = hop_of(route)
                down = self.hops.down_reason(hop, self.now)
                hops.append(
                    {
                        "next_hop": f"{hop.transport} {hop.host}:{hop.port}",
                        "priority": route.priority,
                        "up": down is None,
                        "down_because": down[1] if down is not None else None,
                    }
                )
            verdict |= {"decision": "forward", "next_hops": hops}
            if decision.request_uri is not None:
                verdict["request_uri"] = str(decision.request_uri)
            if not any(hop["up"] for hop in hops):
                verdict["answer"] = "503 Next Hop Down: every next hop is down"
        else:
            verdict |= {"decision": "refuse", "status": decision.status, "rule": decision.rule}
        verdict["reasons"] = list(decision.reasons)
        return verdict

    def dialog_target(self, uri: Uri) -> Target | Reject | None:
        """An in-dialog request to a remote target: over the connection of a contact
        registered here (430 when that is gone), else to the address the URI names."""
        binding = self.registrar.binding_of_contact(str(uri), self._clock.wall())
        return dialog_target(binding, uri, self._flows.get)

    def hop_outcome(self, target: Target, failure: str | None, refused: bool) -> None:
        """Note how a next hop fared (static-route failover and probes)."""
        self.hops.outcome(target, failure, self.now, refused=refused)
        if failure is not None:
            self.probe_soon = True

    def unavailable(self, request: Request, reason: str, wait: float, rule: str) -> Answer:
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

    # -- registrar and presence ------------------------------------------------------------

    def _register(self, request: Request, flow: FlowId, wall: float) -> Deferred:
        """The registrar answers once the bindings are stored (``NodeCore`` settles it)."""
        assert self.writes is not None
        peer = self._flows.get(flow)
        source = (peer.ip, peer.port) if peer is not None else None
        self.writes.register(request, flow, wall, source)
        return Deferred()

    def registration_changed(self, aor: str, wall: float) -> None:
        """Tell the presence agent when ``aor`` went online or offline (here, or at another
        member of the pool)."""
        bindings = self.registrar.bindings(aor, wall)
        expiries = [binding.expires_at for binding in bindings]
        elsewhere = self.pool.registered_until(aor, wall)
        if elsewhere is not None:
            expiries.append(elsewhere)
        if expiries:
            first = min(expiries)
            if self.lapse_at is None or first < self.lapse_at:
                self.lapse_at = first
        online = bool(expiries)
        if online == (aor in self.registered):
            return
        if online:
            self.registered.add(aor)
        else:
            self.registered.discard(aor)
        self._outbox += self.presence.registration_changed(aor, online, wall)

    def lapse_registrations(self, wall: float) -> None:
        """Users whose last binding expired without a REGISTER go Offline."""
        self.lapse_at = None
        for aor in list(self.registered):
            self.registration_changed(aor, wall)

    def _subscribe(self, request: Request, flow: FlowId, wall: float) -> Deferred:
        """A SUBSCRIBE for a homed user (or within one of our subscriptions): the presence
        agent answers once it is stored; its NOTIFYs leave after the answer."""
        assert self.writes is not None
        uri = request.uri
        user = uri.user if isinstance(uri, SipUri) else None
        contact = self.listener_for_flow(flow).contact(user)
        self.writes.presence_request(
            request, lambda: self.presence.subscribe(request, flow, contact, wall)
        )
        return Deferred()

    def _publish(self, request: Request, aor: str, wall: float) -> Decision:
        """RFC 3903: only the user publishes the user's presence."""
        assert self.writes is not None
        publisher = request.from_addr.uri
        if not isinstance(publisher, SipUri) or publisher.aor != aor:
            return Reject(403, f"only {aor} may publish the presence of {aor}")
        self.writes.presence_request(request, lambda: self.presence.publish(request, wall))
        return Deferred()
