"""Static routes over real sockets: a phone-URI route takes only phone URIs, replace-host
rewrites the Request-URI host to the next hop, an IM&P route whose next hop is down
fails over to the next priority, and advanced routing mode forwards only the users of the
peer directory."""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
from collections.abc import AsyncIterator

from intrafed.config.model import (
    AclEntry,
    Connection,
    HostAuthorization,
    ImpListeners,
    NodeConfig,
    NodeIdentity,
    Role,
    RoutingMode,
    StaticRoute,
)
from intrafed.node import Node, settings_from_config
from intrafed.sip import Request, Response, StreamFramer, parse_message
from intrafed.sip.responses import make_response
from tests.integration.clients import SipPeer, connect
from tests.integration.peers import free_port

NODE_IP, CLIENT_IP, DOWN_IP = "127.0.0.150", "127.0.0.151", "127.0.0.152"
PHONE_IP, PARTNER_IP, BACKUP_IP = "127.0.0.153", "127.0.0.154", "127.0.0.155"
DIRECTORY_NODE_IP, DIRECTORY_CLIENT_IP, DIRECTORY_OCS_IP = (
    "127.0.0.160",
    "127.0.0.161",
    "127.0.0.162",
)


class RecordingUas:
    """A next hop that answers 200 and keeps the Request-URIs it received."""

    def __init__(self) -> None:
        self.uris: list[str] = []

    async def serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        framer = StreamFramer()
        with contextlib.suppress(ConnectionError):
            while data := await reader.read(65536):
                framer.receive_data(data)
                while (frame := framer.next_frame()) is not None:
                    request = parse_message(frame, stream=True)
                    assert isinstance(request, Request)
                    self.uris.append(str(request.uri))
                    writer.write(make_response(request, 200, to_tag="uas").to_bytes())
        writer.close()


@contextlib.asynccontextmanager
async def next_hop(ip: str) -> AsyncIterator[tuple[RecordingUas, int]]:
    uas = RecordingUas()
    server = await asyncio.start_server(uas.serve, ip, 0)
    try:
        yield uas, server.sockets[0].getsockname()[1]
    finally:
        server.close()


@contextlib.asynccontextmanager
async def node(config: NodeConfig) -> AsyncIterator[tuple[str, int]]:
    running = Node(settings_from_config(config))
    bound = await running.start()
    try:
        yield bound["TCP"]
    finally:
        await running.stop(grace=0.5)


def imp_config(ip: str, *routes: StaticRoute) -> NodeConfig:
    """An IM&P node at ``ip`` serving example.com, its listeners on free ports; the
    clients are trusted hosts (the incoming ACL): they send for a partner domain."""
    return NodeConfig(
        NodeIdentity(Role.IMP, "imp1.example.com", ip),
        domains=("example.com",),
        listeners=ImpListeners(
            tcp=free_port(ip), peer_auth=free_port(ip), server_auth=free_port(ip)
        ),
        routes=routes,
        acl=(AclEntry(ip=CLIENT_IP), AclEntry(ip=DIRECTORY_CLIENT_IP)),
    )


def message(uri: str, n: int) -> bytes:
    return (
        f"MESSAGE {uri} SIP/2.0\r\nVia: SIP/2.0/TCP {CLIENT_IP}:5070;branch=z9hG4bK-r{n}\r\n"
        f"Max-Forwards: 70\r\nFrom: <sip:dave@partner.example.net>;tag=d{n}\r\nTo: <{uri}>\r\n"
        f"Call-ID: route{n}@{CLIENT_IP}\r\nCSeq: 1 MESSAGE\r\nContent-Length: 2\r\n\r\nhi"
    ).encode()


async def send(client: SipPeer, uri: str, n: int) -> Response:
    client.writer.write(message(uri, n))
    response = await client.next()
    assert isinstance(response, Response)
    return response


def test_phone_uri_route_takes_only_phone_uris_and_replace_host_rewrites() -> None:
    async def scenario() -> None:
        async with (
            next_hop(PHONE_IP) as (phones, phone_port),
            next_hop(PARTNER_IP) as (partner, partner_port),
        ):
            config = NodeConfig(
                NodeIdentity(Role.OCS, "ocs1.example.com", NODE_IP),
                domains=("example.com",),
                connections=(Connection("TCP", free_port(NODE_IP), NODE_IP),),
                host_authorizations=(HostAuthorization(ip=CLIENT_IP),),
                routes=(
                    StaticRoute("example.com", "TCP", phone_port, ip=PHONE_IP, phone_uri=True),
                    StaticRoute(
                        "partner.example.org", "TCP", partner_port, ip=PARTNER_IP, replace_host=True
                    ),
                ),
            )
            opened: list[asyncio.StreamWriter] = []
            async with node(config) as address:
                client = await connect(address, CLIENT_IP, opened)
                phone = await send(client, "sip:+15551234@example.com;user=phone", 1)
                tel = await send(client, "tel:+15551235", 2)
                person = await send(client, "sip:erin@example.com", 3)
                rewritten = await send(client, "sip:frank@partner.example.org", 4)
                for writer in opened:
                    writer.close()
            assert (phone.status, tel.status) == (200, 200)
            assert phones.uris == ["sip:+15551234@example.com;user=phone", "tel:+15551235"]
            # Not a phone URI: the phone route does not take it, and erin is nobody here.
            assert person.status == 404
            assert rewritten.status == 200
            assert partner.uris == [f"sip:frank@{PARTNER_IP}:{partner_port}"]

    asyncio.run(asyncio.wait_for(scenario(), 30))


def test_an_unreachable_first_route_fails_over_to_the_next_priority() -> None:
    async def scenario() -> None:
        async with next_hop(BACKUP_IP) as (backup, backup_port):
            config = imp_config(
                NODE_IP,
                StaticRoute("example.com", "TCP", free_port(DOWN_IP), ip=DOWN_IP, priority=1),
                StaticRoute("example.com", "TCP", backup_port, ip=BACKUP_IP, priority=2),
            )
            opened: list[asyncio.StreamWriter] = []
            async with node(config) as address:
                client = await connect(address, CLIENT_IP, opened)
                answered = await send(client, "sip:bob@example.com", 5)
                # The refused hop is now known down: the next request goes straight on.
                again = await send(client, "sip:bob@example.com", 6)
                for writer in opened:
                    writer.close()
            assert (answered.status, again.status) == (200, 200)
            assert backup.uris == ["sip:bob@example.com", "sip:bob@example.com"]

    asyncio.run(asyncio.wait_for(scenario(), 30))


def test_a_route_whose_every_hop_is_down_gets_503_at_once_with_retry_after() -> None:
    async def scenario() -> None:
        down = StaticRoute("example.com", "TCP", free_port(DOWN_IP), ip=DOWN_IP)
        opened: list[asyncio.StreamWriter] = []
        async with node(imp_config(NODE_IP, down)) as address:
            client = await connect(address, CLIENT_IP, opened)
            first = await send(client, "sip:bob@example.com", 9)
            second = await send(client, "sip:bob@example.com", 10)
            for writer in opened:
                writer.close()
        # The first learns it the hard way (a 503 from the transport goes upstream as 500,
        # RFC 3261 §16.7); the next is answered at once.
        assert first.status == 500
        assert (second.status, second.reason) == (503, "Next Hop Down")
        assert second.headers.get("retry-after") == "1"
        assert f"TCP {DOWN_IP}:{down.port}" in (second.headers.get("warning") or "")

    asyncio.run(asyncio.wait_for(scenario(), 30))


def test_advanced_mode_forwards_directory_users_and_answers_404_for_the_rest() -> None:
    async def scenario() -> None:
        async with next_hop(DIRECTORY_OCS_IP) as (ocs, ocs_port):
            config = dataclasses.replace(
                imp_config(
                    DIRECTORY_NODE_IP,
                    StaticRoute("example.com", "TCP", ocs_port, ip=DIRECTORY_OCS_IP),
                ),
                routing_mode=RoutingMode.ADVANCED,
                peer_directory=("bob@example.com",),
            )
            opened: list[asyncio.StreamWriter] = []
            async with node(config) as address:
                client = await connect(address, DIRECTORY_CLIENT_IP, opened)
                listed = await send(client, "sip:bob@example.com", 7)
                unlisted = await send(client, "sip:eve@example.com", 8)
                for writer in opened:
                    writer.close()
            assert listed.status == 200
            assert unlisted.status == 404
            assert unlisted.headers.get("Warning") == (
                "399 imp1.example.com \"eve@example.com is not in the peer partition's "
                'directory (advanced routing mode)"'
            )
            assert ocs.uris == ["sip:bob@example.com"]

    asyncio.run(asyncio.wait_for(scenario(), 30))
