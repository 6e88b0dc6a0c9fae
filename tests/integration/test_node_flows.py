"""Requests for a user whose registration's connection is gone: never handed to another
client that connects from the same address (RFC 5626 430 Flow Failed), before and after a
restart of the node."""

from __future__ import annotations

import asyncio
import socket
import struct
from pathlib import Path

from intrafed.config.model import NodeIdentity, Role
from intrafed.node import Node, NodeSettings
from intrafed.sip import Request, Response
from intrafed.sip.responses import make_response
from intrafed.store import Store, create_store
from intrafed.transport import ListenerSpec
from tests.integration.clients import SipPeer, message

NODE_IP, USER_IP, BOB_IP = "127.0.0.171", "127.0.0.172", "127.0.0.173"
USERS = frozenset({"alice@example.com", "bob@example.com", "mallory@example.com"})


def settings() -> NodeSettings:
    return NodeSettings(
        name="imp1.example.com",
        address=NODE_IP,
        listeners=(ListenerSpec(NODE_IP, "TCP", 0),),
        domains=frozenset({"example.com"}),
        users=USERS,
    )


async def connect_from(address: tuple[str, int], local: tuple[str, int]) -> SipPeer:
    """A connection from exactly ``local`` (a port reused as a NAT would reuse it)."""
    sock = socket.socket()
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(local)
    sock.setblocking(False)
    await asyncio.get_running_loop().sock_connect(sock, address)
    reader, writer = await asyncio.open_connection(sock=sock)
    return SipPeer(reader, writer)


def vanish(peer: SipPeer) -> None:
    """Close with a reset (as a client that lost its network), leaving no TIME_WAIT."""
    sock = peer.writer.get_extra_info("socket")
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    peer.writer.transport.abort()


def register(
    user: str, local: tuple[str, int], n: int, contact: tuple[str, int] | None = None
) -> bytes:
    """A REGISTER from ``local`` of ``contact``; by default the connection's own address
    (a client behind NAT)."""
    host, port = local
    contact_host, contact_port = contact or local
    return (
        f"REGISTER sip:example.com SIP/2.0\r\n"
        f"Via: SIP/2.0/TCP {host}:{port};branch=z9hG4bK-reg{n};rport;alias\r\n"
        f"Max-Forwards: 70\r\nFrom: <sip:{user}@example.com>;tag=r{n}\r\n"
        f"To: <sip:{user}@example.com>\r\nCall-ID: reg{n}@{host}\r\nCSeq: 1 REGISTER\r\n"
        f"Contact: <sip:{user}@{contact_host}:{contact_port};transport=tcp>\r\n"
        "Content-Length: 0\r\n\r\n"
    ).encode()


def options(local: tuple[str, int], n: int) -> bytes:
    host, port = local
    return (
        f"OPTIONS sip:{NODE_IP} SIP/2.0\r\n"
        f"Via: SIP/2.0/TCP {host}:{port};branch=z9hG4bK-opt{n};rport;alias\r\n"
        f"Max-Forwards: 70\r\nFrom: <sip:mallory@example.com>;tag=o{n}\r\n"
        f"To: <sip:{NODE_IP}>\r\nCall-ID: opt{n}@{host}\r\nCSeq: 1 OPTIONS\r\n"
        f"Content-Length: 0\r\n\r\n"
    ).encode()


async def status_of(peer: SipPeer) -> int:
    answer = await peer.next()
    assert isinstance(answer, Response)
    return answer.status


async def flow_gone(node: Node, aor: str) -> None:
    """Wait (bounded) until the node has noticed that ``aor``'s connection is gone."""
    for _ in range(200):
        bindings = node.registrar.bindings(aor, 0.0)
        if all(b.flow is None or node.transport.flow(b.flow) is None for b in bindings):
            return
        await asyncio.sleep(0.01)
    raise AssertionError(f"the node never noticed that {aor}'s connection closed")


async def message_from_bob(address: tuple[str, int], mallory: SipPeer) -> tuple[int, str]:
    """Bob sends alice a MESSAGE: his answer, while mallory must receive nothing."""
    reader, writer = await asyncio.open_connection(*address, local_addr=(BOB_IP, 0))
    bob = SipPeer(reader, writer)
    try:
        writer.write(message("alice@example.com", 1, BOB_IP, sender="bob@example.com"))
        answer = asyncio.ensure_future(bob.next())
        stolen = asyncio.ensure_future(mallory.next())
        done, _ = await asyncio.wait({answer, stolen}, return_when=asyncio.FIRST_COMPLETED)
        assert stolen not in done, f"mallory received {stolen.result()!r}"
        stolen.cancel()
        response = answer.result()
        assert isinstance(response, Response)
        return response.status, response.headers.get("warning") or ""
    finally:
        writer.close()
        await writer.wait_closed()


async def mallory_takes_the_address(address: tuple[str, int], local: tuple[str, int]) -> SipPeer:
    """Mallory connects from alice's old address, registers as himself and pings."""
    mallory = await connect_from(address, local)
    mallory.writer.write(register("mallory", local, 2))
    assert await status_of(mallory) == 200
    mallory.writer.write(options(local, 3))
    assert await status_of(mallory) == 200
    return mallory


def test_im_for_a_vanished_user_never_reaches_the_next_client_from_her_address() -> None:
    async def scenario() -> tuple[int, str, int]:
        node = Node(settings())
        address = (await node.start())["TCP"]
        alice = await connect_from(address, (USER_IP, 0))
        local = alice.writer.get_extra_info("sockname")
        mallory: SipPeer | None = None
        try:
            alice.writer.write(register("alice", local, 1))
            assert await status_of(alice) == 200
            vanish(alice)
            await flow_gone(node, "alice@example.com")
            mallory = await mallory_takes_the_address(address, local)
            status, warning = await message_from_bob(address, mallory)
            # Nothing was queued for mallory before his own next answer.
            mallory.writer.write(options(local, 4))
            return status, warning, await status_of(mallory)
        finally:
            if mallory is not None:
                mallory.writer.close()
            await node.stop(grace=0.5)

    status, warning, pinged = asyncio.run(asyncio.wait_for(scenario(), 30))
    assert (status, pinged) == (430, 200)
    assert "alice@example.com registered over is gone" in warning


def test_im_after_a_restart_never_reaches_the_next_client_from_a_registered_address(
    tmp_path: Path,
) -> None:
    async def scenario(store: Store) -> tuple[int, str]:
        node = Node(settings(), store)
        address = (await node.start())["TCP"]
        alice = await connect_from(address, (USER_IP, 0))
        local = alice.writer.get_extra_info("sockname")
        alice.writer.write(register("alice", local, 1))
        assert await status_of(alice) == 200
        await node.stop(grace=0.5)
        alice.writer.close()
        restarted = Node(settings(), store)
        address = (await restarted.start())["TCP"]
        mallory: SipPeer | None = None
        try:
            mallory = await mallory_takes_the_address(address, local)
            return await message_from_bob(address, mallory)
        finally:
            if mallory is not None:
                mallory.writer.close()
            await restarted.stop(grace=0.5)

    with create_store(tmp_path, NodeIdentity(Role.IMP, "imp1.example.com", NODE_IP)) as store:
        status, warning = asyncio.run(asyncio.wait_for(scenario(store), 30))
    assert status == 430
    assert "alice@example.com registered over is gone" in warning


def test_im_for_a_listening_contact_never_reuses_a_connection_claiming_its_address() -> None:
    async def scenario() -> tuple[int, str]:
        node = Node(settings())
        address = (await node.start())["TCP"]
        arrived: asyncio.Queue[Request] = asyncio.Queue()

        async def alice_listens(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            peer = SipPeer(reader, writer)
            request = await peer.next()
            assert isinstance(request, Request)
            await arrived.put(request)
            writer.write(make_response(request, 200, to_tag="al").to_bytes())
            await writer.drain()
            writer.close()

        listener = await asyncio.start_server(alice_listens, USER_IP, 0)
        listening = listener.sockets[0].getsockname()
        mallory: SipPeer | None = None
        try:
            alice = await connect_from(address, (USER_IP, 0))
            local = alice.writer.get_extra_info("sockname")
            alice.writer.write(register("alice", local, 1, contact=listening))
            assert await status_of(alice) == 200
            vanish(alice)
            await flow_gone(node, "alice@example.com")
            # Mallory, on the same host, offers his connection for alice's listening address.
            mallory = await connect_from(address, (USER_IP, 0))
            mallory.writer.write(options(listening, 3))
            assert await status_of(mallory) == 200
            status, _warning = await message_from_bob(address, mallory)
            delivered = await asyncio.wait_for(arrived.get(), 10)
            return status, delivered.call_id
        finally:
            if mallory is not None:
                mallory.writer.close()
            listener.close()
            await node.stop(grace=0.5)
            await listener.wait_closed()

    status, call_id = asyncio.run(asyncio.wait_for(scenario(), 30))
    assert (status, call_id) == (200, f"m1@{BOB_IP}")


def subscribe(local: tuple[str, int]) -> bytes:
    """Alice watches bob, her Contact the connection's own address."""
    host, port = local
    return (
        f"SUBSCRIBE sip:bob@example.com SIP/2.0\r\n"
        f"Via: SIP/2.0/TCP {host}:{port};branch=z9hG4bK-sub1;rport;alias\r\n"
        f"Max-Forwards: 70\r\nFrom: <sip:alice@example.com>;tag=s1\r\n"
        f"To: <sip:bob@example.com>\r\nCall-ID: sub1@{host}\r\nCSeq: 1 SUBSCRIBE\r\n"
        f"Contact: <sip:alice@{host}:{port};transport=tcp>\r\nEvent: presence\r\n"
        "Expires: 3600\r\nContent-Length: 0\r\n\r\n"
    ).encode()


def test_notify_after_a_restart_never_reaches_whoever_listens_at_a_watchers_address(
    tmp_path: Path,
) -> None:
    async def scenario(store: Store) -> tuple[int, int, list[object]]:
        node = Node(settings(), store)
        address = (await node.start())["TCP"]
        alice = await connect_from(address, (USER_IP, 0))
        local = alice.writer.get_extra_info("sockname")
        alice.writer.write(register("alice", local, 1))
        assert await status_of(alice) == 200
        alice.writer.write(subscribe(local))
        assert await status_of(alice) == 200
        notify = await alice.next()
        assert isinstance(notify, Request)
        alice.writer.write(make_response(notify, 200).to_bytes())
        await node.stop(grace=0.5)
        alice.writer.close()
        # Mallory now listens at the address alice's subscription and binding name.
        accepted: list[object] = []
        mallory = await asyncio.start_server(
            lambda reader, writer: accepted.append(writer.close()), *local, reuse_address=True
        )
        restarted = Node(settings(), store)
        try:
            address = (await restarted.start())["TCP"]
            # No NOTIFY went out for alice: her flow failed and she has not registered again.
            pending = restarted.transactions.pending
            reader, writer = await asyncio.open_connection(*address, local_addr=(BOB_IP, 0))
            writer.write(message("alice@example.com", 1, BOB_IP, sender="bob@example.com"))
            status = await status_of(SipPeer(reader, writer))
            writer.close()
            await writer.wait_closed()
            return pending, status, accepted
        finally:
            mallory.close()
            await restarted.stop(grace=0.5)
            await mallory.wait_closed()

    with create_store(tmp_path, NodeIdentity(Role.IMP, "imp1.example.com", NODE_IP)) as store:
        pending, status, accepted = asyncio.run(asyncio.wait_for(scenario(store), 30))
    assert (pending, status, accepted) == (0, 430, [])
