"""Connection limits, backpressure and graceful shutdown."""

from __future__ import annotations

import asyncio
import logging
import socket
import time

import pytest

from intrafed.transport import ListenerSpec, TransportLimits
from intrafed.transport.layer import Flow
from tests.transport.helpers import (
    BAD_IP,
    CANARY_IP,
    SERVER_IP,
    Node,
    capture,
    client,
    logged,
    read_to_eof,
    request,
    response,
    roundtrip,
    run,
)


def test_connections_beyond_the_per_ip_limit_are_refused(caplog: pytest.LogCaptureFixture) -> None:
    capture(caplog)

    class Closing(Node):
        def on_message(self, flow: Flow, frame: bytes) -> None:
            super().on_message(flow, frame)
            if b"bye" in frame:
                flow.close("the test asked")

    async def scenario() -> None:
        async with Closing(limits=TransportLimits(max_connections_per_ip=2)) as node:
            address = await node.layer.listen(ListenerSpec(SERVER_IP, "TCP", 0))
            async with (
                client(address, source=BAD_IP) as (first_reader, first_writer),
                client(address, source=BAD_IP) as (reader, writer),
            ):
                await roundtrip(first_reader, first_writer, "first")
                await roundtrip(reader, writer, "second")
                async with client(address, source=BAD_IP) as (third, third_writer):
                    assert await read_to_eof(third) == b""
                    port = third_writer.get_extra_info("sockname")[1]
                assert logged(caplog, f"refusing connection from {BAD_IP}:{port}", "limit 2")
                # Another address is not affected.
                async with client(address, source=CANARY_IP) as (other, other_writer):
                    await roundtrip(other, other_writer, "other-ip")
                # A closed connection frees its slot.
                first_writer.write(request("bye"))
                assert await read_to_eof(first_reader) == response("bye")
                async with client(address, source=BAD_IP) as (again, again_writer):
                    await roundtrip(again, again_writer, "slot-freed")

    run(scenario())


def test_reading_pauses_while_a_peer_does_not_take_what_we_write() -> None:
    payload = b"x" * (4 * 1024 * 1024)

    class Flooding(Node):
        def on_message(self, flow: Flow, frame: bytes) -> None:
            super().on_message(flow, frame)
            if b"flood" in frame:
                flow.send(payload)

    async def scenario() -> None:
        limits = TransportLimits(write_buffer_high=64 * 1024, write_buffer_max=16 * 1024 * 1024)
        async with Flooding(limits=limits) as node:
            address = await node.layer.listen(ListenerSpec(SERVER_IP, "TCP", 0))
            # A small receive buffer: the kernel cannot absorb the flood for the client.
            sock = socket.socket()
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
            sock.bind((BAD_IP, 0))
            sock.setblocking(False)
            await asyncio.get_running_loop().sock_connect(sock, address)
            reader, writer = await asyncio.open_connection(sock=sock, limit=2 * len(payload))
            try:
                writer.write(request("flood"))
                flow, _frame = await node.messages.get()
                assert flow.reading_paused
                # Sent while paused: it waits in the kernel until the client catches up.
                writer.write(request("after"))
                expected = response("flood") + payload + response("after")
                assert await reader.readexactly(len(expected)) == expected
                later, frame = await node.messages.get()
                assert later is flow
                assert frame == request("after")
                assert not flow.reading_paused
            finally:
                writer.close()
                await writer.wait_closed()

    run(scenario())


def test_graceful_close_reads_only_responses_until_idle_then_half_closes() -> None:
    async def scenario() -> None:
        node = Node()
        address = await node.layer.listen(ListenerSpec(SERVER_IP, "TCP", 0))
        pending = asyncio.Event()
        pending.set()
        polled = asyncio.Event()

        def idle() -> bool:
            polled.set()
            return not pending.is_set()

        async with client(address) as (reader, writer):
            await roundtrip(reader, writer, "before")
            node.messages.get_nowait()
            closing = asyncio.ensure_future(node.layer.close(grace=10, idle=idle))
            await polled.wait()
            # The listener is gone; the open flow still brings responses in, and sends,
            # but a new request is no longer read.
            with pytest.raises(ConnectionRefusedError):
                await asyncio.open_connection(*address)
            writer.write(request("during") + response("answer"))
            _flow, frame = await node.messages.get()
            assert frame == response("answer")
            assert not closing.done()
            pending.clear()
            # Then a FIN (not a reset), and the node waits for our side to close.
            assert await reader.read(65536) == b""
            assert not closing.done()
        await closing
        assert node.frames == [request("before"), response("answer")]
        assert node.layer.listeners == []

    run(scenario())


def test_graceful_close_gives_up_waiting_when_the_grace_period_ends() -> None:
    async def scenario() -> None:
        node = Node()
        address = await node.layer.listen(ListenerSpec(SERVER_IP, "TCP", 0))
        async with client(address) as (reader, writer):
            await roundtrip(reader, writer, "before")
            started = time.monotonic()
            await node.layer.close(grace=0.3, idle=lambda: False)
            assert 0.3 <= time.monotonic() - started < 2.0
            assert await read_to_eof(reader) == b""

    run(scenario())


def test_a_peer_that_never_reads_is_closed_once_its_queue_passes_the_maximum(
    caplog: pytest.LogCaptureFixture,
) -> None:
    chunk = b"y" * (256 * 1024)

    class Flooding(Node):
        def on_message(self, flow: Flow, frame: bytes) -> None:
            super().on_message(flow, frame)
            if b"flood" in frame:
                while flow.send(chunk):
                    pass

    async def scenario() -> None:
        limits = TransportLimits(write_buffer_high=64 * 1024, write_buffer_max=1024 * 1024)
        async with Flooding(limits=limits) as node:
            address = await node.layer.listen(ListenerSpec(SERVER_IP, "TCP", 0))
            sock = socket.socket()
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
            sock.bind((BAD_IP, 0))
            sock.setblocking(False)
            await asyncio.get_running_loop().sock_connect(sock, address)
            _reader, writer = await asyncio.open_connection(sock=sock)
            try:
                writer.write(request("flood"))
                flow, _frame = await node.messages.get()
                assert flow.closed
            finally:
                writer.close()

    with caplog.at_level(logging.INFO):
        run(scenario())
    assert "peer is not reading" in caplog.text
