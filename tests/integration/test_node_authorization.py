"""Who may send what, over real sockets: clients prove their user with digest (407 once,
then the connection is theirs), a host authorized without Treat As Authenticated is
challenged, an Outbound Only host is a mere client, a flooding client gets 503 with
Retry-After, and OPTIONS to the node is answered 200."""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
from collections.abc import AsyncIterator, Awaitable, Callable

import pytest

from intrafed.config.model import (
    Connection,
    HostAuthorization,
    NodeConfig,
    NodeIdentity,
    RateClass,
    RateLimits,
    Role,
    User,
)
from intrafed.node import Node, settings_from_config
from intrafed.sip import Request, Response
from intrafed.ua import SipError, UaSettings, UserAgent
from tests.integration.clients import SipPeer, connect
from tests.integration.peers import free_port

NODE_IP, ALICE_IP, CAROL_IP = "127.0.0.51", "127.0.0.52", "127.0.0.53"
GATEWAY_IP, OUTBOUND_ONLY_IP, FLOOD_IP = "127.0.0.54", "127.0.0.55", "127.0.0.56"
PASSWORD = "wonderland"


def ocs1(port: int) -> NodeConfig:
    return NodeConfig(
        NodeIdentity(Role.OCS, "ocs1.example.com", NODE_IP),
        domains=("example.com",),
        connections=(Connection("TCP", port, NODE_IP),),
        host_authorizations=(
            HostAuthorization(ip=GATEWAY_IP, treat_as_authenticated=False),
            HostAuthorization(ip=OUTBOUND_ONLY_IP, outbound_only=True),
        ),
        users=(User("alice@example.com").with_password(PASSWORD), User("carol@example.com")),
    )


def raw_message(sender: str, to: str, source: str, n: int, method: str = "MESSAGE") -> bytes:
    return (
        f"{method} sip:{to} SIP/2.0\r\nVia: SIP/2.0/TCP {source}:5070;branch=z9hG4bK-a{n}\r\n"
        f"Max-Forwards: 70\r\nFrom: <sip:{sender}>;tag=s{n}\r\nTo: <sip:{to}>\r\n"
        f"Call-ID: auth{n}@{source}\r\nCSeq: 1 {method}\r\nContent-Length: 2\r\n\r\nhi"
    ).encode()


@dataclasses.dataclass
class Running:
    address: tuple[str, int]
    opened: list[asyncio.StreamWriter]

    async def client(self, source: str) -> SipPeer:
        return await connect(self.address, source, self.opened)

    def user(self, aor: str, source: str, password: str | None = None) -> UserAgent:
        return UserAgent(UaSettings(aor, self.address, password=password, source_ip=source))


def on_node(scenario: Callable[[Running], Awaitable[None]]) -> None:
    """Run ``scenario`` against a fresh ocs1 (client class: 20/s, burst 40)."""

    async def main() -> None:
        async with running_ocs1() as node:
            await asyncio.wait_for(scenario(node), 30)

    asyncio.run(main())


async def answer(peer: SipPeer, payload: bytes) -> Response:
    peer.writer.write(payload)
    response = await peer.next()
    assert isinstance(response, Response)
    return response


@contextlib.asynccontextmanager
async def running_ocs1() -> AsyncIterator[Running]:
    settings = settings_from_config(ocs1(free_port(NODE_IP)))
    settings = dataclasses.replace(settings, rate_limits=RateLimits(client=RateClass(20, 40)))
    running = Node(settings)
    address = (await running.start())["TCP"]
    opened: list[asyncio.StreamWriter] = []
    try:
        yield Running(address, opened)
    finally:
        for writer in opened:
            writer.close()
        await running.stop(grace=0.5)


def test_a_client_proves_its_user_once_and_its_connection_carries_it() -> None:
    async def scenario(node: Running) -> None:
        seen: list[int] = []
        delivered: list[Request] = []
        async with (
            UserAgent(
                UaSettings("carol@example.com", node.address, source_ip=CAROL_IP),
                trace=lambda direction, m: (
                    delivered.append(m)
                    if isinstance(m, Request) and m.method == "MESSAGE"
                    else None
                ),
            ) as carol,
            UserAgent(
                UaSettings(
                    "alice@example.com", node.address, password=PASSWORD, source_ip=ALICE_IP
                ),
                trace=lambda direction, m: (
                    seen.append(m.status) if isinstance(m, Response) else None
                ),
            ) as alice,
        ):
            assert (await carol.register()).status == 200
            first = await alice.message("carol@example.com", "hello")
            assert first.status == 200
            assert seen[:2] == [407, 200]
            assert (await alice.message("carol@example.com", "again")).status == 200
            assert seen.count(407) == 1
            # The credentials were for ocs1: they end there.
            assert [m.headers.get("proxy-authorization") for m in delivered] == [None, None]

    on_node(scenario)


def test_a_wrong_password_stays_407_and_a_stranger_of_our_domain_is_403() -> None:
    async def scenario(node: Running) -> None:
        async with node.user("alice@example.com", ALICE_IP, password="guess") as mallory:
            with pytest.raises(SipError) as refused:
                await mallory.message("carol@example.com", "let me in")
            assert refused.value.status == 407
        stranger = await node.client(ALICE_IP)
        forbidden = await answer(
            stranger, raw_message("eve@example.com", "carol@example.com", ALICE_IP, 1)
        )
        assert forbidden.status == 403
        assert "eve@example.com is not a user of this node" in (
            forbidden.headers.get("warning") or ""
        )

    on_node(scenario)


def test_a_host_not_treated_as_authenticated_is_challenged() -> None:
    async def scenario(node: Running) -> None:
        gateway = await node.client(GATEWAY_IP)
        challenged = await answer(
            gateway, raw_message("bob@example.com", "carol@example.com", GATEWAY_IP, 2)
        )
        assert challenged.status == 407
        assert "is not treated as authenticated" in (challenged.headers.get("warning") or "")

    on_node(scenario)


def test_an_outbound_only_host_gets_no_trust_inbound() -> None:
    async def scenario(node: Running) -> None:
        host = await node.client(OUTBOUND_ONLY_IP)
        claimed = await answer(
            host, raw_message("bob@example.com", "carol@example.com", OUTBOUND_ONLY_IP, 3)
        )
        assert claimed.status == 403
        # As a client, it may not speak for another domain; for a user of ours (carol has
        # no password) it is routed like one: carol is offline (480), not the "came from
        # the peer partition" 404.
        partner = await answer(
            host, raw_message("dave@partner.example.net", "carol@example.com", OUTBOUND_ONLY_IP, 4)
        )
        assert partner.status == 403
        ours = await answer(
            host, raw_message("carol@example.com", "carol@example.com", OUTBOUND_ONLY_IP, 5)
        )
        assert ours.status == 480

    on_node(scenario)


def test_a_flooding_client_gets_503_with_retry_after_and_others_are_served() -> None:
    async def scenario(node: Running) -> None:
        flood = await node.client(FLOOD_IP)
        for n in range(60):
            flood.writer.write(
                raw_message(
                    "x@partner.example.net", "ocs1.example.com", FLOOD_IP, 100 + n, "OPTIONS"
                )
            )
        statuses = []
        for _ in range(60):
            response = await flood.next()
            assert isinstance(response, Response)
            statuses.append(response.status)
            if response.status == 503:
                assert response.headers.get("retry-after") == "1"
                assert "client rate limit of 127.0.0.56 exceeded" in (
                    response.headers.get("warning") or ""
                )
        assert statuses.count(200) >= 40
        assert statuses.count(503) >= 1
        other = await node.client(ALICE_IP)
        served = await answer(
            other,
            raw_message("y@partner.example.net", "ocs1.example.com", ALICE_IP, 200, "OPTIONS"),
        )
        assert served.status == 200

    on_node(scenario)


def test_options_to_the_node_lists_what_it_does() -> None:
    async def scenario(node: Running) -> None:
        client = await node.client(ALICE_IP)
        response = await answer(
            client,
            raw_message("y@partner.example.net", "ocs1.example.com", ALICE_IP, 300, "OPTIONS"),
        )
        assert response.status == 200
        allow = response.headers.get("allow") or ""
        assert {"SUBSCRIBE", "NOTIFY", "PUBLISH", "MESSAGE", "INVITE"} <= set(
            allow.replace(" ", "").split(",")
        )

    on_node(scenario)
