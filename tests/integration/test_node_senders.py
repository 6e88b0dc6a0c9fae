"""Who may send through a node, over real sockets, seen from an attacker writing raw bytes
on a TCP connection: a To tag is no pass (the node neither relays such a request to the
host its Request-URI names nor delivers it to a local user), a client that is neither a
trusted peer nor one of our users is refused, the other partition speaks only for users of
the shared domain, and a captured REGISTER Authorization cannot be replayed."""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import logging
import time
from collections.abc import AsyncIterator, Awaitable, Callable

import pytest

from intrafed.config.model import (
    Connection,
    HostAuthorization,
    NodeConfig,
    NodeIdentity,
    Role,
    StaticRoute,
    User,
    ha1,
)
from intrafed.node import Node, settings_from_config
from intrafed.sip import Request, Response, StreamFramer, parse_message
from intrafed.sip.digest import answer_challenge, format_credentials, parse_challenge
from intrafed.sip.responses import make_response
from intrafed.ua import UaSettings, UserAgent
from tests.integration.clients import SipPeer, connect
from tests.integration.peers import free_port

NODE_IP, CAROL_IP, ATTACKER_IP = "127.0.0.171", "127.0.0.172", "127.0.0.173"
VICTIM_IP, PARTITION_IP, GATEWAY_IP = "127.0.0.174", "127.0.0.175", "127.0.0.176"
PASSWORD = "wonderland"


class Recorder:
    """A SIP server that answers 200 to everything and keeps what it received: a host the
    node must never be made to relay to, or the other partition."""

    def __init__(self) -> None:
        self.requests: list[Request] = []

    async def serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        framer = StreamFramer()
        with contextlib.suppress(ConnectionError):
            while data := await reader.read(65536):
                framer.receive_data(data)
                while (frame := framer.next_frame()) is not None:
                    request = parse_message(frame, stream=True)
                    if isinstance(request, Request):
                        self.requests.append(request)
                        writer.write(make_response(request, 200, to_tag="rec").to_bytes())
        writer.close()


@dataclasses.dataclass
class Lab:
    node: Node
    address: tuple[str, int]
    victim: Recorder
    victim_port: int
    partition: Recorder
    opened: list[asyncio.StreamWriter]

    async def client(self, source: str) -> SipPeer:
        return await connect(self.address, source, self.opened)

    def carol(self, delivered: list[Request]) -> UserAgent:
        """carol's UA (password), keeping the MESSAGEs delivered to her."""
        return UserAgent(
            UaSettings("carol@example.com", self.address, password=PASSWORD, source_ip=CAROL_IP),
            trace=lambda direction, m: (
                delivered.append(m) if isinstance(m, Request) and m.method == "MESSAGE" else None
            ),
        )


def config(port: int, partition_port: int) -> NodeConfig:
    """ocs1 serving example.com; the other partition is the next hop of the static route
    for example.com (and a trusted host); a gateway is a trusted host, not the partition."""
    return NodeConfig(
        NodeIdentity(Role.OCS, "ocs1.example.com", NODE_IP),
        domains=("example.com",),
        connections=(Connection("TCP", port, NODE_IP),),
        routes=(StaticRoute("example.com", "TCP", partition_port, ip=PARTITION_IP),),
        host_authorizations=(
            HostAuthorization(ip=PARTITION_IP),
            HostAuthorization(ip=GATEWAY_IP),
        ),
        users=(
            User("alice@example.com").with_password(PASSWORD),
            User("carol@example.com").with_password(PASSWORD),
        ),
    )


def on_lab(scenario: Callable[[Lab], Awaitable[None]]) -> None:
    async def main() -> None:
        async with running_lab() as lab:
            await asyncio.wait_for(scenario(lab), 30)

    asyncio.run(main())


@contextlib.asynccontextmanager
async def running_lab(digest_algorithms: tuple[str, ...] | None = None) -> AsyncIterator[Lab]:
    victim, partition = Recorder(), Recorder()
    victim_server = await asyncio.start_server(victim.serve, VICTIM_IP, 0)
    partition_server = await asyncio.start_server(partition.serve, PARTITION_IP, 0)
    victim_port = victim_server.sockets[0].getsockname()[1]
    partition_port = partition_server.sockets[0].getsockname()[1]
    configured = config(free_port(NODE_IP), partition_port)
    if digest_algorithms is not None:
        configured = dataclasses.replace(configured, digest_algorithms=digest_algorithms)
    node = Node(settings_from_config(configured))
    address = (await node.start())["TCP"]
    opened: list[asyncio.StreamWriter] = []
    try:
        yield Lab(node, address, victim, victim_port, partition, opened)
    finally:
        for writer in opened:
            writer.close()
        await node.stop(grace=0.5)
        for server in (victim_server, partition_server):
            server.close()


def raw(
    method: str,
    uri: str,
    sender: str,
    source: str,
    n: int,
    *,
    to: str = "<sip:carol@example.com>;tag=stolen",
    extra: str = "",
) -> bytes:
    return (
        f"{method} {uri} SIP/2.0\r\nVia: SIP/2.0/TCP {source}:5070;branch=z9hG4bK-x{n}\r\n"
        f"Max-Forwards: 70\r\nFrom: <sip:{sender}>;tag=f{n}\r\nTo: {to}\r\n"
        f"Call-ID: attack{n}@{source}\r\nCSeq: 1 {method}\r\n{extra}"
        "Content-Length: 2\r\n\r\nhi"
    ).encode()


async def answer(peer: SipPeer, payload: bytes) -> Response:
    peer.writer.write(payload)
    response = await peer.next()
    assert isinstance(response, Response)
    return response


def warning(response: Response) -> str:
    return response.headers.get("warning") or ""


def test_in_dialog_request_without_our_route_is_not_relayed() -> None:
    async def scenario(lab: Lab) -> None:
        attacker = await lab.client(ATTACKER_IP)
        target = f"sip:victim@{VICTIM_IP}:{lab.victim_port};transport=tcp"
        # Claiming one of our users: proving it is required, as out of dialog.
        claimed = await answer(
            attacker, raw("MESSAGE", target, "alice@example.com", ATTACKER_IP, 1)
        )
        assert claimed.status == 407
        # Claiming nobody of ours: refused.
        foreign = await answer(
            attacker, raw("MESSAGE", target, "eve@partner.example.net", ATTACKER_IP, 2)
        )
        assert foreign.status == 403
        # Our address copied into a Route (without the dialog's signature) proves nothing.
        ours = f"Route: <sip:{lab.address[0]}:{lab.address[1]};transport=tcp;lr>\r\n"
        routed = await answer(
            attacker,
            raw("MESSAGE", target, "eve@partner.example.net", ATTACKER_IP, 3, extra=ours),
        )
        assert routed.status == 403
        # Nor do Routes elsewhere, or an ACK (which is never challenged).
        elsewhere = f"Route: <sip:{VICTIM_IP}:{lab.victim_port};transport=tcp;lr>\r\n"
        onward = await answer(
            attacker,
            raw("MESSAGE", target, "alice@example.com", ATTACKER_IP, 4, extra=elsewhere),
        )
        assert onward.status == 407
        attacker.writer.write(raw("ACK", target, "alice@example.com", ATTACKER_IP, 5, extra=ours))
        probe = await answer(
            attacker, raw("OPTIONS", f"sip:{NODE_IP}", "eve@partner.example.net", ATTACKER_IP, 6)
        )
        assert probe.status == 200
        assert lab.victim.requests == []

    on_lab(scenario)


def test_a_to_tag_does_not_let_an_unauthenticated_client_message_a_local_user() -> None:
    async def scenario(lab: Lab) -> None:
        delivered: list[Request] = []
        async with lab.carol(delivered) as carol:
            assert (await carol.register()).status == 200
            [binding] = lab.node.registrar.bindings("carol@example.com", time.time())
            contact = binding.contact.strip("<>")
            attacker = await lab.client(ATTACKER_IP)
            for n, sender in enumerate(("alice@example.com", "eve@partner.example.net")):
                forged = await answer(
                    attacker, raw("MESSAGE", contact, sender, ATTACKER_IP, 20 + n)
                )
                assert forged.status in (403, 407)
        assert delivered == []

    on_lab(scenario)


def test_an_untrusted_client_cannot_send_as_a_foreign_user() -> None:
    async def scenario(lab: Lab) -> None:
        delivered: list[Request] = []
        async with lab.carol(delivered) as carol:
            assert (await carol.register()).status == 200
            attacker = await lab.client(ATTACKER_IP)
            refused = await answer(
                attacker,
                raw(
                    "MESSAGE",
                    "sip:carol@example.com",
                    "dave@partner.example.net",
                    ATTACKER_IP,
                    8,
                    to="<sip:carol@example.com>",
                ),
            )
            assert refused.status == 403
            assert (
                "only trusted peers and authenticated users of example.com may send here; "
                "dave@partner.example.net is neither"
            ) in warning(refused)
            # A trusted host that is not the partition (a gateway) still relays for others.
            gateway = await lab.client(GATEWAY_IP)
            relayed = await answer(
                gateway,
                raw(
                    "MESSAGE",
                    "sip:carol@example.com",
                    "dave@partner.example.net",
                    GATEWAY_IP,
                    9,
                    to="<sip:carol@example.com>",
                ),
            )
            assert relayed.status == 200
        assert [str(m.from_addr.uri) for m in delivered] == ["sip:dave@partner.example.net"]

    on_lab(scenario)


def test_the_peer_partition_cannot_send_for_a_third_domain() -> None:
    async def scenario(lab: Lab) -> None:
        delivered: list[Request] = []
        async with lab.carol(delivered) as carol:
            assert (await carol.register()).status == 200
            partition = await lab.client(PARTITION_IP)
            third = await answer(
                partition,
                raw(
                    "MESSAGE",
                    "sip:carol@example.com",
                    "dave@partner.example.net",
                    PARTITION_IP,
                    10,
                    to="<sip:carol@example.com>",
                ),
            )
            assert third.status == 403
            assert "speaks only for users of example.com not homed here" in warning(third)
            # A user of the shared domain homed over there is delivered.
            shared = await answer(
                partition,
                raw(
                    "MESSAGE",
                    "sip:carol@example.com",
                    "bob@example.com",
                    PARTITION_IP,
                    11,
                    to="<sip:carol@example.com>",
                ),
            )
            assert shared.status == 200
        assert [str(m.from_addr.uri) for m in delivered] == ["sip:bob@example.com"]

    on_lab(scenario)


def register(source: str, port: int, cseq: int, authorization: str = "") -> bytes:
    header = f"Authorization: {authorization}\r\n" if authorization else ""
    return (
        f"REGISTER sip:example.com SIP/2.0\r\n"
        f"Via: SIP/2.0/TCP {source}:{port};branch=z9hG4bK-reg{cseq}-{source}\r\n"
        "Max-Forwards: 70\r\nFrom: <sip:carol@example.com>;tag=c1\r\n"
        "To: <sip:carol@example.com>\r\nCall-ID: carol-reg@127.0.0.172\r\n"
        f"CSeq: {cseq} REGISTER\r\nContact: <sip:carol@{source}:{port};transport=tcp>\r\n"
        f"{header}Expires: 300\r\nContent-Length: 0\r\n\r\n"
    ).encode()


def test_a_replayed_register_authorization_does_not_move_the_binding() -> None:
    async def scenario(lab: Lab) -> None:
        carol = await lab.client(CAROL_IP)
        challenged = await answer(carol, register(CAROL_IP, 5070, 1))
        assert challenged.status == 401
        offered = parse_challenge(challenged.headers.get_all("www-authenticate")[0])
        credentials = answer_challenge(
            offered,
            "carol",
            ha1("carol", offered.realm, PASSWORD, offered.algorithm),
            "REGISTER",
            "sip:example.com",
            cnonce="c0ffee",
        )
        captured = format_credentials(credentials)
        registered = await answer(carol, register(CAROL_IP, 5070, 2, captured))
        assert registered.status == 200
        # The attacker replays the captured header with its own Contact (and a new CSeq).
        attacker = await lab.client(ATTACKER_IP)
        replayed = await answer(attacker, register(ATTACKER_IP, 5099, 3, captured))
        assert replayed.status == 401
        assert "stale=true" in (replayed.headers.get("www-authenticate") or "")
        bindings = lab.node.registrar.bindings("carol@example.com", time.time())
        assert [CAROL_IP in binding.contact for binding in bindings] == [True]

    on_lab(scenario)


def test_a_client_that_cannot_answer_sha256_is_told_the_digest_setting() -> None:
    # libre (baresip 1.0) cannot answer while any SHA-256 challenge is present: it sends
    # its REGISTER again without credentials. The second 401 names the setting that helps.
    async def scenario(lab: Lab) -> None:
        carol = await lab.client(CAROL_IP)
        first = await answer(carol, register(CAROL_IP, 5070, 1))
        assert first.status == 401
        assert "intrafed config digest" not in warning(first)
        again = await answer(carol, register(CAROL_IP, 5070, 2))
        assert again.status == 401
        assert "intrafed config digest MD5 --home DIR" in warning(again)

    on_lab(scenario)


def test_credentials_in_an_algorithm_not_accepted_are_told_the_digest_setting() -> None:
    # The node offers SHA-256 only; a client answering in MD5 learns how to allow it.
    async def scenario(lab: Lab) -> None:
        carol = await lab.client(CAROL_IP)
        challenged = await answer(carol, register(CAROL_IP, 5070, 1))
        offered = dataclasses.replace(
            parse_challenge(challenged.headers.get_all("www-authenticate")[0]), algorithm="MD5"
        )
        credentials = answer_challenge(
            offered,
            "carol",
            ha1("carol", offered.realm, PASSWORD, "MD5"),
            "REGISTER",
            "sip:example.com",
            cnonce="c0ffee",
        )
        refused = await answer(carol, register(CAROL_IP, 5070, 2, format_credentials(credentials)))
        assert refused.status == 401
        assert "intrafed config digest SHA-256 MD5 --home DIR" in warning(refused)
        assert lab.node.registrar.bindings("carol@example.com", time.time()) == []

    async def main() -> None:
        async with running_lab(digest_algorithms=("SHA-256",)) as lab:
            await asyncio.wait_for(scenario(lab), 30)

    asyncio.run(main())


def test_a_wrong_password_is_answered_with_a_warning_and_logged(
    caplog: pytest.LogCaptureFixture,
) -> None:
    async def scenario(lab: Lab) -> None:
        carol = await lab.client(CAROL_IP)
        challenged = await answer(carol, register(CAROL_IP, 5070, 1))
        offered = parse_challenge(challenged.headers.get_all("www-authenticate")[0])
        credentials = answer_challenge(
            offered,
            "carol",
            ha1("carol", offered.realm, "not-her-password", offered.algorithm),
            "REGISTER",
            "sip:example.com",
            cnonce="c0ffee",
        )
        wrong = await answer(carol, register(CAROL_IP, 5070, 2, format_credentials(credentials)))
        assert wrong.status == 401
        assert "credentials offered for carol@example.com did not match" in warning(wrong)

    caplog.set_level(logging.WARNING, logger="intrafed.node")
    on_lab(scenario)
    [logged] = [r.getMessage() for r in caplog.records if "authentication failed" in r.getMessage()]
    assert logged.startswith(f"authentication failed: carol@example.com from {CAROL_IP}:")
