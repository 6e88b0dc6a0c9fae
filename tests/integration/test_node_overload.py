"""Overload over real sockets: beyond the configured number of pending transactions, a new
request from a client is answered 503 with Retry-After at once (never left unanswered or
queued), while a trusted peer's request still goes through."""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses

from intrafed.config.model import StaticRoute
from intrafed.node import Node, settings_from_config
from intrafed.policy import PeerTrust
from intrafed.policy.admission import AdmissionLimits
from intrafed.sip import Response
from tests.integration.clients import SipPeer, connect
from tests.integration.peers import free_port
from tests.integration.test_node_routes import imp_config, message

NODE_IP, CLIENT_IP, TRUSTED_IP, HOLE_IP = "127.0.0.191", "127.0.0.192", "127.0.0.193", "127.0.0.194"


def options(source: str, n: int) -> bytes:
    return (
        f"OPTIONS sip:{NODE_IP} SIP/2.0\r\nVia: SIP/2.0/TCP {source}:5070;branch=z9hG4bK-o{n}\r\n"
        f"Max-Forwards: 70\r\nFrom: <sip:gw@partner.example.net>;tag=o{n}\r\n"
        f"To: <sip:{NODE_IP}>\r\nCall-ID: o{n}@{source}\r\nCSeq: 1 OPTIONS\r\n"
        "Content-Length: 0\r\n\r\n"
    ).encode()


async def answer(peer: SipPeer) -> Response:
    response = await peer.next()
    assert isinstance(response, Response)
    return response


def test_beyond_the_pending_limit_a_client_gets_503_at_once_and_a_trusted_peer_passes() -> None:
    async def scenario() -> tuple[Response, Response, Response]:
        # A next hop that accepts and never answers: what is forwarded there stays pending.
        held: list[asyncio.StreamWriter] = []
        hole = await asyncio.start_server(lambda r, w: held.append(w), HOLE_IP, free_port(HOLE_IP))
        port = hole.sockets[0].getsockname()[1]
        config = imp_config(NODE_IP, StaticRoute("example.com", "TCP", port, ip=HOLE_IP))
        settings = dataclasses.replace(
            settings_from_config(config),
            peers=lambda ip, names, outbound: (
                PeerTrust("host authorization") if ip == TRUSTED_IP else None
            ),
            admission=AdmissionLimits(max_pending=4, retry_after=3),
        )
        node = Node(settings)
        address = (await node.start())["TCP"]
        opened: list[asyncio.StreamWriter] = []
        try:
            client = await connect(address, CLIENT_IP, opened)
            trusted = await connect(address, TRUSTED_IP, opened)
            # The trusted peer's requests are admitted and stay pending at the hole.
            for n in (1, 2):
                trusted.writer.write(message("sip:bob@example.com", n))
            for _ in range(200):  # two server and two client transactions
                if node.transactions.pending >= 4:
                    break
                await asyncio.sleep(0.01)
            client.writer.write(message("sip:bob@example.com", 3))
            shed = await answer(client)
            client.writer.write(options(CLIENT_IP, 4))
            shed_options = await answer(client)
            trusted.writer.write(options(TRUSTED_IP, 5))
            return shed, shed_options, await answer(trusted)
        finally:
            for writer in opened:
                writer.close()
            await node.stop(grace=0.5)
            hole.close()
            for writer in held:
                writer.close()
            with contextlib.suppress(ConnectionError):
                await hole.wait_closed()

    shed, shed_options, passed = asyncio.run(asyncio.wait_for(scenario(), 30))
    assert (shed.status, shed.reason) == (503, "Overloaded")
    assert shed.call_id.startswith("route3@")
    assert shed.headers.get("retry-after") == "3"
    assert "overloaded: 5 transactions pending (limit 4)" in (shed.headers.get("warning") or "")
    assert shed_options.status == 503
    assert passed.status == 200
