"""Bad input over real sockets (reliability matrix A4-A13): each bad peer is closed with a
log line naming it, while another client on the same listener is served normally."""

from __future__ import annotations

import asyncio
import time

import pytest

from intrafed.transport import ListenerSpec, TransportLimits
from intrafed.transport.layer import Flow
from tests.transport.helpers import (
    BAD_IP,
    SERVER_IP,
    TOO_LARGE,
    Node,
    alongside_canary,
    capture,
    client,
    local_address,
    logged,
    read_to_eof,
    request,
    response,
    roundtrip,
    run,
)

SHORT = TransportLimits(message_timeout=0.5, first_data_timeout=0.5, max_header_bytes=4096)


async def send_and_read(address: tuple[str, int], data: bytes) -> tuple[bytes, str]:
    """Connect from BAD_IP, write ``data``, return what came back before the close."""
    async with client(address, source=BAD_IP) as (reader, writer):
        writer.write(data)
        return await read_to_eof(reader), local_address(writer)


def test_garbage_start_line_closes_the_connection_without_answer(
    caplog: pytest.LogCaptureFixture,
) -> None:
    capture(caplog)

    async def scenario() -> None:
        async with Node() as node:
            address = await node.layer.listen(ListenerSpec(SERVER_IP, "TCP", 0))
            garbage = b"\x00\x01\x02 this is not SIP\r\n\r\n"
            answer, peer = await alongside_canary(address, send_and_read(address, garbage))
            assert answer == b""
            flow, error = node.bad.get_nowait()
            assert flow.closed
            assert error.status == 400
            assert "unreadable start line" in error.reason
            assert logged(caplog, f"from {peer}", "unreadable start line", "no answer")
            assert all(b"canary" in frame for frame in node.frames)

    run(scenario())


def test_header_section_over_the_limit_gets_513_then_close(
    caplog: pytest.LogCaptureFixture,
) -> None:
    capture(caplog)

    async def scenario() -> None:
        async with Node(limits=SHORT, bad_reply=TOO_LARGE) as node:
            address = await node.layer.listen(ListenerSpec(SERVER_IP, "TCP", 0))
            huge = request("big")[:-2] + b"X-Padding: " + b"a" * 5000 + b"\r\n"
            answer, peer = await alongside_canary(address, send_and_read(address, huge))
            assert answer == TOO_LARGE
            _flow, error = node.bad.get_nowait()
            assert error.status == 513
            assert logged(caplog, f"from {peer}", "header section exceeds 4096 bytes", "513")

    run(scenario())


def test_content_length_over_the_body_limit_gets_513_then_close(
    caplog: pytest.LogCaptureFixture,
) -> None:
    capture(caplog)

    async def scenario() -> None:
        async with Node(bad_reply=TOO_LARGE) as node:
            address = await node.layer.listen(ListenerSpec(SERVER_IP, "TCP", 0))
            oversized = request("body").replace(b"Content-Length: 0", b"Content-Length: 300000")
            answer, peer = await alongside_canary(address, send_and_read(address, oversized))
            assert answer == TOO_LARGE
            _flow, error = node.bad.get_nowait()
            assert error.status == 513
            assert logged(caplog, f"from {peer}", "exceeds the 262144-byte body limit")

    run(scenario())


def test_message_that_never_completes_is_closed_after_message_timeout(
    caplog: pytest.LogCaptureFixture,
) -> None:
    capture(caplog)

    async def scenario() -> None:
        async with Node(limits=SHORT) as node:
            address = await node.layer.listen(ListenerSpec(SERVER_IP, "TCP", 0))
            started = time.monotonic()
            answer, peer = await alongside_canary(
                address, send_and_read(address, request("half")[:60])
            )
            assert answer == b""
            assert time.monotonic() - started >= 0.5
            assert logged(caplog, f"from {peer}", "message still incomplete after 0.5 s")
            assert node.bad.empty()

    run(scenario())


def test_slowloris_is_closed_at_the_message_deadline_although_bytes_keep_coming(
    caplog: pytest.LogCaptureFixture,
) -> None:
    capture(caplog)

    async def dribble(address: tuple[str, int]) -> tuple[float, str]:
        async with client(address, source=BAD_IP) as (reader, writer):
            started = time.monotonic()
            closed = asyncio.ensure_future(read_to_eof(reader))
            for byte in request("slow"):
                if closed.done():
                    break
                writer.write(bytes([byte]))
                await asyncio.sleep(0.05)  # the pace is what this test is about
            await closed
            return time.monotonic() - started, local_address(writer)

    async def scenario() -> None:
        async with Node(limits=SHORT) as node:
            address = await node.layer.listen(ListenerSpec(SERVER_IP, "TCP", 0))
            elapsed, peer = await alongside_canary(address, dribble(address))
            assert 0.5 <= elapsed < 2.0
            assert logged(caplog, f"from {peer}", "message still incomplete")
            assert all(b"canary" in frame for frame in node.frames)

    run(scenario())


def test_silent_peer_is_closed_after_first_data_timeout(caplog: pytest.LogCaptureFixture) -> None:
    capture(caplog)

    async def scenario() -> None:
        async with Node(limits=SHORT) as node:
            address = await node.layer.listen(ListenerSpec(SERVER_IP, "TCP", 0))
            answer, peer = await alongside_canary(address, send_and_read(address, b""))
            assert answer == b""
            assert logged(caplog, f"from {peer}", "no data within 0.5 s of connecting")

    run(scenario())


def test_peer_closing_mid_message_delivers_nothing(caplog: pytest.LogCaptureFixture) -> None:
    capture(caplog)

    async def half_then_eof(address: tuple[str, int]) -> tuple[bytes, str]:
        async with client(address, source=BAD_IP) as (reader, writer):
            writer.write(request("cut", b"0123456789")[:-5])
            writer.write_eof()
            return await read_to_eof(reader), local_address(writer)

    async def scenario() -> None:
        async with Node() as node:
            address = await node.layer.listen(ListenerSpec(SERVER_IP, "TCP", 0))
            answer, peer = await alongside_canary(address, half_then_eof(address))
            assert answer == b""
            assert logged(caplog, f"from {peer}", "in the middle of a message")
            assert all(b"canary" in frame for frame in node.frames)
            assert node.bad.empty()

    run(scenario())


def test_idle_connection_is_closed_and_keepalives_count_as_traffic(
    caplog: pytest.LogCaptureFixture,
) -> None:
    capture(caplog)

    async def scenario() -> None:
        async with Node(limits=TransportLimits(idle_timeout=0.5)) as node:
            address = await node.layer.listen(ListenerSpec(SERVER_IP, "TCP", 0))
            async with client(address, source=BAD_IP) as (reader, writer):
                peer = local_address(writer)
                await roundtrip(reader, writer, "then-quiet")
                # Pings every 0.2 s keep the flow open past two idle periods...
                for _ in range(5):
                    await asyncio.sleep(0.2)  # the keepalive interval under test
                    writer.write(b"\r\n\r\n")
                    assert await reader.readexactly(2) == b"\r\n"
                assert not logged(caplog, f"from {peer}", "no traffic")
                # ...and silence closes it.
                started = time.monotonic()
                assert await read_to_eof(reader) == b""
                assert time.monotonic() - started >= 0.4
            assert logged(caplog, f"from {peer}", "no traffic for 0.5 s")

    run(scenario())


def test_exception_in_on_message_closes_only_that_flow(caplog: pytest.LogCaptureFixture) -> None:
    capture(caplog)

    class Exploding(Node):
        def on_message(self, flow: Flow, frame: bytes) -> None:
            if b"boom" in frame:
                raise RuntimeError("handler bug")
            super().on_message(flow, frame)

    async def scenario() -> None:
        async with Exploding() as node:
            address = await node.layer.listen(ListenerSpec(SERVER_IP, "TCP", 0))
            answer, peer = await alongside_canary(address, send_and_read(address, request("boom")))
            assert answer == b""
            assert logged(caplog, f"from {peer}", "message handler failed")
            assert logged(caplog, f"from {peer}", "closing", "internal error")

    run(scenario())


def test_exception_in_on_bad_stream_still_closes_the_flow(
    caplog: pytest.LogCaptureFixture,
) -> None:
    capture(caplog)

    class Exploding(Node):
        def on_bad_stream(self, flow: Flow, error: object) -> bytes | None:
            raise RuntimeError("handler bug")

    async def scenario() -> None:
        async with Exploding() as node:
            address = await node.layer.listen(ListenerSpec(SERVER_IP, "TCP", 0))
            answer, peer = await alongside_canary(address, send_and_read(address, b"\x01\r\n"))
            assert answer == b""
            assert logged(caplog, f"from {peer}", "bad-stream handler failed")

    run(scenario())


def test_response_to_a_request_is_not_delayed_by_a_partial_message_behind_it() -> None:
    async def scenario() -> None:
        async with Node(limits=SHORT) as node:
            address = await node.layer.listen(ListenerSpec(SERVER_IP, "TCP", 0))
            async with client(address, source=BAD_IP) as (reader, writer):
                writer.write(request("whole") + request("rest")[:40])
                assert await reader.readuntil(b"\r\n\r\n") == response("whole")
                writer.write(request("rest")[40:])
                assert await reader.readuntil(b"\r\n\r\n") == response("rest")

    run(scenario())
