"""Both partitions' cores and their users in one process, without sockets: a fake clock,
and a wire that carries each action's bytes to the core or client at the other end.
The federation tests and ``bench.core`` both run on it.

``pump(ocs, imp, clock)`` runs until nothing moves (firing the timers due at
``clock.now``); ``advance(ocs, imp, clock, seconds)`` steps the clock from deadline to
deadline.
"""

from __future__ import annotations

import itertools
from collections import deque
from dataclasses import dataclass, field

from intrafed.config import edits
from intrafed.config.model import (
    Connection,
    HostAuthorization,
    HostEntry,
    NodeConfig,
    NodeIdentity,
    Role,
    StaticRoute,
)
from intrafed.core import Action, Alias, Connect, LogEvent, NodeCore, Peer, Persist, Send
from intrafed.core.meter import Meter
from intrafed.core.node_core import Schedule, Settle
from intrafed.node import settings_from_config
from intrafed.services.presence import PresenceAgent
from intrafed.services.registrar import Registrar
from intrafed.sip import Request, Response, parse_message
from intrafed.sip.headers import Headers
from intrafed.sip.responses import make_response
from intrafed.sip.uri import parse_uri
from intrafed.state_writes import StateWriter
from intrafed.ua.requests import Dialog, LocalAddress, authorization, build_request, new_branch

DOMAIN = "example.com"
IMP = ("imp1.example.com", "127.0.0.2")
OCS = ("ocs1.example.com", "127.0.0.3")
TCP, MTLS = 5060, 5061
IMP_TLS, OCS_TLS = 5063, 5062
PASSWORDS = {"alice@example.com": "alice-secret", "bob@example.com": "bob-secret"}


class FakeClock:
    """Monotonic ``now`` for timers, and the wall time that moves with it."""

    def __init__(self) -> None:
        self.now = 1000.0
        self._epoch = 1_800_000_000.0

    def wall(self) -> float:
        return self._epoch + self.now


def imp_config(*, extra_routes: tuple[StaticRoute, ...] = ()) -> NodeConfig:
    """imp1 as the seed configures it: alice homed here, a TLS route to ocs1."""
    config = NodeConfig(NodeIdentity(Role.IMP, *IMP))
    config = edits.add_domain(config, DOMAIN)
    config = edits.set_listeners(config, tcp=TCP, peer_auth=MTLS, server_auth=IMP_TLS)
    for route in (StaticRoute(DOMAIN, "TLS", MTLS, fqdn=OCS[0]), *extra_routes):
        config = edits.add_route(config, route)
    config = edits.add_host(config, HostEntry(*OCS))
    config = edits.add_peer_subject(config, OCS[0])
    return edits.add_user(config, "alice@example.com", PASSWORDS["alice@example.com"])


def ocs_config() -> NodeConfig:
    """ocs1 as the seed configures it: bob homed here, host authorization of imp1."""
    config = NodeConfig(NodeIdentity(Role.OCS, *OCS))
    config = edits.add_domain(config, DOMAIN)
    for connection in (
        Connection("TCP", TCP, OCS[1]),
        Connection("MTLS", MTLS, OCS[1]),
        Connection("TLS", OCS_TLS, OCS[1]),
    ):
        config = edits.add_connection(config, connection)
    config = edits.add_route(config, StaticRoute(DOMAIN, "TLS", MTLS, fqdn=IMP[0]))
    config = edits.add_host(config, HostEntry(*IMP))
    config = edits.add_host_authorization(config, HostAuthorization(fqdn=IMP[0]))
    config = edits.add_host_authorization(config, HostAuthorization(ip=IMP[1]))
    return edits.add_user(config, "bob@example.com", PASSWORDS["bob@example.com"])


@dataclass(eq=False)
class End:
    """One end of a connection: who holds it, its flow id there, and the other end."""

    holder: Partition | Client
    flow: int
    peer: Peer
    """The other end, as the transport proves it to this end."""
    other: End | None = None
    closed: bool = False


class Network:
    """The wire between partitions and clients: bytes in flight, delivered in order."""

    def __init__(self, clock: FakeClock, metered: bool = False) -> None:
        self.clock = clock
        self.metered = metered
        """Whether the cores count for metrics (as a node whose metrics are on)."""
        self.partitions: dict[str, Partition] = {}
        self.wire: deque[tuple[End, bytes]] = deque()
        self._ports = itertools.count(40_000)
        self.turn_ends: list[NodeCore] = []
        """Cores that asked to ``persist`` once what is in flight is handled."""
        self.silent: set[str] = set()
        """Addresses that accept connections but never answer (a hung peer)."""
        self.read_delay: dict[str, float] = {}
        """Node address -> seconds every frame it receives waited after it was read."""

    def port(self) -> int:
        return next(self._ports)

    def link(
        self, a: Partition | Client, a_peer: Peer, b: Partition | Client, b_peer: Peer
    ) -> tuple[End, End]:
        first = End(a, a.new_flow(), a_peer)
        second = End(b, b.new_flow(), b_peer, first)
        first.other = second
        a.ends[first.flow] = first
        b.ends[second.flow] = second
        return first, second

    def carry(self, end: End, data: bytes) -> None:
        """Put ``data`` on the wire toward ``end``'s other side."""
        if end.other is not None and not end.other.closed:
            self.wire.append((end.other, data))

    def deliver_one(self) -> bool:
        if not self.wire:
            return False
        end, data = self.wire.popleft()
        if isinstance(end.holder, Partition):
            if end.holder.ip not in self.silent:
                waited = self.read_delay.get(end.holder.ip, 0.0)
                end.holder.core.receive(data, end.flow, end.peer, self.clock.now, waited)
        else:
            end.holder.receive(end, data)
        return True


class Partition:
    """One node's core on the network, with its listeners (kind -> port)."""

    def __init__(self, network: Network, config: NodeConfig, listeners: dict[str, int]) -> None:
        self.network = network
        self.fqdn, self.ip = config.identity.fqdn, config.identity.ip
        self.listeners = listeners
        self.ends: dict[int, End] = {}
        self._flows = itertools.count(1)
        self.pool: dict[tuple[str, str, int, str | None], End] = {}
        self.aliases: dict[tuple[str, str, int], End] = {}
        self.log: list[str] = []
        meter = Meter() if network.metered else None
        self.core = NodeCore(settings_from_config(config), network.clock, self._writes, meter)
        network.partitions[self.ip] = self
        bound = {kind: (self.ip, port) for kind, port in listeners.items()}
        self.core.start(bound, (), network.clock.now)

    def _writes(
        self, registrar: Registrar, presence: PresenceAgent, settle: Settle, schedule: Schedule
    ) -> StateWriter:
        return StateWriter(None, self.fqdn, registrar, presence, settle, schedule)

    def new_flow(self) -> int:
        return next(self._flows)

    def kind_at(self, port: int) -> str | None:
        return next((kind for kind, bound in self.listeners.items() if bound == port), None)

    def run_actions(self) -> bool:
        moved = False
        while (action := self.core.next_action()) is not None:
            moved = True
            self.execute(action)
        return moved

    def execute(self, action: Action) -> None:
        now = self.network.clock.now
        if isinstance(action, Send):
            end = self.ends.get(action.flow)
            if end is None or end.closed:
                self.core.undeliverable(action, "the flow is gone", now)
            else:
                self.network.carry(end, action.data)
        elif isinstance(action, Connect):
            self._connect(action, now)
        elif isinstance(action, Alias):
            end = self.ends[action.flow]
            wire = "TCP" if end.peer.transport == "TCP" else "TLS"
            self.aliases[(wire, action.host, action.port)] = end
        elif isinstance(action, LogEvent):
            self.log.append(action.message)
        elif isinstance(action, Persist):
            self.network.turn_ends.append(self.core)

    def _connect(self, action: Connect, now: float) -> None:
        hop = action.hop
        end = self.pool.get((hop.transport, action.ip, hop.port, action.server_name))
        if end is None:
            end = self.aliases.get((hop.transport, action.ip, hop.port))
            if (
                end is not None
                and hop.transport == "TLS"
                and action.server_name not in end.peer.fqdns
            ):
                end = None
        if end is not None and not end.closed:
            self.core.sent_on(hop, end.flow, end.peer)
            self.network.carry(end, action.data)
            return
        target = self.network.partitions.get(action.ip)
        kind = target.kind_at(hop.port) if target is not None else None
        if target is None or kind is None:
            self.core.undeliverable(action, f"connection refused by {action.ip}:{hop.port}", now)
            return
        if hop.transport == "TLS" and action.server_name != target.fqdn:
            self.core.undeliverable(action, "certificate does not name the server", now)
            return
        port = self.network.port()
        ours = Peer(
            target.ip,
            hop.port,
            hop.transport,
            (target.fqdn,) if hop.transport == "TLS" else (),
            True,
        )
        theirs = Peer(self.ip, port, kind, (self.fqdn,) if kind == "MTLS" else ())
        end, _ = self.network.link(self, ours, target, theirs)
        self.pool[(hop.transport, action.ip, hop.port, action.server_name)] = end
        self.core.sent_on(hop, end.flow, end.peer)
        self.network.carry(end, action.data)


class Client:
    """A user agent connected over TCP (or as a peer presenting ``names`` on MTLS): it
    answers requests as ``answers`` says and keeps everything it received."""

    def __init__(
        self,
        network: Network,
        aor: str,
        ip: str,
        node: Partition,
        *,
        kind: str = "TCP",
        names: tuple[str, ...] = (),
    ) -> None:
        self.network = network
        self.aor = aor
        self.user = aor.partition("@")[0]
        self.ip = ip
        self.node = node
        self.ends: dict[int, End] = {}
        self._flows = itertools.count(1)
        self.local = LocalAddress("tcp" if kind == "TCP" else "tls", ip, network.port())
        port = node.listeners[kind]
        toward = Peer(node.ip, port, "TCP" if kind == "TCP" else "TLS", (node.fqdn,), True)
        seen = Peer(ip, self.local.port, kind, names)
        self.end, _ = network.link(self, toward, node, seen)
        self.inbox: list[Request | Response] = []
        self.answers: dict[str, int] = {"NOTIFY": 200, "MESSAGE": 200, "INVITE": 200, "BYE": 200}
        self._cseq = itertools.count(1)
        self._call_ids = itertools.count(1)
        self.tag = f"{self.user}-tag"

    def new_flow(self) -> int:
        return next(self._flows)

    def send(self, message: Request | Response) -> None:
        self.network.carry(self.end, message.to_bytes())

    def receive(self, end: End, data: bytes) -> None:
        message = parse_message(data, stream=True)
        self.inbox.append(message)
        if isinstance(message, Request) and message.method in self.answers:
            self.network.carry(end, self.answer(message, self.answers[message.method]).to_bytes())

    def answer(self, request: Request, status: int) -> Response:
        """What a UAS answers: the Record-Route values copied (RFC 3261 §12.1.1), and to an
        INVITE the client's Contact."""
        extra = [("Record-Route", value) for value in request.headers.get_all("record-route")]
        if request.method == "INVITE":
            extra.append(("Contact", self.local.contact(self.user)))
        return make_response(request, status, to_tag=f"{self.user}-uas", headers=extra)

    def requests(self, method: str) -> list[Request]:
        return [m for m in self.inbox if isinstance(m, Request) and m.method == method]

    def new_request(
        self,
        method: str,
        to: str,
        *,
        uri: str | None = None,
        headers: tuple[tuple[str, str], ...] = (),
        body: bytes = b"",
    ) -> Request:
        """A request to ``to`` (at Request-URI ``uri``, by default ``to``'s)."""
        return build_request(
            method,
            parse_uri(f"sip:{uri or to}"),
            via=self.local.via(new_branch()),
            from_=f"<sip:{self.aor}>;tag={self.tag}",
            to=f"<sip:{to}>",
            call_id=f"{method.lower()}-{next(self._call_ids)}@{self.ip}",
            cseq=next(self._cseq),
            headers=(("Contact", self.local.contact(self.user)), *headers),
            body=body,
        )

    def call(self, request: Request, ocs: Partition, imp: Partition) -> Response:
        """Send ``request`` and pump until its final response; a digest challenge is
        answered once with the user's password."""
        self.send(request)
        pump(ocs, imp, self.network.clock)
        final = self.final_response(request)
        if final.status not in (401, 407):
            return final
        request = self.authorized(request, final)
        self.send(request)
        pump(ocs, imp, self.network.clock)
        return self.final_response(request)

    def authorized(self, request: Request, challenge: Response) -> Request:
        """``request`` again (new branch and CSeq) with the answer to ``challenge``."""
        auth = authorization(request, challenge, self.user, PASSWORDS[self.aor], ("SHA-256",))
        assert auth is not None
        kept = [(n, v) for n, v in request.headers if n.lower() not in ("via", "cseq")]
        fields = [
            ("Via", self.local.via(new_branch())),
            *kept,
            ("CSeq", f"{next(self._cseq)} {request.method}"),
            (auth.name, auth.value),
        ]
        return Request(request.method, request.uri, Headers(fields), request.body)

    def final_response(self, request: Request) -> Response:
        finals = [
            m
            for m in self.inbox
            if isinstance(m, Response)
            and m.status >= 200
            and m.call_id == request.call_id
            and m.cseq.number == request.cseq.number
        ]
        assert finals, f"no final response to {request.method} {request.uri}"
        return finals[-1]

    def register(self, ocs: Partition, imp: Partition) -> Response:
        register = self.new_request("REGISTER", self.aor, uri=DOMAIN, headers=(("Expires", "600"),))
        return self.call(register, ocs, imp)

    def dialog(self, request: Request, response: Response) -> Dialog:
        return Dialog.as_uac(request, response)


@dataclass
class Federation:
    """imp1 and ocs1 on one network with alice (on imp1) and bob (on ocs1) connected."""

    clock: FakeClock
    network: Network
    imp: Partition
    ocs: Partition
    alice: Client
    bob: Client
    others: list[Client] = field(default_factory=list)


def federation(
    imp: NodeConfig | None = None, ocs: NodeConfig | None = None, metered: bool = False
) -> Federation:
    clock = FakeClock()
    network = Network(clock, metered)
    imp_part = Partition(network, imp or imp_config(), {"TCP": TCP, "MTLS": MTLS, "TLS": IMP_TLS})
    ocs_part = Partition(network, ocs or ocs_config(), {"TCP": TCP, "MTLS": MTLS, "TLS": OCS_TLS})
    pump(ocs_part, imp_part, clock)
    alice = Client(network, "alice@example.com", "127.0.0.20", imp_part)
    bob = Client(network, "bob@example.com", "127.0.0.30", ocs_part)
    return Federation(clock, network, imp_part, ocs_part, alice, bob)


def registered(
    imp: NodeConfig | None = None, ocs: NodeConfig | None = None, metered: bool = False
) -> Federation:
    """``federation(imp, ocs, metered)`` with alice and bob registered at their home
    partitions."""
    fed = federation(imp, ocs, metered)
    for user in (fed.alice, fed.bob):
        answer = user.register(fed.ocs, fed.imp)
        if answer.status != 200:
            raise AssertionError(f"{user.aor} could not register: {answer.status} {answer.reason}")
    return fed


def message(sender: Client, to: str, text: bytes = b"hello") -> Request:
    """A pager MESSAGE (RFC 3428) from ``sender`` to ``to``."""
    return sender.new_request("MESSAGE", to, headers=(("Content-Type", "text/plain"),), body=text)


def pump(ocs: Partition, imp: Partition, clock: FakeClock, limit: int = 10_000) -> None:
    """Run both cores until nothing is in flight and no timer is due at ``clock.now``."""
    network = ocs.network
    for _ in range(limit):
        moved = False
        for part in (ocs, imp):
            deadline = part.core.get_timer()
            if deadline is not None and deadline <= clock.now:
                part.core.handle_timer(clock.now)
                moved = True
            moved = part.run_actions() or moved
        moved = network.deliver_one() or moved
        if not moved and network.turn_ends:
            for core in network.turn_ends:
                core.persist(clock.now)
            network.turn_ends.clear()
            moved = True
        if not moved:
            return
    raise AssertionError(f"still busy after {limit} rounds")


def advance(ocs: Partition, imp: Partition, clock: FakeClock, seconds: float) -> None:
    """Let ``seconds`` of fake time pass, firing every deadline on the way."""
    end = clock.now + seconds
    pump(ocs, imp, clock)
    while True:
        deadlines = [d for d in (ocs.core.get_timer(), imp.core.get_timer()) if d is not None]
        if not deadlines or min(deadlines) > end:
            break
        clock.now = max(clock.now, min(deadlines))
        pump(ocs, imp, clock)
    clock.now = end
    pump(ocs, imp, clock)
