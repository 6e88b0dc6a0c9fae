"""Minimal SIP clients for node tests: a TCP connection that reads whole messages."""

from __future__ import annotations

import asyncio

from intrafed.sip import Request, Response, StreamFramer, parse_message


class SipPeer:
    """One TCP client of a node."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader, self.writer, self.framer = reader, writer, StreamFramer()

    async def next(self) -> Request | Response:
        """The next whole message from the node (10 s at most)."""
        while (frame := self.framer.next_frame()) is None:
            self.framer.receive_data(await asyncio.wait_for(self.reader.read(65536), 10))
        return parse_message(frame, stream=True)


async def connect(
    address: tuple[str, int], source: str, opened: list[asyncio.StreamWriter]
) -> SipPeer:
    """Connect from ``source``; the writer is added to ``opened`` for the test to close."""
    reader, writer = await asyncio.open_connection(*address, local_addr=(source, 0))
    opened.append(writer)
    return SipPeer(reader, writer)


def message(to: str, n: int, source: str, sender: str = "sender@partner.example.net") -> bytes:
    """A pager-mode MESSAGE to ``to`` from ``sender`` (by default a partner domain's user,
    whom only a trusted host may relay) at ``source``."""
    return (
        f"MESSAGE sip:{to} SIP/2.0\r\nVia: SIP/2.0/TCP {source}:5070;branch=z9hG4bK-m{n}\r\n"
        f"Max-Forwards: 70\r\nFrom: <sip:{sender}>;tag=s{n}\r\nTo: <sip:{to}>\r\n"
        f"Call-ID: m{n}@{source}\r\nCSeq: 1 MESSAGE\r\nContent-Length: 2\r\n\r\nhi"
    ).encode()
