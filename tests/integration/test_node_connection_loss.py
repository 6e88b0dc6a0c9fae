"""Connections that die under a request: what was written to a next hop whose connection
then closed fails at once (RFC 3261 §16.9), not after timer F, and is not replayed."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator

from intrafed.config.model import StaticRoute
from intrafed.sip import Response
from tests.integration.clients import SipPeer, connect
from tests.integration.test_node_routes import CLIENT_IP, imp_config, message, next_hop, node

# CLIENT_IP is in imp_config's incoming ACL: a trusted sender, as the peer partition is.
NODE_IP, DYING_IP, BACKUP_IP = "127.0.0.170", "127.0.0.172", "127.0.0.173"


@contextlib.asynccontextmanager
async def dying_hop(ip: str) -> AsyncIterator[tuple[list[bytes], int]]:
    """A next hop that reads a request and closes the connection without answering."""
    received: list[bytes] = []

    async def serve(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        received.append(await reader.read(65536))
        writer.close()

    server = await asyncio.start_server(serve, ip, 0)
    try:
        yield received, server.sockets[0].getsockname()[1]
    finally:
        server.close()


def test_a_request_written_to_a_connection_that_dies_is_answered_at_once() -> None:
    async def scenario() -> None:
        async with (
            dying_hop(DYING_IP) as (received, dying_port),
            next_hop(BACKUP_IP) as (backup, backup_port),
        ):
            config = imp_config(
                NODE_IP,
                StaticRoute("example.com", "TCP", dying_port, ip=DYING_IP, priority=1),
                StaticRoute("example.com", "TCP", backup_port, ip=BACKUP_IP, priority=2),
            )
            opened: list[asyncio.StreamWriter] = []
            async with node(config) as address:
                client: SipPeer = await connect(address, CLIENT_IP, opened)
                client.writer.write(message("sip:bob@example.com", 1))
                # SipPeer.next waits 10 s at most: timer F (32 s) would not do.
                answer = await client.next()
                for writer in opened:
                    writer.close()
            assert isinstance(answer, Response)
            assert answer.status == 500
            assert "connection closed before a final response" in (
                answer.headers.get("warning") or ""
            )
            assert len(received) == 1
            # The request may have been acted on: it is not replayed to the next priority.
            assert backup.uris == []

    asyncio.run(asyncio.wait_for(scenario(), 30))
