"""Node-level fuzz: mutated messages over real TCP connections to a real node, after which
the node still answers a clean OPTIONS on another connection, and logged no internal error.

Bounded: a fixed seed, a few hundred messages, a deadline per connection. Only mutants that
keep every address on 127.0.0.0/8 are sent (a mutated Route or Via could name a host
elsewhere, and the node would try to reach it).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random

import pytest

from intrafed.config.model import StaticRoute
from intrafed.node import Node, NodeSettings
from intrafed.sip import Request, SipUri, StreamFramer, parse_message
from intrafed.sip.errors import RemoteSipError
from intrafed.transport import ListenerSpec, TransportLimits
from tests.integration.clients import connect
from tests.integration.uas import answer_200
from tests.sip.mutations import corpus, mutate

NODE_IP, UAS_IP, FUZZ_IP, CLEAN_IP = "127.0.0.51", "127.0.0.52", "127.0.0.53", "127.0.0.54"
CONNECTIONS, PER_CONNECTION = 60, 5


def _valid(method: str, n: int, extra: str = "") -> bytes:
    return (
        f"{method} sip:bob@example.com SIP/2.0\r\n"
        f"Via: SIP/2.0/TCP {FUZZ_IP}:5070;branch=z9hG4bK-f{n};rport\r\nMax-Forwards: 70\r\n"
        f'From: "Sender" <sip:sender@partner.example.net>;tag=s{n}\r\n'
        f"To: <sip:bob@example.com>\r\nCall-ID: f{n}@{FUZZ_IP}\r\nCSeq: {n} {method}\r\n"
        f"Contact: <sip:sender@{FUZZ_IP}:5070;transport=tcp>;expires=60\r\n{extra}"
        "Content-Type: text/plain\r\nContent-Length: 2\r\n\r\nhi"
    ).encode()


def _bases() -> list[bytes]:
    valid = [
        _valid("MESSAGE", 1),
        _valid("OPTIONS", 2, "Accept: application/sdp\r\n"),
        _valid("INVITE", 3, "Supported: path, outbound\r\n"),
        _valid("SUBSCRIBE", 4, "Event: presence;id=1\r\nExpires: 60\r\n"),
        _valid("PUBLISH", 5, "Event: presence\r\nSIP-If-Match: x\r\n"),
    ]
    return valid + corpus()


def _stays_local(data: bytes) -> bool:
    """Whether every request the node could read from ``data`` routes to 127.0.0.0/8 only."""
    framer = StreamFramer()
    framer.receive_data(data)
    with contextlib.suppress(RemoteSipError):
        while (frame := framer.next_frame()) is not None:
            try:
                message = parse_message(frame, stream=True)
            except RemoteSipError:
                continue
            if not isinstance(message, Request):
                return False
            uri = message.uri
            if (
                not isinstance(uri, SipUri)
                or uri.host.lower() not in ("example.com", NODE_IP)
                or not message.top_via.host.startswith("127.")
                or "route" in message.headers
                or message.to_addr.tag is not None
            ):
                return False
    return True


def _mutants() -> list[bytes]:
    rng = random.Random(4475)  # noqa: S311 (a reproducible fuzz, not a secret)
    bases = _bases()
    mutants: list[bytes] = []
    while len(mutants) < CONNECTIONS * PER_CONNECTION:
        data = mutate(rng.choice(bases), rng, rng.randint(1, 4))
        if _stays_local(data):
            mutants.append(data)
    return mutants


async def _send(address: tuple[str, int], batch: list[bytes]) -> None:
    reader, writer = await asyncio.open_connection(*address, local_addr=(FUZZ_IP, 0))
    try:
        for data in batch:
            writer.write(data)
        writer.write_eof()
        with contextlib.suppress(TimeoutError, ConnectionError):
            while await asyncio.wait_for(reader.read(65536), 2.0):
                pass
    finally:
        writer.close()


def test_the_node_survives_mutated_messages_and_still_answers_options(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.INFO)
    mutants = _mutants()

    async def scenario() -> int:
        uas = await asyncio.start_server(answer_200, UAS_IP, 0)
        node = Node(
            NodeSettings(
                name="imp1.example.com",
                address=NODE_IP,
                listeners=(ListenerSpec(NODE_IP, "TCP", 0),),
                routes=(
                    StaticRoute("example.com", "TCP", uas.sockets[0].getsockname()[1], ip=UAS_IP),
                ),
                limits=TransportLimits(message_timeout=0.5, first_data_timeout=0.5),
            )
        )
        address = (await node.start())["TCP"]
        opened: list[asyncio.StreamWriter] = []
        try:
            for start in range(0, len(mutants), PER_CONNECTION * 6):
                chunk = mutants[start : start + PER_CONNECTION * 6]
                await asyncio.gather(
                    *(
                        _send(address, chunk[i : i + PER_CONNECTION])
                        for i in range(0, len(chunk), PER_CONNECTION)
                    )
                )
            clean = await connect(address, CLEAN_IP, opened)
            options = (
                f"OPTIONS sip:{NODE_IP}:{address[1]} SIP/2.0\r\n"
                f"Via: SIP/2.0/TCP {CLEAN_IP}:5070;branch=z9hG4bK-clean\r\nMax-Forwards: 70\r\n"
                "From: <sip:probe@partner.example.net>;tag=p\r\nTo: <sip:imp1.example.com>\r\n"
                f"Call-ID: clean@{CLEAN_IP}\r\nCSeq: 1 OPTIONS\r\nContent-Length: 0\r\n\r\n"
            )
            clean.writer.write(options.encode())
            answer = await clean.next()
            return answer.status  # type: ignore[union-attr]
        finally:
            for writer in opened:
                writer.close()
            await node.stop(grace=0.5)
            uas.close()

    status = asyncio.run(asyncio.wait_for(scenario(), 120))
    assert status == 200
    internal = [
        record.getMessage()
        for record in caplog.records
        if record.name.startswith("intrafed")
        and (record.levelno >= logging.ERROR or "internal error" in record.getMessage())
    ]
    assert internal == []
