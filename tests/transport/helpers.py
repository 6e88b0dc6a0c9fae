"""Test peers for the transport layer: a recording node, raw clients and a canary."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import ssl
from collections.abc import AsyncIterator, Awaitable, Coroutine
from typing import Any, TypeVar

import pytest

from intrafed.sip import FramingError
from intrafed.transport import Flow, TransportLayer, TransportLimits

T = TypeVar("T")

SERVER_IP = "127.0.0.2"
PEER_IP = "127.0.0.3"
CANARY_IP = "127.0.0.4"
BAD_IP = "127.0.0.5"

TOO_LARGE = b"SIP/2.0 513 Message Too Large\r\nContent-Length: 0\r\n\r\n"


def request(call_id: str = "c1", body: bytes = b"", method: str = "OPTIONS") -> bytes:
    """A small request; the framer only needs its start line and Content-Length."""
    return (
        f"{method} sip:bob@example.com SIP/2.0\r\n"
        f"Via: SIP/2.0/TCP client.example.com;branch=z9hG4bK{call_id}\r\n"
        "From: <sip:alice@example.com>;tag=1\r\n"
        "To: <sip:bob@example.com>\r\n"
        f"Call-ID: {call_id}\r\n"
        f"CSeq: 1 {method}\r\n"
        "Max-Forwards: 70\r\n"
        f"Content-Length: {len(body)}\r\n\r\n"
    ).encode() + body


def response(call_id: str) -> bytes:
    return f"SIP/2.0 200 OK\r\nCall-ID: {call_id}\r\nContent-Length: 0\r\n\r\n".encode()


def call_id_of(frame: bytes) -> str:
    for line in frame.split(b"\r\n"):
        if line.startswith(b"Call-ID: "):
            return line[9:].decode()
    return ""


def run(coroutine: Coroutine[Any, Any, T], timeout: float = 15.0) -> T:
    """Run one scenario on a fresh loop; it can never hang past ``timeout``."""
    return asyncio.run(asyncio.wait_for(coroutine, timeout))


class Node:
    """A TransportLayer that records what arrives and answers every request with 200."""

    def __init__(
        self,
        *,
        limits: TransportLimits | None = None,
        bad_reply: bytes | None = None,
        server_ssl: ssl.SSLContext | None = None,
        mtls_ssl: ssl.SSLContext | None = None,
        client_ssl: ssl.SSLContext | None = None,
    ) -> None:
        self.messages: asyncio.Queue[tuple[Flow, bytes]] = asyncio.Queue()
        self.bad: asyncio.Queue[tuple[Flow, FramingError]] = asyncio.Queue()
        self.bad_reply = bad_reply
        self.frames: list[bytes] = []
        """Every frame received so far, in order."""
        self.layer = TransportLayer(
            on_message=self.on_message,
            on_bad_stream=self.on_bad_stream,
            server_ssl=server_ssl,
            mtls_ssl=mtls_ssl,
            client_ssl=client_ssl,
            limits=limits or TransportLimits(),
        )

    def on_message(self, flow: Flow, frame: bytes) -> None:
        self.frames.append(frame)
        self.messages.put_nowait((flow, frame))
        if not frame.startswith(b"SIP/2.0 "):
            flow.send(response(call_id_of(frame)))

    def on_bad_stream(self, flow: Flow, error: FramingError) -> bytes | None:
        self.bad.put_nowait((flow, error))
        return self.bad_reply

    async def __aenter__(self) -> Node:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.layer.close(grace=0)


@contextlib.asynccontextmanager
async def client(
    address: tuple[str, int],
    *,
    source: str = CANARY_IP,
    context: ssl.SSLContext | None = None,
    server_hostname: str | None = None,
) -> AsyncIterator[tuple[asyncio.StreamReader, asyncio.StreamWriter]]:
    """A plain (or TLS) client connection from ``source``, closed on exit."""
    reader, writer = await asyncio.open_connection(
        address[0],
        address[1],
        local_addr=(source, 0),
        ssl=context,
        server_hostname=server_hostname,
    )
    try:
        yield reader, writer
    finally:
        writer.close()
        with contextlib.suppress(OSError):
            await writer.wait_closed()


def local_address(writer: asyncio.StreamWriter) -> str:
    """``ip:port`` of the client's end, as the server logs it."""
    host, port = writer.get_extra_info("sockname")[:2]
    return f"{host}:{port}"


async def read_to_eof(reader: asyncio.StreamReader) -> bytes:
    """Everything the server sends until it closes; a reset or TLS alert ends it too."""
    received = bytearray()
    with contextlib.suppress(OSError):
        while chunk := await reader.read(65536):
            received += chunk
    return bytes(received)


async def roundtrip(
    reader: asyncio.StreamReader, writer: asyncio.StreamWriter, call_id: str
) -> None:
    """Send a request and wait for its 200."""
    writer.write(request(call_id))
    await writer.drain()
    answer = await reader.readuntil(b"\r\n\r\n")
    assert answer == response(call_id)


async def alongside_canary(address: tuple[str, int], misbehaviour: Awaitable[T]) -> T:
    """Run ``misbehaviour`` while a well-behaved client keeps being served on ``address``."""
    async with client(address, source=CANARY_IP) as (reader, writer):
        await roundtrip(reader, writer, "canary-before")
        bad = asyncio.ensure_future(misbehaviour)
        await roundtrip(reader, writer, "canary-during")
        result = await bad
        await roundtrip(reader, writer, "canary-after")
    return result


def logged(caplog: pytest.LogCaptureFixture, *needles: str) -> list[str]:
    """Transport log lines that contain every needle."""
    return [
        record.getMessage()
        for record in caplog.records
        if record.name.startswith("intrafed.transport")
        and all(needle in record.getMessage() for needle in needles)
    ]


def capture(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG, logger="intrafed.transport")
