"""Losing the database under a node whose store is PostgreSQL: requests that must write get
503 with Retry-After within a second while it is down, frozen or locked, never a hang and
never a 2xx without a commit; relayed MESSAGEs keep flowing meanwhile (the writes run off
the event loop); the node connects again by itself."""

from __future__ import annotations

import asyncio
import dataclasses
import json
import time
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest

from intrafed.config.model import Connection, NodeIdentity, Role, StaticRoute, User
from intrafed.node import Node
from intrafed.sip import Response, StreamFramer, parse_message
from intrafed.store import Store, create_store, open_store
from tests.integration.peers import free_port
from tests.integration.test_service_restart import intrafed
from tests.integration.uas import answer_200
from tests.store.postgres import Database
from tests.store.private_cluster import PrivateServer, private_server

NODE_IP, UAS_IP, CLIENT_IP, DATABASE_IP = "127.0.25.1", "127.0.25.2", "127.0.25.3", "127.0.25.10"
USERS = 400


def make_home(home: Path, url: str, uas_port: int) -> None:
    identity = NodeIdentity(Role.OCS, "ocs1.example.com", NODE_IP)
    with create_store(home, identity, url) as store:
        store.stage(
            lambda config: dataclasses.replace(
                config,
                domains=("example.com",),
                connections=(Connection("TCP", free_port(NODE_IP), NODE_IP),),
                routes=(StaticRoute("example.com", "TCP", uas_port, ip=UAS_IP),),
                users=tuple(User(f"u{n}@example.com") for n in range(USERS)),
            )
        )
        store.promote()


def register(n: int) -> bytes:
    return (
        f"REGISTER sip:example.com SIP/2.0\r\n"
        f"Via: SIP/2.0/TCP {CLIENT_IP}:5070;branch=z9hG4bK-r{n}\r\nMax-Forwards: 70\r\n"
        f"From: <sip:u{n}@example.com>;tag=r{n}\r\nTo: <sip:u{n}@example.com>\r\n"
        f"Call-ID: register-{n}@{CLIENT_IP}\r\nCSeq: 1 REGISTER\r\n"
        f"Contact: <sip:u{n}@{CLIENT_IP}:6000>\r\nContent-Length: 0\r\n\r\n"
    ).encode()


def message(n: int) -> bytes:
    return (
        f"MESSAGE sip:bob@example.com SIP/2.0\r\n"
        f"Via: SIP/2.0/TCP {CLIENT_IP}:5070;branch=z9hG4bK-m{n}\r\nMax-Forwards: 70\r\n"
        f"From: <sip:u0@example.com>;tag=m{n}\r\nTo: <sip:bob@example.com>\r\n"
        f"Call-ID: message-{n}@{CLIENT_IP}\r\nCSeq: 1 MESSAGE\r\nContent-Length: 2\r\n\r\nhi"
    ).encode()


Answer = tuple[Response, float]


class Client:
    """One TCP client of the node that sends REGISTERs and MESSAGEs and times each answer
    (keyed by the Call-ID: ``register-N`` or ``message-N``)."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.writer = writer
        self.sent: dict[str, float] = {}
        self.answers: dict[str, tuple[Response, float]] = {}
        self._arrived: asyncio.Event = asyncio.Event()
        self._receiving = asyncio.create_task(self._receive(reader))

    def send(self, key: str, data: bytes) -> None:
        self.sent[key] = time.monotonic()
        self.writer.write(data)

    async def answer(self, key: str, timeout: float = 10.0) -> tuple[Response, float]:
        """The final answer to ``key`` and how long it took."""
        async with asyncio.timeout(timeout):
            while key not in self.answers:
                self._arrived.clear()
                await self._arrived.wait()
        return self.answers[key]

    async def _receive(self, reader: asyncio.StreamReader) -> None:
        framer = StreamFramer()
        while data := await reader.read(65536):
            framer.receive_data(data)
            while (frame := framer.next_frame()) is not None:
                response = parse_message(frame, stream=True)
                assert isinstance(response, Response)
                if response.status >= 200:
                    key = response.call_id.split("@")[0]
                    self.answers[key] = (response, time.monotonic() - self.sent[key])
                    self._arrived.set()

    def close(self) -> None:
        self._receiving.cancel()
        self.writer.close()


class Running:
    """The node of a home on its own store, a UAS behind its static route, one client."""

    def __init__(self, home: Path, url: str) -> None:
        self.home, self.url = home, url

    async def __aenter__(self) -> Running:
        self.uas = await asyncio.start_server(answer_200, UAS_IP, 0)
        make_home(self.home, self.url, self.uas.sockets[0].getsockname()[1])
        self.store: Store = open_store(self.home)
        self.node = Node.from_home(self.home, self.store)
        address = (await self.node.start())["TCP"]
        self.client = Client(*await asyncio.open_connection(*address, local_addr=(CLIENT_IP, 0)))
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        self.client.close()
        await self.node.stop(grace=0.5)
        self.store.close()
        self.uas.close()


def stored_users(url: str) -> set[int]:
    with psycopg.connect(url, autocommit=True) as connection:
        rows = connection.execute("SELECT aor FROM bindings").fetchall()
    return {int(str(aor).split("@")[0][1:]) for (aor,) in rows}


def test_a_message_relayed_while_a_register_waits_on_a_locked_table_is_answered_at_once(
    postgres: Database, tmp_path: Path
) -> None:
    async def scenario() -> tuple[Answer, Answer, Answer, int]:
        async with Running(tmp_path / "ocs1", postgres.url) as running:
            client = running.client
            client.send("register-0", register(0))
            assert (await client.answer("register-0"))[0].status == 200
            with psycopg.connect(postgres.url) as locker:
                locker.execute("LOCK TABLE bindings IN ACCESS EXCLUSIVE MODE")
                client.send("register-1", register(1))
                await asyncio.sleep(0.1)  # the write is in flight, waiting for the lock
                assert running.node.state_writer is not None
                assert running.node.state_writer.writing
                client.send("message-0", message(0))
                client.send("register-3", register(3))  # waits behind the write in flight
                relayed = await client.answer("message-0")
                refused = await client.answer("register-1")
                queued = await client.answer("register-3")
            client.send("register-2", register(2))
            stored = await client.answer("register-2")
            return relayed, refused, queued, stored[0].status

    (relayed, relayed_in), (refused, refused_in), queued, stored = asyncio.run(
        asyncio.wait_for(scenario(), 60)
    )
    # Refused with the write it waited for, not after a write of its own.
    assert (queued[0].status, queued[0].headers.get("retry-after")) == (503, "10")
    assert queued[1] < refused_in
    assert relayed.status == 200
    assert relayed_in < 0.2  # not after the write's 0.8 s
    assert (refused.status, refused.reason) == (503, "Store Unavailable")
    assert refused.headers.get("retry-after") == "10"
    assert "canceling statement due to statement timeout" in (refused.headers.get("warning") or "")
    assert refused_in < 1.0
    assert stored == 200
    assert stored_users(postgres.url) == {0, 2}


@pytest.fixture
def server() -> Iterator[PrivateServer]:
    with private_server(DATABASE_IP, free_port(DATABASE_IP)) as server:
        yield server


def test_a_register_while_postgresql_is_frozen_gets_503_within_a_second_and_messages_flow(
    server: PrivateServer, tmp_path: Path
) -> None:
    async def scenario() -> tuple[list[float], tuple[Response, float], list[int]]:
        async with Running(tmp_path / "ocs1", server.url) as running:
            client = running.client
            with server.frozen():
                client.send("register-1", register(1))
                relayed = []
                for n in range(5):
                    client.send(f"message-{n}", message(n))
                    answer, took = await client.answer(f"message-{n}")
                    assert answer.status == 200
                    relayed.append(took)
                    await asyncio.sleep(0.1)
                refused = await client.answer("register-1")
            statuses = []
            for n in range(2, 100):  # the node connects again by itself
                client.send(f"register-{n}", register(n))
                statuses.append((await client.answer(f"register-{n}"))[0].status)
                if statuses[-1] == 200:
                    break
                await asyncio.sleep(0.1)
            return relayed, refused, statuses

    relayed, (refused, refused_in), statuses = asyncio.run(asyncio.wait_for(scenario(), 60))
    assert max(relayed) < 0.2
    assert (refused.status, refused.reason) == (503, "Store Unavailable")
    assert refused.headers.get("retry-after") == "10"
    assert "did not answer within 0.9 s" in (refused.headers.get("warning") or "")
    assert refused_in < 1.0
    assert statuses[-1] == 200
    assert set(statuses[:-1]) <= {503}
    stored = stored_users(server.url)
    assert 1 not in stored
    assert 1 + len(statuses) in stored


def test_stopping_and_restarting_postgresql_under_load_refuses_only_writes_and_recovers(
    server: PrivateServer, tmp_path: Path
) -> None:
    async def scenario() -> Client:
        async with Running(tmp_path / "ocs1", server.url) as running:
            client = running.client
            loop = asyncio.get_running_loop()
            began = loop.time()

            async def stop_then_start() -> None:
                await asyncio.sleep(1.5)
                await asyncio.to_thread(server.stop)
                await asyncio.sleep(2.0)
                await asyncio.to_thread(server.start)

            outage = asyncio.create_task(stop_then_start())
            n = 0
            while loop.time() - began < 7.0 and n < 350:  # 50 MESSAGE/s, 10 REGISTER/s
                client.send(f"message-{n}", message(n))
                if n % 5 == 0:
                    client.send(f"register-{n // 5}", register(n // 5))
                n += 1
                await asyncio.sleep(0.02)
            await outage
            for key in list(client.sent):
                await client.answer(key)
            return client

    client = asyncio.run(asyncio.wait_for(scenario(), 90))
    messages = {k: v for k, v in client.answers.items() if k.startswith("message-")}
    registers = {k: v for k, v in client.answers.items() if k.startswith("register-")}
    assert {answer.status for answer, _ in messages.values()} == {200}
    assert max(took for _, took in messages.values()) < 0.5
    statuses = [registers[f"register-{n}"][0].status for n in range(len(registers))]
    assert set(statuses) == {200, 503}
    assert statuses[-5:] == [200] * 5  # recovered by itself
    for answer, took in registers.values():
        assert took < 1.2
        if answer.status == 503:
            assert answer.headers.get("retry-after") == "10"
    # Every 2xx was committed, and nothing refused was stored.
    assert stored_users(server.url) == {n for n, status in enumerate(statuses) if status == 200}


def test_a_node_started_while_postgresql_is_down_comes_up_degraded_and_becomes_ready(
    server: PrivateServer, tmp_path: Path
) -> None:
    home = tmp_path / "ocs1"

    async def scenario() -> tuple[list[str], list[int], str, list[int]]:
        uas = await asyncio.start_server(answer_200, UAS_IP, 0)
        make_home(home, server.url, uas.sockets[0].getsockname()[1])
        shown: list[str] = []
        try:
            for command in (("start",), ("stop",)):  # the node remembers what it ran
                done = await asyncio.to_thread(intrafed, "service", *command, "--home", str(home))
                assert done.returncode == 0, done.stderr
            await asyncio.to_thread(server.stop)
            started = await asyncio.to_thread(intrafed, "service", "start", "--home", str(home))
            assert started.returncode == 0, started.stderr
            shown.append(started.stdout)
            status = await asyncio.to_thread(intrafed, "service", "status", "--home", str(home))
            assert status.returncode == 0, status.stderr
            shown.append(status.stdout)
            address = tuple(json.loads((home / "status.json").read_text())["listeners"]["TCP"])
            reader, writer = await asyncio.open_connection(*address, local_addr=(CLIENT_IP, 0))
            client = Client(reader, writer)
            client.send("message-0", message(0))
            client.send("register-0", register(0))
            down = [(await client.answer(key))[0].status for key in ("message-0", "register-0")]
            await asyncio.to_thread(server.start)
            for _ in range(50):  # ready by itself once the database answers
                status = await asyncio.to_thread(intrafed, "service", "status", "--home", str(home))
                if status.stdout.startswith("running"):
                    break
                await asyncio.sleep(0.2)
            client.send("register-1", register(1))
            client.send("message-1", message(1))
            up = [(await client.answer(key))[0].status for key in ("register-1", "message-1")]
            client.close()
            return shown, down, status.stdout, up
        finally:
            await asyncio.to_thread(intrafed, "service", "stop", "--home", str(home))
            uas.close()

    shown, down, after, up = asyncio.run(asyncio.wait_for(scenario(), 90))
    assert "; degraded: PostgreSQL at postgresql://postgres@" in shown[0]
    assert shown[1].startswith("degraded (pid ")
    assert "not connected: " in shown[1]
    assert down == [200, 503]  # the MESSAGE relayed, the REGISTER refused
    assert after.startswith("running (pid ")
    assert up == [200, 200]
    assert stored_users(server.url) == {1}
