"""Next hops watched with OPTIONS over real sockets: a peer partition that comes back is
usable again within a second or two (not after a fixed hold-down), and a peer that accepts
connections but never answers is taken out within seconds (not after three 32 s timer F's).
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator

from intrafed.config.model import StaticRoute
from intrafed.node import Node, settings_from_config
from intrafed.sip import Request, Response, StreamFramer, parse_message
from intrafed.sip.responses import make_response
from intrafed.transport import Destination
from tests.integration.clients import SipPeer, connect
from tests.integration.peers import free_port
from tests.integration.test_node_routes import CLIENT_IP, imp_config, message

# CLIENT_IP is in imp_config's incoming ACL: a trusted sender, as the peer partition is.
NODE_IP, PEER_IP = "127.0.0.181", "127.0.0.183"


class Peer:
    """A next hop that answers every request 200 and can be stopped and started again on
    the same port (its open connections close with it)."""

    def __init__(self, port: int, *, answers: bool = True) -> None:
        self.port = port
        self.answers = answers
        self.messages = 0
        self._server: asyncio.Server | None = None
        self._writers: set[asyncio.StreamWriter] = set()

    async def start(self) -> None:
        self._server = await asyncio.start_server(self._serve, PEER_IP, self.port)

    async def stop(self) -> None:
        assert self._server is not None
        self._server.close()
        for writer in list(self._writers):
            writer.close()
        await self._server.wait_closed()

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self._writers.add(writer)
        framer = StreamFramer()
        with contextlib.suppress(ConnectionError):
            while data := await reader.read(65536):
                framer.receive_data(data)
                while (frame := framer.next_frame()) is not None:
                    request = parse_message(frame, stream=True)
                    assert isinstance(request, Request)
                    self.messages += request.method == "MESSAGE"
                    if self.answers:
                        writer.write(make_response(request, 200, to_tag="peer").to_bytes())
        self._writers.discard(writer)
        writer.close()


@contextlib.asynccontextmanager
async def node_routing_to(peer: Peer) -> AsyncIterator[tuple[Node, SipPeer]]:
    route = StaticRoute("example.com", "TCP", peer.port, ip=PEER_IP)
    running = Node(settings_from_config(imp_config(NODE_IP, route)))
    address = (await running.start())["TCP"]
    opened: list[asyncio.StreamWriter] = []
    try:
        yield running, await connect(address, CLIENT_IP, opened)
    finally:
        for writer in opened:
            writer.close()
        await running.stop(grace=0.5)


async def send(client: SipPeer, n: int) -> Response:
    client.writer.write(message("sip:bob@example.com", n))
    response = await client.next()
    assert isinstance(response, Response)
    return response


async def connection_closed(node: Node, peer: Peer) -> None:
    """Wait (bounded) until the node has seen its connection to ``peer`` close."""
    for _ in range(200):
        if node.transport.pooled(Destination("TCP", PEER_IP, peer.port)) is None:
            return
        await asyncio.sleep(0.01)
    raise AssertionError("the node never saw the peer's connection close")


def test_a_route_is_usable_again_within_seconds_of_its_peer_coming_back() -> None:
    async def scenario() -> tuple[list[int], int, int]:
        peer = Peer(free_port(PEER_IP))
        await peer.start()
        async with node_routing_to(peer) as (node, client):
            before = (await send(client, 1)).status
            await peer.stop()
            await connection_closed(node, peer)
            # The first request finds the peer gone; then the route is down: 503 at once.
            statuses = [(await send(client, n)).status for n in (2, 3)]
            await peer.start()
            for attempt in range(10):
                await asyncio.sleep(0.25)
                answer = await send(client, 10 + attempt)
                if answer.status == 200:
                    break
            await peer.stop()
            return [before, *statuses], answer.status, attempt

    statuses, after, attempts = asyncio.run(asyncio.wait_for(scenario(), 30))
    assert statuses[0] == 200
    assert statuses[2] == 503
    # Probed about every second: back well before the old fixed 5 s hold-down.
    assert after == 200, f"still {after} after {attempts + 1} attempts"


def test_a_peer_that_accepts_but_never_answers_is_marked_down_within_seconds() -> None:
    async def scenario() -> Response:
        peer = Peer(free_port(PEER_IP), answers=False)
        await peer.start()
        async with node_routing_to(peer) as (_node, client):
            # Requests to the black hole get no answer (timer F is 32 s); one sent once the
            # probes have noticed gets 503 at once.
            for n in range(24):
                client.writer.write(message("sip:bob@example.com", n))
                with contextlib.suppress(TimeoutError):
                    response = await asyncio.wait_for(client.next(), 0.5)
                    assert isinstance(response, Response)
                    await peer.stop()
                    return response
            await peer.stop()
        raise AssertionError("the black-holed peer was never marked down")

    response = asyncio.run(asyncio.wait_for(scenario(), 30))
    assert (response.status, response.reason) == (503, "Next Hop Down")
    assert "no answer to OPTIONS" in (response.headers.get("warning") or "")
    assert response.headers.get("retry-after") == "1"
