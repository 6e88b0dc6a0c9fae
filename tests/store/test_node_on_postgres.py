"""A real node whose home's store is PostgreSQL: a registration survives a restart, and
while PostgreSQL is stopped a REGISTER gets 503 Store Unavailable within a second, never a
hang; once it is back the node stores registrations again by itself."""

from __future__ import annotations

import asyncio
import dataclasses
import time
from pathlib import Path

from intrafed.config.model import Connection, NodeIdentity, Role, User
from intrafed.node import Node
from intrafed.sip import Response
from intrafed.store import Store, create_store, open_store
from tests.integration.clients import connect
from tests.integration.peers import free_port
from tests.store.postgres import Database

NODE_IP, CLIENT_IP = "127.0.0.181", "127.0.0.182"
ALICE = "alice@example.com"
CONTACT = f"<sip:alice@{CLIENT_IP}:6000>"


def make_home(home: Path, url: str) -> None:
    identity = NodeIdentity(Role.OCS, "ocs1.example.com", NODE_IP)
    with create_store(home, identity, url) as store:
        store.stage(
            lambda config: dataclasses.replace(
                config,
                domains=("example.com",),
                connections=(Connection("TCP", free_port(NODE_IP), NODE_IP),),
                users=(User(ALICE),),
            )
        )
        store.promote()


def register(cseq: int, contact: bool = True) -> bytes:
    line = f"Contact: {CONTACT}\r\n" if contact else ""
    return (
        f"REGISTER sip:example.com SIP/2.0\r\n"
        f"Via: SIP/2.0/TCP {CLIENT_IP}:5070;branch=z9hG4bK-r{cseq}\r\nMax-Forwards: 70\r\n"
        f"From: <sip:{ALICE}>;tag=a\r\nTo: <sip:{ALICE}>\r\n"
        f"Call-ID: reg@{CLIENT_IP}\r\nCSeq: {cseq} REGISTER\r\n{line}Content-Length: 0\r\n\r\n"
    ).encode()


class Running:
    """The node of a home, started on its own store; ``ask`` sends one REGISTER over one
    client connection and returns the answer and how long it took."""

    def __init__(self, home: Path) -> None:
        self.store: Store = open_store(home)
        self.node = Node.from_home(home, self.store)
        self.opened: list[asyncio.StreamWriter] = []
        self.cseq = 0

    async def __aenter__(self) -> Running:
        address = (await self.node.start())["TCP"]
        self.client = await connect(address, CLIENT_IP, self.opened)
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        for writer in self.opened:
            writer.close()
        await self.node.stop(grace=0.5)
        self.store.close()

    async def ask(self, contact: bool = True) -> tuple[Response, float]:
        self.cseq += 1
        began = time.monotonic()
        self.client.writer.write(register(self.cseq, contact))
        answer = await self.client.next()
        assert isinstance(answer, Response)
        return answer, time.monotonic() - began


def test_a_registration_stored_in_postgresql_survives_a_restart_of_the_node(
    postgres: Database, tmp_path: Path
) -> None:
    make_home(tmp_path / "ocs1", postgres.url)

    async def scenario() -> tuple[int, Response]:
        async with Running(tmp_path / "ocs1") as first:
            registered, _ = await first.ask()
        async with Running(tmp_path / "ocs1") as second:
            queried, _ = await second.ask(contact=False)
        return registered.status, queried

    registered, queried = asyncio.run(asyncio.wait_for(scenario(), 60))
    assert registered == 200
    assert queried.status == 200
    [contact] = queried.headers.get_all("contact")
    assert contact.startswith(CONTACT)


def test_a_register_while_postgresql_is_stopped_gets_503_within_a_second_and_the_node_recovers(
    postgres: Database, tmp_path: Path
) -> None:
    make_home(tmp_path / "ocs1", postgres.url)

    async def scenario() -> tuple[int, Response, float, list[int], list[str]]:
        async with Running(tmp_path / "ocs1") as running:
            before, _ = await running.ask()
            await asyncio.to_thread(postgres.cluster.stop)
            try:
                refused, took = await running.ask()
            finally:
                await asyncio.to_thread(postgres.cluster.start)
            # The node connects again by itself: a REGISTER a little later is stored.
            statuses = []
            for _ in range(100):
                answer, _ = await running.ask()
                statuses.append(answer.status)
                if answer.status == 200:
                    break
                await asyncio.sleep(0.05)
            stored = [row.contact for row in running.store.load_bindings(time.time())]
        return before.status, refused, took, statuses, stored

    before, refused, took, statuses, stored = asyncio.run(asyncio.wait_for(scenario(), 90))
    assert before == 200
    assert (refused.status, refused.reason) == (503, "Store Unavailable")
    assert took < 2.0
    assert refused.headers.get("retry-after") == "10"
    warning = refused.headers.get("warning") or ""
    assert "the state store failed (terminating connection due to administrator command)" in (
        warning
    )
    assert "the registration was not changed" in warning
    assert postgres.password not in warning
    assert f":{postgres.cluster.port}" not in warning
    assert statuses[-1] == 200
    assert set(statuses[:-1]) <= {503}
    assert stored == [CONTACT.strip("<>")]
