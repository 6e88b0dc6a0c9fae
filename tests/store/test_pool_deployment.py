"""An Enterprise pool of two OCS front ends and an IM&P cluster of two nodes, each side on a
real PostgreSQL database of its own, over real sockets (MTLS between the partitions and
between the members): users spread over all four see each other's presence and exchange
pager and session IMs both ways. A request for a user whose client is held by another
member is relayed there; a MESSAGE relayed that way touches no database."""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import socket
import sys
from collections import Counter
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from intrafed.check import check_homes
from intrafed.check.deployment import SeedNode
from intrafed.check.pool_deployment import PoolDeployment, build_pool_deployment
from intrafed.config.model import Role
from intrafed.node import Node
from intrafed.node_control import NodeControl
from intrafed.pki import KeyType, Severity
from intrafed.sip import parse_uri
from intrafed.sip.pidf import PresenceState
from intrafed.store import open_store
from intrafed.store.postgres import PostgresStore
from intrafed.ua import (
    MessageReceived,
    PresenceNotified,
    SessionEnded,
    SessionStarted,
    UaSettings,
    UserAgent,
)
from tests.check.mistakes import intrafed
from tests.integration.federation import free_base_port
from tests.store.postgres import Database

FE_IPS, IMP_IPS = ("127.0.15.31", "127.0.15.32"), ("127.0.15.33", "127.0.15.34")
# Who is homed on which side, and the member whose client listener the user connects to.
USERS = {
    "alice@example.com": (Role.IMP, 0, "127.0.15.41"),
    "dave@example.com": (Role.IMP, 1, "127.0.15.42"),
    "bob@example.com": (Role.OCS, 0, "127.0.15.43"),
    "carol@example.com": (Role.OCS, 1, "127.0.15.44"),
}


class Transactions:
    """Counts the transactions each member's store opens (reads and writes alike)."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch) -> None:
        self.count: Counter[str] = Counter()
        original = PostgresStore._transaction

        def counted(store: PostgresStore, timeout: float) -> Any:
            self.count[getattr(store, "member", "")] += 1
            return original(store, timeout)

        monkeypatch.setattr(PostgresStore, "_transaction", counted)


class Pool:
    """The running members and their users."""

    def __init__(self, deployment: PoolDeployment) -> None:
        self.deployment = deployment
        self.nodes: dict[str, Node] = {}

    def member(self, aor: str) -> SeedNode:
        role, index, _ = USERS[aor]
        members = self.deployment.imp_nodes if role is Role.IMP else self.deployment.front_ends
        return members[index]

    def user(self, aor: str) -> UserAgent:
        """``aor``'s agent, on TLS to its member's client listener."""
        node = self.member(aor)
        return UserAgent(
            UaSettings(
                aor,
                (node.ip, node.client_tls_port),
                password=self.deployment.password(aor),
                transport="tls",
                server_name=node.fqdn,
                ca_file=self.deployment.ca_certificate,
                source_ip=USERS[aor][2],
            )
        )

    async def until(self, condition: Any, what: str, timeout: float = 10) -> None:
        """Wait (bounded) until ``condition()`` holds."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while not condition():
            if loop.time() > deadline:
                raise AssertionError(f"not within {timeout} s: {what}")
            await asyncio.sleep(0.02)

    def holder(self, at: SeedNode, aor: str) -> str | None:
        """The member that ``at`` believes holds ``aor``'s client flow."""
        core = self.nodes[at.fqdn].core
        members = core.pool.holders(aor, core._clock.wall())
        return members[0].name if members else None


@contextlib.asynccontextmanager
async def running(
    deployment: PoolDeployment, elsewhere: set[str] | None = None
) -> AsyncIterator[Pool]:
    """Every member started in this process (but those named ``elsewhere``)."""
    pool = Pool(deployment)
    stores = []
    here = [node for node in deployment.nodes if node.fqdn not in (elsewhere or set())]
    try:
        for node in here:
            store = open_store(node.home)
            stores.append(store)
            pool.nodes[node.fqdn] = Node.from_home(node.home, store)
            await pool.nodes[node.fqdn].start()
        for node in here:
            view = pool.nodes[node.fqdn].core.pool
            others = {other.fqdn for other in deployment.nodes if other.role is node.role}
            others.discard(node.fqdn)
            await pool.until(
                lambda view=view, others=others: others <= view.members.keys(),  # type: ignore[misc]
                f"{node.fqdn} knows the other members",
            )
        yield pool
    finally:
        for started in pool.nodes.values():
            await started.stop(grace=1.0)
        for store in stores:
            store.close()


async def presence(agent: UserAgent, of: str, timeout: float = 10) -> PresenceState | None:
    """The state in the next NOTIFY about ``of``."""
    while True:
        event = await agent.next_event(PresenceNotified, timeout)
        if event.presentity == of:
            return event.state


def build(root: Path, ocs_db: Database, imp_db: Database) -> PoolDeployment:
    """The pool deployment on free ports of this module's addresses."""
    return build_pool_deployment(
        root,
        ocs_db=ocs_db.url,
        imp_db=imp_db.url,
        front_end_ips=FE_IPS,
        imp_ips=IMP_IPS,
        base_port=free_base_port([*FE_IPS, *IMP_IPS]),
        users=[(aor, role) for aor, (role, _, _) in USERS.items()],
        key_type=KeyType.EC_P256,
    )


def test_check_passes_on_every_member_and_names_an_imp_member_ocs_does_not_trust(
    postgres: Database, imp_database: Database, tmp_path: Path
) -> None:
    deployment = build(tmp_path, postgres, imp_database)
    (fe1, fe2), (imp1, imp2) = deployment.front_ends, deployment.imp_nodes
    for home, peer in ((fe1, imp1), (fe2, imp2), (imp1, fe1), (imp2, fe2)):
        report = check_homes(home.home, (peer.home,))
        assert [f.rule.id for f in report.findings if f.severity is not Severity.INFO] == []
    # imp2 sends its own users' requests to the pool: the pool must trust it too.
    for option, value in (("--fqdn", imp2.fqdn), ("--ip", imp2.ip)):
        intrafed("config", "hostauth", "remove", option, value, home=fe2.home)
    report = check_homes(fe1.home, (imp1.home,))
    assert not report.ok
    assert {(f.rule.id, f.severity) for f in report.findings if imp2.fqdn in f.message} == {
        ("hostauth.fqdn", Severity.ERROR),
        ("hostauth.ip", Severity.ERROR),
    }


def test_users_spread_over_two_front_ends_and_two_imp_nodes_see_presence_and_exchange_ims(
    postgres: Database, imp_database: Database, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    deployment = build(tmp_path, postgres, imp_database)
    transactions = Transactions(monkeypatch)

    async def scenario() -> None:
        async with running(deployment) as pool, contextlib.AsyncExitStack() as stack:
            agents = {aor: await stack.enter_async_context(pool.user(aor)) for aor in USERS}
            for agent in agents.values():
                assert (await agent.register()).status == 200
            fe1, fe2 = deployment.front_ends
            imp1, imp2 = deployment.imp_nodes
            # Each member learns which member holds the others' clients.
            for at, aor, holder in (
                (fe1, "carol@example.com", fe2.fqdn),
                (fe2, "bob@example.com", fe1.fqdn),
                (imp1, "dave@example.com", imp2.fqdn),
                (imp2, "alice@example.com", imp1.fqdn),
            ):
                await pool.until(lambda: pool.holder(at, aor) == holder, f"{at.fqdn}: {aor}")  # noqa: B023

            # What an administrator sees: route explain and the node's status.
            explained = pool.nodes[fe1.fqdn].core.router.explain(
                parse_uri("sip:carol@example.com"), None
            )
            assert (explained["contacts"], explained["relayed_to_members"]) == (0, [fe2.fqdn])
            control = NodeControl(fe1.home, pool.nodes[fe1.fqdn], 0.0, dict)
            assert control.status()["pool_members"] == [fe2.fqdn]
            alice, dave = agents["alice@example.com"], agents["dave@example.com"]
            bob, carol = agents["bob@example.com"], agents["carol@example.com"]
            # Presence both ways, each watcher and presentity on members the other side
            # does not route to (imp routes to fe1, ocs to imp1).
            watches = ((alice, carol, "carol"), (carol, dave, "dave"), (dave, bob, "bob"),
                       (bob, alice, "alice"))  # fmt: skip
            for watcher, _, name in watches:
                await watcher.subscribe(f"{name}@example.com")
                assert await presence(watcher, f"{name}@example.com") is PresenceState.AVAILABLE
            for state, (watcher, presentity, name) in zip(
                (PresenceState.BUSY, PresenceState.AWAY, PresenceState.DO_NOT_DISTURB,
                 PresenceState.BE_RIGHT_BACK),
                watches,
                strict=True,
            ):  # fmt: skip
                await presentity.publish(state)
                assert await presence(watcher, f"{name}@example.com") is state

            # Pager IMs both ways between every pair of sides and members; none touches
            # a database.
            await asyncio.sleep(0.5)  # what the presence changes stored is written
            before = dict(transactions.count)
            pairs = (("dave", "carol"), ("carol", "dave"), ("alice", "carol"), ("bob", "dave"),
                     ("bob", "carol"), ("alice", "dave"))  # fmt: skip
            for sender, recipient in pairs:
                to = f"{recipient}@example.com"
                assert (await agents[f"{sender}@example.com"].message(to, "hi")).status == 200
                received = await agents[to].next_event(MessageReceived)
                assert (received.sender, received.text) == (f"{sender}@example.com", "hi")
            assert dict(transactions.count) == before

            # Session IM both ways, across both relays.
            for caller, callee, name in ((dave, carol, "carol"), (carol, dave, "dave")):
                session = await caller.invite_im(f"{name}@example.com")
                started = await callee.next_event(SessionStarted)
                assert (await session.message("in session")).status == 200
                assert (await callee.next_event(MessageReceived)).text == "in session"
                assert (await started.session.message("back")).status == 200
                assert (await caller.next_event(MessageReceived)).text == "back"
                assert (await session.bye()).status == 200
                await callee.next_event(SessionEnded)

    asyncio.run(asyncio.wait_for(scenario(), 120))


LB_IP = "127.0.15.35"


class LoadBalancer:
    """A TCP load balancer in front of the IM&P members' Peer Auth listeners: each new
    connection goes to the next member, its bytes passed through untouched (TLS included)."""

    def __init__(self, backends: list[tuple[str, int]]) -> None:
        self.backends = backends
        self.chosen: list[tuple[str, int]] = []
        self.tasks: set[asyncio.Task[None]] = set()

    async def start(self) -> tuple[str, int]:
        self.server = await asyncio.start_server(self._accept, LB_IP, 0)
        address: tuple[str, int] = self.server.sockets[0].getsockname()
        return address

    async def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        backend = self.backends[len(self.chosen) % len(self.backends)]
        self.chosen.append(backend)
        to_reader, to_writer = await asyncio.open_connection(*backend, local_addr=(LB_IP, 0))
        for source, sink in ((reader, to_writer), (to_reader, writer)):
            task = asyncio.create_task(self._pipe(source, sink))
            self.tasks.add(task)
            task.add_done_callback(self.tasks.discard)

    @staticmethod
    async def _pipe(source: asyncio.StreamReader, sink: asyncio.StreamWriter) -> None:
        with contextlib.suppress(ConnectionError):
            while data := await source.read(65536):
                sink.write(data)
                await sink.drain()
        sink.close()

    async def close(self) -> None:
        self.server.close()
        for task in list(self.tasks):
            task.cancel()


def test_the_ocs_route_reaches_the_imp_cluster_through_a_load_balancer_by_the_cluster_name(
    postgres: Database, imp_database: Database, tmp_path: Path
) -> None:
    deployment = build(tmp_path, postgres, imp_database)
    (fe1, _), (imp1, imp2) = deployment.front_ends, deployment.imp_nodes
    balancer = LoadBalancer([(imp1.ip, imp1.tls_port), (imp2.ip, imp2.tls_port)])

    async def scenario() -> None:
        _, port = await balancer.start()
        # The pool routes example.com to the cluster's name, resolving to the balancer.
        intrafed("config", "route", "remove", "--domain", "example.com", home=fe1.home)
        intrafed("config", "route", "add", "--domain", "example.com", "--transport", "TLS",
                 "--port", str(port), "--fqdn", "cup.example.com", home=fe1.home)  # fmt: skip
        intrafed("config", "hosts", "add", "cup.example.com", LB_IP, home=fe1.home)
        for member in deployment.front_ends:
            with open_store(member.home) as store:
                store.promote()
        report = check_homes(fe1.home, (imp1.home,))
        assert [f.rule.id for f in report.findings if f.severity is not Severity.INFO] == []
        try:
            async with running(deployment) as pool, contextlib.AsyncExitStack() as stack:
                agents = {aor: await stack.enter_async_context(pool.user(aor)) for aor in USERS}
                for agent in agents.values():
                    assert (await agent.register()).status == 200
                for at, aor in ((imp1, "dave@example.com"), (imp2, "alice@example.com")):
                    await pool.until(lambda: pool.holder(at, aor) is not None, aor)  # noqa: B023
                for sender in ("bob", "carol"):
                    for recipient in ("alice", "dave"):
                        to = f"{recipient}@example.com"
                        reply = await agents[f"{sender}@example.com"].message(to, "via the LB")
                        assert reply.status == 200
                        assert (await agents[to].next_event(MessageReceived)).text == "via the LB"
        finally:
            await balancer.close()
        # Each front end opened its own connection through the balancer: one to each member.
        assert sorted(balancer.chosen) == sorted(balancer.backends)

    asyncio.run(asyncio.wait_for(scenario(), 120))


def test_a_restarted_front_end_tells_its_watchers_a_user_held_by_another_is_online_at_once(
    postgres: Database, imp_database: Database, tmp_path: Path
) -> None:
    deployment = build(tmp_path, postgres, imp_database)
    fe1, fe2 = deployment.front_ends

    async def scenario() -> list[PresenceState | None]:
        async with running(deployment) as pool, contextlib.AsyncExitStack() as stack:
            alice = await stack.enter_async_context(pool.user("alice@example.com"))
            carol = await stack.enter_async_context(pool.user("carol@example.com"))
            for agent in (alice, carol):
                assert (await agent.register()).status == 200
            await pool.until(lambda: pool.holder(fe1, "carol@example.com") == fe2.fqdn, "carol")
            # alice's subscription goes imp1 -> fe1, which holds it; carol is on fe2.
            await alice.subscribe("carol@example.com")
            seen = [await presence(alice, "carol@example.com")]
            await pool.nodes[fe1.fqdn].stop(grace=1.0)
            with open_store(fe1.home) as store:
                restarted = Node.from_home(fe1.home, store)
                pool.nodes[fe1.fqdn] = restarted
                await restarted.start()
                seen.append(await presence(alice, "carol@example.com"))
                await restarted.stop(grace=1.0)
            return seen

    # The restarted fe1 renotifies alice with what it knows as it starts: carol online.
    assert asyncio.run(asyncio.wait_for(scenario(), 120)) == [PresenceState.AVAILABLE] * 2


def test_a_user_with_clients_on_both_front_ends_gets_a_message_on_each(
    postgres: Database, imp_database: Database, tmp_path: Path
) -> None:
    deployment = build(tmp_path, postgres, imp_database)
    fe1, fe2 = deployment.front_ends

    async def scenario() -> None:
        async with running(deployment) as pool, contextlib.AsyncExitStack() as stack:
            dave = await stack.enter_async_context(pool.user("dave@example.com"))
            bob_on_fe1 = await stack.enter_async_context(pool.user("bob@example.com"))
            settings = bob_on_fe1.settings
            bob_on_fe2 = await stack.enter_async_context(
                UserAgent(
                    dataclasses.replace(
                        settings,
                        server=(fe2.ip, fe2.client_tls_port),
                        server_name=fe2.fqdn,
                        source_ip="127.0.15.45",
                    )
                )
            )
            for agent in (dave, bob_on_fe1, bob_on_fe2):
                assert (await agent.register()).status == 200
            await pool.until(lambda: pool.holder(fe1, "bob@example.com") == fe2.fqdn, "bob")
            # imp routes to fe1, which has bob's first client and relays to his second.
            assert (await dave.message("bob@example.com", "to both")).status == 200
            for bob in (bob_on_fe1, bob_on_fe2):
                received = await bob.next_event(MessageReceived)
                assert (received.sender, received.text) == ("dave@example.com", "to both")

    asyncio.run(asyncio.wait_for(scenario(), 120))


def test_the_subscriptions_of_a_front_end_killed_are_taken_over_within_30_s(
    postgres: Database, imp_database: Database, tmp_path: Path
) -> None:
    deployment = build(tmp_path, postgres, imp_database)
    fe1, fe2 = deployment.front_ends

    async def scenario() -> float:
        fe1_process = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "intrafed", "serve", "--home", str(fe1.home),
            stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.DEVNULL,
        )  # fmt: skip
        try:
            running_here = running(deployment, elsewhere={fe1.fqdn})
            async with running_here as pool, contextlib.AsyncExitStack() as stack:
                await pool.until(lambda: listening(fe1), "fe1 serves", timeout=30)
                alice = await stack.enter_async_context(pool.user("alice@example.com"))
                carol = await stack.enter_async_context(pool.user("carol@example.com"))
                for agent in (alice, carol):
                    assert (await agent.register()).status == 200
                # imp1 routes to the pool FQDN: fe1 holds alice's subscription to carol.
                subscription = await alice.subscribe("carol@example.com")
                assert await presence(alice, "carol@example.com") is PresenceState.AVAILABLE
                assert pool.nodes[fe2.fqdn].presence.subscription_rows() == []
                fe1_process.kill()
                await fe1_process.wait()
                killed = asyncio.get_running_loop().time()
                # fe2 takes the subscription over and tells alice what it knows at once.
                assert await presence(alice, "carol@example.com", 30) is PresenceState.AVAILABLE
                taken = asyncio.get_running_loop().time() - killed
                assert len(pool.nodes[fe2.fqdn].presence.subscription_rows()) == 1
                await carol.publish(PresenceState.BUSY)
                assert await presence(alice, "carol@example.com") is PresenceState.BUSY
                # fe2's NOTIFYs carry its Contact: alice's refresh reaches fe2, not the dead fe1.
                assert subscription.dialog is not None
                assert f"@{fe2.fqdn}:" in str(subscription.dialog.remote_target)
                assert (await subscription.refresh()).status == 200
                assert await presence(alice, "carol@example.com") is PresenceState.BUSY
                return taken
        finally:
            if fe1_process.returncode is None:
                fe1_process.kill()
                await fe1_process.wait()

    assert asyncio.run(asyncio.wait_for(scenario(), 120)) < 30


def listening(node: SeedNode) -> bool:
    """Whether ``node`` accepts TCP connections."""
    with contextlib.suppress(OSError), socket.create_connection((node.ip, node.tcp_port), 1):
        return True
    return False
