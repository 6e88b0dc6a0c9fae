"""A front end of a pool of two (real ``intrafed serve`` processes on one PostgreSQL
database) killed with SIGKILL under a bounded MESSAGE and presence load, with an IM&P node
in this process whose static routes reach the pool through fe1, else fe2."""

from __future__ import annotations

import asyncio
import contextlib
import json
import sys
import time
from collections import Counter
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import psycopg

from intrafed.check.deployment import SeedNode
from intrafed.check.pool_deployment import PoolDeployment, build_pool_deployment
from intrafed.config import edits
from intrafed.config.model import Role, StaticRoute
from intrafed.node import Node
from intrafed.pki import KeyType
from intrafed.sip.pidf import PresenceState
from intrafed.store import open_store
from intrafed.ua import PresenceNotified, Reply, SipError, UaError, UaSettings, UserAgent
from tests.check.mistakes import intrafed
from tests.integration.federation import free_base_port
from tests.store.postgres import Database
from tests.store.test_pool_deployment import listening

FE_IPS, IMP_IP = ("127.0.35.31", "127.0.35.32"), "127.0.35.33"
# Who is homed where, and the member (fe1, fe2 or imp1) and source address of its client.
USERS = {
    "alice@example.com": (Role.IMP, "imp1", "127.0.35.41"),
    "dave@example.com": (Role.IMP, "imp1", "127.0.35.42"),
    "bob@example.com": (Role.OCS, "fe1", "127.0.35.43"),
    "carol@example.com": (Role.OCS, "fe2", "127.0.35.44"),
}
BOB_AT_FE2 = "127.0.35.45"
LOAD_PAUSE = 0.05
"""Seconds between two requests of one load loop."""
CONVERGED_WITHIN = 30.0


def build(root: Path, ocs_db: Database) -> PoolDeployment:
    """The pool, and imp1 routing example.com to fe1 and, while it is unreachable, to fe2."""
    deployment = build_pool_deployment(
        root,
        ocs_db=ocs_db.url,
        imp_db=None,
        front_end_ips=FE_IPS,
        imp_ips=(IMP_IP,),
        base_port=free_base_port([*FE_IPS, IMP_IP]),
        users=[(aor, role) for aor, (role, _, _) in USERS.items()],
        key_type=KeyType.EC_P256,
    )
    fe2 = deployment.front_ends[1]
    failover = StaticRoute("example.com", "TLS", fe2.tls_port, fqdn=fe2.fqdn, priority=2)
    with open_store(deployment.imp_nodes[0].home) as store:
        store.stage(lambda c: edits.add_route(c, failover))
        store.promote()
    return deployment


def agent(deployment: PoolDeployment, aor: str, member: SeedNode, source_ip: str) -> UserAgent:
    """``aor``'s client on TLS to ``member``'s client listener."""
    return UserAgent(
        UaSettings(
            aor, (member.ip, member.client_tls_port), password=deployment.password(aor),
            transport="tls", server_name=member.fqdn, ca_file=deployment.ca_certificate,
            source_ip=source_ip, timeout=10,
        )
    )  # fmt: skip


class Load:
    """Bounded request loops; every request sent and its final outcome: the status of its
    final response, ``transport error`` when the client library failed it because its
    connection died, or ``no final response`` when none came within the client's timeout
    (a failure)."""

    def __init__(self) -> None:
        self.sent = 0
        self.outcomes: list[tuple[float, str, str]] = []
        """(when, who, outcome)"""
        self.stopping = asyncio.Event()

    async def loop(self, who: str, request: Callable[[], Awaitable[Reply]], rounds: int) -> None:
        """Send ``request()`` at most ``rounds`` times, until told to stop; stops early
        when the client's connection is gone."""
        for _ in range(rounds):
            if self.stopping.is_set():
                return
            self.sent += 1
            try:
                outcome = str((await request()).status)
            except SipError as exc:
                # A failure response, or the library's local 408 when none came in time.
                local = (exc.warning or "").startswith("no final response")
                outcome = "no final response" if local else str(exc.status)
            except UaError:
                outcome = "transport error"
            self.outcomes.append((time.monotonic(), who, outcome))
            if outcome == "transport error":
                return
            await asyncio.sleep(LOAD_PAUSE)


async def seen(agent: UserAgent, of: str, state: PresenceState, timeout: float) -> None:
    """Wait (bounded) until a NOTIFY tells ``agent`` that ``of`` is in ``state``."""
    async with asyncio.timeout(timeout):
        while True:
            event = await agent.next_event(PresenceNotified, timeout)
            if event.presentity == of and event.state is state:
                return


@contextlib.asynccontextmanager
async def front_end_process(member: SeedNode) -> AsyncIterator[asyncio.subprocess.Process]:
    """``intrafed serve`` of ``member``, listening; killed after the block if still alive."""
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "intrafed", "serve", "--home", str(member.home),
        stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.DEVNULL,
    )  # fmt: skip
    try:
        async with asyncio.timeout(30):
            while not listening(member):
                await asyncio.sleep(0.1)
        yield process
    finally:
        if process.returncode is None:
            process.kill()
            await process.wait()


async def shown_by(member: SeedNode, what: str) -> list[dict[str, Any]]:
    """``intrafed show WHAT --json`` of the running ``member`` (asked over its control
    socket)."""
    shown = await asyncio.to_thread(intrafed, "show", what, "--json", home=member.home)
    listed: list[dict[str, Any]] = json.loads(shown)
    return listed


def rows(database: Database, query: str) -> set[tuple[str, ...]]:
    with psycopg.connect(database.url) as connection:
        return {tuple(str(value) for value in row) for row in connection.execute(query)}


def test_a_front_end_killed_under_load_loses_no_request_registration_or_subscription(
    postgres: Database, tmp_path: Path
) -> None:
    """Every request the clients sent gets exactly one final outcome: the status of its
    final response, or, for a request on a connection that died with fe1, the client
    library's transport error (its final outcome: the request is not retried). No
    registration or subscription answered 2xx is lost, presence converges within 30 s of
    bob's client registering at fe2, and the load continues on fe2."""
    deployment = build(tmp_path, postgres)
    (fe1, fe2), imp1 = deployment.front_ends, deployment.imp_nodes[0]
    members = {"fe1": fe1, "fe2": fe2, "imp1": imp1}
    load = Load()

    async def scenario() -> float:
        async with (
            front_end_process(fe1) as fe1_process,
            front_end_process(fe2),
            contextlib.AsyncExitStack() as stack,
        ):
            store = stack.enter_context(open_store(imp1.home))
            node = Node.from_home(imp1.home, store)
            await node.start()
            stack.push_async_callback(node.stop, 1.0)
            agents = {
                aor: await stack.enter_async_context(agent(deployment, aor, members[at], ip))
                for aor, (_, at, ip) in USERS.items()
            }
            for each in agents.values():
                assert (await each.register()).status == 200
            alice, dave = agents["alice@example.com"], agents["dave@example.com"]
            bob, carol = agents["bob@example.com"], agents["carol@example.com"]
            await asyncio.sleep(1.0)  # the members hear of each other's registrations
            # alice's subscriptions go imp1 -> fe1, which holds them; carol's is imp1's.
            taken_over = []
            for presentity in ("bob@example.com", "carol@example.com"):
                taken_over.append(await alice.subscribe(presentity))
                await seen(alice, presentity, PresenceState.AVAILABLE, 10)
            await carol.subscribe("alice@example.com")
            await seen(carol, "alice@example.com", PresenceState.AVAILABLE, 10)

            def pager(sender: UserAgent, to: str) -> Callable[[], Awaitable[Reply]]:
                return lambda: sender.message(to, "load")

            def toggling(publisher: UserAgent) -> Callable[[], Awaitable[Reply]]:
                states = iter([PresenceState.BUSY, PresenceState.AVAILABLE] * 1000)
                return lambda: publisher.publish(next(states))

            loops = [
                load.loop("alice->bob", pager(alice, "bob@example.com"), 400),
                load.loop("alice->carol", pager(alice, "carol@example.com"), 400),
                load.loop("dave->bob", pager(dave, "bob@example.com"), 400),
                load.loop("carol->alice", pager(carol, "alice@example.com"), 400),
                load.loop("bob->dave", pager(bob, "dave@example.com"), 400),
                load.loop("carol publishes", toggling(carol), 400),
                load.loop("bob publishes", toggling(bob), 400),
            ]
            running = asyncio.gather(*loops)
            await asyncio.sleep(2.0)
            fe1_process.kill()
            await fe1_process.wait()
            killed = time.monotonic()
            # bob's client notices its connection is gone and registers at fe2.
            bob_again = await stack.enter_async_context(
                agent(deployment, "bob@example.com", fe2, BOB_AT_FE2)
            )
            assert (await bob_again.register()).status == 200
            registered = time.monotonic()
            assert (await bob_again.publish(PresenceState.DO_NOT_DISTURB)).status == 200
            await seen(alice, "bob@example.com", PresenceState.DO_NOT_DISTURB, CONVERGED_WITHIN)
            converged = time.monotonic() - registered
            # The load goes on through fe2 (bob's new client among it) for 2 s more.
            resumed = time.monotonic()
            more = asyncio.gather(
                load.loop("bob@fe2->dave", pager(bob_again, "dave@example.com"), 40),
                load.loop("bob@fe2 publishes", toggling(bob_again), 40),
            )
            await asyncio.sleep(2.0)
            load.stopping.set()
            await asyncio.wait_for(asyncio.gather(running, more), 30)
            assert killed < resumed

            # What was answered 2xx is still there: the bindings and subscriptions the
            # pool's database holds for fe2, and imp1's own.
            fe2_bindings = rows(postgres, "SELECT aor, member FROM bindings")
            assert {("carol@example.com", fe2.fqdn), ("bob@example.com", fe2.fqdn)} <= fe2_bindings
            held = rows(postgres, "SELECT watcher, presentity, member FROM subscriptions")
            assert held == {
                ("alice@example.com", "bob@example.com", fe2.fqdn),
                ("alice@example.com", "carol@example.com", fe2.fqdn),
            }
            wall = time.time()
            for aor in ("alice@example.com", "dave@example.com"):
                assert node.registrar.bindings(aor, wall)
            assert [(r.watcher, r.presentity) for r in node.presence.subscription_rows()] == [
                ("carol@example.com", "alice@example.com")
            ]
            # fe2 answers alice's refreshes of the subscriptions it took over.
            for subscription in taken_over:
                assert (await subscription.refresh()).status == 200
            contacts = rows(postgres, "SELECT local_contact FROM subscriptions")
            assert all(f"@{fe2.fqdn}:" in contact for (contact,) in contacts), contacts
            # What fe2 itself holds, as `intrafed show` asks it over its control socket.
            shown = await shown_by(fe2, "subscriptions")
            assert {(s["watcher"], s["presentity"]) for s in shown} == {
                ("alice@example.com", "bob@example.com"),
                ("alice@example.com", "carol@example.com"),
            }
            shown = await shown_by(fe2, "registrations")
            connected = {b["aor"] for b in shown if b["connected"]}
            assert connected == {"bob@example.com", "carol@example.com"}
            return converged

    converged = asyncio.run(asyncio.wait_for(scenario(), 150))
    assert converged < CONVERGED_WITHIN
    # Exactly one final outcome per request sent.
    assert len(load.outcomes) == load.sent
    outcomes = Counter(outcome for _, _, outcome in load.outcomes)
    assert "no final response" not in outcomes, outcomes
    assert load.sent > 500, outcomes
    # Only bob's first client, whose connection died with fe1, saw transport errors.
    assert {who for _, who, o in load.outcomes if o == "transport error"} <= {
        "bob->dave",
        "bob publishes",
    }
    # The load continued: after the convergence, every request through fe2 succeeded.
    last = max(at for at, _, _ in load.outcomes) - 1.0
    late = [(who, o) for at, who, o in load.outcomes if at >= last]
    assert late
    assert all(o == "200" for _, o in late), late
    assert {"alice->bob", "dave->bob", "bob@fe2->dave"} <= {who for who, _ in late}
