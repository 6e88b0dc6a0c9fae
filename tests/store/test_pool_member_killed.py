"""A front end of a pool of two (real ``intrafed serve`` processes on one PostgreSQL
database) killed with SIGKILL under a bounded MESSAGE and presence load, with an IM&P node
in this process whose static routes reach the pool through fe1, else fe2."""

from __future__ import annotations

import asyncio
import contextlib
import sys
import time
from collections import Counter
from collections.abc import AsyncIterator
from pathlib import Path

from intrafed.check.deployment import SeedNode
from intrafed.node import Node
from intrafed.sip.pidf import PresenceState
from intrafed.store import open_store
from tests.store import pool_load
from tests.store.pool_load import Load, agent, pager, rows, seen, shown_by, toggling
from tests.store.postgres import Database
from tests.store.test_pool_deployment import listening

SUBNET = "127.0.35"
USERS = pool_load.homes(SUBNET)
BOB_AT_FE2 = "127.0.35.45"
CONVERGED_WITHIN = 30.0


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


def test_a_front_end_killed_under_load_loses_no_request_registration_or_subscription(
    postgres: Database, tmp_path: Path
) -> None:
    """Every request the clients sent gets exactly one final outcome: the status of its
    final response, or, for a request on a connection that died with fe1, the client
    library's transport error (its final outcome: the request is not retried). No
    registration or subscription answered 2xx is lost, presence converges within 30 s of
    bob's client registering at fe2, and the load continues on fe2."""
    deployment = pool_load.build(tmp_path, postgres, SUBNET, USERS)
    (fe1, fe2), imp1 = deployment.front_ends, deployment.imp_nodes[0]
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
            agents = await pool_load.registered_clients(stack, deployment, USERS)
            alice = agents["alice@example.com"]
            taken_over = await pool_load.subscribed(agents)
            running = pool_load.steady_load(load, agents, 400)
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
