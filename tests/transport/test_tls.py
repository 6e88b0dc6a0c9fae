"""TLS and MTLS listeners (reliability matrix §4.3): handshakes we accept, peers we refuse,
each refusal logged with the peer and the reason, and never a message handed on.

With TLS 1.3 a client whose certificate the server rejects still completes its side of
the handshake; it sees the rejection on its first read, so these tests write and read.
"""

from __future__ import annotations

import asyncio
import socket
import ssl
from pathlib import Path

import pytest

from intrafed.pki import server_context
from intrafed.transport import ListenerSpec, TransportLimits
from tests.lab_pki import issue_host, node_server_context, peer_client_context
from tests.transport.conftest import Pki
from tests.transport.helpers import (
    BAD_IP,
    SERVER_IP,
    Node,
    alongside_canary,
    capture,
    client,
    local_address,
    logged,
    read_to_eof,
    request,
    response,
    roundtrip,
    run,
)

SERVER_NAME = "ocs1.example.com"


def tls_node(pki: Pki, limits: TransportLimits | None = None) -> Node:
    return Node(
        limits=limits,
        server_ssl=node_server_context(pki.server, pki.ca),
        mtls_ssl=node_server_context(pki.server, pki.ca, require_client_cert=True),
    )


async def refused(address: tuple[str, int], context: ssl.SSLContext) -> tuple[str, str]:
    """Connect from BAD_IP and send a request: no answer. Returns our ip:port and the TLS
    alert the server sent (OpenSSL's name for it), or "no alert"."""
    raw = socket.socket()
    raw.bind((BAD_IP, 0))
    raw.setblocking(False)
    await asyncio.get_running_loop().sock_connect(raw, address)
    peer = "{}:{}".format(*raw.getsockname())
    try:
        reader, writer = await asyncio.open_connection(
            sock=raw, ssl=context, server_hostname=SERVER_NAME
        )
    except ssl.SSLError as exc:
        return peer, str(exc.reason)
    try:
        writer.write(request("refused"))
        assert await reader.read(65536) == b""
    except ssl.SSLError as exc:  # TLS 1.3: the client learns of the refusal on its first read
        return peer, str(exc.reason)
    finally:
        writer.close()
    return peer, "no alert"


def test_tls_listener_serves_a_client_that_trusts_our_ca(pki: Pki) -> None:
    async def scenario() -> None:
        async with tls_node(pki) as node:
            address = await node.layer.listen(ListenerSpec(SERVER_IP, "TLS", 0))
            context = peer_client_context(pki.ca)
            async with client(address, context=context, server_hostname=SERVER_NAME) as (
                reader,
                writer,
            ):
                await roundtrip(reader, writer, "over-tls")
            flow, _frame = node.messages.get_nowait()
            assert flow.transport == "TLS"
            assert flow.peer.fqdns == ()

    run(scenario())


def test_plain_sip_sent_to_a_tls_port_fails_the_handshake(
    pki: Pki, caplog: pytest.LogCaptureFixture
) -> None:
    capture(caplog)

    async def plain(address: tuple[str, int]) -> str:
        async with client(address, source=BAD_IP) as (reader, writer):
            writer.write(request("plain"))
            await read_to_eof(reader)
            return local_address(writer)

    async def scenario() -> None:
        async with tls_node(pki) as node:
            address = await node.layer.listen(ListenerSpec(SERVER_IP, "TLS", 0))
            context = peer_client_context(pki.ca)
            async with client(address, context=context, server_hostname=SERVER_NAME) as (
                reader,
                writer,
            ):
                await roundtrip(reader, writer, "canary-before")
                peer = await plain(address)
                await roundtrip(reader, writer, "canary-after")
            assert logged(caplog, f"from {peer}", "TLS handshake failed")
            assert all(b"canary" in frame for frame in node.frames)

    run(scenario())


def test_tls_peer_that_never_sends_a_client_hello_is_closed_at_the_handshake_timeout(
    pki: Pki, caplog: pytest.LogCaptureFixture
) -> None:
    capture(caplog)

    async def silent(address: tuple[str, int]) -> str:
        async with client(address, source=BAD_IP) as (reader, writer):
            assert await read_to_eof(reader) == b""
            return local_address(writer)

    async def scenario() -> None:
        async with tls_node(pki, TransportLimits(tls_handshake_timeout=0.3)) as node:
            address = await node.layer.listen(ListenerSpec(SERVER_IP, "TCP", 0))
            tls_address = await node.layer.listen(ListenerSpec(SERVER_IP, "TLS", 0))
            peer = await alongside_canary(address, silent(tls_address))
            assert logged(caplog, f"from {peer}", "TLS handshake failed: timed out after 0.3 s")

    run(scenario())


def test_mtls_peer_with_a_ca_signed_client_certificate_is_served_with_its_names(
    pki: Pki,
) -> None:
    async def scenario() -> None:
        async with tls_node(pki) as node:
            address = await node.layer.listen(ListenerSpec(SERVER_IP, "MTLS", 0))
            context = peer_client_context(pki.ca, pki.client)
            async with client(
                address, source=BAD_IP, context=context, server_hostname=SERVER_NAME
            ) as (reader, writer):
                await roundtrip(reader, writer, "mutual")
            flow, frame = node.messages.get_nowait()
            assert frame == request("mutual")
            assert flow.transport == flow.peer.transport == "MTLS"
            assert flow.peer.ip == BAD_IP
            assert flow.peer.fqdns == ("imp1.example.com", "imp.example.com")

    run(scenario())


@pytest.mark.parametrize("transport", ["TLS", "MTLS"])
def test_client_hello_read_before_the_tls_upgrade_is_not_lost_on_uvloop(
    pki: Pki, transport: str
) -> None:
    """uvloop starts reading after ``connection_made`` even when the protocol paused: the
    ClientHello went to the SIP framer and the handshake timed out (TLS served nobody)."""
    uvloop = pytest.importorskip("uvloop")

    async def scenario() -> None:
        async with tls_node(pki) as node:
            address = await node.layer.listen(ListenerSpec(SERVER_IP, transport, 0))
            context = peer_client_context(pki.ca, pki.client)
            async with client(address, context=context, server_hostname=SERVER_NAME) as (
                reader,
                writer,
            ):
                await roundtrip(reader, writer, "on-uvloop")
            flow, _frame = node.messages.get_nowait()
            assert flow.transport == transport

    with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
        runner.run(asyncio.wait_for(scenario(), 4.0))


@pytest.mark.parametrize(
    ("leaf", "reason", "alert"),
    [
        (None, "peer did not return a certificate", "SSLV3_ALERT_HANDSHAKE_FAILURE"),
        (
            "rogue_client",
            "certificate verify failed: unable to get local issuer certificate",
            "TLSV1_ALERT_UNKNOWN_CA",
        ),
        (
            "expired",
            "certificate verify failed: certificate has expired",
            "SSLV3_ALERT_CERTIFICATE_EXPIRED",
        ),
        ("server_only", "unsuitable certificate purpose", "SSLV3_ALERT_UNSUPPORTED_CERTIFICATE"),
        ("no_eku", "client certificate lacks Client Authentication EKU", "no alert"),
    ],
    ids=["no-client-cert", "untrusted-ca", "expired", "server-auth-only-eku", "no-eku-extension"],
)
def test_mtls_listener_refuses_client_certificate_with_a_tls_alert(
    pki: Pki, caplog: pytest.LogCaptureFixture, leaf: str | None, reason: str, alert: str
) -> None:
    capture(caplog)

    async def scenario() -> None:
        async with tls_node(pki) as node:
            address = await node.layer.listen(ListenerSpec(SERVER_IP, "MTLS", 0))
            good = peer_client_context(pki.ca, pki.client)
            bad = peer_client_context(pki.ca, None if leaf is None else getattr(pki, leaf))
            async with client(address, context=good, server_hostname=SERVER_NAME) as (
                reader,
                writer,
            ):
                await roundtrip(reader, writer, "canary-before")
                peer, sent = await refused(address, bad)
                await roundtrip(reader, writer, "canary-after")
            assert logged(caplog, f"from {peer}", "TLS handshake failed", reason)
            assert sent == alert
            assert all(b"canary" in frame for frame in node.frames)

    run(scenario())


def test_refused_tls13_client_is_told_a_certificate_is_required(
    pki: Pki, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    # With the FIPS policy off the listener speaks TLS 1.3, where the refusal has its own
    # alert; the client sees it on its first read.
    capture(caplog)
    cert, key = pki.server.write(tmp_path)
    mtls = server_context(cert, key, [pki.ca.certificate], require_client_cert=True, fips=False)

    async def scenario() -> None:
        async with Node(mtls_ssl=mtls) as node:
            address = await node.layer.listen(ListenerSpec(SERVER_IP, "MTLS", 0))
            peer, alert = await refused(address, peer_client_context(pki.ca))
            assert alert == "TLSV13_ALERT_CERTIFICATE_REQUIRED"
            assert logged(caplog, f"from {peer}", "TLS handshake failed")

    run(scenario())


def test_tls_client_sending_its_request_with_the_handshake_is_answered(pki: Pki) -> None:
    # The request can reach the server before its handshake task has resumed.
    async def scenario() -> None:
        async with tls_node(pki) as node:
            address = await node.layer.listen(ListenerSpec(SERVER_IP, "MTLS", 0))
            context = peer_client_context(pki.ca, pki.client)
            reader, writer = await asyncio.open_connection(
                *address, ssl=context, server_hostname=SERVER_NAME
            )
            writer.write(request("early"))
            try:
                assert await reader.readuntil(b"\r\n\r\n") == response("early")
            finally:
                writer.close()
                await writer.wait_closed()

    run(scenario())


def test_new_connections_use_swapped_contexts_while_open_ones_keep_theirs(pki: Pki) -> None:
    async def presented(address: tuple[str, int], context: ssl.SSLContext) -> str:
        _reader, writer = await asyncio.open_connection(
            *address, ssl=context, server_hostname=SERVER_NAME
        )
        certificate = writer.get_extra_info("peercert")
        writer.close()
        return str(dict(pair[0] for pair in certificate["subject"])["commonName"])

    renewed = issue_host(pki.ca, SERVER_NAME, dns_names=(SERVER_NAME,), days=90)

    async def scenario() -> None:
        async with tls_node(pki) as node:
            address = await node.layer.listen(ListenerSpec(SERVER_IP, "TLS", 0))
            trusting = peer_client_context(pki.ca)
            before = await asyncio.open_connection(
                *address, ssl=trusting, server_hostname=SERVER_NAME
            )
            node.layer.use_contexts(
                server_ssl=node_server_context(renewed, pki.ca), mtls_ssl=None, client_ssl=None
            )
            _reader, writer = await asyncio.open_connection(
                *address, ssl=trusting, server_hostname=SERVER_NAME
            )
            serial_after = writer.get_extra_info("ssl_object").getpeercert(binary_form=True)
            serial_before = before[1].get_extra_info("ssl_object").getpeercert(binary_form=True)
            assert serial_after != serial_before
            assert await presented(address, trusting) == SERVER_NAME
            writer.close()
            before[1].close()

    run(scenario())
