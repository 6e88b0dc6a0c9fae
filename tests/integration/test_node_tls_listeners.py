"""A node with a client TLS listener and an MTLS (Peer Auth) listener, over real TLS:
each side is told the listener it can reach (RFC 5658 double Record-Route), and a
retransmitted 2xx from across the partition is sent by name, never to an IP as a TLS name.
"""

from __future__ import annotations

import asyncio
import contextlib
import re
import ssl
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field

from intrafed.config.model import StaticRoute
from intrafed.node import Node, NodeSettings
from intrafed.policy import PeerTrust
from intrafed.sip import Request, Response, StreamFramer, parse_message
from intrafed.sip.responses import make_response
from intrafed.transport import Destination, ListenerSpec
from tests.integration.clients import SipPeer
from tests.integration.peers import free_port
from tests.lab_pki import (
    issue_host,
    make_ca,
    node_client_context,
    node_server_context,
    peer_client_context,
)

NODE_IP, CLIENT_IP, PEER_IP, UAS_IP = "127.0.0.180", "127.0.0.181", "127.0.0.182", "127.0.0.183"
NODE, PEER = "ocs1.example.com", "imp1.example.com"
CA = make_ca("listener test CA")
NODE_CERT = issue_host(CA, NODE, dns_names=(NODE,))
PEER_CERT = issue_host(CA, PEER, dns_names=(PEER,))


@dataclass
class Recorder:
    """A SIP server that keeps what it receives and answers with ``answer``."""

    answer: Callable[[Request], list[Response]] = lambda request: []
    requests: list[Request] = field(default_factory=list)
    responses: list[Response] = field(default_factory=list)
    writers: list[asyncio.StreamWriter] = field(default_factory=list)
    arrived: asyncio.Event = field(default_factory=asyncio.Event)

    async def serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.writers.append(writer)
        framer = StreamFramer()
        with contextlib.suppress(ConnectionError, ssl.SSLError):
            while data := await reader.read(65536):
                framer.receive_data(data)
                while (frame := framer.next_frame()) is not None:
                    message = parse_message(frame, stream=True)
                    if isinstance(message, Request):
                        self.requests.append(message)
                        for response in self.answer(message):
                            writer.write(response.to_bytes())
                    else:
                        self.responses.append(message)
                    self.arrived.set()
        writer.close()


def settings(**extra: object) -> NodeSettings:
    return NodeSettings(
        name=NODE,
        address=NODE_IP,
        # Peer Auth first, as IM&P lists them: the client listener must not be shadowed.
        listeners=(ListenerSpec(NODE_IP, "MTLS", 0), ListenerSpec(NODE_IP, "TLS", 0)),
        hosts={PEER: PEER_IP},
        peers=lambda ip, names, outbound: (
            PeerTrust("tls peer subject") if PEER in names or ip == CLIENT_IP else None
        ),
        server_ssl=node_server_context(NODE_CERT, CA),
        mtls_ssl=node_server_context(NODE_CERT, CA, require_client_cert=True),
        client_ssl=node_client_context(NODE_CERT, CA),
        **extra,  # type: ignore[arg-type]
    )


@contextlib.asynccontextmanager
async def running(node: Node) -> AsyncIterator[dict[str, tuple[str, int]]]:
    bound = await node.start()
    try:
        yield bound
    finally:
        await node.stop(grace=0.5)


async def tls_client(
    address: tuple[str, int],
    source: str,
    context: ssl.SSLContext,
    opened: list[asyncio.StreamWriter],
) -> SipPeer:
    reader, writer = await asyncio.open_connection(
        *address, ssl=context, server_hostname=NODE, local_addr=(source, 0)
    )
    opened.append(writer)
    return SipPeer(reader, writer)


def subscribe(uri: str, watcher: str, n: int) -> bytes:
    port = 5090 + n
    return (
        f"SUBSCRIBE {uri} SIP/2.0\r\nVia: SIP/2.0/TLS {CLIENT_IP}:{port};branch=z9hG4bK-s{n}\r\n"
        f"Max-Forwards: 70\r\nFrom: <sip:{watcher}>;tag=w{n}\r\n"
        f"To: <{uri}>\r\nCall-ID: sub{n}@{CLIENT_IP}\r\nCSeq: 1 SUBSCRIBE\r\n"
        f"Contact: <sip:watcher@{CLIENT_IP}:{port};transport=tls>\r\nEvent: presence\r\n"
        "Expires: 600\r\nContent-Length: 0\r\n\r\n"
    ).encode()


def test_tls_clients_are_told_the_tls_listener_and_the_peer_the_mtls_one() -> None:
    async def scenario() -> None:
        peer = Recorder(lambda request: [make_response(request, 200, to_tag="peer")])
        server = await asyncio.start_server(
            peer.serve, PEER_IP, 0, ssl=node_server_context(PEER_CERT, CA, require_client_cert=True)
        )
        route = StaticRoute("example.com", "TLS", server.sockets[0].getsockname()[1], fqdn=PEER)
        node = Node(
            settings(
                routes=(route,),
                domains=frozenset({"example.org"}),
                users=frozenset({"alice@example.org"}),
            )
        )
        opened: list[asyncio.StreamWriter] = []
        try:
            async with running(node) as bound:
                tls_port, mtls_port = bound["TLS"][1], bound["MTLS"][1]
                client = await tls_client(bound["TLS"], CLIENT_IP, peer_client_context(CA), opened)
                # Through the node to the peer partition: both sides get their listener.
                client.writer.write(subscribe("sip:bob@example.com", "carol@example.net", 1))
                answer = await client.next()
                assert isinstance(answer, Response)
                assert answer.status == 200
                [forwarded] = peer.requests
                assert forwarded.top_via.port == mtls_port
                # Each Record-Route also carries the dialog's signature (;ifd=…).
                assert [
                    re.sub(r";ifd=[^;>]*", "", value)
                    for value in forwarded.headers.get_list("record-route")
                ] == [
                    f"<sip:{NODE}:{mtls_port};transport=tls;lr>",
                    f"<sip:{NODE}:{tls_port};transport=tls;lr>",
                ]
                # A local presentity: the Contact and the NOTIFY's Via name the TLS listener.
                client.writer.write(subscribe("sip:alice@example.org", "carol@example.org", 2))
                messages = [await client.next(), await client.next()]
                [ok] = [m for m in messages if isinstance(m, Response)]
                [notify] = [m for m in messages if isinstance(m, Request)]
                assert ok.status // 100 == 2, ok
                assert f"{NODE}:{tls_port};transport=tls" in (ok.headers.get("contact") or "")
                assert notify.top_via.port == tls_port
        finally:
            for writer in opened:
                writer.close()
            server.close()

    asyncio.run(asyncio.wait_for(scenario(), 30))


def invite(peer_port: int) -> bytes:
    return (
        f"INVITE sip:bob@uas.example.net SIP/2.0\r\n"
        f"Via: SIP/2.0/TLS {PEER}:{peer_port};branch=z9hG4bK-i1;alias\r\n"
        "Max-Forwards: 70\r\nFrom: <sip:alice@example.com>;tag=a1\r\n"
        f"To: <sip:bob@uas.example.net>\r\nCall-ID: inv1@{PEER}\r\nCSeq: 1 INVITE\r\n"
        f"Contact: <sip:alice@{PEER}:{peer_port};transport=tls>\r\nContent-Length: 0\r\n\r\n"
    ).encode()


def test_a_retransmitted_2xx_crosses_the_partition_by_name_not_by_ip() -> None:
    async def scenario() -> None:
        uas = Recorder(lambda request: [make_response(request, 200, to_tag="uas")] * 2)
        uas_server = await asyncio.start_server(uas.serve, UAS_IP, 0)
        # Where the peer's Via says it listens: reached by name once its connection is gone.
        peer = Recorder()
        peer_port = free_port(PEER_IP)
        peer_server = await asyncio.start_server(
            peer.serve,
            PEER_IP,
            peer_port,
            ssl=node_server_context(PEER_CERT, CA, require_client_cert=True),
        )
        route = StaticRoute(
            "uas.example.net", "TCP", uas_server.sockets[0].getsockname()[1], ip=UAS_IP
        )
        node = Node(settings(routes=(route,)))
        opened: list[asyncio.StreamWriter] = []
        try:
            async with running(node) as bound:
                partition = await tls_client(
                    bound["MTLS"], PEER_IP, peer_client_context(CA, PEER_CERT), opened
                )
                partition.writer.write(invite(peer_port))
                statuses = []
                while len(statuses) < 3:
                    answer = await partition.next()
                    assert isinstance(answer, Response)
                    statuses.append(answer.status)
                # 100 Trying, the 200, and the retransmitted 200 over the connection the
                # INVITE came on.
                assert statuses == [100, 200, 200]
                partition.writer.close()
                alias = Destination("TLS", PEER_IP, peer_port, PEER)
                for _ in range(500):  # until the node has seen the connection go
                    if node.transport.pooled(alias) is None:
                        break
                    await asyncio.sleep(0.01)
                # Its connection gone, a further retransmission opens one to the Via's name.
                [uas_writer] = uas.writers
                uas_writer.write(make_response(uas.requests[0], 200, to_tag="uas").to_bytes())
                await asyncio.wait_for(peer.arrived.wait(), 10)
                [again] = peer.responses
                assert again.status == 200
        finally:
            for writer in opened:
                writer.close()
            uas_server.close()
            peer_server.close()

    asyncio.run(asyncio.wait_for(scenario(), 30))


def test_a_tls_alias_without_a_port_is_kept_for_the_tls_default_port_5061() -> None:
    async def scenario() -> tuple[bool, bool]:
        node = Node(settings())
        opened: list[asyncio.StreamWriter] = []
        try:
            async with running(node) as bound:
                partition = await tls_client(
                    bound["MTLS"], PEER_IP, peer_client_context(CA, PEER_CERT), opened
                )
                partition.writer.write(
                    (
                        f"OPTIONS sip:{NODE} SIP/2.0\r\n"
                        f"Via: SIP/2.0/TLS {PEER};branch=z9hG4bK-o1;alias\r\n"
                        "Max-Forwards: 70\r\nFrom: <sip:probe@example.com>;tag=p1\r\n"
                        f"To: <sip:{NODE}>\r\nCall-ID: alias1@{PEER}\r\nCSeq: 1 OPTIONS\r\n"
                        "Content-Length: 0\r\n\r\n"
                    ).encode()
                )
                answer = await partition.next()
                assert isinstance(answer, Response)
                assert answer.status == 200, answer
                tls_default = node.transport.pooled(Destination("TLS", PEER_IP, 5061, PEER))
                tcp_default = node.transport.pooled(Destination("TLS", PEER_IP, 5060, PEER))
                return tls_default is not None, tcp_default is not None
        finally:
            for writer in opened:
                writer.close()

    # RFC 3261 §19.1.2: a TLS sent-by without a port means 5061, never 5060.
    assert asyncio.run(asyncio.wait_for(scenario(), 30)) == (True, False)
