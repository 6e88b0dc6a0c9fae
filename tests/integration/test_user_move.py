"""``intrafed user move`` between two running partitions: bob (OCS) watches alice (IM&P)
and has a session with her; alice moves to OCS; bob's subscription ends with
reason=deactivated, his new SUBSCRIBE reaches her new home, her old home answers her
refresh 404, she registers at OCS with the moved HA1s, a new IM reaches her there, and
``intrafed check`` finds nothing half-moved."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner, Result

from intrafed.check.deployment import SeedDeployment
from intrafed.cli import main
from intrafed.control.client import ask
from intrafed.sip.pidf import PresenceState
from intrafed.ua import (
    MessageReceived,
    PresenceNotified,
    SessionStarted,
    SipError,
    UaSettings,
    UserAgent,
)
from tests.integration.federation import build_partitions
from tests.integration.serving import serving

IMP_IP, OCS_IP, ALICE_IP, BOB_IP = "127.0.0.230", "127.0.0.231", "127.0.0.232", "127.0.0.233"
ALICE, BOB = "alice@example.com", "bob@example.com"


def agent(deployment: SeedDeployment, aor: str, fqdn: str, source_ip: str) -> UserAgent:
    """``aor``'s client over TLS to the client listener of the node ``fqdn``."""
    node = next(node for node in deployment.nodes if node.fqdn == fqdn)
    return UserAgent(
        UaSettings(
            aor,
            (node.ip, node.client_tls_port),
            password=deployment.password(aor),
            transport="tls",
            server_name=node.fqdn,
            ca_file=deployment.ca_certificate,
            source_ip=source_ip,
        )
    )


async def cli(*arguments: str) -> Result:
    """An intrafed command, in a thread: it asks the nodes of this event loop."""
    return await asyncio.to_thread(CliRunner().invoke, main, list(arguments))


async def asked(home: Path, op: str, **args: str) -> Any:
    return await asyncio.to_thread(lambda: ask(home, op, **args))


def test_a_moved_user_is_watched_and_reached_at_her_new_home(tmp_path: Path) -> None:
    deployment = build_partitions(tmp_path / "seed", IMP_IP, OCS_IP)
    imp_home, ocs_home = deployment.imp.home, deployment.ocs.home
    imp_fqdn, ocs_fqdn = deployment.imp.fqdn, deployment.ocs.fqdn

    async def scenario() -> None:
        async with (
            serving(imp_home),
            serving(ocs_home),
            agent(deployment, ALICE, imp_fqdn, ALICE_IP) as alice,
            agent(deployment, BOB, ocs_fqdn, BOB_IP) as bob,
        ):
            assert (await alice.register()).status == 200
            assert (await bob.register()).status == 200
            await bob.subscribe(ALICE, expires=60)
            first = await bob.next_event(PresenceNotified)
            assert first.state is PresenceState.AVAILABLE
            session = await bob.invite_im(ALICE)
            assert (await alice.next_event(SessionStarted)).sender == BOB

            moved = await cli("user", "move", ALICE, "--from", str(imp_home), "--to", str(ocs_home))
            assert moved.exit_code == 0, moved.output
            assert f"new side ({ocs_home}) reloaded" in moved.stdout
            assert f"old side ({imp_home}) reloaded" in moved.stdout
            assert f"{ALICE}: 1 subscription(s) ended (reason=deactivated)" in moved.stdout

            ended = await bob.next_event(PresenceNotified)
            assert ended.subscription_state == "terminated;reason=deactivated"
            # RFC 6665 §4.1.3: the watcher subscribes again at once, and OCS homes alice now.
            await bob.subscribe(ALICE, expires=60)
            assert (await bob.next_event(PresenceNotified)).state is PresenceState.OFFLINE
            assert await asked(imp_home, "subscriptions", user=ALICE) == []
            watched = await asked(ocs_home, "subscriptions", user=ALICE)
            assert [(row["presentity"], row["watcher"]) for row in watched] == [(ALICE, BOB)]

            with pytest.raises(SipError) as refused:  # her client's refresh at the old home
                await alice.register()
            assert refused.value.status == 404
            await session.bye()
            async with agent(deployment, ALICE, ocs_fqdn, ALICE_IP) as moved_alice:
                assert (await moved_alice.register()).status == 200  # the HA1s moved
                seen = await bob.next_event(PresenceNotified)
                assert seen.state is PresenceState.AVAILABLE
                assert (await bob.message(ALICE, "welcome")).status == 200
                received = await moved_alice.next_event(MessageReceived)
                assert (received.sender, received.text) == (BOB, "welcome")

        checked = await cli("check", "--home", str(ocs_home), "--peer", str(imp_home), "--json")
        rules = {finding["rule"] for finding in json.loads(checked.stdout)["findings"]}
        assert not {rule for rule in rules if rule.startswith(("user.", "routing.directory"))}

    asyncio.run(scenario())
