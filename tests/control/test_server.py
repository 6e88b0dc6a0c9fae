"""The control socket over a real Unix socket: served to the node's user, bounded, and
gone when the node stops."""

from __future__ import annotations

import asyncio
import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from intrafed.control.client import NodeNotRunningError, ask
from intrafed.control.protocol import ControlError, Refused
from intrafed.control.server import ControlServer, socket_path
from tests.control.test_protocol import FakeNode


def test_the_cli_side_reaches_a_running_node_and_gets_typed_answers(tmp_path: Path) -> None:
    async def scenario() -> tuple[object, object, int]:
        server = ControlServer(tmp_path, FakeNode(refuse_reload=True))
        assert await server.start()
        try:
            mode = socket_path(tmp_path).stat().st_mode & 0o777
            status = await asyncio.to_thread(ask, tmp_path, "status")
            reload = await asyncio.to_thread(ask, tmp_path, "reload")
        finally:
            await server.close()
        return status, reload, mode

    status, reload, mode = asyncio.run(scenario())
    assert status == {"name": "imp1.example.com", "registrations": 1}
    assert reload == Refused("listeners changed", "intrafed service restart --home imp1")
    assert mode == 0o600
    assert not socket_path(tmp_path).exists()


def test_asking_a_home_with_no_running_node_says_how_to_start_it(tmp_path: Path) -> None:
    with pytest.raises(NodeNotRunningError, match="intrafed service start --home"):
        ask(tmp_path, "status")


def test_a_socket_left_by_a_dead_node_is_replaced(tmp_path: Path) -> None:
    stale = socket.socket(socket.AF_UNIX)
    stale.bind(str(socket_path(tmp_path)))
    stale.close()
    with pytest.raises(NodeNotRunningError):
        ask(tmp_path, "status")

    async def scenario() -> object:
        server = ControlServer(tmp_path, FakeNode())
        assert await server.start()
        try:
            return await asyncio.to_thread(ask, tmp_path, "status")
        finally:
            await server.close()

    assert asyncio.run(scenario()) == {"name": "imp1.example.com", "registrations": 1}


def test_an_oversized_or_silent_request_does_not_hold_the_server(tmp_path: Path) -> None:
    async def scenario() -> tuple[bytes, object]:
        server = ControlServer(tmp_path, FakeNode())
        assert await server.start()
        try:
            reader, writer = await asyncio.open_unix_connection(str(socket_path(tmp_path)))
            writer.write(b"{" * 70_000)
            oversized = await reader.read()
            writer.close()
            # A client that connects and says nothing does not block the next one.
            _idle = await asyncio.open_unix_connection(str(socket_path(tmp_path)))
            status = await asyncio.to_thread(ask, tmp_path, "status")
            _idle[1].close()
        finally:
            await server.close()
        return oversized, status

    oversized, status = asyncio.run(scenario())
    assert b"request longer than" in oversized
    assert status == {"name": "imp1.example.com", "registrations": 1}


def test_a_home_path_too_long_for_a_unix_socket_leaves_the_node_running(tmp_path: Path) -> None:
    deep = tmp_path / ("d" * 120)
    deep.mkdir()

    async def scenario() -> bool:
        server = ControlServer(deep, FakeNode())
        started = await server.start()
        await server.close()
        return started

    assert asyncio.run(scenario()) is False
    with pytest.raises(ControlError):
        ask(deep, "status")


# Opens the home first, then becomes nobody, so that only the socket's own mode decides.
CONNECT_AS_OTHER_USER = """
import os, socket, sys
home = os.open(sys.argv[1], os.O_PATH)
os.setgid(65534)
os.setuid(65534)
sock = socket.socket(socket.AF_UNIX)
sock.connect(f"/proc/self/fd/{home}/control.sock")
try:
    sock.sendall(b'{"op": "status"}\\n')
    print("answered" if sock.recv(1000) else "closed")
except OSError:
    print("closed")
"""


@pytest.mark.skipif(os.geteuid() != 0, reason="switching users needs root")
def test_another_user_is_not_served_even_when_the_socket_is_opened_to_it(tmp_path: Path) -> None:
    async def scenario() -> subprocess.CompletedProcess[str]:
        server = ControlServer(tmp_path, FakeNode())
        assert await server.start()
        tmp_path.chmod(0o755)
        socket_path(tmp_path).chmod(0o666)  # an operator's mistake: the uid check still holds
        try:
            return await asyncio.to_thread(
                subprocess.run,
                [sys.executable, "-c", CONNECT_AS_OTHER_USER, str(tmp_path)],
                capture_output=True,
                text=True,
                timeout=30,
            )
        finally:
            await server.close()

    other = asyncio.run(scenario())
    assert other.returncode == 0, other.stderr
    assert other.stdout.strip() == "closed"
