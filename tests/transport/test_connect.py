"""Outbound connections: pooling, shared attempts, TLS verification, failures an
administrator can read, and RFC 5923 alias reuse of inbound flows."""

from __future__ import annotations

import asyncio
import socket

import pytest

from intrafed.transport import Destination, ListenerSpec, TransportError, TransportLimits
from tests.lab_pki import node_client_context, node_server_context, peer_client_context
from tests.transport.conftest import Pki
from tests.transport.helpers import (
    BAD_IP,
    PEER_IP,
    SERVER_IP,
    Node,
    call_id_of,
    client,
    read_to_eof,
    request,
    response,
    roundtrip,
    run,
)


def test_two_connects_to_one_destination_share_the_pooled_flow() -> None:
    async def scenario() -> None:
        async with Node() as peer, Node() as node:
            address = await peer.layer.listen(ListenerSpec(PEER_IP, "TCP", 0))
            destination = Destination("TCP", *address)
            flow = await node.layer.connect(destination)
            assert await node.layer.connect(destination) is flow
            assert node.layer.pooled(destination) is flow
            assert flow.outbound
            assert flow.transport == "TCP"
            assert flow.remote == address
            assert node.layer.flow(flow.id) is flow
            # The peer's answer comes back on the outbound flow.
            assert flow.send(request("out"))
            inbound, frame = await peer.messages.get()
            assert frame == request("out")
            answered_on, answer = await node.messages.get()
            assert answered_on is flow
            assert answer == response("out")
            assert flow.send(request("again"))
            assert (await peer.messages.get())[0] is inbound

    run(scenario())


def test_concurrent_connects_to_one_destination_make_one_connection() -> None:
    async def scenario() -> None:
        accepted: list[asyncio.StreamWriter] = []
        arrived: asyncio.Queue[bytes] = asyncio.Queue()

        async def accept(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            accepted.append(writer)
            arrived.put_nowait(await reader.readuntil(b"\r\n\r\n"))

        server = await asyncio.start_server(accept, PEER_IP, 0)
        try:
            async with Node() as node:
                destination = Destination("TCP", *server.sockets[0].getsockname()[:2])
                flows = await asyncio.gather(*(node.layer.connect(destination) for _ in range(5)))
                assert all(flow is flows[0] for flow in flows)
                flows[0].send(request("shared"))
                assert call_id_of(await arrived.get()) == "shared"
                assert len(accepted) == 1
        finally:
            for writer in accepted:
                writer.close()
            server.close()
            await server.wait_closed()

    run(scenario())


def test_tls_connect_verifies_the_server_and_learns_its_names(pki: Pki) -> None:
    async def scenario() -> None:
        async with (
            Node(server_ssl=node_server_context(pki.server, pki.ca)) as peer,
            Node(client_ssl=node_client_context(pki.client, pki.ca)) as node,
        ):
            address = await peer.layer.listen(ListenerSpec(SERVER_IP, "TLS", 0))
            flow = await node.layer.connect(Destination("TLS", *address, "ocs1.example.com"))
            assert flow.transport == "TLS"
            assert flow.peer.fqdns == ("ocs1.example.com",)
            flow.send(request("tls-out"))
            assert (await node.messages.get())[1] == response("tls-out")

    run(scenario())


def test_tls_connect_with_the_wrong_server_name_fails_with_hostname_mismatch(pki: Pki) -> None:
    async def scenario() -> None:
        async with (
            Node(server_ssl=node_server_context(pki.server, pki.ca)) as peer,
            Node(client_ssl=node_client_context(pki.client, pki.ca)) as node,
        ):
            address = await peer.layer.listen(ListenerSpec(SERVER_IP, "TLS", 0))
            destination = Destination("TLS", *address, "imp9.example.com")
            with pytest.raises(TransportError) as caught:
                await node.layer.connect(destination)
            assert caught.value.reason.startswith("TLS handshake with imp9.example.com (")
            assert "hostname mismatch" in caught.value.reason.lower()
            assert node.layer.pooled(destination) is None

    run(scenario())


def test_tls_connect_to_a_server_from_an_untrusted_ca_names_the_verify_error(pki: Pki) -> None:
    async def scenario() -> None:
        async with (
            Node(server_ssl=node_server_context(pki.rogue_server, pki.ca)) as peer,
            Node(client_ssl=node_client_context(pki.client, pki.ca)) as node,
        ):
            address = await peer.layer.listen(ListenerSpec(SERVER_IP, "TLS", 0))
            with pytest.raises(TransportError) as caught:
                await node.layer.connect(Destination("TLS", *address, "ocs1.example.com"))
            assert caught.value.reason == (
                f"TLS handshake with ocs1.example.com ({address[0]}:{address[1]}) failed: "
                "certificate verify failed: unable to get local issuer certificate"
            )

    run(scenario())


def free_port(ip: str) -> int:
    with socket.socket() as probe:
        probe.bind((ip, 0))
        port: int = probe.getsockname()[1]
        return port


def test_connection_refused_is_a_transport_error_naming_the_address() -> None:
    async def scenario() -> None:
        async with Node() as node:
            port = free_port(PEER_IP)
            with pytest.raises(TransportError) as caught:
                await node.layer.connect(Destination("TCP", PEER_IP, port))
            assert caught.value.reason == f"connection refused by {PEER_IP}:{port}"

    run(scenario())


def test_an_outbound_connection_sends_without_the_nagle_delay() -> None:
    async def scenario() -> None:
        async with Node() as peer, Node() as node:
            address = await peer.layer.listen(ListenerSpec(PEER_IP, "TCP", 0))
            await node.layer.connect(Destination("TCP", *address))
            [connection] = node.layer._pool.connections
            assert connection._transport is not None
            sock = connection._transport.get_extra_info("socket")
            assert sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY)

    run(scenario())


def test_connect_to_a_name_that_does_not_resolve_says_so() -> None:
    async def scenario() -> None:
        async with Node() as node:
            with pytest.raises(TransportError) as caught:
                # RFC 6761 §6.4: no name under .invalid resolves.
                await node.layer.connect(Destination("TCP", "nowhere.invalid", 5060))
            assert caught.value.reason.startswith("cannot resolve nowhere.invalid: ")

    run(scenario())


def test_connect_that_gets_no_answer_times_out() -> None:
    async def scenario() -> None:
        # A listener that never accepts, with its one-slot backlog taken: SYNs are dropped.
        with socket.socket() as listener, socket.socket() as filler:
            listener.bind((PEER_IP, 0))
            listener.listen(0)
            address = listener.getsockname()
            filler.connect(address)
            async with Node(limits=TransportLimits(connect_timeout=0.3)) as node:
                with pytest.raises(TransportError) as caught:
                    await node.layer.connect(Destination("TCP", *address))
            assert caught.value.reason == (
                f"timed out after 0.3 s connecting to {address[0]}:{address[1]}"
            )

    run(scenario())


def test_tls_connect_to_a_server_that_never_answers_the_hello_fails_at_the_handshake_timeout(
    pki: Pki,
) -> None:
    async def scenario() -> None:
        closed = asyncio.Event()

        async def silent(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            await read_to_eof(reader)
            closed.set()
            writer.close()

        server = await asyncio.start_server(silent, PEER_IP, 0)
        port = server.sockets[0].getsockname()[1]
        async with (
            server,
            Node(
                client_ssl=node_client_context(pki.client, pki.ca),
                limits=TransportLimits(tls_handshake_timeout=0.3),
            ) as node,
        ):
            with pytest.raises(TransportError) as caught:
                await node.layer.connect(Destination("TLS", PEER_IP, port, "ocs1.example.com"))
            assert caught.value.reason == (
                f"TLS handshake with ocs1.example.com ({PEER_IP}:{port}) failed: "
                "timed out after 0.3 s"
            )
            await closed.wait()

    run(scenario())


def test_tls_connect_without_a_client_context_is_refused_with_a_reason() -> None:
    async def scenario() -> None:
        async with Node() as node:
            with pytest.raises(TransportError, match="no TLS client context"):
                await node.layer.connect(Destination("TLS", PEER_IP, 5061, "ocs1.example.com"))

    run(scenario())


def test_registered_alias_makes_connect_reuse_the_inbound_flow() -> None:
    async def scenario() -> None:
        async with Node() as node:
            address = await node.layer.listen(ListenerSpec(SERVER_IP, "TCP", 0))
            # Nothing listens on the alias: only the inbound flow can reach it.
            alias = Destination("TCP", BAD_IP, free_port(BAD_IP))
            async with client(address, source=BAD_IP) as (reader, writer):
                await roundtrip(reader, writer, "register")
                inbound, _frame = node.messages.get_nowait()
                node.layer.register_alias(inbound, alias.host, alias.port)
                flow = await node.layer.connect(alias)
                assert flow is inbound
                flow.send(request("to-client"))
                assert call_id_of(await reader.readuntil(b"\r\n\r\n")) == "to-client"
                writer.write_eof()
                assert await read_to_eof(reader) == b""
            assert node.layer.pooled(alias) is None
            with pytest.raises(TransportError, match="connection refused"):
                await node.layer.connect(alias)

    run(scenario())


def test_mtls_alias_serves_only_names_the_peer_certificate_proves(pki: Pki) -> None:
    async def scenario() -> None:
        async with Node(
            mtls_ssl=node_server_context(pki.server, pki.ca, require_client_cert=True)
        ) as node:
            address = await node.layer.listen(ListenerSpec(SERVER_IP, "MTLS", 0))
            context = peer_client_context(pki.ca, pki.client)
            async with client(
                address, source=BAD_IP, context=context, server_hostname="ocs1.example.com"
            ) as (reader, writer):
                await roundtrip(reader, writer, "register")
                inbound, _frame = node.messages.get_nowait()
                node.layer.register_alias(inbound, BAD_IP, 5061)
                proven = Destination("TLS", BAD_IP, 5061, "IMP1.example.com")
                assert await node.layer.connect(proven) is inbound
                assert node.layer.pooled(Destination("TLS", BAD_IP, 5061, "evil.example")) is None
                assert node.layer.pooled(Destination("TCP", BAD_IP, 5061)) is None

    run(scenario())


def test_connect_still_waiting_when_the_layer_shuts_down_fails_with_a_reason() -> None:
    async def scenario() -> None:
        with socket.socket() as listener, socket.socket() as filler:
            listener.bind((PEER_IP, 0))
            listener.listen(0)
            address = listener.getsockname()
            filler.connect(address)
            node = Node()
            attempt = asyncio.ensure_future(node.layer.connect(Destination("TCP", *address)))
            await asyncio.sleep(0)  # let the attempt start before the shutdown
            await node.layer.close(grace=0)
            with pytest.raises(TransportError, match="shut down"):
                await attempt
            with pytest.raises(TransportError, match="shut down"):
                await node.layer.connect(Destination("TCP", *address))

    run(scenario())
