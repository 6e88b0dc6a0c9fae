"""DESIGN §8: a verified MTLS peer that matches no trust entry keeps its connection and
gets 403 per request; a trusted one is served on the same listener."""

from __future__ import annotations

import asyncio
import logging

import pytest

from intrafed.config.model import StaticRoute
from intrafed.node import Node, NodeSettings
from intrafed.policy import PeerTrust
from intrafed.sip import Response
from intrafed.transport import ListenerSpec
from tests.integration.clients import SipPeer, message
from tests.integration.uas import answer_200
from tests.lab_pki import issue_host, make_ca, node_server_context, peer_client_context

NODE_IP, UAS_IP, TRUSTED_IP, STRANGER_IP = "127.0.0.41", "127.0.0.42", "127.0.0.43", "127.0.0.44"


def test_an_untrusted_mtls_peer_gets_403_and_a_trusted_one_is_served(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.WARNING, logger="intrafed.node")
    ca = make_ca("trust test CA")
    node_cert = issue_host(ca, "ocs1.example.com", dns_names=("ocs1.example.com",))
    trusted = peer_client_context(
        ca, issue_host(ca, "imp1.example.com", dns_names=("imp1.example.com",))
    )
    stranger = peer_client_context(
        ca, issue_host(ca, "imp9.example.com", dns_names=("imp9.example.com",))
    )

    async def scenario() -> tuple[Response, Response, Response]:
        uas = await asyncio.start_server(answer_200, UAS_IP, 0)
        node = Node(
            NodeSettings(
                name="ocs1.example.com",
                address=NODE_IP,
                listeners=(ListenerSpec(NODE_IP, "MTLS", 0),),
                routes=(
                    StaticRoute("example.com", "TCP", uas.sockets[0].getsockname()[1], ip=UAS_IP),
                ),
                peers=lambda ip, names, outbound: (
                    PeerTrust("host authorization") if "imp1.example.com" in names else None
                ),
                mtls_ssl=node_server_context(node_cert, ca, require_client_cert=True),
            )
        )
        address = (await node.start())["MTLS"]
        opened: list[asyncio.StreamWriter] = []
        try:
            peers = []
            for context, source in ((stranger, STRANGER_IP), (trusted, TRUSTED_IP)):
                reader, writer = await asyncio.open_connection(
                    *address,
                    ssl=context,
                    server_hostname="ocs1.example.com",
                    local_addr=(source, 0),
                )
                opened.append(writer)
                peers.append(SipPeer(reader, writer))
            outsider, insider = peers
            outsider.writer.write(message("bob@example.com", 1, STRANGER_IP))
            refused = await outsider.next()
            insider.writer.write(message("bob@example.com", 2, TRUSTED_IP))
            served = await insider.next()
            outsider.writer.write(message("bob@example.com", 3, STRANGER_IP))
            again = await outsider.next()
            return refused, served, again  # type: ignore[return-value]
        finally:
            for writer in opened:
                writer.close()
            await node.stop(grace=0.5)
            uas.close()

    refused, served, again = asyncio.run(asyncio.wait_for(scenario(), 30))
    assert (refused.status, served.status, again.status) == (403, 200, 403)
    assert "MTLS peer 127.0.0.44 (imp9.example.com) matches no host authorization" in (
        refused.headers.get("warning") or ""
    )
    # One log line per 403: the rule, the source and the user it came as.
    refusals = [r.getMessage() for r in caplog.records if r.getMessage().startswith("403")]
    assert len(refusals) == 2
    for line in refusals:
        assert f"from {STRANGER_IP}:" in line
        assert "as sender@partner.example.net" in line
        assert "(imp9.example.com) matches no host authorization" in line
