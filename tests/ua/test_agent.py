"""The user agent against a real node on loopback: digest registration, pager and session
IM between two users, OPTIONS, and the errors a user sees."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from intrafed.sip import Request, Response, StreamFramer, parse_message
from intrafed.sip.digest import NonceIssuer, challenge, parse_credentials
from intrafed.sip.responses import make_response
from intrafed.ua import (
    MessageReceived,
    SessionEnded,
    SessionStarted,
    SipError,
    TypingReceived,
    UaError,
    UaSettings,
    UserAgent,
)
from tests.lab_pki import ca_pem, make_ca
from tests.ua.nodes import (
    ALICE_IP,
    BOB_IP,
    CAROL_IP,
    NODE_IP,
    NODE_NAME,
    SILENT_IP,
    Trace,
    lab_node,
)


@contextlib.asynccontextmanager
async def alice_and_bob(
    workdir: Path,
    transport: str = "tcp",
    trace: Trace | None = None,
    bob_trace: Trace | None = None,
) -> AsyncIterator[tuple[UserAgent, UserAgent]]:
    """A node, and alice and bob each connected to it (traced when asked)."""
    async with (
        lab_node(workdir) as node,
        UserAgent(node.settings("alice", ALICE_IP, transport), trace=trace) as alice,
        UserAgent(node.settings("bob", BOB_IP, transport), trace=bob_trace) as bob,
    ):
        yield alice, bob


def run(scenario: object) -> object:
    return asyncio.run(asyncio.wait_for(scenario, 60))  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("algorithms", "expected"), [(("SHA-256", "MD5"), "SHA-256"), (("MD5",), "MD5")]
)
def test_register_answers_the_digest_challenge_with_the_first_algorithm_it_supports(
    tmp_path: Path, algorithms: tuple[str, ...], expected: str
) -> None:
    async def scenario() -> tuple[int, int, list[str], str]:
        trace = Trace()
        async with lab_node(tmp_path) as node:
            settings = node.settings("alice", ALICE_IP, algorithms=algorithms)
            async with UserAgent(settings, trace=trace) as alice:
                registered = await alice.register(expires=600)
                unregistered = await alice.unregister()
        registers = trace.sent_requests("REGISTER")
        authorizations = [r.headers.get("authorization") or "" for r in registers]
        contact = registers[0].headers.get("contact") or ""
        return registered.status, unregistered.status, authorizations, contact

    registered, unregistered, authorizations, contact = run(scenario())  # type: ignore[misc]
    assert (registered, unregistered) == (200, 200)
    # First try without credentials, then the answer; the unregistration likewise.
    assert authorizations[0] == ""
    assert authorizations[2] == ""
    assert f"algorithm={expected}" in authorizations[1]
    assert "qop=auth" in authorizations[1]
    assert "nc=00000001" in authorizations[1]
    assert contact.startswith(f"<sip:alice@{ALICE_IP}:")
    assert contact.endswith(";transport=tcp;ob>")


def test_a_user_with_only_an_md5_secret_registers_with_md5_and_is_refused_sha256(
    tmp_path: Path,
) -> None:
    async def scenario() -> tuple[int, SipError]:
        async with lab_node(tmp_path, md5_only=("carol",)) as node:
            async with UserAgent(node.settings("carol", CAROL_IP, algorithms=("MD5",))) as ua:
                md5 = await ua.register()
            async with UserAgent(node.settings("carol", CAROL_IP)) as ua:
                with pytest.raises(SipError) as refused:
                    await ua.register()
        return md5.status, refused.value

    md5, refused = run(scenario())  # type: ignore[misc]
    assert md5 == 200
    assert refused.status == 401


def test_a_wrong_password_is_reported_with_the_status(tmp_path: Path) -> None:
    async def scenario() -> tuple[SipError, int]:
        trace = Trace()
        async with lab_node(tmp_path) as node:
            wrong = node.settings("alice", ALICE_IP, password="not alice's secret")
            async with UserAgent(wrong, trace=trace) as alice:
                with pytest.raises(SipError) as refused:
                    await alice.register()
        return refused.value, len(trace.sent_requests("REGISTER"))

    refused, attempts = run(scenario())  # type: ignore[misc]
    assert (refused.status, refused.reason) == (401, "Unauthorized")
    assert str(refused).startswith("REGISTER sip:example.com: 401 Unauthorized")
    # One answer to the challenge, no endless retrying.
    assert attempts == 2


@pytest.mark.parametrize("transport", ["tcp", "tls"])
def test_a_pager_message_reaches_the_other_registered_user(tmp_path: Path, transport: str) -> None:
    async def scenario() -> tuple[int, MessageReceived, str]:
        async with alice_and_bob(tmp_path, transport) as (alice, bob):
            await alice.register()
            await bob.register()
            sent = await alice.message("bob@example.com", "hello bob")
            received = await bob.next_event(MessageReceived)
            return sent.status, received, bob.contact

    status, received, contact = run(scenario())  # type: ignore[misc]
    assert status == 200
    assert (received.sender, received.text, received.content_type) == (
        "alice@example.com",
        "hello bob",
        "text/plain",
    )
    assert received.session is None
    assert f";transport={transport};ob>" in contact


def test_a_message_to_a_user_who_is_not_registered_fails_with_the_nodes_warning(
    tmp_path: Path,
) -> None:
    async def scenario() -> SipError:
        async with lab_node(tmp_path) as node, UserAgent(node.settings("alice", ALICE_IP)) as alice:
            await alice.register()
            with pytest.raises(SipError) as offline:
                await alice.message("carol@example.com", "are you there?")
            return offline.value

    offline = run(scenario())
    assert isinstance(offline, SipError)
    assert offline.status == 480
    assert offline.warning is not None
    assert "carol@example.com is provisioned here but not registered" in offline.warning


def test_options_to_the_node_gets_200(tmp_path: Path) -> None:
    async def scenario() -> int:
        async with lab_node(tmp_path) as node, UserAgent(node.settings("alice", ALICE_IP)) as ua:
            return (await ua.options()).status

    assert run(scenario()) == 200


@pytest.mark.parametrize("transport", ["tcp", "tls"])
def test_a_session_im_carries_messages_both_ways_a_typing_notice_and_ends_with_bye(
    tmp_path: Path, transport: str
) -> None:
    async def scenario() -> dict[str, object]:
        trace, bob_trace = Trace(), Trace()
        async with alice_and_bob(tmp_path, transport, trace, bob_trace) as (alice, bob):
            await alice.register()
            await bob.register()
            session = await alice.invite_im("bob@example.com")
            invited = await bob.next_event(SessionStarted)
            to_bob = await session.message("in session")
            at_bob = await bob.next_event(MessageReceived)
            typing = await session.typing()
            typed = await bob.next_event(TypingReceived)
            to_alice = await invited.session.message("hi alice")
            at_alice = await alice.next_event(MessageReceived)
            bye = await session.bye()
            ended = await bob.next_event(SessionEnded)
        return {
            "invite": trace.sent_requests("INVITE")[0],
            "ack": trace.sent_requests("ACK")[0],
            "in-dialog": trace.sent_requests("MESSAGE")[0],
            "statuses": (to_bob.status, typing.status, to_alice.status, bye.status),
            "invited by": invited.sender,
            "at bob": (at_bob.text, at_bob.session is invited.session),
            "typed by": (typed.sender, typed.session is invited.session),
            "at alice": (at_alice.text, at_alice.session is session),
            "ended": (ended.sender, ended.session is invited.session, invited.session.ended),
            "acks at bob": [m for m in bob_trace.received if getattr(m, "method", "") == "ACK"],
        }

    result = run(scenario())
    assert isinstance(result, dict)
    assert b"m=message 5060 sip null" in result["invite"].body
    assert result["statuses"] == (200, 200, 200, 200)
    assert result["invited by"] == "alice@example.com"
    assert result["at bob"] == ("in session", True)
    assert result["typed by"] == ("alice@example.com", True)
    assert result["at alice"] == ("hi alice", True)
    assert result["ended"] == ("alice@example.com", True, True)
    # In-dialog requests go to bob's contact through the node's Record-Route (RFC 3261 §12).
    ack, message = result["ack"], result["in-dialog"]
    assert ack.uri.host == BOB_IP
    assert message.uri.host == BOB_IP
    assert ack.routes
    assert ack.routes[0].uri.host == (NODE_NAME if transport == "tls" else NODE_IP)
    assert message.headers.get_all("route") == ack.headers.get_all("route")
    assert len(result["acks at bob"]) == 1


def test_a_request_nobody_answers_fails_with_a_local_408(tmp_path: Path) -> None:
    async def scenario() -> SipError:
        async def swallow(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            while await reader.read(65536):
                pass
            writer.close()

        server = await asyncio.start_server(swallow, SILENT_IP, 0)
        port = server.sockets[0].getsockname()[1]
        settings = UaSettings("alice@example.com", (SILENT_IP, port), timeout=0.5)
        try:
            async with UserAgent(settings) as alice:
                with pytest.raises(SipError) as timed_out:
                    await alice.options()
        finally:
            server.close()
            await server.wait_closed()
        return timed_out.value

    timed_out = run(scenario())
    assert isinstance(timed_out, SipError)
    assert (timed_out.status, timed_out.warning) == (408, "no final response within 0.5 s")


def test_tls_to_a_node_whose_certificate_another_ca_signed_is_refused(tmp_path: Path) -> None:
    async def scenario() -> str:
        other_ca = tmp_path / "other-ca.pem"
        other_ca.write_bytes(ca_pem(make_ca("someone else's CA")))
        async with lab_node(tmp_path) as node:
            settings = node.settings("alice", ALICE_IP, "tls", ca_file=other_ca)
            with pytest.raises(UaError) as refused:
                await UserAgent(settings).connect()
        return str(refused.value)

    message = run(scenario())
    assert isinstance(message, str)
    assert "certificate is not trusted" in message
    assert "certificate verify failed" in message or "unable to get local issuer" in message


def test_a_407_to_a_message_is_answered_with_proxy_authorization(tmp_path: Path) -> None:
    async def scenario() -> tuple[int, list[int], str]:
        trace = Trace()
        async with alice_and_bob(tmp_path, trace=trace) as (alice, bob):
            await bob.register()
            # alice has not registered: the node challenges her MESSAGE (DESIGN §4).
            sent = await alice.message("bob@example.com", "hi")
            await bob.next_event(MessageReceived)
        statuses = [m.status for m in trace.received if isinstance(m, Response)]
        answer = trace.sent_requests("MESSAGE")[-1].headers.get("proxy-authorization") or ""
        return sent.status, statuses, answer

    status, statuses, answer = run(scenario())  # type: ignore[misc]
    assert status == 200
    assert statuses[0] == 407
    assert answer.startswith('Digest username="alice", realm="example.com"')


async def scripted_registrar(
    statuses: list[tuple[int, bool]], seen: list[Request]
) -> asyncio.Server:
    """A registrar on SILENT_IP that answers the n-th REGISTER with ``statuses[n]``
    (status, stale): 401s carry a SHA-256 challenge with a fresh nonce."""
    nonces = NonceIssuer(b"scripted registrar key")

    async def serve(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        framer = StreamFramer()
        while data := await reader.read(65536):
            framer.receive_data(data)
            while (frame := framer.next_frame()) is not None:
                request = parse_message(frame, stream=True)
                assert isinstance(request, Request)
                status, stale = statuses[len(seen)]
                seen.append(request)
                value = challenge("example.com", nonces.issue(len(seen)), "SHA-256", stale=stale)
                headers = [("WWW-Authenticate", value)] if status == 401 else []
                writer.write(make_response(request, status, headers=headers).to_bytes())
        writer.close()

    return await asyncio.start_server(serve, SILENT_IP, 0)


@pytest.mark.parametrize(
    ("statuses", "outcome"),
    [
        # A stale nonce is answered again with the new one (RFC 3261 §22.1)...
        ([(401, False), (401, True), (200, False)], 200),
        # ...but a second challenge that is not stale means the password is wrong.
        ([(401, False), (401, False)], 401),
    ],
)
def test_a_stale_challenge_is_answered_again_and_a_plain_one_is_not(
    statuses: list[tuple[int, bool]], outcome: int
) -> None:
    async def scenario() -> tuple[int, list[Request]]:
        seen: list[Request] = []
        server = await scripted_registrar(statuses, seen)
        port = server.sockets[0].getsockname()[1]
        settings = UaSettings("alice@example.com", (SILENT_IP, port), password="pw", timeout=2)
        try:
            async with UserAgent(settings) as alice:
                try:
                    status = (await alice.register()).status
                except SipError as exc:
                    status = exc.status
        finally:
            server.close()
            await server.wait_closed()
        return status, seen

    status, seen = asyncio.run(asyncio.wait_for(scenario(), 30))
    assert status == outcome
    assert len(seen) == len(statuses)
    nonces = [parse_credentials(r.headers.get("authorization") or "").nonce for r in seen[1:]]
    assert len(set(nonces)) == len(nonces)
    assert [r.cseq.number for r in seen] == sorted({r.cseq.number for r in seen})
    assert len({r.call_id for r in seen}) == 1


def test_a_client_told_to_reconnect_sends_again_what_a_closed_connection_left_unanswered() -> None:
    """The node closes the connection with a MESSAGE unread (a restart hands its
    listeners to a new process): the client connects again, registers its new contact in
    place of the old one, and the MESSAGE is answered over the new connection."""

    async def scenario() -> tuple[int, list[tuple[int, Request]]]:
        seen: list[tuple[int, Request]] = []
        connections = 0

        async def serve(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            nonlocal connections
            connections += 1
            framer, connection = StreamFramer(), connections
            while data := await reader.read(65536):
                framer.receive_data(data)
                while (frame := framer.next_frame()) is not None:
                    request = parse_message(frame, stream=True)
                    assert isinstance(request, Request)
                    seen.append((connection, request))
                    if connection == 1 and request.method == "MESSAGE":
                        writer.close()  # closed with the MESSAGE unanswered
                        return
                    writer.write(make_response(request, 200).to_bytes())
            writer.close()

        server = await asyncio.start_server(serve, SILENT_IP, 0)
        port = server.sockets[0].getsockname()[1]
        settings = UaSettings("alice@example.com", (SILENT_IP, port), timeout=5, reconnect=True)
        try:
            async with UserAgent(settings) as alice:
                await alice.register()
                status = (await alice.message("bob@example.com", "hello")).status
        finally:
            server.close()
            await server.wait_closed()
        return status, seen

    status, seen = asyncio.run(asyncio.wait_for(scenario(), 30))
    assert status == 200
    assert [(connection, r.method) for connection, r in seen] == [
        (1, "REGISTER"), (1, "MESSAGE"), (2, "MESSAGE"), (2, "REGISTER"),
    ]  # fmt: skip
    first, _, again, registered = (request for _, request in seen)
    assert again.top_via.branch == seen[1][1].top_via.branch  # the same transaction
    old, new = (first.headers.get("contact") or ""), registered.headers.get_all("contact")
    assert f"{old};expires=0" in ", ".join(new)
    assert not ", ".join(new).startswith(old)
