"""The control API of a running node over its Unix socket: status and live state, route
explain through the node's own routing and authorization (next-hop health included), a
reload applied or refused with a typed reason, and the SIP trace switched on and off."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path
from typing import Any

from click.testing import CliRunner

from intrafed.cli.main import main
from intrafed.config import edits
from intrafed.config.model import ImpListeners
from intrafed.control.client import ask
from intrafed.control.protocol import Refused
from intrafed.control.server import ControlServer
from intrafed.node import Node, tls_contexts_of
from intrafed.node_control import NodeControl, reload_staged
from intrafed.observe.trace_files import read_records, trace_directory
from intrafed.store import open_store
from intrafed.ua import UaSettings, UserAgent
from tests.integration.federation import build_partitions

IMP_IP, OCS_IP, ALICE_IP = "127.0.0.190", "127.0.0.191", "127.0.0.192"


def test_a_running_node_answers_its_control_api(tmp_path: Path) -> None:
    deployment = build_partitions(tmp_path / "seed", IMP_IP, OCS_IP)
    home = deployment.imp.home

    async def scenario() -> dict[str, Any]:
        answers: dict[str, Any] = {}
        with open_store(home) as store:
            config = store.load("running")
            tls = tls_contexts_of(home, config)
            node = Node.from_home(home, store)
            await node.start()
            control = NodeControl(
                home, node, time.time(), lambda: reload_staged(home, node, store, tls)
            )
            server = ControlServer(home, control)
            assert await server.start()

            async def asked(op: str, **args: str | None) -> Any:
                return await asyncio.to_thread(ask, home, op, **args)

            alice = UserAgent(
                UaSettings(
                    "alice@example.com",
                    (IMP_IP, deployment.imp.tcp_port),
                    deployment.password("alice@example.com"),
                    source_ip=ALICE_IP,
                )
            )
            try:
                async with alice:
                    await alice.register()
                    answers["trace_on"] = await asked("trace", state="on", method="OPTIONS")
                    await alice.options()
                    answers["trace_off"] = await asked("trace", state="off")
                    answers["status"] = await asked("status")
                    answers["registrations"] = await asked("registrations", user="alice")
                    answers["local"] = await asked("explain", uri="sip:alice@example.com")
                    answers["forward"] = await asked("explain", uri="sip:bob@example.com")
                    answers["back"] = await asked(
                        "explain", uri="sip:carol@example.com", source=deployment.ocs.fqdn
                    )
                    answers["cli_live"] = await asyncio.to_thread(
                        CliRunner().invoke,
                        main,
                        ["route", "explain", "--home", str(home), "sip:bob@example.com"],
                    )
                    answers["cli_staged"] = await asyncio.to_thread(
                        CliRunner().invoke,
                        main,
                        [
                            "route",
                            "explain",
                            "--home",
                            str(home),
                            "sip:bob@example.com",
                            "--staged",
                        ],
                    )
                    answers["stranger"] = await asked(
                        "explain", uri="sip:bob@example.com", source="rogue.example.net"
                    )
                    store.stage(
                        lambda c: edits.block_watcher(c, "alice@example.com", "eve@example.com")
                    )
                    answers["reload"] = await asked("reload")
                    listeners = config.listeners or ImpListeners()
                    store.stage(lambda c: edits.set_listeners(c, tcp=listeners.tcp + 10))
                    answers["refused"] = await asked("reload")
            finally:
                await server.close()
                control.close()
                await node.stop(grace=0.5)
        return answers

    answers = asyncio.run(asyncio.wait_for(scenario(), 60))
    status = answers["status"]
    assert (status["name"], status["registered_users"], status["registrations"]) == (
        "imp1.example.com",
        1,
        1,
    )
    [binding] = answers["registrations"]
    assert binding["aor"] == "alice@example.com"
    assert binding["connected"] is True
    assert answers["local"]["decision"] == "local"
    assert answers["local"]["contacts"] == 1
    forward = answers["forward"]
    assert forward["decision"] == "forward"
    assert [hop["next_hop"] for hop in forward["next_hops"]] == [
        f"TLS {deployment.ocs.fqdn}:{deployment.ocs.tls_port}"
    ]
    assert forward["next_hops"][0]["up"] is True
    live = answers["cli_live"].output.splitlines()
    assert (
        live[0]
        == f"forward to TLS {deployment.ocs.fqdn}:{deployment.ocs.tls_port} (priority 1, up)"
    )
    assert live[-1].startswith("  (asked the running node")
    assert (
        answers["cli_staged"]
        .output.splitlines()[-1]
        .startswith("  (decided on the staged configuration")
    )
    # From the peer partition, a user on neither side is refused, never sent back.
    back = answers["back"]
    assert (back["decision"], back["status"], back["from_peer_partition"]) == ("refuse", 404, True)
    assert answers["stranger"]["authorization"].startswith("403: rogue.example.net")
    assert answers["reload"] == {"applied": answers["reload"]["applied"]}
    assert answers["reload"]["applied"]
    refused = answers["refused"]
    assert isinstance(refused, Refused)
    assert "listeners" in refused.reason
    assert refused.fix == f"intrafed service restart --home {home}"
    assert answers["trace_on"]["tracing"] is True
    assert answers["trace_off"]["tracing"] is False
    records = list(read_records(trace_directory(home)))
    assert {record.direction for record in records} == {"in", "out"}
    assert all(b"OPTIONS" in record.message for record in records)
