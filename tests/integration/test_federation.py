"""The federation end to end, over real sockets: two partitions of example.com as the seed
configures them (imp1 hosts alice; ocs1 hosts bob and carol), users on TLS clients, the
partitions linked over MTLS (or, in the TCP variant, over TCP with routes by IP).

Presence both ways (subscribe across the static route, NOTIFYs back over the Record-Routed
path), pager and session IM both ways, 480 for a provisioned user who is offline, 404
without a loop for a user on neither side, and presence back after the peer restarts.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path

import pytest

from intrafed.check import SeedDeployment, build_seed_deployment
from intrafed.config import edits
from intrafed.config.model import AclEntry, Role, StaticRoute
from intrafed.node import Node, tls_contexts_of
from intrafed.sip import Request, Response, parse_message
from intrafed.sip.pidf import PresenceState
from intrafed.store import open_store
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
from tests.integration.clients import SipPeer
from tests.integration.federation import free_base_port

IMP_IP, OCS_IP, ALICE_IP, BOB_IP = "127.0.0.140", "127.0.0.141", "127.0.0.142", "127.0.0.143"
USERS = (
    ("alice@example.com", Role.IMP),
    ("bob@example.com", Role.OCS),
    ("carol@example.com", Role.OCS),
)


def build(root: Path, link: str) -> SeedDeployment:
    """The seed deployment on free ports; ``tcp`` links the partitions over TCP instead
    (routes by IP, the OCS address in IM&P's incoming ACL; host authorization by IP is
    already there)."""
    deployment = build_seed_deployment(
        root, imp_ip=IMP_IP, ocs_ip=OCS_IP, base_port=free_base_port([IMP_IP, OCS_IP]), users=USERS
    )
    if link == "tcp":
        for node, peer in ((deployment.imp, deployment.ocs), (deployment.ocs, deployment.imp)):
            route = StaticRoute("example.com", "TCP", peer.tcp_port, ip=peer.ip)
            with open_store(node.home) as store:
                store.stage(lambda c: edits.remove_route(c, "example.com"))
                store.stage(lambda c, route=route: edits.add_route(c, route))  # type: ignore[misc]
                if node.role is Role.IMP:
                    store.stage(lambda c, ip=peer.ip: edits.add_acl(c, AclEntry(ip=ip)))  # type: ignore[misc]
                store.promote()
    return deployment


@dataclass
class Partitions:
    """The running deployment; ``received`` has every request each node received."""

    deployment: SeedDeployment
    received: list[tuple[str, Request]]
    nodes: dict[Role, Node]

    def user(self, aor: str, source_ip: str) -> UserAgent:
        """``aor``'s user agent, on TLS to its home node's client listener."""
        role = next(role for user, role in USERS if user == aor)
        node = self.deployment.node(role)
        return UserAgent(
            UaSettings(
                aor,
                (node.ip, node.client_tls_port),
                password=self.deployment.password(aor),
                transport="tls",
                server_name=node.fqdn,
                ca_file=self.deployment.ca_certificate,
                source_ip=source_ip,
            )
        )

    @contextlib.asynccontextmanager
    async def registered(self) -> AsyncIterator[tuple[UserAgent, UserAgent]]:
        """alice (on imp1) and bob (on ocs1), both registered over TLS."""
        async with (
            self.user("alice@example.com", ALICE_IP) as alice,
            self.user("bob@example.com", BOB_IP) as bob,
        ):
            assert (await alice.register()).status == 200
            assert (await bob.register()).status == 200
            yield alice, bob

    def hops(self, call_id: str) -> list[str]:
        """The nodes that received the request of ``call_id``, in order."""
        return [name for name, request in self.received if request.call_id == call_id]

    async def restart(self, role: Role) -> None:
        """Stop the node of ``role`` and start it again from its home (its state kept)."""
        await self.nodes[role].stop(grace=1.0)
        self.nodes[role] = await start(self.deployment.node(role).home, self)


async def start(home: Path, partitions: Partitions) -> Node:
    def record(name: str, direction: str, remote: tuple[str, int], data: bytes) -> None:
        if direction == "received" and not data.startswith(b"SIP/2.0"):
            message = parse_message(data, stream=True)
            assert isinstance(message, Request)
            partitions.received.append((name, message))

    node = Node.from_home(home, open_store(home), trace=record)
    await node.start()
    return node


@contextlib.asynccontextmanager
async def running(deployment: SeedDeployment) -> AsyncIterator[Partitions]:
    partitions = Partitions(deployment, [], {})
    try:
        for role in (Role.IMP, Role.OCS):
            partitions.nodes[role] = await start(deployment.node(role).home, partitions)
        yield partitions
    finally:
        for node in partitions.nodes.values():
            await node.stop(grace=1.0)


def federated(
    tmp_path: Path,
    link: str,
    scenario: Callable[[Partitions], Awaitable[None]],
    timeout: float = 60,
) -> None:
    async def main() -> None:
        async with running(build(tmp_path, link)) as partitions:
            await asyncio.wait_for(scenario(partitions), timeout)

    asyncio.run(main())


async def presence(agent: UserAgent, of: str, timeout: float = 10) -> PresenceState | None:
    """The state in the next NOTIFY about ``of``."""
    while True:
        event = await agent.next_event(PresenceNotified, timeout)
        if event.presentity == of:
            return event.state


@pytest.mark.parametrize("link", ["mtls", "tcp"])
def test_presence_both_ways_across_the_partition(tmp_path: Path, link: str) -> None:
    async def scenario(partitions: Partitions) -> None:
        async with partitions.registered() as (alice, bob):
            await alice.subscribe("bob@example.com")
            assert await presence(alice, "bob@example.com") is PresenceState.AVAILABLE
            await bob.subscribe("alice@example.com")
            assert await presence(bob, "alice@example.com") is PresenceState.AVAILABLE
            await alice.publish(PresenceState.BUSY)
            assert await presence(bob, "alice@example.com") is PresenceState.BUSY
            await bob.publish(PresenceState.AWAY, note="lunch")
            assert await presence(alice, "bob@example.com") is PresenceState.AWAY
            await bob.publish(PresenceState.DO_NOT_DISTURB)
            assert await presence(alice, "bob@example.com") is PresenceState.DO_NOT_DISTURB
        # NOTIFYs crossed the partition: each node received the other side's.
        notifies = [(name, r) for name, r in partitions.received if r.method == "NOTIFY"]
        assert {name for name, _ in notifies} == {"imp1.example.com", "ocs1.example.com"}

    federated(tmp_path, link, scenario)


@pytest.mark.parametrize("link", ["mtls", "tcp"])
def test_pager_and_session_im_both_ways(tmp_path: Path, link: str) -> None:
    async def scenario(partitions: Partitions) -> None:
        async with partitions.registered() as (alice, bob):
            assert (await alice.message("bob@example.com", "hi bob")).status == 200
            received = await bob.next_event(MessageReceived)
            assert (received.sender, received.text) == ("alice@example.com", "hi bob")
            assert (await bob.message("alice@example.com", "hi alice")).status == 200
            assert (await alice.next_event(MessageReceived)).text == "hi alice"

            for caller, callee, peer in ((alice, bob, "bob"), (bob, alice, "alice")):
                session = await caller.invite_im(f"{peer}@example.com")
                started = await callee.next_event(SessionStarted)
                assert (await session.typing()).status == 200
                await callee.next_event(TypingReceived)
                assert (await session.message("in session")).status == 200
                said = await callee.next_event(MessageReceived)
                assert (said.text, said.session) == ("in session", started.session)
                assert (await started.session.message("back")).status == 200
                assert (await caller.next_event(MessageReceived)).text == "back"
                assert (await session.bye()).status == 200
                await callee.next_event(SessionEnded)

    federated(tmp_path, link, scenario)


def test_offline_is_480_and_a_user_on_neither_side_is_404_without_a_loop(
    tmp_path: Path,
) -> None:
    async def scenario(partitions: Partitions) -> None:
        async with partitions.user("alice@example.com", ALICE_IP) as alice:
            await alice.register()
            with pytest.raises(SipError) as offline:
                await alice.message("carol@example.com", "are you there?")
            assert offline.value.status == 480
            assert "carol@example.com is provisioned here but not registered" in (
                offline.value.warning or ""
            )
            with pytest.raises(SipError) as unknown:
                await alice.message("nobody@example.com", "hello?")
            assert unknown.value.status == 404
        [call_id] = {
            r.call_id for _, r in partitions.received if str(r.uri) == "sip:nobody@example.com"
        }
        # alice -> imp1 (twice: 407, then with credentials) -> ocs1, which answers 404.
        hops = partitions.hops(call_id)
        assert hops.count("ocs1.example.com") == 1
        assert set(hops) == {"imp1.example.com", "ocs1.example.com"}
        assert hops[-1] == "ocs1.example.com"

    federated(tmp_path, "mtls", scenario)


def test_presence_is_back_within_a_minute_when_the_peer_partition_restarts(
    tmp_path: Path,
) -> None:
    async def scenario(partitions: Partitions) -> None:
        loop = asyncio.get_running_loop()
        async with partitions.user("alice@example.com", ALICE_IP) as alice:
            await alice.register()
            async with partitions.user("bob@example.com", BOB_IP) as bob:
                await bob.register()
                await alice.subscribe("bob@example.com")
                assert await presence(alice, "bob@example.com") is PresenceState.AVAILABLE
                await bob.publish(PresenceState.BUSY)
                assert await presence(alice, "bob@example.com") is PresenceState.BUSY
            await partitions.restart(Role.OCS)
            restarted = loop.time()
            # The restarted ocs1 still holds alice's subscription and bob's publication:
            # alice hears bob's state at once, not at her next refresh an hour later.
            assert await presence(alice, "bob@example.com", timeout=60) is PresenceState.BUSY
            assert loop.time() - restarted < 60

    # The minute is measured from the restart; the run as a whole may take longer.
    federated(tmp_path, "mtls", scenario, timeout=120)


def test_the_200_to_a_subscribe_from_the_other_partition_carries_its_record_route(
    tmp_path: Path,
) -> None:
    async def scenario(partitions: Partitions) -> None:
        async with partitions.registered() as (alice, _bob):
            subscription = await alice.subscribe("bob@example.com")
            assert subscription.dialog is not None
            # imp1 Record-Routed the SUBSCRIBE and ocs1 answered it: alice's route set is
            # imp1 (once, or twice when it joins two listeners: RFC 5658).
            routes = subscription.dialog.route_set
            assert routes
            assert all(route.startswith("<sip:imp1.example.com:") for route in routes)

    federated(tmp_path, "mtls", scenario)


def test_a_block_list_reloaded_makes_bob_appear_offline_to_alice_and_back(
    tmp_path: Path,
) -> None:
    async def scenario(partitions: Partitions) -> None:
        async with partitions.registered() as (alice, bob):
            await alice.subscribe("bob@example.com")
            assert await presence(alice, "bob@example.com") is PresenceState.AVAILABLE
            ocs = partitions.nodes[Role.OCS]
            unblocked = ocs.settings
            blocked = {"bob@example.com": frozenset({"alice@example.com"})}
            assert ocs.reload(dataclasses.replace(unblocked, blocked=blocked)) is None
            assert await presence(alice, "bob@example.com") is PresenceState.OFFLINE
            # Polite blocking: bob's later changes never reach alice.
            await bob.publish(PresenceState.BUSY)
            with pytest.raises(TimeoutError):
                await alice.next_event(PresenceNotified, timeout=0.5)
            assert ocs.reload(unblocked) is None
            assert await presence(alice, "bob@example.com") is PresenceState.BUSY

    federated(tmp_path, "mtls", scenario)


def test_the_other_partition_cannot_send_as_a_user_homed_here(tmp_path: Path) -> None:
    async def scenario(partitions: Partitions) -> None:
        imp, ocs = partitions.deployment.imp, partitions.deployment.ocs
        with open_store(imp.home) as store:
            tls = tls_contexts_of(imp.home, store.load("running"))
        assert tls is not None
        reader, writer = await asyncio.open_connection(
            ocs.ip,
            ocs.tls_port,
            ssl=tls.current.client,
            server_hostname=ocs.fqdn,
            local_addr=(imp.ip, 0),
        )
        imp1 = SipPeer(reader, writer)
        try:
            for n, sender in enumerate(("bob@example.com", "alice@example.com")):
                imp1.writer.write(
                    (
                        f"MESSAGE sip:carol@example.com SIP/2.0\r\n"
                        f"Via: SIP/2.0/TLS {imp.fqdn}:{imp.tls_port};branch=z9hG4bK-spoof{n}\r\n"
                        f"Max-Forwards: 70\r\nFrom: <sip:{sender}>;tag=s{n}\r\n"
                        f"To: <sip:carol@example.com>\r\nCall-ID: spoof{n}@{imp.ip}\r\n"
                        "CSeq: 1 MESSAGE\r\nContent-Length: 0\r\n\r\n"
                    ).encode()
                )
                answer = await imp1.next()
                assert isinstance(answer, Response)
                if sender == "bob@example.com":
                    # bob is homed on ocs1: imp1 cannot speak for him.
                    assert answer.status == 403
                    assert "cannot send as bob@example.com, who is homed here" in (
                        answer.headers.get("warning") or ""
                    )
                else:
                    # alice is imp1's own user: carol is ocs1's and offline.
                    assert answer.status == 480
        finally:
            writer.close()

    federated(tmp_path, "mtls", scenario)
