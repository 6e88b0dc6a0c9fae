"""Stopping a node under a steady request stream (DESIGN §8, issue: "graceful restart
drops requests"): every request the node read is answered before it closes, the rest are
provably never read, and the client sees a FIN, never a reset."""

from __future__ import annotations

import asyncio

from intrafed.config.model import Connection, NodeConfig, NodeIdentity, Role, StaticRoute
from intrafed.node import Node, settings_from_config
from intrafed.sip import Request, StreamFramer, parse_message
from intrafed.sip.responses import make_response
from tests.integration.peers import free_port

NODE_IP, CLIENT_IP, UAS_IP = "127.0.0.190", "127.0.0.191", "127.0.0.192"
MAX_REQUESTS = 3000
STOP_AFTER = 50
"""Answers the client sees before the node is told to stop."""


def message(n: int) -> bytes:
    return (
        "MESSAGE sip:bob@example.net SIP/2.0\r\n"
        f"Via: SIP/2.0/TCP {CLIENT_IP}:5070;branch=z9hG4bK-m{n}\r\n"
        f"Max-Forwards: 70\r\nFrom: <sip:probe@{CLIENT_IP}>;tag=m{n}\r\n"
        f"To: <sip:bob@example.net>\r\nCall-ID: stop-{n}@{CLIENT_IP}\r\nCSeq: 1 MESSAGE\r\n"
        "Content-Length: 2\r\n\r\nhi"
    ).encode()


def call_id(message: bytes) -> str:
    for line in message.split(b"\r\n"):
        if line.lower().startswith(b"call-id:"):
            return line.split(b":", 1)[1].strip().decode()
    return ""


async def slow_uas(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    """Answers each request 200 after 20 ms: transactions are always pending."""

    async def answer(request: Request) -> None:
        await asyncio.sleep(0.02)
        writer.write(make_response(request, 200, to_tag="uas").to_bytes())

    framer, tasks = StreamFramer(), set()
    while data := await reader.read(65536):
        framer.receive_data(data)
        while (frame := framer.next_frame()) is not None:
            request = parse_message(frame, stream=True)
            assert isinstance(request, Request)
            task = asyncio.create_task(answer(request))
            tasks.add(task)
            task.add_done_callback(tasks.discard)
    writer.close()


def test_a_client_writing_during_stop_gets_an_answer_to_every_request_the_node_read() -> None:
    read_by_node: set[str] = set()

    def trace(node: str, direction: str, peer: tuple[str, int], message: bytes) -> None:
        if direction == "received" and not message.startswith(b"SIP/2.0 "):
            read_by_node.add(call_id(message))

    async def scenario() -> None:
        uas = await asyncio.start_server(slow_uas, UAS_IP, 0)
        port = free_port(NODE_IP)
        uas_port = uas.sockets[0].getsockname()[1]
        config = NodeConfig(
            NodeIdentity(Role.OCS, "ocs1.example.com", NODE_IP),
            domains=("example.com",),
            connections=(Connection("TCP", port, NODE_IP),),
            routes=(StaticRoute("example.net", "TCP", uas_port, ip=UAS_IP),),
        )
        node = Node(settings_from_config(config), trace=trace)
        await node.start()
        reader, writer = await asyncio.open_connection(NODE_IP, port, local_addr=(CLIENT_IP, 0))
        sent: list[str] = []
        answered: set[str] = set()
        ended = asyncio.Event()
        outcome: list[str] = []
        stopping: list[asyncio.Task[None]] = []

        async def read() -> None:
            framer = StreamFramer()
            try:
                while data := await reader.read(65536):
                    framer.receive_data(data)
                    while (frame := framer.next_frame()) is not None:
                        answered.add(call_id(frame))
                    if len(answered) >= STOP_AFTER and not stopping:
                        stopping.append(asyncio.create_task(node.stop(grace=1)))
                outcome.append("FIN")
            except ConnectionResetError:
                outcome.append("reset")
            finally:
                ended.set()

        reading = asyncio.create_task(read())
        try:
            # About 250 requests a second (under the client rate limit) until the FIN.
            for n in range(MAX_REQUESTS):
                if ended.is_set():
                    break
                writer.write(message(n))
                sent.append(f"stop-{n}@{CLIENT_IP}")
                await asyncio.sleep(0.004)
            await asyncio.wait_for(ended.wait(), 10)
        finally:
            writer.close()
            await reading
            uas.close()
        assert stopping, "the node was never stopped"
        await stopping[0]
        # Every request the node read was answered; the others it never read.
        assert read_by_node <= answered, sorted(read_by_node - answered)[:5]
        assert outcome == ["FIN"]
        assert answered <= set(sent)
        assert len(answered) >= STOP_AFTER

    asyncio.run(asyncio.wait_for(scenario(), 40))
