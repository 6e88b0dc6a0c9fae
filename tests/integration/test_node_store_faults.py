"""A node whose SQLite store fails for real (full, read-only): every request still gets one
answer (503 with Retry-After and the store's reason), memory stays as the store has it, the
log gets one line per burst, and housekeeping carries on."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import pytest

from intrafed.config.model import NodeIdentity, Role
from intrafed.node import Node, NodeSettings
from intrafed.sip import Request, Response, StreamFramer, parse_message
from intrafed.sip.pidf import PresenceState, build_pidf, parse_pidf
from intrafed.sip.responses import make_response
from intrafed.store import PublicationRow, StateChanges, Store, SubscriptionRow, create_store
from intrafed.transport import ListenerSpec
from tests.integration.clients import SipPeer, connect
from tests.store_faults import (
    cap_size,
    count_transactions,
    make_room,
    refuse_contact,
    set_read_only,
)

NODE_IP, CLIENT_IP, WATCHER_IP = "127.0.0.171", "127.0.0.172", "127.0.0.173"
ALICE = "alice@example.com"
USERS = 40
# Long contacts fill the database's pages after a few registrations.
PADDING = "p" * 600


def node_with_store(home: Path) -> tuple[Node, Store]:
    store = create_store(home, NodeIdentity(Role.OCS, "ocs1.example.com", NODE_IP))
    users = frozenset({ALICE, *(f"user{n}@example.com" for n in range(USERS))})
    settings = NodeSettings(
        name="ocs1.example.com",
        address=NODE_IP,
        listeners=(ListenerSpec(NODE_IP, "TCP", 0),),
        domains=frozenset({"example.com"}),
        users=users,
    )
    return Node(settings, state=store), store


def register(n: int, cseq: int, *, contact: bool = True) -> bytes:
    line = f"Contact: <sip:user{n}@{CLIENT_IP}:5070;x={PADDING}>\r\n" if contact else ""
    return (
        f"REGISTER sip:example.com SIP/2.0\r\n"
        f"Via: SIP/2.0/TCP {CLIENT_IP}:5070;branch=z9hG4bK-r{n}-{cseq}\r\nMax-Forwards: 70\r\n"
        f"From: <sip:user{n}@example.com>;tag=f{n}\r\nTo: <sip:user{n}@example.com>\r\n"
        f"Call-ID: reg{n}@{CLIENT_IP}\r\nCSeq: {cseq} REGISTER\r\n{line}Content-Length: 0\r\n\r\n"
    ).encode()


async def answers(reader: asyncio.StreamReader, count: int) -> list[Response]:
    """Up to ``count`` responses, until the connection closes or 10 s pass with none."""
    framer, found = StreamFramer(), list[Response]()
    while len(found) < count:
        try:
            data = await asyncio.wait_for(reader.read(65536), 10)
        except TimeoutError:
            break
        if not data:
            break
        framer.receive_data(data)
        while (frame := framer.next_frame()) is not None:
            response = parse_message(frame, stream=True)
            assert isinstance(response, Response)
            found.append(response)
    return found


def user_of(response: Response) -> int:
    return int(response.call_id.removeprefix("reg").partition("@")[0])


def test_a_register_the_full_store_refuses_gets_503_and_changes_nothing(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, "intrafed.state_writes")

    async def scenario() -> tuple[list[Response], list[Response], list[Response], set[str]]:
        node, store = node_with_store(tmp_path / "ocs1")
        address = (await node.start())["TCP"]
        opened: list[asyncio.StreamWriter] = []
        try:
            cap_size(store)
            client = await connect(address, CLIENT_IP, opened)
            client.writer.write(b"".join(register(n, 1) for n in range(USERS)))
            first = await answers(client.reader, USERS)
            refused = [user_of(r) for r in first if r.status == 503]
            # What the node answers for the refused users: no binding.
            client.writer.write(b"".join(register(n, 2, contact=False) for n in refused))
            queried = await answers(client.reader, len(refused))
            make_room(store)
            client.writer.write(b"".join(register(n, 3) for n in refused))
            retried = await answers(client.reader, len(refused))
            stored = {row.aor for row in store.load_bindings(time.time())}
            return first, queried, retried, stored
        finally:
            for writer in opened:
                writer.close()
            await node.stop(grace=0.5)
            store.close()

    first, queried, retried, stored = asyncio.run(asyncio.wait_for(scenario(), 60))
    # The ledger: every REGISTER got exactly one answer, on the same connection.
    assert sorted(user_of(r) for r in first) == list(range(USERS))
    statuses = {r.status for r in first}
    assert statuses == {200, 503}
    refused = [r for r in first if r.status == 503]
    assert 0 < len(refused) < USERS
    for response in refused:
        assert response.reason == "Store Unavailable"
        assert response.headers.get("retry-after") == "10"
        warning = response.headers.get("warning") or ""
        assert "the state store failed (database or disk is full)" in warning
        assert "the registration was not changed" in warning
        assert "intrafed.db" not in warning
    assert len(queried) == len(refused)
    assert all(r.status == 200 and r.headers.get_all("contact") == [] for r in queried)
    assert [r.status for r in retried] == [200] * len(refused)
    assert stored == {f"user{n}@example.com" for n in range(USERS)}
    # One line for the burst, one when the store works again: not one per request.
    lines = [r for r in caplog.records if r.name == "intrafed.state_writes"]
    assert [r.levelno for r in lines] == [logging.ERROR, logging.WARNING]
    database = tmp_path / "ocs1" / "intrafed.db"
    assert lines[0].getMessage() == (
        f"writing to the state store failed: {database} cannot be written "
        "(database or disk is full)"
    )
    assert (
        lines[1]
        .getMessage()
        .startswith(f"writing to the state store works again ({len(refused) - 1} more failures")
    )
    assert all(r.exc_info is None for r in caplog.records)


@asynccontextmanager
async def registering(home: Path) -> AsyncIterator[tuple[Store, SipPeer]]:
    """A node on a new store at ``home``, and a client connected to it."""
    node, store = node_with_store(home)
    address = (await node.start())["TCP"]
    opened: list[asyncio.StreamWriter] = []
    try:
        yield store, await connect(address, CLIENT_IP, opened)
    finally:
        for writer in opened:
            writer.close()
        await node.stop(grace=0.5)
        store.close()


def test_a_burst_of_registers_is_stored_in_a_few_transactions_not_one_per_request(
    tmp_path: Path,
) -> None:
    async def scenario() -> tuple[list[int], int, set[str]]:
        async with registering(tmp_path / "ocs1") as (store, client):
            begun = count_transactions(store)
            client.writer.write(b"".join(register(n, 1) for n in range(USERS)))
            statuses = [r.status for r in await answers(client.reader, USERS)]
            return statuses, len(begun), {row.aor for row in store.load_bindings(time.time())}

    statuses, transactions, stored = asyncio.run(asyncio.wait_for(scenario(), 30))
    assert statuses == [200] * USERS
    assert stored == {f"user{n}@example.com" for n in range(USERS)}
    # One transaction per turn of the event loop: the 40 requests arrive in a few reads.
    assert transactions <= USERS // 8


def test_a_register_the_store_refuses_fails_alone_and_the_rest_of_its_burst_is_stored(
    tmp_path: Path,
) -> None:
    async def scenario() -> tuple[list[Response], set[str]]:
        async with registering(tmp_path / "ocs1") as (store, client):
            refuse_contact(store, f"sip:user7@{CLIENT_IP}:5070;x={PADDING}")
            client.writer.write(b"".join(register(n, 1) for n in range(USERS)))
            found = await answers(client.reader, USERS)
            return found, {row.aor for row in store.load_bindings(time.time())}

    found, stored = asyncio.run(asyncio.wait_for(scenario(), 30))
    assert {user_of(r): r.status for r in found} == {
        n: 503 if n == 7 else 200 for n in range(USERS)
    }
    [refused] = [r for r in found if r.status == 503]
    assert "the state store failed (this contact is refused)" in (
        refused.headers.get("warning") or ""
    )
    assert stored == {f"user{n}@example.com" for n in range(USERS) if n != 7}


def publish(cseq: int, state: PresenceState | None, if_match: str | None = None) -> bytes:
    body = build_pidf(f"sip:{ALICE}", state) if state is not None else b""
    headers = [
        f"PUBLISH sip:{ALICE} SIP/2.0",
        f"Via: SIP/2.0/TCP {CLIENT_IP}:5070;branch=z9hG4bK-p{cseq}",
        "Max-Forwards: 70",
        f"From: <sip:{ALICE}>;tag=pa",
        f"To: <sip:{ALICE}>",
        f"Call-ID: pub@{CLIENT_IP}",
        f"CSeq: {cseq} PUBLISH",
        "Event: presence",
        "Expires: 600",
    ]
    if if_match is not None:
        headers.append(f"SIP-If-Match: {if_match}")
    if body:
        headers.append("Content-Type: application/pidf+xml")
    headers.append(f"Content-Length: {len(body)}")
    return ("\r\n".join(headers) + "\r\n\r\n").encode() + body


def test_a_publish_the_read_only_store_refuses_gets_503_and_the_state_stays(
    tmp_path: Path,
) -> None:
    async def scenario() -> tuple[list[int], str, PresenceState, list[str], list[str]]:
        node, store = node_with_store(tmp_path / "ocs1")
        address = (await node.start())["TCP"]
        opened: list[asyncio.StreamWriter] = []
        try:
            client = await connect(address, CLIENT_IP, opened)
            client.writer.write(publish(1, PresenceState.BUSY))
            [busy] = await answers(client.reader, 1)
            etag = busy.headers.get("sip-etag")
            set_read_only(store, True)
            client.writer.write(publish(2, PresenceState.AWAY, etag))
            [refused] = await answers(client.reader, 1)
            shown = node.presence.state_of(ALICE, time.time())
            set_read_only(store, False)
            # The entity tag the refused PUBLISH would have replaced is still the one.
            client.writer.write(publish(3, None, etag))
            [refreshed] = await answers(client.reader, 1)
            stored = [row.etag for row in store.load_publications(time.time())]
            return (
                [busy.status, refused.status, refreshed.status],
                refused.headers.get("warning") or "",
                shown,
                stored,
                [etag or "", refreshed.headers.get("sip-etag") or ""],
            )
        finally:
            for writer in opened:
                writer.close()
            await node.stop(grace=0.5)
            store.close()

    statuses, warning, shown, stored, etags = asyncio.run(asyncio.wait_for(scenario(), 30))
    assert statuses == [200, 503, 200]
    assert "(attempt to write a readonly database)" in warning
    assert "the subscription or publication was not changed" in warning
    assert shown is PresenceState.BUSY
    assert stored == [etags[1]]


class Watcher:
    """A watcher's user agent: answers NOTIFYs 200 and queues what each one showed."""

    def __init__(self) -> None:
        self.shown: asyncio.Queue[PresenceState] = asyncio.Queue()

    async def serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        framer = StreamFramer()
        while data := await reader.read(65536):
            framer.receive_data(data)
            while (frame := framer.next_frame()) is not None:
                request = parse_message(frame, stream=True)
                assert isinstance(request, Request)
                writer.write(make_response(request, 200, to_tag="w").to_bytes())
                self.shown.put_nowait(parse_pidf(request.body).state)
        writer.close()

    async def next(self) -> PresenceState:
        return await asyncio.wait_for(self.shown.get(), 10)


def test_housekeeping_survives_a_store_error_and_still_expires_publications(
    tmp_path: Path,
) -> None:
    async def scenario() -> tuple[list[PresenceState], list[PublicationRow], bool]:
        watcher = Watcher()
        server = await asyncio.start_server(watcher.serve, WATCHER_IP, 0)
        port = server.sockets[0].getsockname()[1]
        node, store = node_with_store(tmp_path / "ocs1")
        now = time.time()
        watched = watched_by_bob(f"sip:bob@{WATCHER_IP}:{port};transport=tcp", now)
        busy = PublicationRow("busy", ALICE, PresenceState.BUSY.value, None, now, now + 1.5)
        away = PublicationRow("away", ALICE, PresenceState.AWAY.value, None, now - 9, now + 3.5)
        store.write(StateChanges(saved_subscriptions=(watched,), saved_publications=(busy, away)))
        await node.start()
        try:
            shown = [await watcher.next()]
            # Busy expires while the store refuses every write, then Away once it is back.
            set_read_only(store, True)
            shown.append(await watcher.next())
            set_read_only(store, False)
            shown.append(await watcher.next())
            for _ in range(30):  # the failed delete is written at a later round
                if not store.load_publications(0.0):
                    break
                await asyncio.sleep(0.1)
            # The node still wakes for what is left (the subscription's expiry).
            alive = node.core.get_timer() is not None
            return shown, store.load_publications(0.0), alive
        finally:
            await node.stop(grace=0.5)
            server.close()
            store.close()

    shown, stored, alive = asyncio.run(asyncio.wait_for(scenario(), 30))
    assert shown == [PresenceState.BUSY, PresenceState.AWAY, PresenceState.OFFLINE]
    assert stored == []
    assert alive


def watched_by_bob(target: str, now: float) -> SubscriptionRow:
    return SubscriptionRow(
        id="s1",
        presentity=ALICE,
        watcher="bob@example.com",
        event="presence",
        call_id="sub@watcher",
        local_tag="n1",
        remote_tag="w1",
        local_party=f"<sip:{ALICE}>",
        remote_party="<sip:bob@example.com>;tag=w1",
        remote_target=target,
        route_set="",
        local_contact=f"sip:alice@{NODE_IP}:5060;transport=tcp",
        expires_at=now + 3600,
        local_cseq=1,
        remote_cseq=1,
    )
