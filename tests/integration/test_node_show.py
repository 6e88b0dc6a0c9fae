"""``intrafed show`` against a running node over its control API: a registered user agent
is listed, and no longer once it unregisters; a node that does not run exits 3 with the
command that starts it."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

from click.testing import CliRunner

from intrafed.cli import main
from intrafed.core.meter import Meter
from intrafed.sip.pidf import PresenceState
from intrafed.ua import UaSettings, UserAgent
from tests.integration.federation import build_partitions
from tests.integration.serving import serving

IMP_IP, OCS_IP, ALICE_IP = "127.0.0.206", "127.0.0.207", "127.0.0.208"


def show(home: Path, *args: str) -> tuple[int, str]:
    result = CliRunner().invoke(main, ["show", *args, "--home", str(home)])
    return result.exit_code, result.output


def test_show_registrations_lists_a_registered_ua_and_not_after_it_unregisters(
    tmp_path: Path,
) -> None:
    deployment = build_partitions(tmp_path / "seed", IMP_IP, OCS_IP)
    home = deployment.imp.home
    stopped = show(home, "registrations")

    async def scenario() -> dict[str, Any]:
        seen: dict[str, Any] = {}
        async with serving(home, Meter()):

            async def shown(*args: str) -> tuple[int, str]:
                return await asyncio.to_thread(show, home, *args)

            alice = UserAgent(
                UaSettings(
                    "alice@example.com",
                    (IMP_IP, deployment.imp.tcp_port),
                    deployment.password("alice@example.com"),
                    source_ip=ALICE_IP,
                )
            )
            async with alice:
                assert (await alice.register()).status == 200
                assert (await alice.publish(PresenceState.AWAY, "at lunch")).status == 200
                seen["table"] = await shown("registrations")
                seen["json"] = await shown("registrations", "--user", "alice", "--json")
                seen["other"] = await shown("registrations", "--user", "carol", "--json")
                seen["publications"] = await shown("publications", "--json")
                seen["connections"] = await shown("connections", "--json")
                seen["stats"] = await shown("stats", "--json")
                seen["stats_text"] = await shown("stats")
                assert (await alice.unregister()).status == 200
                seen["after"] = await shown("registrations", "--json")
        return seen

    seen = asyncio.run(asyncio.wait_for(scenario(), 60))
    assert stopped[0] == 3
    assert f"intrafed service start --home {home}" in stopped[1]
    code, table = seen["table"]
    assert code == 0, table
    header, row = table.splitlines()
    assert header.split() == ["USER", "CONTACT", "EXPIRES", "Q", "FLOW", "CONNECTED"]
    assert row.split()[0] == "alice@example.com"
    assert row.split()[-1] == "yes"
    [binding] = json.loads(seen["json"][1])
    assert (binding["aor"], binding["connected"]) == ("alice@example.com", True)
    assert json.loads(seen["other"][1]) == []
    [publication] = json.loads(seen["publications"][1])
    assert (publication["aor"], publication["state"], publication["note"]) == (
        "alice@example.com",
        "away",
        "at lunch",
    )
    [connection] = json.loads(seen["connections"][1])
    assert (connection["transport"], connection["direction"]) == ("TCP", "inbound")
    assert connection["remote"].startswith(f"{ALICE_IP}:")
    stats = json.loads(seen["stats"][1])
    assert stats["live"]["registrations"] == 1
    register = {"direction": "in", "method": "REGISTER", "party": "client"}
    assert any(row.items() >= register.items() for row in stats["counted"]["requests"])
    assert "REGISTER" in seen["stats_text"][1]
    code, after = seen["after"]
    assert code == 0
    assert json.loads(after) == []
