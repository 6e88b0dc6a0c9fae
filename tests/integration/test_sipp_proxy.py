"""SIPp UAC -> node -> SIPp UAS, over TCP and over TLS/MTLS (stunnel on the SIPp side)."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from pathlib import Path

from intrafed.node import Node, NodeSettings
from intrafed.sip.transaction import NextHop
from intrafed.transport import ListenerSpec
from tests.certs import client_context, make_ca, server_context
from tests.integration.peers import TlsLegs, free_port, run_sipp, sipp_uas, stunnel

NODE_IP = "127.0.0.2"
UAS_IP = "127.0.0.3"
UAC_IP = "127.0.0.4"
UAS_TLS_IP = "127.0.0.5"
UAC_TLS_IP = "127.0.0.6"


@contextlib.asynccontextmanager
async def running(settings: NodeSettings) -> AsyncIterator[dict[str, tuple[str, int]]]:
    node = Node(settings)
    bound = await node.start()
    try:
        yield bound
    finally:
        await node.stop(grace=1.0)


async def through_tcp_node(scenario: str, calls: int, rate: int, tmp_path: Path) -> None:
    uas_port = free_port(UAS_IP)
    settings = NodeSettings(
        name="imp1.example.com",
        address=NODE_IP,
        listeners=(ListenerSpec(NODE_IP, "TCP", 0),),
        next_hops={"example.com": NextHop("TCP", UAS_IP, uas_port)},
    )
    uas_options = {"contact": f"{UAS_IP}:{uas_port};transport=tcp"}
    async with (
        running(settings) as bound,
        sipp_uas(
            f"uas_{scenario}.xml",
            local=(UAS_IP, uas_port),
            calls=calls,
            keys=uas_options,
            workdir=tmp_path,
        ) as uas,
    ):
        uac = await run_sipp(
            f"uac_{scenario}.xml",
            local=(UAC_IP, free_port(UAC_IP)),
            remote=bound["TCP"],
            calls=calls,
            rate=rate,
            workdir=tmp_path,
        )
        assert uac.returncode == 0, uac.output
        assert (await uas).returncode == 0


def test_message_through_the_node_over_tcp(tmp_path: Path) -> None:
    asyncio.run(through_tcp_node("message", calls=50, rate=100, tmp_path=tmp_path))


def test_invite_ack_bye_through_the_node_over_tcp(tmp_path: Path) -> None:
    asyncio.run(through_tcp_node("invite", calls=20, rate=50, tmp_path=tmp_path))


def test_ten_thousand_messages_over_one_persistent_tcp_connection(tmp_path: Path) -> None:
    asyncio.run(through_tcp_node("message", calls=10_000, rate=1_000, tmp_path=tmp_path))


async def through_tls_node(scenario: str, calls: int, tmp_path: Path) -> None:
    ca = make_ca("intrafed test CA")
    node_cert = ca.issue("imp1.example.com", dns=("imp1.example.com",), ips=(NODE_IP,))
    client_cert = ca.issue("alice-gw.example.com", dns=("alice-gw.example.com",))
    bob_cert = ca.issue("bob.example.com", dns=("bob.example.com",))
    ca_path = tmp_path / "ca.pem"
    ca_path.write_bytes(ca.cert_pem)
    bob_files = bob_cert.write(tmp_path / "bob")

    uas_port, uas_tls_port = free_port(UAS_IP), free_port(UAS_TLS_IP)
    uac_tls_port = free_port(UAC_TLS_IP)
    settings = NodeSettings(
        name="imp1.example.com",
        address=NODE_IP,
        listeners=(ListenerSpec(NODE_IP, "MTLS", 0),),
        next_hops={"example.com": NextHop("TLS", "bob.example.com", uas_tls_port)},
        hosts={"bob.example.com": UAS_TLS_IP},
        mtls_ssl=server_context(node_cert, ca, require_client=True),
        client_ssl=client_context(ca, node_cert),
    )
    async with running(settings) as bound:
        legs = TlsLegs(
            uac_accept=(UAC_TLS_IP, uac_tls_port),
            node=bound["MTLS"],
            node_name="imp1.example.com",
            uas_accept=(UAS_TLS_IP, uas_tls_port),
            uas=(UAS_IP, uas_port),
        )
        config = legs.config(ca_path, client_cert.write(tmp_path / "client"), bob_files)
        listening = [legs.uac_accept, legs.uas_accept]
        async with (
            stunnel(config, tmp_path, listening),
            sipp_uas(
                f"uas_{scenario}.xml",
                local=(UAS_IP, uas_port),
                calls=calls,
                keys={"contact": f"bob.example.com:{uas_tls_port};transport=tls"},
                workdir=tmp_path,
            ) as uas,
        ):
            uac = await run_sipp(
                f"uac_{scenario}.xml",
                local=(UAC_IP, free_port(UAC_IP)),
                remote=(UAC_TLS_IP, uac_tls_port),
                calls=calls,
                rate=50,
                workdir=tmp_path,
            )
            assert uac.returncode == 0, uac.output + (tmp_path / "stunnel.log").read_text()
            assert (await uas).returncode == 0


def test_message_through_the_node_over_mtls(tmp_path: Path) -> None:
    asyncio.run(through_tls_node("message", calls=30, tmp_path=tmp_path))


def test_invite_ack_bye_through_the_node_over_mtls(tmp_path: Path) -> None:
    asyncio.run(through_tls_node("invite", calls=10, tmp_path=tmp_path))
