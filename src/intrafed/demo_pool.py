"""``intrafed demo --pool N``: an Enterprise pool of N OCS front ends on a PostgreSQL
database and one IM and Presence node, in this process on loopback.

alice is on imp1; bob's client is on fe1 and carol's on the last front end. IM and Presence
routes to the pool FQDN, which resolves to fe1: what reaches carol crosses fe1 and is
relayed to the front end that holds her client, and her presence reaches alice's
subscription on fe1 from there.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from pathlib import Path

from intrafed.check.pool_deployment import PoolDeployment, build_pool_deployment
from intrafed.config.model import ConfigError, Role
from intrafed.demo import STEP_TIMEOUT, STOP_GRACE, DemoReport, StepResult
from intrafed.node import Node
from intrafed.pki import KeyType
from intrafed.sip.pidf import PresenceState
from intrafed.store import Store, open_store
from intrafed.store.urls import masked
from intrafed.transport import TransportError
from intrafed.ua import MessageReceived, PresenceNotified, UaSettings, UserAgent

IMP_IP = "127.0.0.2"
FRONT_END_IPS = ("127.0.0.3", "127.0.0.6", "127.0.0.7", "127.0.0.8")
"""The front ends' addresses, in order (``--pool`` takes the first N)."""
USER_IPS = {"alice@example.com": "127.0.0.4", "bob@example.com": "127.0.0.5",
            "carol@example.com": "127.0.0.9"}  # fmt: skip
USERS = (("alice@example.com", Role.IMP), ("bob@example.com", Role.OCS),
         ("carol@example.com", Role.OCS))  # fmt: skip


async def run_pool_demo(root: Path, *, db: str, members: int, base_port: int) -> DemoReport:
    """Build the pool deployment under ``root`` (the front ends on the empty database
    ``db``) and run the scenario; every step's outcome is what happened on the wire."""
    started = time.perf_counter()
    steps: list[StepResult] = []
    name = f"pool of {members} front ends on {masked(db)} and one IM and Presence node"
    try:
        deployment = build_pool_deployment(
            root, ocs_db=db, imp_db=None, front_end_ips=FRONT_END_IPS[:members],
            imp_ips=(IMP_IP,), base_port=base_port, users=USERS, key_type=KeyType.EC_P256,
        )  # fmt: skip
    except ConfigError as exc:
        return DemoReport((StepResult(name, False, str(exc)),), (), time.perf_counter() - started)
    steps.append(StepResult(name, True, ", ".join(n.fqdn for n in deployment.nodes)))
    nodes: list[Node] = []
    stores: list[Store] = []
    try:
        for node in deployment.nodes:
            stores.append(open_store(node.home))
            nodes.append(Node.from_home(node.home, stores[-1]))
            await nodes[-1].start()
        steps.append(StepResult("nodes started", True, await _acquainted(deployment, nodes)))
        await _scenario(deployment, steps)
    except (ConfigError, TransportError) as exc:
        steps.append(StepResult("nodes started", False, str(exc)))
    finally:
        await asyncio.gather(*(node.stop(grace=STOP_GRACE) for node in nodes))
        for store in stores:
            store.close()
    return DemoReport(tuple(steps), (), time.perf_counter() - started)


async def _acquainted(deployment: PoolDeployment, nodes: list[Node]) -> str:
    """Wait (a few seconds at most) until every front end knows where the others listen."""
    front_ends = {node.fqdn for node in deployment.front_ends}
    pool = [node for node in nodes if node.settings.name in front_ends]
    for _ in range(100):
        if all(len(node.core.pool.members) == len(pool) - 1 for node in pool):
            return "every front end knows where the others listen"
        await asyncio.sleep(0.05)
    return "the front ends did not all hear of each other yet"


def _agent(deployment: PoolDeployment, aor: str) -> UserAgent:
    """``aor`` as a TLS client: alice of imp1, bob of fe1, carol of the last front end."""
    node = {
        "alice@example.com": deployment.imp_nodes[0],
        "bob@example.com": deployment.front_ends[0],
        "carol@example.com": deployment.front_ends[-1],
    }[aor]
    settings = UaSettings(
        aor, (node.ip, node.client_tls_port), password=deployment.password(aor),
        transport="tls", server_name=node.fqdn, ca_file=deployment.ca_certificate,
        source_ip=USER_IPS[aor],
    )  # fmt: skip
    return UserAgent(settings)


async def _scenario(deployment: PoolDeployment, steps: list[StepResult]) -> None:
    alice, bob, carol = (_agent(deployment, aor) for aor, _ in USERS)
    carol_at = deployment.front_ends[-1].fqdn

    async def register() -> str:
        for agent in (alice, bob, carol):
            await agent.connect()
            await agent.register()
        await asyncio.sleep(0.5)  # the other members hear of the registrations
        return f"alice on imp1, bob on fe1, carol on {carol_at}"

    async def watch() -> str:
        await alice.subscribe("carol@example.com")
        seen = await _presence(alice, "carol@example.com")
        await carol.publish(PresenceState.BUSY)
        busy = await _presence(alice, "carol@example.com")
        if (seen, busy) != (PresenceState.AVAILABLE, PresenceState.BUSY):
            raise AssertionError(f"alice saw carol {seen} then {busy}")
        return f"alice (subscribed through fe1) sees carol Available, then Busy from {carol_at}"

    async def pager() -> str:
        said = []
        for sender, recipient in ((alice, carol), (carol, alice), (bob, carol)):
            await sender.message(recipient.settings.aor, f"hi from {sender.settings.aor}")
            received = await recipient.next_event(MessageReceived, STEP_TIMEOUT)
            said.append(f"{received.sender} -> {recipient.settings.aor}")
        return "; ".join(said)

    walk: list[tuple[str, Callable[[], Awaitable[str]]]] = [
        ("users registered on different members", register),
        ("presence from another front end", watch),
        ("pager IMs relayed between the members", pager),
    ]
    try:
        for name, action in walk:
            try:
                async with asyncio.timeout(STEP_TIMEOUT):
                    detail = await action()
            # The demo reports every failure as a failed step, whatever raised it.
            except Exception as exc:
                steps.append(StepResult(name, False, str(exc) or type(exc).__name__))
                break
            steps.append(StepResult(name, True, detail))
    finally:
        for agent in (alice, bob, carol):
            await agent.close()


async def _presence(agent: UserAgent, of: str) -> PresenceState | None:
    while True:
        event = await agent.next_event(PresenceNotified, STEP_TIMEOUT)
        if event.presentity == of:
            return event.state
