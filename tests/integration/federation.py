"""Two partitions of the seed deployment on loopback (imp1 and ocs1, built by
``build_seed_deployment``) on free ports, and the setting Debian's SIPp needs to answer
their challenges."""

from __future__ import annotations

import contextlib
import random
import socket
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass
from pathlib import Path

from intrafed.check import SeedDeployment, build_seed_deployment
from intrafed.check.deployment import SeedNode
from intrafed.config import edits
from intrafed.node import Node, Trace
from intrafed.pki import KeyType
from intrafed.store import open_store

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


def challenge_md5_first(nodes: Sequence[SeedNode]) -> None:
    """What an administrator with MD5-only clients does on both sides (``intrafed config
    digest MD5 SHA-256``, then a restart): Debian's SIPp 3.6 answers only the first
    challenge, and only with MD5 (SIPp/sipp#488), while the default offers SHA-256 first
    (RFC 8760)."""
    for node in nodes:
        with open_store(node.home) as store:
            store.stage(lambda c: edits.set_digest_algorithms(c, ("MD5", "SHA-256")))
            store.promote()


@dataclass(frozen=True)
class Partitions:
    """Both running nodes of a seed deployment."""

    deployment: SeedDeployment
    imp: Node
    ocs: Node
    imp_listeners: dict[str, tuple[str, int]]
    ocs_listeners: dict[str, tuple[str, int]]


@contextlib.asynccontextmanager
async def running_partitions(
    deployment: SeedDeployment, trace: Trace | None = None
) -> AsyncIterator[Partitions]:
    """imp1 and ocs1 started in this process from their homes, as ``intrafed serve``
    runs them (with ``trace`` of every message each sends and receives); stopped after
    the block."""
    with (
        open_store(deployment.imp.home) as imp_store,
        open_store(deployment.ocs.home) as ocs_store,
    ):
        imp = Node.from_home(deployment.imp.home, imp_store, trace)
        ocs = Node.from_home(deployment.ocs.home, ocs_store, trace)
        imp_listeners = await imp.start()
        try:
            ocs_listeners = await ocs.start()
            try:
                yield Partitions(deployment, imp, ocs, imp_listeners, ocs_listeners)
            finally:
                await ocs.stop(grace=1.0)
        finally:
            await imp.stop(grace=1.0)
