"""A node with homed users: REGISTER, then requests reach the user over the connection it
registered on; a provisioned user who is offline gets 480, never a trip elsewhere."""

from __future__ import annotations

import asyncio

from intrafed.node import Node, NodeSettings
from intrafed.policy import PeerTrust
from intrafed.sip import Request, Response
from intrafed.sip.responses import make_response
from intrafed.transport import ListenerSpec
from tests.integration.clients import connect, message

NODE_IP, ALICE_IP, BOB_IP = "127.0.0.31", "127.0.0.32", "127.0.0.33"


def test_a_message_reaches_a_registered_user_over_its_own_connection() -> None:
    async def scenario() -> tuple[int, int, int, str]:
        node = Node(
            NodeSettings(
                name="imp1.example.com",
                address=NODE_IP,
                listeners=(ListenerSpec(NODE_IP, "TCP", 0),),
                domains=frozenset({"example.com"}),
                users=frozenset({"alice@example.com", "carol@example.com"}),
                # Bob sends for a partner domain: a trusted host.
                peers=lambda ip, names, outbound: PeerTrust("bob") if ip == BOB_IP else None,
            )
        )
        address = (await node.start())["TCP"]
        opened: list[asyncio.StreamWriter] = []
        try:
            alice = await connect(address, ALICE_IP, opened)
            # Alice's contact names a port nobody listens on: only her own flow reaches her.
            alice.writer.write(
                b"REGISTER sip:example.com SIP/2.0\r\n"
                b"Via: SIP/2.0/TCP 127.0.0.32:5099;branch=z9hG4bK-r1\r\nMax-Forwards: 70\r\n"
                b"From: <sip:alice@example.com>;tag=a\r\nTo: <sip:alice@example.com>\r\n"
                b"Call-ID: r1@127.0.0.32\r\nCSeq: 1 REGISTER\r\n"
                b"Contact: <sip:alice@127.0.0.32:5099;transport=tcp>\r\nContent-Length: 0\r\n\r\n"
            )
            registered = await alice.next()
            bob = await connect(address, BOB_IP, opened)
            bob.writer.write(message("alice@example.com", 1, BOB_IP))
            delivered = await alice.next()
            assert isinstance(delivered, Request)
            alice.writer.write(make_response(delivered, 200, to_tag="al").to_bytes())
            answered = await bob.next()
            bob.writer.write(message("carol@example.com", 2, BOB_IP))
            offline = await bob.next()
            assert isinstance(offline, Response)
            return (
                registered.status,  # type: ignore[union-attr]
                answered.status,  # type: ignore[union-attr]
                offline.status,
                offline.headers.get("warning") or "",
            )
        finally:
            for writer in opened:
                writer.close()
                await writer.wait_closed()
            await node.stop(grace=0.5)

    registered, answered, offline, warning = asyncio.run(asyncio.wait_for(scenario(), 30))
    assert (registered, answered, offline) == (200, 200, 480)
    assert "carol@example.com is provisioned here but not registered" in warning
