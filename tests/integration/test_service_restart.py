"""``intrafed service`` on a real background node: start, status, reload, and a restart
under a MESSAGE stream where every MESSAGE still gets a final response."""

from __future__ import annotations

import asyncio
import dataclasses
import json
from pathlib import Path

from intrafed.config.model import Connection, NodeIdentity, Role, StaticRoute, User
from intrafed.sip import StreamFramer, parse_message
from intrafed.store import create_store, open_store
from tests.homes import intrafed_process as intrafed
from tests.integration.peers import free_port
from tests.integration.uas import answer_200

NODE_IP, UAS_IP, CLIENT_IP = "127.0.0.12", "127.0.0.13", "127.0.0.14"
# The stream comes from two addresses: one client alone would meet the client rate limit.
SENDER_IPS = ("127.0.0.14", "127.0.0.15")
USERS = 20
REGISTER = (
    "REGISTER sip:example.com SIP/2.0\r\n"
    "Via: SIP/2.0/TCP {ip}:5070;branch=z9hG4bK-reg-{n}-{cseq}\r\n"
    "Max-Forwards: 70\r\nFrom: <sip:user{n}@example.com>;tag=r{n}\r\n"
    "To: <sip:user{n}@example.com>\r\nCall-ID: reg-{n}@{ip}\r\nCSeq: {cseq} REGISTER\r\n"
    "{contact}Content-Length: 0\r\n\r\n"
)


async def register_all(node: tuple[str, int], cseq: int, contact: bool) -> dict[int, list[str]]:
    """REGISTER (or, without ``contact``, query) every user; their Contact values by user."""
    reader, writer = await asyncio.open_connection(*node, local_addr=(CLIENT_IP, 0))
    framer, found = StreamFramer(), {}
    for n in range(USERS):
        line = f"Contact: <sip:user{n}@{CLIENT_IP}:{6000 + n}>\r\n" if contact else ""
        writer.write(REGISTER.format(ip=CLIENT_IP, n=n, cseq=cseq, contact=line).encode())
    while len(found) < USERS:
        framer.receive_data(await asyncio.wait_for(reader.read(65536), 10))
        while (frame := framer.next_frame()) is not None:
            response = parse_message(frame, stream=True)
            assert response.status == 200  # type: ignore[union-attr]
            user = int(response.call_id.split("-")[1].split("@")[0])
            found[user] = response.headers.get_all("contact")
    writer.close()
    return found


def make_home(home: Path, node_port: int, uas_port: int) -> None:
    store = create_store(home, NodeIdentity(Role.OCS, "ocs1.example.com", NODE_IP))
    store.stage(
        lambda config: dataclasses.replace(
            config,
            domains=("example.com",),
            connections=(Connection("TCP", node_port, NODE_IP),),
            routes=(StaticRoute("example.com", "TCP", uas_port, ip=UAS_IP),),
            users=tuple(User(f"user{n}@example.com") for n in range(USERS)),
        )
    )
    store.close()


MESSAGE = (
    "MESSAGE sip:bob@example.com SIP/2.0\r\n"
    "Via: SIP/2.0/TCP {ip}:5070;branch=z9hG4bK-{n}-{attempt}\r\n"
    "Max-Forwards: 70\r\nFrom: <sip:user0@example.com>;tag=a{n}\r\n"
    "To: <sip:bob@example.com>\r\n"
    "Call-ID: restart-{n}@{ip}\r\nCSeq: 1 MESSAGE\r\nContent-Length: 2\r\n\r\nhi"
)


class RetryingClient:
    """Sends MESSAGEs at a steady rate over one TCP connection; when the connection is
    lost it reconnects (as a real client does) and sends every unanswered MESSAGE again."""

    def __init__(self, node: tuple[str, int], source: str, total: int, rate: float) -> None:
        self.node, self.source, self.total, self.interval = node, source, total, 1 / rate
        self.finals: dict[int, int] = {}
        self.sent = 0
        self.resent = 0
        self.reconnects = 0

    async def run(self, deadline: float) -> None:
        loop = asyncio.get_running_loop()
        while len(self.finals) < self.total and loop.time() < deadline:
            try:
                reader, writer = await asyncio.open_connection(
                    *self.node, local_addr=(self.source, 0)
                )
            except OSError:
                await asyncio.sleep(0.05)
                continue
            pending = [n for n in range(self.sent) if n not in self.finals]
            for n in pending:
                writer.write(MESSAGE.format(ip=self.source, n=n, attempt=self.reconnects).encode())
            self.resent += len(pending)
            receiver = asyncio.create_task(self._receive(reader))
            try:
                while self.sent < self.total and not receiver.done():
                    writer.write(MESSAGE.format(ip=self.source, n=self.sent, attempt=0).encode())
                    self.sent += 1
                    await asyncio.sleep(self.interval)
                await asyncio.wait_for(asyncio.shield(receiver), max(0.1, deadline - loop.time()))
            except (ConnectionError, TimeoutError):
                pass
            finally:
                receiver.cancel()
                writer.close()
            self.reconnects += 1

    async def _receive(self, reader: asyncio.StreamReader) -> None:
        framer = StreamFramer()
        while len(self.finals) < self.total:
            data = await reader.read(65536)
            if not data:
                return
            framer.receive_data(data)
            while (frame := framer.next_frame()) is not None:
                response = parse_message(frame, stream=True)
                n = int(response.call_id.split("-")[1].split("@")[0])
                self.finals[n] = response.status  # type: ignore[union-attr]


def test_restart_under_load_loses_no_registration_and_answers_every_message(
    tmp_path: Path,
) -> None:
    registered: dict[int, list[str]] = {}
    after: dict[int, list[str]] = {}

    async def scenario() -> list[RetryingClient]:
        uas = await asyncio.start_server(answer_200, UAS_IP, 0)
        node_port = free_port(NODE_IP)
        home = tmp_path / "ocs1"
        make_home(home, node_port, uas.sockets[0].getsockname()[1])
        started = await asyncio.to_thread(intrafed, "service", "start", "--home", str(home))
        assert started.returncode == 0, started.stderr
        registered.update(await register_all((NODE_IP, node_port), cseq=1, contact=True))
        clients = [
            RetryingClient((NODE_IP, node_port), source, total=750, rate=150)
            for source in SENDER_IPS
        ]
        loop = asyncio.get_running_loop()
        traffic = asyncio.gather(*(client.run(loop.time() + 40) for client in clients))
        try:
            await asyncio.sleep(2)
            restarted = await asyncio.to_thread(intrafed, "service", "restart", "--home", str(home))
            assert restarted.returncode == 0, restarted.stderr
            await traffic
            after.update(await register_all((NODE_IP, node_port), cseq=2, contact=False))
        finally:
            await asyncio.to_thread(intrafed, "service", "stop", "--home", str(home))
            uas.close()
        return clients

    for client in asyncio.run(scenario()):
        assert client.sent == 750
        assert len(client.finals) == 750
        assert set(client.finals.values()) == {200}
        assert client.reconnects >= 1
    assert sorted(registered) == list(range(USERS))
    for n in range(USERS):
        assert registered[n][0].startswith(f"<sip:user{n}@{CLIENT_IP}:{6000 + n}>;expires=")
        assert after[n][0].startswith(f"<sip:user{n}@{CLIENT_IP}:{6000 + n}>;expires=")


def test_status_shows_the_pending_change_and_reload_applies_it(tmp_path: Path) -> None:
    home = tmp_path / "ocs1"
    make_home(home, free_port(NODE_IP), 5060)
    assert intrafed("service", "start", "--home", str(home)).returncode == 0
    try:
        store = open_store(home)
        store.stage(
            lambda config: dataclasses.replace(
                config, routes=(StaticRoute("example.com", "TCP", 5070, ip=UAS_IP),)
            )
        )
        status = json.loads(intrafed("service", "status", "--home", str(home), "--json").stdout)
        assert status["running"] is True
        assert status["restart_pending"] is True
        assert status["pending_changes"] == ["routes: changed example.com"]
        reloaded = intrafed("service", "reload", "--home", str(home))
        assert (reloaded.returncode, reloaded.stdout) == (0, "reloaded\n")
        status = json.loads(intrafed("service", "status", "--home", str(home), "--json").stdout)
        assert status["restart_pending"] is False
        store.stage(
            lambda config: dataclasses.replace(
                config,
                connections=(*config.connections, Connection("TCP", free_port(NODE_IP), NODE_IP)),
            )
        )
        refused = intrafed("service", "reload", "--home", str(home))
        assert refused.returncode == 1
        assert "use intrafed service restart" in refused.stderr
    finally:
        stopped = intrafed("service", "stop", "--home", str(home))
    assert stopped.returncode == 0
    shown = intrafed("service", "status", "--home", str(home))
    assert (shown.returncode, shown.stdout.splitlines()[0]) == (3, "stopped")
