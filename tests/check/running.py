"""Seed deployments on free ports, and nodes started in process from their homes."""

from __future__ import annotations

import contextlib
import socket
from collections.abc import AsyncIterator
from pathlib import Path

from intrafed.check import SeedDeployment, build_seed_deployment
from intrafed.node import Node, settings_from_config
from intrafed.pki import CertificateStores, KeyType, server_context
from intrafed.pki import client_context as tls_client_context
from intrafed.store import open_store
from tests.integration.peers import free_port

PORT_OFFSETS = (0, 1, 2, 3)
"""TCP, MTLS / Peer Auth, OCS client TLS, Server Auth: what ``base_port`` shifts."""


def _bindable(ip: str, port: int) -> bool:
    with socket.socket() as probe:
        try:
            probe.bind((ip, port))
        except OSError:
            return False
    return True


def free_base_port(*ips: str) -> int:
    """A base port whose seed ports are all free on every one of ``ips``."""
    while True:
        base = free_port(ips[0])
        if base + max(PORT_OFFSETS) < 65536 and all(
            _bindable(ip, base + offset) for ip in ips for offset in PORT_OFFSETS
        ):
            return base


def seed_on_free_ports(root: Path, imp_ip: str, ocs_ip: str) -> SeedDeployment:
    """The seed deployment on loopback addresses of the caller's, on free ports."""
    return build_seed_deployment(
        root,
        imp_ip=imp_ip,
        ocs_ip=ocs_ip,
        base_port=free_base_port(imp_ip, ocs_ip),
        key_type=KeyType.EC_P256,
    )


@contextlib.asynccontextmanager
async def serving(home: Path) -> AsyncIterator[Node]:
    """The node of ``home`` running its running configuration, with the selected
    certificate as it is (a certificate ``pki select`` would refuse is used all the same,
    as a node whose files were copied in by hand would)."""
    with open_store(home) as store:
        config = store.load("running")
    stores = CertificateStores.of_home(home)
    selected = stores.selected()
    assert selected.key_path is not None
    roots = stores.trusted_roots()
    cert, key = selected.path, selected.key_path
    node = Node(
        settings_from_config(
            config,
            server_ssl=server_context(cert, key, roots, require_client_cert=False),
            mtls_ssl=server_context(cert, key, roots, require_client_cert=True),
            client_ssl=tls_client_context(cert, key, roots),
        )
    )
    await node.start()
    try:
        yield node
    finally:
        await node.stop(grace=1.0)
