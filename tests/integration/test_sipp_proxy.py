"""SIPp UAC -> node -> SIPp UAS, over TCP and over MTLS (stunnel on the SIPp legs)."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from tests.integration.peers import UAC_IP, free_port, proxy_chain, run_sipp, sipp_uas


async def through_node(transport: str, scenario: str, calls: int, rate: int, workdir: Path) -> None:
    async with (
        proxy_chain(transport, workdir) as chain,
        sipp_uas(
            f"uas_{scenario}.xml",
            local=chain.uas_local,
            calls=calls,
            keys={"contact": chain.contact},
            workdir=workdir,
        ) as uas,
    ):
        uac = await run_sipp(
            f"uac_{scenario}.xml",
            local=(UAC_IP, free_port(UAC_IP)),
            remote=chain.uac_remote,
            calls=calls,
            rate=rate,
            workdir=workdir,
        )
        logs = "".join(path.read_text() for path in workdir.glob("*.log"))
        assert uac.returncode == 0, uac.output + logs
        assert (await uas).returncode == 0


@pytest.mark.parametrize("transport", ["tcp", "mtls"])
def test_message_through_the_node(transport: str, tmp_path: Path) -> None:
    asyncio.run(through_node(transport, "message", calls=50, rate=100, workdir=tmp_path))


@pytest.mark.parametrize("transport", ["tcp", "mtls"])
def test_invite_ack_bye_through_the_node(transport: str, tmp_path: Path) -> None:
    asyncio.run(through_node(transport, "invite", calls=20, rate=50, workdir=tmp_path))


def test_ten_thousand_messages_over_one_persistent_tcp_connection(tmp_path: Path) -> None:
    asyncio.run(through_node("tcp", "message", calls=10_000, rate=1_000, workdir=tmp_path))
