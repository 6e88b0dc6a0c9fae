"""TCP listeners: frames cut from the stream reach on_message, answers go back on the flow."""

from __future__ import annotations

from intrafed.transport import ListenerSpec
from tests.transport.helpers import (
    CANARY_IP,
    SERVER_IP,
    Node,
    client,
    request,
    response,
    roundtrip,
    run,
)


def test_two_pipelined_requests_in_one_write_arrive_as_two_messages() -> None:
    async def scenario() -> None:
        async with Node() as node:
            address = await node.layer.listen(ListenerSpec(SERVER_IP, "TCP", 0))
            first, second = request("one", b"hello"), request("two")
            async with client(address) as (reader, writer):
                writer.write(first + second)
                assert await reader.readuntil(b"\r\n\r\n") == response("one")
                assert await reader.readuntil(b"\r\n\r\n") == response("two")
            flow_one, frame_one = node.messages.get_nowait()
            flow_two, frame_two = node.messages.get_nowait()
            assert (frame_one, frame_two) == (first, second)
            assert flow_one is flow_two

    run(scenario())


def test_request_written_one_byte_at_a_time_arrives_whole() -> None:
    async def scenario() -> None:
        async with Node() as node:
            address = await node.layer.listen(ListenerSpec(SERVER_IP, "TCP", 0))
            message = request("bytewise", b"body")
            async with client(address) as (reader, writer):
                for index in range(len(message)):
                    writer.write(message[index : index + 1])
                    await writer.drain()
                assert await reader.readuntil(b"\r\n\r\n") == response("bytewise")
            _flow, frame = node.messages.get_nowait()
            assert frame == message
            assert node.messages.empty()

    run(scenario())


def test_crlf_keepalive_ping_gets_exactly_one_pong() -> None:
    async def scenario() -> None:
        async with Node() as node:
            address = await node.layer.listen(ListenerSpec(SERVER_IP, "TCP", 0))
            async with client(address) as (reader, writer):
                writer.write(b"\r\n\r\n")
                assert await reader.readexactly(2) == b"\r\n"
                # A ping split over two writes is still one ping; the request after it
                # proves no second pong was queued.
                writer.write(b"\r\n")
                await writer.drain()
                writer.write(b"\r\n")
                await writer.drain()
                assert await reader.readexactly(2) == b"\r\n"
                await roundtrip(reader, writer, "after-pings")
            assert node.messages.qsize() == 1

    run(scenario())


def test_answer_sent_on_the_flow_reaches_the_client_and_the_flow_names_its_peer() -> None:
    async def scenario() -> None:
        async with Node() as node:
            address = await node.layer.listen(ListenerSpec(SERVER_IP, "TCP", 0))
            async with client(address, source=CANARY_IP) as (reader, writer):
                await roundtrip(reader, writer, "echo")
                flow, _frame = node.messages.get_nowait()
                assert flow.transport == flow.peer.transport == "TCP"
                assert flow.remote == writer.get_extra_info("sockname")[:2]
                assert flow.peer.ip == CANARY_IP
                assert flow.peer.fqdns == ()
                assert flow.local == address
                assert not flow.outbound
                assert node.layer.flow(flow.id) is flow
                assert flow.send(b"SIP/2.0 200 OK\r\nContent-Length: 0\r\n\r\n")
                assert await reader.readuntil(b"\r\n\r\n") == (
                    b"SIP/2.0 200 OK\r\nContent-Length: 0\r\n\r\n"
                )
                flow.close()
                assert await reader.read() == b""
                assert flow.closed
                assert not flow.send(b"too late")
                assert node.layer.flow(flow.id) is None

    run(scenario())


def test_listeners_report_their_bound_addresses() -> None:
    async def scenario() -> None:
        async with Node() as node:
            spec = ListenerSpec(SERVER_IP, "TCP", 0)
            address = await node.layer.listen(spec)
            assert address[0] == SERVER_IP
            assert address[1] > 0
            assert node.layer.listeners == [(spec, address)]

    run(scenario())
