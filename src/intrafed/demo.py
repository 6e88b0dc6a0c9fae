"""``intrafed demo``: both partitions of the seed deployment running in this process on
loopback, and alice (IM and Presence) and bob (OCS) using them as TLS clients.

The demo builds the seed deployment (fresh lab CA and certificates), runs the task-list
check, starts imp1 and ocs1, then walks the federation scenario step by step. Every step's
outcome is what actually happened on the wire; the cross-partition messages (between the
two node addresses) are recorded from the nodes' traces as the SIP ladder.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from intrafed.check import (
    SeedDeployment,
    SeedNode,
    build_seed_deployment,
    check_nodes,
    load_home,
)
from intrafed.check.deployment import SIP_PORT
from intrafed.check.facts import NodeFacts
from intrafed.config.model import ConfigError, ImpListeners, Role
from intrafed.node import Node
from intrafed.pki import KeyType
from intrafed.pki.certificates import common_names
from intrafed.sip import RemoteSipError, Request, parse_message
from intrafed.sip.pidf import PresenceState
from intrafed.store import open_store
from intrafed.transport import TransportError
from intrafed.ua import (
    MessageReceived,
    PresenceNotified,
    SessionEnded,
    SessionStarted,
    SipError,
    TypingReceived,
    UaSettings,
    UserAgent,
)

IMP_IP = "127.0.0.2"
"""imp1.example.com, the IM and Presence node (alice's home)."""
OCS_IP = "127.0.0.3"
"""ocs1.example.com, the OCS Standard Edition server (bob's home)."""
USER_IPS = {"alice@example.com": "127.0.0.4", "bob@example.com": "127.0.0.5"}
"""Each user's TLS client connects from its own loopback address."""
UNKNOWN_USER = "nobody@example.com"
"""Provisioned on neither side: gets 404 without looping between the partitions."""
PORTS_PER_NODE = 4
"""TCP, MTLS/Peer Auth, and the client TLS port (5062 on OCS, 5063 on IM&P) from the base."""
STEP_TIMEOUT = 10.0
"""Seconds one scenario step may take."""
STOP_GRACE = 1.0
"""Seconds the nodes get to finish pending transactions when the demo ends."""


class DemoStepError(Exception):
    """A step ran but what came back is not what federation should give."""


@dataclass(frozen=True, slots=True)
class StepResult:
    """One step of the demo and how it went."""

    name: str
    ok: bool
    detail: str


@dataclass(frozen=True, slots=True)
class LadderEntry:
    """One message that crossed between the partitions, as the receiving node saw it."""

    at: float
    """Seconds since the demo started."""
    sender: str
    """The FQDN of the node that sent it."""
    receiver: str
    """The FQDN of the node that received it."""
    first_line: str
    """``METHOD Request-URI`` or ``STATUS Reason (METHOD)``."""
    call_id: str
    step: int
    """The index of the step whose transaction it belongs to."""

    def to_json(self) -> dict[str, Any]:
        """The entry as a JSON object."""
        return {
            "at": round(self.at, 3),
            "from": self.sender,
            "to": self.receiver,
            "message": self.first_line,
            "call_id": self.call_id,
        }


@dataclass(frozen=True, slots=True)
class ReceivedRequest:
    """A request some node received, from anywhere."""

    node: str
    source_ip: str
    method: str
    uri: str
    call_id: str


@dataclass
class DemoTrace:
    """What the nodes' traces showed: the ladder and every request received."""

    started: float
    node_names: dict[str, str]
    """Node IP -> FQDN."""
    step: int = 0
    ladder: list[LadderEntry] = field(default_factory=list)
    requests: list[ReceivedRequest] = field(default_factory=list)
    _transaction_steps: dict[tuple[str, int, str], int] = field(default_factory=dict)
    """(Call-ID, CSeq number, method) -> the step its request was first seen in."""

    def record(self, node: str, direction: str, remote: tuple[str, int], data: bytes) -> None:
        """The nodes' trace hook: keep received requests and cross-partition messages."""
        if direction != "received":
            return
        try:
            message = parse_message(data, stream=True)
        except RemoteSipError:
            return
        transaction = (message.call_id, message.cseq.number, message.cseq.method)
        if isinstance(message, Request):
            first_line = f"{message.method} {message.uri}"
            self.requests.append(
                ReceivedRequest(node, remote[0], message.method, str(message.uri), message.call_id)
            )
            step = self._transaction_steps.setdefault(transaction, self.step)
        else:
            first_line = f"{message.status} {message.reason} ({message.cseq.method})"
            step = self._transaction_steps.get(transaction, self.step)
        sender = self.node_names.get(remote[0])
        if sender is not None and sender != node:
            self.ladder.append(
                LadderEntry(
                    time.perf_counter() - self.started,
                    sender,
                    node,
                    first_line,
                    message.call_id,
                    step,
                )
            )

    def crossings(self, call_id: str) -> list[LadderEntry]:
        """The cross-partition messages of ``call_id``."""
        return [entry for entry in self.ladder if entry.call_id == call_id]


@dataclass(frozen=True, slots=True)
class NodeEndpoints:
    """A running node and where it listens."""

    node: SeedNode
    listeners: dict[str, tuple[str, int]]
    """Transport (TCP, TLS, MTLS) -> bound address."""


@dataclass(frozen=True, slots=True)
class DemoEndpoints:
    """The running deployment, as ``--serve`` prints it."""

    deployment: SeedDeployment
    nodes: tuple[NodeEndpoints, ...]

    def to_json(self) -> dict[str, Any]:
        """``{"home", "ca_cert", "domain", "nodes": [...], "users": [...]}``."""
        deployment = self.deployment
        return {
            "home": str(deployment.root),
            "ca_cert": str(deployment.ca_certificate),
            "domain": deployment.domain,
            "nodes": [
                {
                    "name": running.node.home.name,
                    "role": running.node.role.value,
                    "fqdn": running.node.fqdn,
                    "ip": running.node.ip,
                    "listeners": [
                        {"transport": transport, "port": port}
                        for transport, (_, port) in running.listeners.items()
                    ],
                }
                for running in self.nodes
            ],
            "users": [
                {
                    "aor": user.aor,
                    "password": user.password,
                    "home_node": deployment.node(user.role).home.name,
                }
                for user in deployment.users
            ],
        }


@dataclass(frozen=True, slots=True)
class DemoReport:
    """The demo's outcome: every step, the ladder, the time it took."""

    steps: tuple[StepResult, ...]
    ladder: tuple[LadderEntry, ...]
    elapsed: float
    """Seconds from the first step to the nodes stopped."""

    @property
    def ok(self) -> bool:
        """Whether every step went as federation should."""
        return all(step.ok for step in self.steps)

    def to_json(self) -> dict[str, Any]:
        """``{"ok": bool, "steps": [{"name", "ok", "detail"}...], ...}``."""
        return {
            "ok": self.ok,
            "steps": [
                {"name": step.name, "ok": step.ok, "detail": step.detail} for step in self.steps
            ],
            "elapsed_s": round(self.elapsed, 3),
            "ladder": [entry.to_json() for entry in self.ladder],
        }


ServeUntil = Callable[[DemoEndpoints], Awaitable[None]]
"""Called with the running deployment; the nodes stop when it returns."""


async def run_demo(
    root: Path, *, base_port: int = SIP_PORT, serve: ServeUntil | None = None
) -> DemoReport:
    """Build the seed deployment under ``root`` and run the demo there.

    Without ``serve``, the whole scenario runs and the nodes stop. With it, the demo stops
    after the nodes have started and hands them to ``serve`` instead. ``ConfigError`` (for
    ``base_port``) when a node cannot listen.
    """
    started = time.perf_counter()
    steps: list[StepResult] = []
    trace = DemoTrace(started, {})
    deployment = _build(root, base_port, steps)
    if deployment is None or not _check(deployment, steps):
        return DemoReport(tuple(steps), (), time.perf_counter() - started)
    trace.node_names = {node.ip: node.fqdn for node in deployment.nodes}
    nodes: list[Node] = []
    try:
        endpoints = await _start(deployment, trace, nodes, base_port)
        steps.append(StepResult("nodes started", True, _listeners_text(endpoints)))
        if serve is not None:
            await serve(endpoints)
        else:
            await _scenario(deployment, trace, steps)
    finally:
        await asyncio.gather(*(node.stop(grace=STOP_GRACE) for node in nodes))
    return DemoReport(tuple(steps), tuple(trace.ladder), time.perf_counter() - started)


def _build(root: Path, base_port: int, steps: list[StepResult]) -> SeedDeployment | None:
    name = "deployment built as the seed configures it"
    try:
        deployment = build_seed_deployment(
            root, imp_ip=IMP_IP, ocs_ip=OCS_IP, base_port=base_port, key_type=KeyType.RSA_2048
        )
    except ConfigError as exc:
        steps.append(StepResult(name, False, str(exc)))
        return None
    facts = [load_home(node.home) for node in deployment.nodes]
    steps.append(StepResult(name, True, seed_procedures(facts)))
    return deployment


def seed_procedures(facts: Sequence[NodeFacts]) -> str:
    """The seed's procedures as the homes now show them done, one clause each."""
    by_role = {node.config.role: node for node in facts}
    imp, ocs = by_role[Role.IMP].config, by_role[Role.OCS].config
    connections = ", ".join(f"{c.transport} {c.port}" for c in ocs.connections)
    routes = ", ".join(
        f"{config.identity.fqdn} -> {route.transport} {route.fqdn or route.ip}:{route.port}"
        for config in (ocs, imp)
        for route in config.routes
    )
    hostauth = [
        f"Host Authorization on OCS: {entry.fqdn or entry.ip} (Outbound Only "
        f"{_on(entry.outbound_only)}, Throttle As Server {_on(entry.throttle_as_server)}, "
        f"Treat As Authenticated {_on(entry.treat_as_authenticated)})"
        for entry in ocs.host_authorizations
    ]
    listeners = imp.listeners or ImpListeners()
    certificates = ", ".join(
        "CN=" + "/".join(common_names(node.certificates.selected))
        for node in facts
        if node.certificates is not None and node.certificates.selected is not None
    )
    fips = " and ".join(c.identity.fqdn for c in (imp, ocs) if c.fips)
    clauses = [
        f"Domain Verification: {', '.join(ocs.domains)} on OCS, {', '.join(imp.domains)} "
        "on IM and Presence",
        f"Enable Port 5060/5061 on OCS: {connections}",
        f"Static Routes: {routes}",
        *hostauth,
        f"IM and Presence: Peer Auth {listeners.peer_auth}, Server Auth "
        f"{listeners.server_auth}, TLS peer subjects {', '.join(imp.peer_subjects)}",
        f"TLS Encryption Configuration: lab CA trusted on both sides, {certificates} "
        f"selected, FIPS policy on {fips}",
        "Restart Services: the configuration is running",
    ]
    return "; ".join(clauses)


def _check(deployment: SeedDeployment, steps: list[StepResult]) -> bool:
    report = check_nodes([load_home(node.home) for node in deployment.nodes])
    found = ", ".join(sorted(report.rule_ids())) or "no findings"
    detail = f"{len(report.errors)} errors, {len(report.warnings)} warnings ({found})"
    steps.append(StepResult("the task-list check passes with no errors", report.ok, detail))
    return report.ok


async def _start(
    deployment: SeedDeployment, trace: DemoTrace, nodes: list[Node], base_port: int
) -> DemoEndpoints:
    running: list[NodeEndpoints] = []
    for seed_node in deployment.nodes:
        node = Node.from_home(seed_node.home, open_store(seed_node.home), trace=trace.record)
        nodes.append(node)
        try:
            listeners = await node.start()
        except TransportError as exc:
            raise ConfigError(
                "--base-port",
                f"{seed_node.fqdn} {exc} (base port {base_port})",
                "free those ports or give another base, e.g. --base-port 25060",
            ) from None
        running.append(NodeEndpoints(seed_node, listeners))
    return DemoEndpoints(deployment, tuple(running))


def _listeners_text(endpoints: DemoEndpoints) -> str:
    return "; ".join(
        f"{running.node.fqdn} {running.node.ip}: "
        + ", ".join(f"{transport} {port}" for transport, (_, port) in running.listeners.items())
        for running in endpoints.nodes
    )


def _user_agent(deployment: SeedDeployment, aor: str) -> UserAgent:
    """``aor`` as a TLS client of its home node, from its own loopback address."""
    user = next(user for user in deployment.users if user.aor == aor)
    node = deployment.node(user.role)
    return UserAgent(
        UaSettings(
            aor,
            (node.ip, node.client_tls_port),
            password=user.password,
            transport="tls",
            server_name=node.fqdn,
            ca_file=deployment.ca_certificate,
            source_ip=USER_IPS[aor],
        )
    )


ScenarioStep = tuple[str, Callable[[], Awaitable[str]]]


async def _scenario(deployment: SeedDeployment, trace: DemoTrace, steps: list[StepResult]) -> None:
    """Register, presence both ways, Busy, pager and session IM both ways, unknown user."""
    alice = _user_agent(deployment, "alice@example.com")
    bob = _user_agent(deployment, "bob@example.com")
    walk = _Walk(alice, bob, trace)
    try:
        for name, action in walk.steps():
            trace.step = len(steps)
            try:
                async with asyncio.timeout(STEP_TIMEOUT):
                    detail = await action()
            # The demo reports every failure as a failed step, whatever raised it.
            except Exception as exc:
                steps.append(StepResult(name, False, _failure_text(exc)))
                break
            steps.append(StepResult(name, True, detail))
    finally:
        await alice.close()
        await bob.close()
    ran = {step.name for step in steps}
    steps.extend(
        StepResult(name, False, "not run: an earlier step failed")
        for name, _ in walk.steps()
        if name not in ran
    )


def _failure_text(exc: Exception) -> str:
    if isinstance(exc, TimeoutError):
        return f"no answer within {STEP_TIMEOUT:g} s ({exc})" if str(exc) else "timed out"
    return str(exc) or type(exc).__name__


class _Walk:
    """The scenario's steps, each returning what it saw or raising why it failed."""

    def __init__(self, alice: UserAgent, bob: UserAgent, trace: DemoTrace) -> None:
        self.alice, self.bob, self.trace = alice, bob, trace

    def steps(self) -> list[ScenarioStep]:
        return [
            ("alice and bob register over TLS", self.register),
            ("they subscribe to each other and each sees the other Available", self.subscribe),
            ("alice goes Busy and bob sees Busy", self.busy),
            ("pager IM alice -> bob", lambda: self.pager(self.alice, self.bob, "hi bob")),
            ("pager IM bob -> alice", lambda: self.pager(self.bob, self.alice, "hi alice")),
            ("session IM alice -> bob", lambda: self.session(self.alice, self.bob)),
            ("session IM bob -> alice", lambda: self.session(self.bob, self.alice)),
            (f"unknown user {UNKNOWN_USER} gets 404 without a loop", self.unknown_user),
        ]

    async def register(self) -> str:
        replies = []
        for agent in (self.alice, self.bob):
            await agent.connect()
            reply = await agent.register()
            replies.append(
                f"{agent.settings.aor} from {agent.local.host} -> {agent.settings.server_name} "
                f"TLS {agent.settings.server[1]}: {reply.status} {reply.reason}"
            )
        return "; ".join(replies)

    async def subscribe(self) -> str:
        seen = []
        for watcher, presentity in ((self.alice, self.bob), (self.bob, self.alice)):
            subscription = await watcher.subscribe(presentity.settings.aor)
            state = await _presence(watcher, presentity.settings.aor)
            _expect(
                state is PresenceState.AVAILABLE,
                f"{watcher.settings.aor} sees {presentity.settings.aor} {_state(state)}, "
                "not Available",
            )
            crossed = self._crossed(subscription.call_id, "SUBSCRIBE", "NOTIFY")
            seen.append(f"{watcher.settings.aor} sees {presentity.settings.aor} Available")
            seen.append(crossed)
        return "; ".join(seen)

    async def busy(self) -> str:
        reply = await self.alice.publish(PresenceState.BUSY)
        state = await _presence(self.bob, self.alice.settings.aor)
        _expect(state is PresenceState.BUSY, f"bob sees alice {_state(state)}, not Busy")
        return f"PUBLISH {reply.status} {reply.reason} on imp1; bob's NOTIFY says Busy"

    async def pager(self, sender: UserAgent, recipient: UserAgent, text: str) -> str:
        reply = await sender.message(recipient.settings.aor, text)
        received = await recipient.next_event(MessageReceived)
        _expect(
            (received.sender, received.text) == (sender.settings.aor, text),
            f"{recipient.settings.aor} got {received.text!r} from {received.sender}",
        )
        crossed = self._crossed(reply.response.call_id, "MESSAGE")
        return f"MESSAGE {reply.status} {reply.reason}; {text!r} delivered; {crossed}"

    async def session(self, caller: UserAgent, callee: UserAgent) -> str:
        session = await caller.invite_im(callee.settings.aor)
        started = await callee.next_event(SessionStarted)
        typing = await session.typing()
        await callee.next_event(TypingReceived)
        said = await session.message("in session")
        heard = await callee.next_event(MessageReceived)
        _expect(
            (heard.text, heard.session) == ("in session", started.session),
            f"{callee.settings.aor} got {heard.text!r} outside the session",
        )
        answered = await started.session.message("back")
        back = await caller.next_event(MessageReceived)
        _expect(back.text == "back", f"{caller.settings.aor} got {back.text!r}, not 'back'")
        bye = await session.bye()
        await callee.next_event(SessionEnded)
        crossed = self._crossed(session.dialog.call_id, "INVITE", "ACK", "INFO", "MESSAGE", "BYE")
        return (
            f"INVITE m=message accepted; typing INFO {typing.status}; MESSAGE {said.status} and "
            f"back {answered.status}; BYE {bye.status}; {crossed}"
        )

    async def unknown_user(self) -> str:
        try:
            reply = await self.alice.message(UNKNOWN_USER, "hello?")
        except SipError as exc:
            status, reason, warning = exc.status, exc.reason, exc.warning
        else:
            raise DemoStepError(f"MESSAGE to {UNKNOWN_USER}: {reply.status}, expected 404")
        _expect(status == 404, f"MESSAGE to {UNKNOWN_USER}: {status} {reason}, expected 404")
        names = self.trace.node_names
        ocs, imp = names[OCS_IP], names[IMP_IP]
        requests = [
            r
            for r in self.trace.requests
            if r.method == "MESSAGE" and r.uri == f"sip:{UNKNOWN_USER}"
        ]
        at_ocs = [r for r in requests if r.node == ocs]
        back_at_imp = [r for r in requests if r.node == imp and r.source_ip == OCS_IP]
        _expect(
            len(at_ocs) == 1 and not back_at_imp,
            f"{ocs} received it {len(at_ocs)} times and {imp} {len(back_at_imp)} times back",
        )
        return (
            f"404 {reason} ({warning}); {ocs} received it once from {imp}, "
            f"and nothing came back to {imp} but the 404"
        )

    def _crossed(self, call_id: str, *methods: str) -> str:
        """Which ``methods`` of ``call_id`` crossed the partition, each way; a step fails
        when none did."""
        crossings = self.trace.crossings(call_id)
        seen = [
            f"{entry.first_line.split()[0]} {_short(entry.sender)}->{_short(entry.receiver)}"
            for entry in crossings
            if entry.first_line.split()[0] in methods
        ]
        _expect(bool(seen), f"no {'/'.join(methods)} of Call-ID {call_id} crossed the partition")
        return "crossed: " + ", ".join(dict.fromkeys(seen))


async def _presence(agent: UserAgent, of: str) -> PresenceState | None:
    """The state in the next NOTIFY about ``of``."""
    while True:
        event = await agent.next_event(PresenceNotified)
        if event.presentity == of:
            return event.state


def _expect(condition: bool, failure: str) -> None:
    if not condition:
        raise DemoStepError(failure)


def _on(flag: bool) -> str:
    return "on" if flag else "off"


def _state(state: PresenceState | None) -> str:
    return "nothing" if state is None else str(state.value)


def _short(fqdn: str) -> str:
    return fqdn.split(".", 1)[0]


def short_call_id(call_id: str) -> str:
    """The first eight characters of a Call-ID's local part, enough to tell dialogs apart."""
    return call_id.split("@", 1)[0][:8]
