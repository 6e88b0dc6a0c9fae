"""Two partitions of the seed deployment on loopback (imp1 and ocs1, built by
``build_seed_deployment``), and the relay Debian's SIPp needs to answer their challenges."""

from __future__ import annotations

import asyncio
import contextlib
import random
import re
import socket
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass
from pathlib import Path

from intrafed.check import SeedDeployment, build_seed_deployment
from intrafed.node import Node, NodeSettings, settings_from_config
from intrafed.pki import CertificateStores, KeyType, TlsContexts
from intrafed.sip import StreamFramer
from intrafed.store import ConfigStore

SEED_PORTS = 4
"""The seed deployment uses ``base_port`` .. ``base_port + 3`` on each node's address."""


def free_base_port(ips: Sequence[str], attempts: int = 200) -> int:
    """A port from which ``SEED_PORTS`` consecutive ports are free on every one of ``ips``."""
    for _ in range(attempts):
        base = random.randrange(20_000, 60_000)  # noqa: S311 - not security
        try:
            with contextlib.ExitStack() as held:
                for ip in ips:
                    for port in range(base, base + SEED_PORTS):
                        probe = held.enter_context(socket.socket())
                        probe.bind((ip, port))
        except OSError:
            continue
        return base
    raise RuntimeError(f"no {SEED_PORTS} consecutive free ports on {', '.join(ips)}")


def build_partitions(root: Path, imp_ip: str, ocs_ip: str) -> SeedDeployment:
    """The seed deployment under ``root`` on free ports (EC keys: quicker to make)."""
    return build_seed_deployment(
        root,
        imp_ip=imp_ip,
        ocs_ip=ocs_ip,
        base_port=free_base_port([imp_ip, ocs_ip]),
        key_type=KeyType.EC_P256,
    )


def home_settings(home: Path) -> NodeSettings:
    """What ``intrafed serve --home`` runs: the running configuration and the TLS
    contexts of the selected certificate."""
    with ConfigStore.open(home) as store:
        config = store.load("running")
    tls = TlsContexts(CertificateStores.of_home(home), config).current
    return settings_from_config(
        config, server_ssl=tls.server, mtls_ssl=tls.mtls, client_ssl=tls.client
    )


@dataclass(frozen=True)
class Partitions:
    """Both running nodes of a seed deployment."""

    deployment: SeedDeployment
    imp: Node
    ocs: Node
    imp_listeners: dict[str, tuple[str, int]]
    ocs_listeners: dict[str, tuple[str, int]]


@contextlib.asynccontextmanager
async def running_partitions(deployment: SeedDeployment) -> AsyncIterator[Partitions]:
    """imp1 and ocs1 started in this process from their homes; stopped after the block."""
    imp = Node(home_settings(deployment.imp.home))
    ocs = Node(home_settings(deployment.ocs.home))
    imp_listeners = await imp.start()
    try:
        ocs_listeners = await ocs.start()
        try:
            yield Partitions(deployment, imp, ocs, imp_listeners, ocs_listeners)
        finally:
            await ocs.stop(grace=1.0)
    finally:
        await imp.stop(grace=1.0)


# An RFC 8760 challenge SIPp 3.6 cannot compute: any algorithm but MD5.
_UNANSWERABLE_CHALLENGE = re.compile(
    rb"^(?:WWW|Proxy)-Authenticate[ \t]*:[^\r\n]*algorithm=(?!MD5\b)[^\r\n]*\r\n",
    re.IGNORECASE | re.MULTILINE,
)


def md5_challenges_only(message: bytes) -> bytes:
    """A 401/407 with only its MD5 challenges; any other message unchanged."""
    if not message.startswith((b"SIP/2.0 401 ", b"SIP/2.0 407 ")):
        return message
    head, separator, body = message.partition(b"\r\n\r\n")
    return _UNANSWERABLE_CHALLENGE.sub(b"", head + b"\r\n")[:-2] + separator + body


@contextlib.asynccontextmanager
async def challenge_selecting_relay(
    ip: str, node: tuple[str, int]
) -> AsyncIterator[tuple[str, int]]:
    """A TCP relay at ``ip`` in front of ``node`` that does, for SIPp 3.6, the step RFC 7616
    §3.7 leaves to the client: choose the first challenge it supports. SIPp 3.6 answers the
    first WWW-/Proxy-Authenticate only, and only with MD5 (SIPp/sipp#488), while the node
    offers SHA-256 first (RFC 8760). Everything else passes byte for byte, both ways, and
    the node sees the relay's connection as the client's. Yields where to connect."""

    async def client_to_node(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        while data := await reader.read(65536):
            writer.write(data)
            await writer.drain()

    async def node_to_client(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        framer = StreamFramer()
        while data := await reader.read(65536):
            framer.receive_data(data)
            while (frame := framer.next_frame()) is not None:
                writer.write(md5_challenges_only(frame))
            await writer.drain()

    async def relay(client: asyncio.StreamReader, client_writer: asyncio.StreamWriter) -> None:
        node_reader, node_writer = await asyncio.open_connection(*node, local_addr=(ip, 0))
        directions = [
            asyncio.create_task(client_to_node(client, node_writer)),
            asyncio.create_task(node_to_client(node_reader, client_writer)),
        ]
        try:
            await asyncio.wait(directions, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for direction in directions:
                direction.cancel()
            await asyncio.gather(*directions, return_exceptions=True)
            for writer in (node_writer, client_writer):
                writer.close()

    server = await asyncio.start_server(relay, ip, 0)
    try:
        yield server.sockets[0].getsockname()[:2]
    finally:
        server.close()
        await server.wait_closed()
