"""A rolling restart of a pool of two front ends (``intrafed service`` on one PostgreSQL
database) under a steady MESSAGE and presence load: ``service restart`` of fe1, until it
serves, then of fe2; every request of the load gets one 2xx, with an IM&P node in this
process whose static routes reach the pool through fe1, else fe2 (over MTLS, as the pool's
own links)."""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
from collections import Counter
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

from intrafed.check.deployment import SeedNode
from intrafed.node import Node
from intrafed.sip.pidf import PresenceState
from intrafed.store import open_store
from tests.homes import intrafed_process
from tests.integration.test_service_handover import gone
from tests.store import pool_load
from tests.store.pool_load import Load, rows, seen, shown_by
from tests.store.postgres import Database

SUBNET = "127.0.45"
USERS = pool_load.homes(SUBNET)
CONVERGED_WITHIN = 10.0
RESTARTED_WITHIN = 30.0


async def service(*arguments: str) -> dict[str, Any]:
    """``intrafed service ARGUMENTS --json``, which must succeed; what it prints."""
    done = await asyncio.to_thread(intrafed_process, "service", *arguments, "--json")
    assert done.returncode == 0, done.stderr
    printed: dict[str, Any] = json.loads(done.stdout)
    return printed


@contextlib.asynccontextmanager
async def front_ends(*members: SeedNode) -> AsyncIterator[None]:
    """``intrafed service start`` of each member; stopped after the block."""
    try:
        for member in members:
            await service("start", "--home", str(member.home))
        yield
    finally:
        for member in members:
            await asyncio.to_thread(intrafed_process, "service", "stop", "--home", str(member.home))


async def restart(member: SeedNode) -> tuple[int, int]:
    """``intrafed service restart`` of ``member``, then ``service status`` until the new
    process serves and the old one is gone; (old pid, new pid)."""
    home = str(member.home)
    old = (await service("status", "--home", home))["pid"]
    restarted = await service("restart", "--home", home)
    assert restarted["stopped_pid"] == old
    async with asyncio.timeout(RESTARTED_WITHIN):
        while True:
            status = await service("status", "--home", home)
            if status["running"] and status["pid"] != old and gone(old):
                return old, status["pid"]
            await asyncio.sleep(0.2)


def test_a_rolling_restart_of_both_front_ends_under_load_fails_no_request(
    postgres: Database, tmp_path: Path
) -> None:
    """fe1 is restarted (``service restart``: the new process takes over the listening
    sockets, the old one drains), then fe2 once fe1 serves, while the clients registered
    at each send MESSAGEs and PUBLISHes: every request gets exactly one final response,
    a 2xx — no 430, 503, 408, 500 or transport error. A request another node writes in the
    very instant the old process closes that connection is not read there; the old process
    ends the TLS stream with close_notify, and the sender sends the request again, to the
    new process. The registrations and subscriptions stay where they were in the
    database, and presence still converges."""
    deployment = pool_load.build(tmp_path, postgres, SUBNET, USERS)
    (fe1, fe2), imp1 = deployment.front_ends, deployment.imp_nodes[0]
    load = Load()

    async def scenario() -> list[tuple[int, int]]:
        async with front_ends(fe1, fe2), contextlib.AsyncExitStack() as stack:
            store = stack.enter_context(open_store(imp1.home))
            node = Node.from_home(imp1.home, store)
            await node.start()
            stack.push_async_callback(node.stop, 1.0)
            agents = await pool_load.registered_clients(stack, deployment, USERS, reconnect=True)
            alice, bob = agents["alice@example.com"], agents["bob@example.com"]
            carol = agents["carol@example.com"]
            await pool_load.subscribed(agents)
            subscriptions = rows(postgres, "SELECT watcher, presentity, member FROM subscriptions")
            assert subscriptions == {
                ("alice@example.com", "bob@example.com", fe1.fqdn),
                ("alice@example.com", "carol@example.com", fe1.fqdn),
            }
            running = pool_load.steady_load(load, agents, 1000)
            await asyncio.sleep(2.0)
            restarted = [await restart(fe1), await restart(fe2)]
            await asyncio.sleep(2.0)
            load.stopping.set()
            await asyncio.wait_for(running, 30)

            # Presence still converges: each front end's user's change reaches alice.
            for publisher in (bob, carol):
                assert (await publisher.publish(PresenceState.DO_NOT_DISTURB)).status == 200
                await seen(alice, publisher.settings.aor, PresenceState.DO_NOT_DISTURB,
                           CONVERGED_WITHIN)  # fmt: skip
            assert (await alice.publish(PresenceState.AWAY)).status == 200
            await seen(carol, "alice@example.com", PresenceState.AWAY, CONVERGED_WITHIN)

            # The registrations and subscriptions are where they were.
            bindings = rows(postgres, "SELECT aor, member FROM bindings")
            assert bindings == {("bob@example.com", fe1.fqdn), ("carol@example.com", fe2.fqdn)}
            held = rows(postgres, "SELECT watcher, presentity, member FROM subscriptions")
            assert held == subscriptions
            shown = await shown_by(fe1, "subscriptions")
            assert {(s["watcher"], s["presentity"]) for s in shown} == {
                ("alice@example.com", "bob@example.com"),
                ("alice@example.com", "carol@example.com"),
            }
            for member, aor in ((fe1, "bob@example.com"), (fe2, "carol@example.com")):
                shown = await shown_by(member, "registrations")
                assert {b["aor"] for b in shown if b["connected"]} == {aor}
            wall = time.time()
            for aor in ("alice@example.com", "dave@example.com"):
                assert node.registrar.bindings(aor, wall)
            assert [(r.watcher, r.presentity) for r in node.presence.subscription_rows()] == [
                ("carol@example.com", "alice@example.com")
            ]
            return restarted

    restarted = asyncio.run(asyncio.wait_for(scenario(), 180))
    assert all(old != new for old, new in restarted)
    assert len(load.outcomes) == load.sent
    outcomes = Counter(outcome for _, _, outcome in load.outcomes)
    failed = [(who, o) for _, who, o in load.outcomes if not o.startswith("2")]
    assert failed == [], (outcomes, failed[:20])
    assert load.sent > 500, outcomes
