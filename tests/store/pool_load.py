"""A pool of two front ends (real ``intrafed serve`` processes on one PostgreSQL database)
and an IM&P node in the test's process whose static routes reach the pool through fe1,
else fe2; ua-library clients on TLS to each member, and bounded MESSAGE and presence load
loops that record one final outcome per request."""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
from collections.abc import Awaitable, Callable, Mapping
from pathlib import Path
from typing import Any

import psycopg

from intrafed.check.deployment import SeedNode
from intrafed.check.pool_deployment import PoolDeployment, build_pool_deployment
from intrafed.config import edits
from intrafed.config.model import Role, StaticRoute
from intrafed.pki import KeyType
from intrafed.sip.pidf import PresenceState
from intrafed.store import open_store
from intrafed.ua import (
    PresenceNotified,
    Reply,
    SipError,
    Subscription,
    UaError,
    UaSettings,
    UserAgent,
)
from tests.check.mistakes import intrafed
from tests.integration.federation import free_base_port
from tests.store.postgres import Database

LOAD_PAUSE = 0.05
"""Seconds between two requests of one load loop."""

Homes = Mapping[str, tuple[Role, str, str]]
"""Per user: the side homing it, the member its client uses (fe1, fe2 or imp1) and the
client's source address."""


def homes(subnet: str) -> Homes:
    """alice and dave on imp1, bob on fe1 and carol on fe2, their clients at the addresses
    .41 to .44 of ``subnet`` (``127.0.35``)."""
    return {
        "alice@example.com": (Role.IMP, "imp1", f"{subnet}.41"),
        "dave@example.com": (Role.IMP, "imp1", f"{subnet}.42"),
        "bob@example.com": (Role.OCS, "fe1", f"{subnet}.43"),
        "carol@example.com": (Role.OCS, "fe2", f"{subnet}.44"),
    }


def build(root: Path, ocs_db: Database, subnet: str, users: Homes) -> PoolDeployment:
    """The pool (fe1 and fe2 at the addresses .31 and .32 of ``subnet``), and imp1 (at .33)
    routing example.com to fe1 and, while it is unreachable, to fe2."""
    front_end_ips, imp_ip = (f"{subnet}.31", f"{subnet}.32"), f"{subnet}.33"
    deployment = build_pool_deployment(
        root,
        ocs_db=ocs_db.url,
        imp_db=None,
        front_end_ips=front_end_ips,
        imp_ips=(imp_ip,),
        base_port=free_base_port([*front_end_ips, imp_ip]),
        users=[(aor, role) for aor, (role, _, _) in users.items()],
        key_type=KeyType.EC_P256,
    )
    fe2 = deployment.front_ends[1]
    failover = StaticRoute("example.com", "TLS", fe2.tls_port, fqdn=fe2.fqdn, priority=2)
    with open_store(deployment.imp_nodes[0].home) as store:
        store.stage(lambda c: edits.add_route(c, failover))
        store.promote()
    return deployment


def agent(
    deployment: PoolDeployment, aor: str, member: SeedNode, source_ip: str, **options: Any
) -> UserAgent:
    """``aor``'s client on TLS to ``member``'s client listener (``options``: more
    ``UaSettings``)."""
    return UserAgent(
        UaSettings(
            aor, (member.ip, member.client_tls_port), password=deployment.password(aor),
            transport="tls", server_name=member.fqdn, ca_file=deployment.ca_certificate,
            source_ip=source_ip, timeout=10, **options,
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


async def registered_clients(
    stack: contextlib.AsyncExitStack, deployment: PoolDeployment, users: Homes, **options: Any
) -> dict[str, UserAgent]:
    """Each user's client (``agent``, closed with ``stack``), registered at its member."""
    members = {"fe1": deployment.front_ends[0], "fe2": deployment.front_ends[1]}
    members["imp1"] = deployment.imp_nodes[0]
    agents = {
        aor: await stack.enter_async_context(agent(deployment, aor, members[at], ip, **options))
        for aor, (_, at, ip) in users.items()
    }
    for each in agents.values():
        assert (await each.register()).status == 200
    return agents


async def subscribed(agents: Mapping[str, UserAgent]) -> list[Subscription]:
    """alice's subscriptions to bob and carol (they go imp1 -> fe1, which holds them) and
    carol's to alice (imp1 holds it), each seen Available; alice's are returned."""
    alice, carol = agents["alice@example.com"], agents["carol@example.com"]
    await asyncio.sleep(1.0)  # the members hear of each other's registrations
    alices = []
    for presentity in ("bob@example.com", "carol@example.com"):
        alices.append(await alice.subscribe(presentity))
        await seen(alice, presentity, PresenceState.AVAILABLE, 10)
    await carol.subscribe("alice@example.com")
    await seen(carol, "alice@example.com", PresenceState.AVAILABLE, 10)
    return alices


def steady_load(load: Load, agents: Mapping[str, UserAgent], rounds: int) -> asyncio.Future[Any]:
    """Pager MESSAGEs both ways between the sides and PUBLISHes of bob and carol, each
    loop ``rounds`` requests at most."""
    alice, dave = agents["alice@example.com"], agents["dave@example.com"]
    bob, carol = agents["bob@example.com"], agents["carol@example.com"]
    return asyncio.gather(
        load.loop("alice->bob", pager(alice, "bob@example.com"), rounds),
        load.loop("alice->carol", pager(alice, "carol@example.com"), rounds),
        load.loop("dave->bob", pager(dave, "bob@example.com"), rounds),
        load.loop("carol->alice", pager(carol, "alice@example.com"), rounds),
        load.loop("bob->dave", pager(bob, "dave@example.com"), rounds),
        load.loop("carol publishes", toggling(carol), rounds),
        load.loop("bob publishes", toggling(bob), rounds),
    )


def pager(sender: UserAgent, to: str) -> Callable[[], Awaitable[Reply]]:
    """A MESSAGE from ``sender`` to ``to``, for ``Load.loop``."""
    return lambda: sender.message(to, "load")


def toggling(publisher: UserAgent) -> Callable[[], Awaitable[Reply]]:
    """A PUBLISH of Busy, then Available, and so on, for ``Load.loop``."""
    states = iter([PresenceState.BUSY, PresenceState.AVAILABLE] * 1000)
    return lambda: publisher.publish(next(states))


async def seen(agent: UserAgent, of: str, state: PresenceState, timeout: float) -> None:
    """Wait (bounded) until a NOTIFY tells ``agent`` that ``of`` is in ``state``."""
    async with asyncio.timeout(timeout):
        while True:
            event = await agent.next_event(PresenceNotified, timeout)
            if event.presentity == of and event.state is state:
                return


async def shown_by(member: SeedNode, what: str) -> list[dict[str, Any]]:
    """``intrafed show WHAT --json`` of the running ``member`` (asked over its control
    socket)."""
    shown = await asyncio.to_thread(intrafed, "show", what, "--json", home=member.home)
    listed: list[dict[str, Any]] = json.loads(shown)
    return listed


def rows(database: Database, query: str) -> set[tuple[str, ...]]:
    """The rows ``query`` returns from ``database``, every value as text."""
    with psycopg.connect(database.url) as connection:
        return {tuple(str(value) for value in row) for row in connection.execute(query)}
