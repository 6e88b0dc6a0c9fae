"""Bad input sent to a running node over real sockets, while another client is served.

Each case checks the answer the node gives where one can be given (with a reason that
names the problem and a Warning from the node), that the connection is closed where
framing is lost, a log line naming the peer, and that a well-behaved client sending a
MESSAGE through the node to a UAS at the same time gets its 200.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator

import pytest

from intrafed.config.model import StaticRoute
from intrafed.node import Node, NodeSettings
from intrafed.policy import PeerTrust
from intrafed.sip import StreamFramer, parse_message
from intrafed.transport import ListenerSpec, TransportLimits
from tests.integration.uas import answer_200
from tests.paths import CONFORMANCE

NODE_IP, UAS_IP, GOOD_IP, BAD_IP = "127.0.0.2", "127.0.0.3", "127.0.0.7", "127.0.0.8"

GOOD_MESSAGE = (
    "MESSAGE sip:bob@example.com SIP/2.0\r\n"
    "Via: SIP/2.0/TCP {ip}:5070;branch=z9hG4bK-good-{n}\r\n"
    "Max-Forwards: 70\r\nFrom: <sip:alice@example.com>;tag=a{n}\r\nTo: <sip:bob@example.com>\r\n"
    "Call-ID: good-{n}@{ip}\r\nCSeq: 1 MESSAGE\r\nContent-Type: text/plain\r\n"
    "Content-Length: 2\r\n\r\nhi"
)


def good_client_trusted(ip: str, names: tuple[str, ...], outbound: bool) -> PeerTrust | None:
    """The well-behaved client is a trusted host: it sends for example.com, which the
    node does not serve."""
    return PeerTrust("good client") if ip == GOOD_IP else None


@contextlib.asynccontextmanager
async def node_and_uas() -> AsyncIterator[tuple[str, int]]:
    uas = await asyncio.start_server(answer_200, UAS_IP, 0)
    uas_port = uas.sockets[0].getsockname()[1]
    node = Node(
        NodeSettings(
            name="imp1.example.com",
            address=NODE_IP,
            listeners=(ListenerSpec(NODE_IP, "TCP", 0),),
            routes=(StaticRoute("example.com", "TCP", uas_port, ip=UAS_IP),),
            peers=good_client_trusted,
            limits=TransportLimits(message_timeout=0.5, first_data_timeout=0.5),
        )
    )
    bound = await node.start()
    try:
        yield bound["TCP"]
    finally:
        await node.stop(grace=0.5)
        uas.close()
        await uas.wait_closed()


async def good_client(node: tuple[str, int], count: int) -> list[int]:
    """Send ``count`` MESSAGEs one after another; return the statuses received."""
    reader, writer = await asyncio.open_connection(*node, local_addr=(GOOD_IP, 0))
    framer, statuses = StreamFramer(), []
    for n in range(count):
        writer.write(GOOD_MESSAGE.format(ip=GOOD_IP, n=n).encode())
        while True:
            frame = framer.next_frame()
            if frame is not None:
                statuses.append(parse_message(frame, stream=True).status)  # type: ignore[union-attr]
                break
            framer.receive_data(await reader.read(65536))
    writer.close()
    return statuses


async def bad_client(node: tuple[str, int], payload: bytes) -> tuple[bytes, bool]:
    """Send ``payload``; return what came back and whether the node closed the connection."""
    reader, writer = await asyncio.open_connection(*node, local_addr=(BAD_IP, 0))
    writer.write(payload)
    received = b""
    try:
        while chunk := await asyncio.wait_for(reader.read(65536), 3.0):
            received += chunk
        closed = True
    except TimeoutError:
        closed = False
    writer.close()
    return received, closed


def exchange(payload: bytes) -> tuple[bytes, bool, list[int]]:
    async def scenario() -> tuple[bytes, bool, list[int]]:
        async with node_and_uas() as node:
            (received, closed), statuses = await asyncio.gather(
                bad_client(node, payload), good_client(node, 20)
            )
            return received, closed, statuses

    return asyncio.run(asyncio.wait_for(scenario(), 30))


def test_unsupported_version_gets_505_and_the_connection_stays(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.INFO)
    received, closed, statuses = exchange((CONFORMANCE / "rfc4475" / "badvers.dat").read_bytes())
    assert received.startswith(b"SIP/2.0 505 SIP version SIP/7.0 is not supported\r\n")
    assert b'Warning: 399 imp1.example.com "SIP version SIP/7.0 is not supported"' in received
    assert not closed
    assert statuses == [200] * 20
    assert f"bad message from {BAD_IP}" in caplog.text


def test_garbage_closes_the_connection_without_an_answer(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO)
    received, closed, statuses = exchange(b"\x16\x03\x01\x02\x00\x01garbage\r\n\r\n")
    assert (received, closed) == (b"", True)
    assert statuses == [200] * 20
    assert BAD_IP in caplog.text


def test_body_over_the_limit_gets_513_then_close() -> None:
    head = GOOD_MESSAGE.format(ip=BAD_IP, n=99).replace(
        "Content-Length: 2", "Content-Length: 999999999"
    )
    received, closed, statuses = exchange(head.encode())
    assert received.startswith(b"SIP/2.0 513 Content-Length 999999999 exceeds")
    assert closed
    assert statuses == [200] * 20


def test_header_section_over_the_limit_gets_513_then_close() -> None:
    flood = GOOD_MESSAGE.format(ip=BAD_IP, n=98).split("Content-Type")[0]
    flood += "".join(f"X-Filler-{i}: {'x' * 100}\r\n" for i in range(1000))
    received, closed, statuses = exchange(flood.encode())
    assert received.startswith(b"SIP/2.0 513 header section exceeds 65536 bytes")
    assert closed
    assert statuses == [200] * 20


def test_a_message_that_never_completes_is_closed_after_the_deadline() -> None:
    partial = GOOD_MESSAGE.format(ip=BAD_IP, n=97).encode()[:120]
    received, closed, statuses = exchange(partial)
    assert (received, closed) == (b"", True)
    assert statuses == [200] * 20


def test_an_invalid_request_gets_400_naming_the_problem() -> None:
    received, closed, statuses = exchange((CONFORMANCE / "rfc4475" / "mismatch01.dat").read_bytes())
    assert received.startswith(
        b"SIP/2.0 400 CSeq method INVITE does not match request method OPTIONS\r\n"
    )
    assert not closed
    assert statuses == [200] * 20


def test_the_node_connects_to_its_next_hop_from_its_own_address() -> None:
    sources: list[str] = []

    async def scenario() -> list[int]:
        async def remember(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            sources.append(writer.get_extra_info("peername")[0])
            await answer_200(reader, writer)

        uas = await asyncio.start_server(remember, UAS_IP, 0)
        node = Node(
            NodeSettings(
                name="imp1.example.com",
                address=NODE_IP,
                listeners=(ListenerSpec(NODE_IP, "TCP", 0),),
                routes=(
                    StaticRoute("example.com", "TCP", uas.sockets[0].getsockname()[1], ip=UAS_IP),
                ),
                peers=good_client_trusted,
            )
        )
        bound = await node.start()
        try:
            return await good_client(bound["TCP"], 1)
        finally:
            await node.stop(grace=0.5)
            uas.close()
            await uas.wait_closed()

    assert asyncio.run(asyncio.wait_for(scenario(), 30)) == [200]
    assert sources == [NODE_IP]
