"""A real node on loopback for the user agent tests: example.com with alice, bob and carol
homed on it (passwords below), listening on TCP and TLS; and a trace of what an agent
sent and received."""

from __future__ import annotations

import contextlib
import dataclasses
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

from intrafed.config.model import ha1
from intrafed.node import NodeSettings
from intrafed.policy import StoredCredentials
from intrafed.sip import Request, Response
from intrafed.transport import ListenerSpec
from intrafed.ua import UaSettings
from tests.integration.peers import running_node
from tests.lab_pki import ca_pem, issue_host, make_ca, node_server_context

NODE_IP = "127.0.0.80"
ALICE_IP, BOB_IP, CAROL_IP, SILENT_IP = "127.0.0.81", "127.0.0.82", "127.0.0.83", "127.0.0.84"
NODE_NAME = "imp1.example.com"
PASSWORDS = {"alice": "alice's secret", "bob": "bob's secret", "carol": "carol's secret"}


def credentials(user: str, *, md5_only: bool = False) -> StoredCredentials:
    """What the node keeps for ``user`` (only the MD5 HA1 with ``md5_only``)."""
    password = PASSWORDS[user]
    sha256 = None if md5_only else ha1(user, "example.com", password, "SHA-256")
    return StoredCredentials(ha1(user, "example.com", password, "MD5"), sha256)


class Trace:
    """The messages one agent sent and received, in order."""

    def __init__(self) -> None:
        self.sent: list[Request | Response] = []
        self.received: list[Request | Response] = []

    def __call__(self, direction: str, message: Request | Response) -> None:
        (self.sent if direction == "sent" else self.received).append(message)

    def sent_requests(self, method: str) -> list[Request]:
        return [m for m in self.sent if isinstance(m, Request) and m.method == method]


@dataclass(frozen=True)
class LabNode:
    """Where the node listens, and the CA file that verifies its TLS certificate."""

    tcp: tuple[str, int]
    tls: tuple[str, int]
    ca_file: Path

    def settings(
        self, user: str, source_ip: str, transport: str = "tcp", **extra: object
    ) -> UaSettings:
        """A user agent's settings for ``user`` of example.com, connecting from ``source_ip``
        (``extra`` replaces fields)."""
        server = self.tls if transport == "tls" else self.tcp
        settings = UaSettings(
            f"{user}@example.com",
            server,
            password=PASSWORDS[user],
            transport=transport,
            server_name=NODE_NAME,
            ca_file=self.ca_file,
            source_ip=source_ip,
            timeout=5.0,
        )
        return dataclasses.replace(settings, **extra)  # type: ignore[arg-type]


@contextlib.asynccontextmanager
async def lab_node(
    workdir: Path, *, md5_only: tuple[str, ...] = (), tls_port: int = 0
) -> AsyncIterator[LabNode]:
    """A running node hosting alice, bob and carol on example.com (TCP, and TLS on
    ``tls_port``, any free one by default)."""
    ca = make_ca("intrafed ua test CA")
    ca_file = workdir / "ca.pem"
    ca_file.write_bytes(ca_pem(ca))
    node_cert = issue_host(ca, NODE_NAME, dns_names=(NODE_NAME,), ip_addresses=(NODE_IP,))
    settings = NodeSettings(
        name=NODE_NAME,
        address=NODE_IP,
        listeners=(ListenerSpec(NODE_IP, "TCP", 0), ListenerSpec(NODE_IP, "TLS", tls_port)),
        domains=frozenset({"example.com"}),
        users=frozenset(f"{user}@example.com" for user in PASSWORDS),
        credentials={
            f"{user}@example.com": credentials(user, md5_only=user in md5_only)
            for user in PASSWORDS
        },
        server_ssl=node_server_context(node_cert, ca),
    )
    async with running_node(settings) as bound:
        yield LabNode(bound["TCP"], bound["TLS"], ca_file)
