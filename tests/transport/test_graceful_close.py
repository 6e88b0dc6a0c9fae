"""A close the peer can tell from a crash: over TLS a flow closed at an idle instant (or
after the idle timeout) ends with close_notify (``Flow.closed_cleanly`` on the peer), a
close on an error ends the stream bare, as a killed process's kernel does; what the peer
writes across our close_notify is read and discarded, never handed on, and never draws a
reset."""

from __future__ import annotations

import asyncio
import logging

import pytest

from intrafed.transport import Destination, Flow, ListenerSpec, TransportLimits
from intrafed.transport.connection import FRAMES_PER_TURN
from tests.lab_pki import node_client_context, node_server_context
from tests.transport.conftest import Pki
from tests.transport.helpers import Node, capture, logged, request, response, run

SERVER_IP, CLIENT_IP = "127.0.46.2", "127.0.46.3"
SERVER_NAME = "ocs1.example.com"


class ClosingNode(Node):
    """Answers the first request, then closes its flow there and then (``clean`` or not):
    the requests the peer wrote after it are never handed on."""

    def __init__(self, pki: Pki | None, *, clean: bool) -> None:
        context = None
        if pki is not None:
            context = node_server_context(pki.server, pki.ca, require_client_cert=True)
        super().__init__(mtls_ssl=context)
        self.clean = clean

    def on_message(self, flow: Flow, frame: bytes) -> None:
        super().on_message(flow, frame)
        flow.close("closing after the first request", clean=self.clean)


async def closed(flow: Flow) -> None:
    while not flow.closed:
        await asyncio.sleep(0.01)


async def close_under_writes(pki: Pki, *, clean: bool) -> tuple[Flow, ClosingNode]:
    """The client writes requests without pause until the server's close reaches it."""
    errors: list[dict[str, object]] = []
    asyncio.get_running_loop().set_exception_handler(lambda _loop, context: errors.append(context))
    server = ClosingNode(pki, clean=clean)
    async with server, Node(client_ssl=node_client_context(pki.client, pki.ca)) as sender:
        address = await server.layer.listen(ListenerSpec(SERVER_IP, "MTLS", 0))
        flow = await sender.layer.connect(Destination("TLS", *address, SERVER_NAME))
        sent = 0
        while not flow.closed and sent < 5000:
            flow.send(request(f"r{sent}", body=b"x" * 1000))
            sent += 1
            if sent % 20 == 0:
                await asyncio.sleep(0)
        await asyncio.wait_for(closed(flow), 5)
        # The server's linger ends at the client's FIN: no socket is left behind.
        async with asyncio.timeout(2):
            while server.layer.connection_count:
                await asyncio.sleep(0.01)
    assert sent > 1
    assert errors == []
    return flow, server


@pytest.mark.parametrize("loop", ["asyncio", "uvloop"])
def test_a_tls_flow_closed_cleanly_ends_with_close_notify_and_nothing_more_is_read(
    pki: Pki, caplog: pytest.LogCaptureFixture, loop: str
) -> None:
    """The nodes run on uvloop when it is installed: its sockets under asyncio's TLS."""
    capture(caplog)
    factory = pytest.importorskip("uvloop").new_event_loop if loop == "uvloop" else None
    with asyncio.Runner(loop_factory=factory) as runner:
        flow, server = runner.run(asyncio.wait_for(close_under_writes(pki, clean=True), 15))
    assert flow.closed_cleanly
    assert server.frames == [request("r0", body=b"x" * 1000)]
    assert logged(caplog, "discarding", "bytes read after the close") or logged(
        caplog, "closing", "closing after the first request"
    )
    assert not logged(caplog, "lost after the close")
    assert not [r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING]


def test_a_tls_flow_closed_on_error_ends_like_a_crash(pki: Pki) -> None:
    flow, server = run(close_under_writes(pki, clean=False))
    assert not flow.closed_cleanly
    assert server.frames == [request("r0", body=b"x" * 1000)]


def test_a_peer_that_dies_without_close_notify_is_not_taken_for_a_clean_close(
    pki: Pki,
) -> None:
    """The TLS stream ends with a bare FIN: what the kernel sends for a killed process."""

    async def scenario() -> Flow:
        context = node_server_context(pki.server, pki.ca, require_client_cert=True)

        async def serve(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            await reader.readuntil(b"\r\n\r\n")
            writer.transport._ssl_protocol._transport.close()  # type: ignore[attr-defined]

        server = await asyncio.start_server(serve, SERVER_IP, 0, ssl=context)
        async with server, Node(client_ssl=node_client_context(pki.client, pki.ca)) as sender:
            address = server.sockets[0].getsockname()[:2]
            flow = await sender.layer.connect(Destination("TLS", *address, SERVER_NAME))
            flow.send(request("dies"))
            await asyncio.wait_for(closed(flow), 5)
        return flow

    assert not run(scenario()).closed_cleanly


def test_a_tcp_flow_never_closes_cleanly_a_fin_is_what_a_crash_sends_too() -> None:
    async def scenario() -> Flow:
        async with ClosingNode(None, clean=True) as server, Node() as sender:
            address = await server.layer.listen(ListenerSpec(SERVER_IP, "TCP", 0))
            flow = await sender.layer.connect(Destination("TCP", *address))
            flow.send(request("tcp"))
            await asyncio.wait_for(closed(flow), 5)
        return flow

    assert not run(scenario()).closed_cleanly


class AnsweringAtLength(ClosingNode):
    """Answers the first request with ``count`` frames at once, then closes cleanly: one
    read of the peer's brings more frames than one loop turn hands on, and the close."""

    count = FRAMES_PER_TURN * 2 + 5

    def on_message(self, flow: Flow, frame: bytes) -> None:
        self.frames.append(frame)
        flow.send(b"".join(response(f"a{n}") for n in range(self.count)))
        flow.close("answered at length", clean=True)


def test_what_a_peer_wrote_before_closing_is_all_handed_on_not_left_for_a_later_turn(
    pki: Pki,
) -> None:
    """The responses before a close_notify are handled before the flow closes: a request
    whose answer is among them must not look unanswered (it would be sent again)."""

    async def scenario() -> tuple[Flow, Node]:
        server = AnsweringAtLength(pki, clean=True)
        async with server, Node(client_ssl=node_client_context(pki.client, pki.ca)) as sender:
            address = await server.layer.listen(ListenerSpec(SERVER_IP, "MTLS", 0))
            flow = await sender.layer.connect(Destination("TLS", *address, SERVER_NAME))
            flow.send(request("long"))
            await asyncio.wait_for(closed(flow), 5)
            return flow, sender

    flow, sender = run(scenario())
    assert flow.closed_cleanly
    assert sender.frames == [response(f"a{n}") for n in range(AnsweringAtLength.count)]


@pytest.mark.parametrize("partial", [False, True])
def test_a_tls_flow_closed_for_silence_ends_cleanly_but_not_in_the_middle_of_a_message(
    pki: Pki, partial: bool
) -> None:
    """Silent for the idle timeout: every request read there was answered, so the close
    is clean (a third-party client sees close_notify, an intrafed peer sends again what got
    no answer). A message left incomplete: a request read before it may still await its
    answer, so that close ends like a crash."""

    async def scenario() -> Flow:
        limits = TransportLimits(idle_timeout=0.5, message_timeout=0.3)
        context = node_server_context(pki.server, pki.ca, require_client_cert=True)
        server = Node(mtls_ssl=context, limits=limits)
        async with server, Node(client_ssl=node_client_context(pki.client, pki.ca)) as sender:
            address = await server.layer.listen(ListenerSpec(SERVER_IP, "MTLS", 0))
            flow = await sender.layer.connect(Destination("TLS", *address, SERVER_NAME))
            whole = request("r0")
            flow.send(whole[:-5] if partial else whole)
            await asyncio.wait_for(closed(flow), 5)
            return flow

    flow = run(scenario())
    assert flow.closed_cleanly is not partial
