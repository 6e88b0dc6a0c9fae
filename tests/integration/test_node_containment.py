"""A request that cannot be handled is answered, and its failure stays its own.

Header errors found after framing get a 400 naming the problem, over a connection that
stays open; a failure while handling one request answers that request (5xx with the
reason) and leaves no state that would swallow it when it is sent again; a response the
node cannot deliver is dropped without harming the rest of the batch or the connection it
came in on. All over real sockets to a real node.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from typing import TypeVar

import pytest

from intrafed.config.model import StaticRoute
from intrafed.node import Node, NodeSettings
from intrafed.policy import PeerTrust
from intrafed.sip import Request, Response, StreamFramer, parse_message
from intrafed.sip.responses import make_response
from intrafed.store import BindingRow, PublicationRow, StateChanges, SubscriptionRow
from intrafed.transport import ListenerSpec
from tests.integration.clients import SipPeer, connect, message

T = TypeVar("T")
Address = tuple[str, int]
NODE_IP, UAS_IP, CLIENT_IP, OTHER_IP = "127.0.0.41", "127.0.0.42", "127.0.0.43", "127.0.0.44"


def request(
    *,
    via: str = f"SIP/2.0/TCP {CLIENT_IP}:5070;branch=z9hG4bK-c1",
    call_id: bytes = b"c1@client",
    extra: bytes = b"",
    omit: Sequence[bytes] = (),
) -> bytes:
    """A MESSAGE from a partner domain's user to bob@example.com, edited as asked."""
    lines = [
        b"MESSAGE sip:bob@example.com SIP/2.0",
        b"Via: " + via.encode(),
        b"Max-Forwards: 70",
        b"From: <sip:sender@partner.example.net>;tag=s1",
        b"To: <sip:bob@example.com>",
        b"Call-ID: " + call_id,
        b"CSeq: 1 MESSAGE",
    ]
    lines = [line for line in lines if line.split(b":")[0] not in omit]
    return b"\r\n".join(lines) + b"\r\n" + extra + b"Content-Length: 2\r\n\r\nhi"


@contextlib.asynccontextmanager
async def running(node: Node) -> AsyncIterator[tuple[tuple[str, int], list[asyncio.StreamWriter]]]:
    address = (await node.start())["TCP"]
    opened: list[asyncio.StreamWriter] = []
    try:
        yield address, opened
    finally:
        for writer in opened:
            writer.close()
        await node.stop(grace=0.5)


def routed_node(uas_port: int) -> Node:
    return Node(
        NodeSettings(
            name="imp1.example.com",
            address=NODE_IP,
            listeners=(ListenerSpec(NODE_IP, "TCP", 0),),
            routes=(StaticRoute("example.com", "TCP", uas_port, ip=UAS_IP),),
            # The clients are trusted hosts: they relay for a partner domain.
            peers=lambda ip, names, outbound: (
                PeerTrust("host authorization") if ip in (CLIENT_IP, OTHER_IP) else None
            ),
        )
    )


async def ask(peer: SipPeer, data: bytes) -> Response:
    peer.writer.write(data)
    answer = await peer.next()
    assert isinstance(answer, Response)
    return answer


def run_against_uas(scenario: Callable[[Address, list[asyncio.StreamWriter]], Awaitable[T]]) -> T:
    """Run ``scenario(address, opened)`` against a node routing to an answering UAS."""

    async def main() -> T:
        async def answer(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            framer = StreamFramer()
            while data := await reader.read(65536):
                framer.receive_data(data)
                while (frame := framer.next_frame()) is not None:
                    got = parse_message(frame, stream=True)
                    assert isinstance(got, Request)
                    writer.write(make_response(got, 200, to_tag="uas").to_bytes())
            writer.close()

        uas = await asyncio.start_server(answer, UAS_IP, 0)
        try:
            async with running(routed_node(uas.sockets[0].getsockname()[1])) as (address, opened):
                return await scenario(address, opened)
        finally:
            uas.close()

    return asyncio.run(asyncio.wait_for(main(), 30))


# -- item: header errors found after framing are answered ----------------------------------


def test_a_request_without_from_gets_400_naming_it_although_its_via_is_readable() -> None:
    async def scenario(address: Address, opened: list[asyncio.StreamWriter]) -> tuple[bytes, int]:
        client = await connect(address, CLIENT_IP, opened)
        client.writer.write(request(omit=[b"From"]))
        # (the answer has no From either: it is read as bytes, not parsed)
        while (missing := client.framer.next_frame()) is None:
            client.framer.receive_data(await asyncio.wait_for(client.reader.read(65536), 10))
        after = await ask(client, request(via=f"SIP/2.0/TCP {CLIENT_IP};branch=z9hG4bK-c2"))
        return missing, after.status

    missing, after = run_against_uas(scenario)
    assert missing.startswith(b"SIP/2.0 400 missing From header\r\n")
    assert b'Warning: 399 imp1.example.com "missing From header"' in missing
    assert b"Via: SIP/2.0/TCP 127.0.0.43:5070;branch=z9hG4bK-c1" in missing
    assert after == 200


def test_a_malformed_header_met_by_a_handler_gets_400_and_the_connection_stays() -> None:
    # The Route is parsed only by the proxy, after the message was framed and parsed.
    async def scenario(
        address: Address, opened: list[asyncio.StreamWriter]
    ) -> tuple[Response, int]:
        client = await connect(address, CLIENT_IP, opened)
        bad = await ask(client, request(extra=b"Route: sip:proxy.example.com;lr\r\n"))
        after = await ask(client, request(via=f"SIP/2.0/TCP {CLIENT_IP};branch=z9hG4bK-c2"))
        return bad, after.status

    bad, after = run_against_uas(scenario)
    assert bad.status == 400
    assert bad.reason.startswith("Route: ")
    assert "must be a name-addr in <>" in bad.reason
    assert "must be a name-addr in <>" in (bad.headers.get("warning") or "")
    assert after == 200


def test_bytes_that_are_not_utf8_in_call_id_and_tag_are_answered_every_time() -> None:
    # An RFC 2543 branch makes the Call-ID and From tag part of the transaction key.
    data = request(via=f"SIP/2.0/TCP {CLIENT_IP};branch=old", call_id=b"\xff\xfe@client")
    data = data.replace(b"Max-Forwards: 70", b"Max-Forwards: 0").replace(b"tag=s1", b'tag="\xe9"')

    async def scenario(
        address: Address, opened: list[asyncio.StreamWriter]
    ) -> tuple[Response, Response]:
        first = await ask(await connect(address, CLIENT_IP, opened), data)
        # the same request again, on a new connection: answered again, not swallowed
        again = await ask(await connect(address, OTHER_IP, opened), data)
        return first, again

    first, again = run_against_uas(scenario)
    assert (first.status, again.status) == (483, 483)
    assert first.call_id == "\udcff\udcfe@client"
    assert first.to_addr.tag == again.to_addr.tag


# -- item: one request's failure affects that request only -----------------------------------


class FullDisk:
    """A state store on a full disk: every write fails, as the issue's fault run saw."""

    def write(self, changes: StateChanges) -> None:
        raise OSError(28, "No space left on device")

    def load_bindings(self, now: float) -> list[BindingRow]:
        return []

    def load_subscriptions(self, now: float) -> list[SubscriptionRow]:
        return []

    def load_publications(self, now: float) -> list[PublicationRow]:
        return []


REGISTER = (
    b"REGISTER sip:example.com SIP/2.0\r\n"
    b"Via: SIP/2.0/TCP 127.0.0.43:5099;branch=z9hG4bK-r1\r\nMax-Forwards: 70\r\n"
    b"From: <sip:alice@example.com>;tag=a\r\nTo: <sip:alice@example.com>\r\n"
    b"Call-ID: r1@127.0.0.43\r\nCSeq: 1 REGISTER\r\n"
    b"Contact: <sip:alice@127.0.0.43:5099;transport=tcp>\r\nContent-Length: 0\r\n\r\n"
)


def test_a_request_whose_handling_fails_gets_5xx_and_leaves_no_stuck_transaction() -> None:
    async def scenario() -> tuple[Response, Response, Response]:
        node = Node(
            NodeSettings(
                name="imp1.example.com",
                address=NODE_IP,
                listeners=(ListenerSpec(NODE_IP, "TCP", 0),),
                domains=frozenset({"example.com"}),
                users=frozenset({"alice@example.com", "carol@example.com"}),
            ),
            FullDisk(),
        )
        async with running(node) as (address, opened):
            alice = await connect(address, CLIENT_IP, opened)
            failed = await ask(alice, REGISTER)
            # Sent again (same branch): a new attempt, not a retransmission to swallow.
            again = await ask(alice, REGISTER)
            other = await connect(address, OTHER_IP, opened)
            offline = await ask(
                other, message("carol@example.com", 1, OTHER_IP, sender="alice@example.com")
            )
            return failed, again, offline

    failed, again, offline = asyncio.run(asyncio.wait_for(scenario(), 30))
    assert failed.status in (500, 503)
    assert again.status == failed.status
    # a reason that names the failure, not the bare standard phrase
    assert failed.reason not in ("Server Internal Error", "Service Unavailable")
    assert failed.headers.get("warning")
    assert offline.status == 480


def test_an_undeliverable_response_is_dropped_without_breaking_the_link_it_came_on(
    caplog: pytest.LogCaptureFixture,
) -> None:
    # The client's Via says UDP (which the node does not speak) and its connection is gone
    # when the answer comes: the answer is dropped with a log line, and the connection to the
    # next hop, which carried it, keeps serving everybody else.
    caplog.set_level(logging.INFO)

    async def scenario() -> tuple[int, int]:
        connections = 0
        first_seen, client_gone = asyncio.Event(), asyncio.Event()

        async def slow_first(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            nonlocal connections
            connections += 1
            framer = StreamFramer()
            while data := await reader.read(65536):
                framer.receive_data(data)
                while (frame := framer.next_frame()) is not None:
                    got = parse_message(frame, stream=True)
                    assert isinstance(got, Request)
                    if got.call_id == "udp@client":
                        first_seen.set()
                        await client_gone.wait()
                    writer.write(make_response(got, 200, to_tag="uas").to_bytes())
            writer.close()

        uas = await asyncio.start_server(slow_first, UAS_IP, 0)
        try:
            async with running(routed_node(uas.sockets[0].getsockname()[1])) as (address, opened):
                leaving = await connect(address, CLIENT_IP, opened)
                udp_via = f"SIP/2.0/UDP {CLIENT_IP}:5060;branch=z9hG4bK-u1"
                leaving.writer.write(request(via=udp_via, call_id=b"udp@client"))
                await first_seen.wait()
                leaving.writer.close()
                await leaving.writer.wait_closed()
                await asyncio.sleep(0.2)  # let the node see the close before the answer
                client_gone.set()
                other = await connect(address, OTHER_IP, opened)
                statuses = []
                for n in range(3):
                    answer = await ask(other, message("bob@example.com", n, OTHER_IP))
                    statuses.append(answer.status)
                return connections, statuses.count(200)
        finally:
            uas.close()

    connections, served = asyncio.run(asyncio.wait_for(scenario(), 30))
    assert served == 3
    assert connections == 1
    assert "dropping a response for Via transport UDP" in caplog.text
