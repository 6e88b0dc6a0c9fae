"""A node with homed users: REGISTER, then requests reach the user over the connection it
registered on; a provisioned user who is offline gets 480, never a trip elsewhere."""

from __future__ import annotations

import asyncio

from intrafed.node import Node, NodeSettings
from intrafed.sip import Request, Response, StreamFramer, parse_message
from intrafed.sip.responses import make_response
from intrafed.transport import ListenerSpec

NODE_IP, ALICE_IP, BOB_IP = "127.0.0.31", "127.0.0.32", "127.0.0.33"


def message(to: str, n: int) -> bytes:
    return (
        f"MESSAGE sip:{to} SIP/2.0\r\nVia: SIP/2.0/TCP {BOB_IP}:5070;branch=z9hG4bK-m{n}\r\n"
        f"Max-Forwards: 70\r\nFrom: <sip:bob@example.com>;tag=b{n}\r\nTo: <sip:{to}>\r\n"
        f"Call-ID: m{n}@{BOB_IP}\r\nCSeq: 1 MESSAGE\r\nContent-Length: 2\r\n\r\nhi"
    ).encode()


class Peer:
    """One TCP client of the node, reading whole messages."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader, self.writer, self.framer = reader, writer, StreamFramer()

    async def next(self) -> Request | Response:
        while (frame := self.framer.next_frame()) is None:
            self.framer.receive_data(await asyncio.wait_for(self.reader.read(65536), 10))
        return parse_message(frame, stream=True)


def test_a_message_reaches_a_registered_user_over_its_own_connection() -> None:
    async def scenario() -> tuple[int, int, int, str]:
        node = Node(
            NodeSettings(
                name="imp1.example.com",
                address=NODE_IP,
                listeners=(ListenerSpec(NODE_IP, "TCP", 0),),
                domains=frozenset({"example.com"}),
                users=frozenset({"alice@example.com", "carol@example.com"}),
            )
        )
        address = (await node.start())["TCP"]
        peers: list[Peer] = []
        try:
            alice = Peer(*await asyncio.open_connection(*address, local_addr=(ALICE_IP, 0)))
            peers.append(alice)
            # Alice's contact names a port nobody listens on: only her own flow reaches her.
            alice.writer.write(
                b"REGISTER sip:example.com SIP/2.0\r\n"
                b"Via: SIP/2.0/TCP 127.0.0.32:5099;branch=z9hG4bK-r1\r\nMax-Forwards: 70\r\n"
                b"From: <sip:alice@example.com>;tag=a\r\nTo: <sip:alice@example.com>\r\n"
                b"Call-ID: r1@127.0.0.32\r\nCSeq: 1 REGISTER\r\n"
                b"Contact: <sip:alice@127.0.0.32:5099;transport=tcp>\r\nContent-Length: 0\r\n\r\n"
            )
            registered = await alice.next()
            bob = Peer(*await asyncio.open_connection(*address, local_addr=(BOB_IP, 0)))
            peers.append(bob)
            bob.writer.write(message("alice@example.com", 1))
            delivered = await alice.next()
            assert isinstance(delivered, Request)
            alice.writer.write(make_response(delivered, 200, to_tag="al").to_bytes())
            answered = await bob.next()
            bob.writer.write(message("carol@example.com", 2))
            offline = await bob.next()
            assert isinstance(offline, Response)
            return (
                registered.status,  # type: ignore[union-attr]
                answered.status,  # type: ignore[union-attr]
                offline.status,
                offline.headers.get("warning") or "",
            )
        finally:
            for peer in peers:
                peer.writer.close()
                await peer.writer.wait_closed()
            await node.stop(grace=0.5)

    registered, answered, offline, warning = asyncio.run(asyncio.wait_for(scenario(), 30))
    assert (registered, answered, offline) == (200, 200, 480)
    assert "carol@example.com is provisioned here but not registered" in warning
