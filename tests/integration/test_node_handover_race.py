"""A request another node writes in the very instant a draining process closes its
connection (``service restart``): the old process reads none of it and ends the TLS
stream with close_notify, so the sender sends it again, to the new process that accepts
on the same listening socket — where a peer that read it and died gets no second copy.

The next hop (old and new process) runs on a loop of its own in a thread, so the test
holds the old one still between the sender's write and the close: the race is made, not
waited for."""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import os
import socket
import ssl
import threading
import time
from collections.abc import AsyncIterator, Callable, Coroutine, Iterator
from typing import Any, TypeVar

from intrafed.config.model import HostEntry, StaticRoute
from intrafed.node import Node, settings_from_config
from intrafed.sip import Request, parse_message
from intrafed.sip.responses import make_response
from intrafed.transport import Flow, ListenerSpec, TransportLayer
from tests.integration.clients import SipPeer, connect
from tests.integration.test_node_routes import CLIENT_IP, imp_config, send
from tests.lab_pki import issue_host, make_ca, node_client_context, node_server_context

NODE_IP, HOP_IP = "127.0.46.10", "127.0.46.11"
HOP_NAME = "ocs1.example.com"
BOB = "sip:bob@example.com"
T = TypeVar("T")
HELD_FOR = 0.05
"""Seconds the old process stays still after the sender wrote (its bytes are there, unread)."""


class NextHopProcess:
    """One process of the next hop: a TransportLayer answering every request with 200
    (or, ``dies_on``, reading that one and closing as a killed process's kernel would)."""

    def __init__(self, mtls: ssl.SSLContext, dies_on: str | None) -> None:
        self.read: list[str] = []
        """The Call-IDs of the requests it read, in order."""
        self.dies_on = dies_on
        self.layer = TransportLayer(
            on_message=self.on_message,
            on_bad_stream=lambda flow, error: None,
            mtls_ssl=mtls,
        )

    def on_message(self, flow: Flow, frame: bytes) -> None:
        request = parse_message(frame, stream=True)
        if not isinstance(request, Request):
            return
        self.read.append(request.call_id)
        if request.call_id == self.dies_on:
            flow.close("killed", clean=False)
            return
        flow.send(make_response(request, 200, to_tag="hop").to_bytes())


class HopThread:
    """The old and the new process of the next hop on a loop of their own."""

    def __init__(self, dies_on: str | None = None) -> None:
        ca = make_ca("Handover CA")
        server = issue_host(ca, HOP_NAME, dns_names=(HOP_NAME,))
        self.client_ssl = node_client_context(
            issue_host(ca, "imp1.example.com", dns_names=("imp1.example.com",)), ca
        )
        mtls = node_server_context(server, ca, require_client_cert=True)
        self.loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self._thread.start()
        self.old = self.wait(self._process(mtls, dies_on))
        self.new = self.wait(self._process(mtls, None))
        self.port = self.wait(self.old.layer.listen(ListenerSpec(HOP_IP, "MTLS", 0)))[1]

    @staticmethod
    async def _process(mtls: ssl.SSLContext, dies_on: str | None) -> NextHopProcess:
        return NextHopProcess(mtls, dies_on)

    def run(self, coroutine: Coroutine[Any, Any, T]) -> asyncio.Future[T]:
        """Run ``coroutine`` on the hop's loop; await the result on the caller's."""
        return asyncio.wrap_future(asyncio.run_coroutine_threadsafe(coroutine, self.loop))

    def wait(self, coroutine: Coroutine[Any, Any, T]) -> T:
        return asyncio.run_coroutine_threadsafe(coroutine, self.loop).result(10)

    async def take_over(self) -> None:
        """The new process accepts on the old one's listening socket from now on."""
        [(spec, fd)] = self.old.layer.listening_fds()
        await self.new.layer.listen(spec, inherited=socket.socket(fileno=os.dup(fd)))

    async def hand_over(self, written: threading.Event, draining: threading.Event) -> None:
        """``take_over``, then the old process drains, its first instant with nothing
        pending held until the sender has written (and a little more: the bytes are
        there, unread, when it closes)."""
        await self.take_over()
        held = False

        def idle() -> bool:
            nonlocal held
            if not held:
                held = True
                draining.set()
                assert written.wait(10)
                time.sleep(HELD_FOR)
            return True

        await self.old.layer.drain(5.0, idle)

    def stop(self) -> None:
        for process in (self.old, self.new):
            self.wait(process.layer.close(grace=0.5))
        self.loop.call_soon_threadsafe(self.loop.stop)
        self._thread.join(5)
        self.loop.close()


@contextlib.contextmanager
def next_hop(dies_on: str | None = None) -> Iterator[HopThread]:
    hop = HopThread(dies_on)
    try:
        yield hop
    finally:
        hop.stop()


@contextlib.asynccontextmanager
async def sender(hop: HopThread, on_wire: Callable[[bytes], None]) -> AsyncIterator[SipPeer]:
    """An IM&P node whose static route reaches the hop over MTLS, and a trusted client of
    it; ``on_wire`` sees each message the node writes."""
    config = dataclasses.replace(
        imp_config(NODE_IP, StaticRoute("example.com", "TLS", hop.port, fqdn=HOP_NAME)),
        hosts=(HostEntry(HOP_NAME, HOP_IP),),
    )
    node = Node(settings_from_config(config, client_ssl=hop.client_ssl))
    node.wire = lambda direction, _flow, data: on_wire(data) if direction == "out" else None
    bound = await node.start()
    opened: list[asyncio.StreamWriter] = []
    try:
        yield await connect(bound["TCP"], CLIENT_IP, opened)
    finally:
        for writer in opened:
            writer.close()
        await node.stop(grace=0.5)


def test_a_request_written_as_the_draining_process_closes_is_sent_again_to_the_new_one() -> None:
    written, draining = threading.Event(), threading.Event()

    def on_wire(data: bytes) -> None:
        if data.startswith(b"MESSAGE") and f"Call-ID: route2@{CLIENT_IP}".encode() in data:
            written.set()

    async def scenario(hop: HopThread) -> tuple[int, int]:
        async with sender(hop, on_wire) as client:
            first = (await send(client, BOB, 1)).status
            handing_over = hop.run(hop.hand_over(written, draining))
            assert await asyncio.to_thread(draining.wait, 10)
            second = (await send(client, BOB, 2)).status
            await handing_over
            return first, second

    with next_hop() as hop:
        statuses = asyncio.run(asyncio.wait_for(scenario(hop), 30))
    assert statuses == (200, 200)
    # The old process read the first request only; the new one got the second, once.
    assert routed(hop.old) == [f"route1@{CLIENT_IP}"]
    assert routed(hop.new) == [f"route2@{CLIENT_IP}"]


def test_a_crashed_peer_s_unanswered_request_is_not_sent_again() -> None:
    """The old process read the request (it may have acted on it) and died before its
    answer: the sender answers 500, and no copy reaches the new process (or the old)."""

    async def scenario(hop: HopThread) -> tuple[int, int]:
        async with sender(hop, lambda data: None) as client:
            first = (await send(client, BOB, 1)).status
            await hop.run(hop.take_over())
            second = (await send(client, BOB, 2)).status
            await asyncio.sleep(0.5)
            return first, second

    with next_hop(dies_on=f"route2@{CLIENT_IP}") as hop:
        statuses = asyncio.run(asyncio.wait_for(scenario(hop), 30))
    assert statuses == (200, 500)
    assert routed(hop.old) == [f"route1@{CLIENT_IP}", f"route2@{CLIENT_IP}"]
    assert routed(hop.new) == []


def routed(process: NextHopProcess) -> list[str]:
    """The Call-IDs of the MESSAGEs the process read (not the node's OPTIONS probes)."""
    return [call_id for call_id in process.read if call_id.startswith("route")]
