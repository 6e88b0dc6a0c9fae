"""OCS routes to the IM&P cluster by its name, a DNS name with one A record per member:
the front end is a real ``intrafed serve`` process whose system resolver reads a hosts file
naming the cluster at both IM&P members (``tests.hosts_namespace``); the members share
their PostgreSQL database, so either takes any request and relays it to the member that
holds the user's client."""

from __future__ import annotations

import asyncio
import contextlib
import sys
from collections.abc import AsyncIterator
from pathlib import Path

from intrafed.check.deployment import SeedNode
from intrafed.check.pool_deployment import CLUSTER, PoolDeployment, build_pool_deployment
from intrafed.config.model import Role
from intrafed.node import Node
from intrafed.pki import KeyType
from intrafed.store import open_store
from intrafed.ua import MessageReceived
from tests.check.mistakes import intrafed
from tests.hosts_namespace import hosts_file, needs_root, with_hosts
from tests.integration.federation import free_base_port
from tests.store.pool_load import agent, shown_by
from tests.store.postgres import Database
from tests.store.test_pool_deployment import listening

FE_IP, IMP_IPS = "127.0.48.31", ("127.0.48.33", "127.0.48.34")
ALICE_AT, BOB_AT = "127.0.48.41", "127.0.48.43"
MESSAGES = 5
"""MESSAGEs bob sends alice while both members run, then again with imp1 stopped."""


def build(
    root: Path,
    ocs_db: Database,
    imp_db: Database,
    front_end_ip: str = FE_IP,
    imp_ips: tuple[str, str] = IMP_IPS,
) -> PoolDeployment:
    """One front end and two IM&P members; the front end's route for example.com goes over
    TLS to the cluster's name, which its own hosts table does not resolve."""
    deployment = build_pool_deployment(
        root,
        ocs_db=ocs_db.url,
        imp_db=imp_db.url,
        front_end_ips=(front_end_ip,),
        imp_ips=imp_ips,
        base_port=free_base_port([front_end_ip, *imp_ips]),
        users=[("alice@example.com", Role.IMP), ("bob@example.com", Role.OCS)],
        key_type=KeyType.EC_P256,
    )
    fe1, imp1 = deployment.front_ends[0], deployment.imp_nodes[0]
    intrafed("config", "route", "remove", "--domain", "example.com", home=fe1.home)
    intrafed("config", "route", "add", "--domain", "example.com", "--transport", "TLS",
             "--port", str(imp1.tls_port), "--fqdn", CLUSTER, home=fe1.home)  # fmt: skip
    with open_store(fe1.home) as store:
        store.promote()
    return deployment


@contextlib.asynccontextmanager
async def front_end_process(member: SeedNode, hosts: Path) -> AsyncIterator[None]:
    """``intrafed serve`` of ``member`` with ``hosts`` as its /etc/hosts, listening; its
    log in ``fe1.log`` beside its home."""
    serve = [sys.executable, "-m", "intrafed", "serve", "--home", str(member.home)]
    with (member.home.parent / f"{member.home.name}.log").open("wb") as log:
        process = await asyncio.create_subprocess_exec(
            *with_hosts(hosts, serve), stdout=log, stderr=log
        )
        try:
            async with asyncio.timeout(30):
                while not listening(member):
                    assert process.returncode is None, "the front end exited"
                    await asyncio.sleep(0.1)
            yield
        finally:
            if process.returncode is None:
                process.terminate()
                await process.wait()


async def outbound(fe1: SeedNode) -> list[str]:
    """The remote addresses of the front end's open outbound TLS connections whose peer's
    certificate proves the cluster's name."""
    connections = await shown_by(fe1, "connections")
    return [
        c["remote"]
        for c in connections
        if c["direction"] == "outbound" and c["transport"] == "TLS" and CLUSTER in c["names"]
    ]


@needs_root
def test_the_ocs_route_reaches_the_imp_cluster_by_a_name_with_one_a_record_per_member(
    postgres: Database, imp_database: Database, tmp_path: Path
) -> None:
    """The front end connects to the first address (imp1) and verifies the cluster name
    on its certificate; imp1 relays to imp2, which holds alice. With imp1 stopped (its port
    refuses), the next connection skips it: every MESSAGE still gets 200 from imp2."""
    deployment = build(tmp_path, postgres, imp_database)
    fe1, (imp1, imp2) = deployment.front_ends[0], deployment.imp_nodes
    hosts = hosts_file(tmp_path / "hosts", [(imp1.ip, CLUSTER), (imp2.ip, CLUSTER)])

    async def scenario() -> None:
        async with contextlib.AsyncExitStack() as stack:
            members = {}
            for imp in (imp1, imp2):
                store = stack.enter_context(open_store(imp.home))
                members[imp.fqdn] = Node.from_home(imp.home, store)
                await members[imp.fqdn].start()
            stopped: set[str] = set()

            async def stop_members() -> None:
                for name, node in members.items():
                    if name not in stopped:
                        await node.stop(grace=1.0)

            stack.push_async_callback(stop_members)
            await stack.enter_async_context(front_end_process(fe1, hosts))
            alice = await stack.enter_async_context(
                agent(deployment, "alice@example.com", imp2, ALICE_AT)
            )
            bob = await stack.enter_async_context(agent(deployment, "bob@example.com", fe1, BOB_AT))
            for client in (alice, bob):
                assert (await client.register()).status == 200
            view = members[imp1.fqdn].core.pool
            async with asyncio.timeout(10):
                while not view.holders("alice@example.com", members[imp1.fqdn].core._clock.wall()):
                    await asyncio.sleep(0.05)

            async def every_message_arrives(text: str) -> None:
                for n in range(MESSAGES):
                    assert (await bob.message("alice@example.com", f"{text} {n}")).status == 200
                    assert (await alice.next_event(MessageReceived)).text == f"{text} {n}"

            await every_message_arrives("both up")
            assert await outbound(fe1) == [f"{imp1.ip}:{imp1.tls_port}"]
            await members[imp1.fqdn].stop(grace=1.0)
            stopped.add(imp1.fqdn)
            await every_message_arrives("imp1 stopped")
            assert await outbound(fe1) == [f"{imp2.ip}:{imp2.tls_port}"]

    asyncio.run(asyncio.wait_for(scenario(), 120))
