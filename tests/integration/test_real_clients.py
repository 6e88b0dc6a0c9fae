"""Real third-party clients from Debian on the two partitions of the seed deployment:
baresip on one side and Linphone on the other (both placements), over TCP and over TLS
(each to its node's listener for users), registering with digest authentication,
exchanging pager MESSAGEs both ways and watching each other's presence across the
partition link (MTLS).

libre 1.1 (baresip) cannot answer when any SHA-256 challenge is present, so the node
baresip registers on offers MD5 only, as an administrator with such clients sets it
(``intrafed config digest MD5``); Linphone's node keeps the default, SHA-256 first.
"""

from __future__ import annotations

import asyncio
import contextlib
from pathlib import Path

import pytest

from intrafed.check import SeedDeployment
from intrafed.config import edits
from intrafed.config.model import Role
from intrafed.sip import Request, parse_message
from intrafed.store import open_store
from tests.integration.federation import build_partitions, running_partitions
from tests.integration.real_clients import (
    Account,
    baresip,
    linphone,
    missing_clients,
)

IMP_IP, OCS_IP, BARESIP_IP = "127.0.0.180", "127.0.0.181", "127.0.0.182"
USER_OF = {Role.IMP: "alice@example.com", Role.OCS: "bob@example.com"}
"""The seed's users: alice is homed on imp1, bob on ocs1."""


@pytest.fixture(autouse=True)
def _clients_installed() -> None:
    # ./dev test installs them in CI: absent clients fail, they never skip.
    if (missing := missing_clients()) is not None:
        pytest.fail(missing)


def offer_only_md5(deployment: SeedDeployment, role: Role) -> None:
    """``intrafed config digest MD5`` on the node of ``role``, then what a restart does."""
    with open_store(deployment.node(role).home) as store:
        store.stage(lambda c: edits.set_digest_algorithms(c, ("MD5",)))
        store.promote()


def account(deployment: SeedDeployment, role: Role, transport: str, contact: str) -> Account:
    """The user homed on ``role`` registering on its node's listener for users."""
    node = deployment.node(role)
    port = node.tcp_port if transport == "tcp" else node.client_tls_port
    aor = USER_OF[role]
    return Account(
        aor,
        deployment.password(aor),
        (node.ip, port),
        "tcp" if transport == "tcp" else "tls",
        deployment.ca_certificate,
        contact,
    )


@pytest.mark.parametrize("transport", ["tcp", "tls"])
@pytest.mark.parametrize("baresip_on", [Role.IMP, Role.OCS], ids=["baresip-imp1", "baresip-ocs1"])
def test_baresip_and_linphone_register_message_and_watch_each_other_across_the_partitions(
    tmp_path: Path, transport: str, baresip_on: Role
) -> None:
    linphone_on = Role.OCS if baresip_on is Role.IMP else Role.IMP
    baresip_user, linphone_user = USER_OF[baresip_on], USER_OF[linphone_on]
    deployment = build_partitions(tmp_path / "seed", IMP_IP, OCS_IP)
    offer_only_md5(deployment, baresip_on)
    received: list[tuple[str, Request]] = []

    def record(node: str, direction: str, remote: tuple[str, int], data: bytes) -> None:
        if direction == "received" and data.startswith(b"PUBLISH "):
            message = parse_message(data, stream=True)
            assert isinstance(message, Request)
            received.append((node, message))

    async def scenario() -> None:
        async with (
            running_partitions(deployment, trace=record),
            contextlib.AsyncExitStack() as clients,
        ):
            b = await clients.enter_async_context(
                baresip(
                    account(deployment, baresip_on, transport, linphone_user),
                    tmp_path / "baresip",
                    BARESIP_IP,
                )
            )
            lin = await clients.enter_async_context(
                linphone(
                    account(deployment, linphone_on, transport, baresip_user),
                    tmp_path / "linphone",
                )
            )
            await asyncio.gather(b.wait_registered(), lin.wait_registered())

            # Presence: Linphone publishes at registration; each sees the other online.
            await b.wait_presence(linphone_user, "online")
            await lin.wait_presence(baresip_user, "online")
            linphone_home = deployment.node(linphone_on).fqdn
            assert any(
                node == linphone_home and str(r.from_addr.uri) == f"sip:{linphone_user}"
                for node, r in received
            ), f"Linphone published nothing to {linphone_home}"

            # Pager MESSAGEs both ways, each across the partition link.
            await b.send_message(linphone_user, "hello from baresip")
            await lin.wait_message(baresip_user, "hello from baresip")
            await lin.send_message(baresip_user, "hello from linphone")
            await b.wait_message(linphone_user, "hello from linphone")

            # baresip publishes closed, then open: Linphone sees both.
            await b.set_presence(online=False)
            await lin.wait_presence(baresip_user, "offline")
            await b.set_presence(online=True)
            await lin.wait_presence(baresip_user, "online")

    asyncio.run(asyncio.wait_for(scenario(), 60))
