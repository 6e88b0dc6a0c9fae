"""``intrafed ua``, run as a real process against a real node on loopback."""

from __future__ import annotations

import asyncio
import json
import os
import sys
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import TypeVar

import pytest
from click.testing import CliRunner

from intrafed.cli import main
from intrafed.sip.pidf import PresenceState
from intrafed.ua import MessageReceived, UserAgent
from tests.ua.nodes import NODE_NAME, PASSWORDS, LabNode, lab_node

CLI_IP, BOB_IP = "127.0.0.90", "127.0.0.91"


class Run:
    """How one ``intrafed ua`` process ended."""

    def __init__(self, code: int, stdout: str, stderr: str) -> None:
        self.code, self.stdout, self.stderr = code, stdout, stderr


async def intrafed_ua(*arguments: str, password: str | None = None) -> Run:
    """Run ``python -m intrafed ua ARGUMENTS`` (password through INTRAFED_PASSWORD)."""
    environment = {k: v for k, v in os.environ.items() if k != "INTRAFED_PASSWORD"}
    if password is not None:
        environment["INTRAFED_PASSWORD"] = password
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "intrafed",
        "ua",
        *arguments,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        env=environment,
    )
    stdout, stderr = await asyncio.wait_for(process.communicate(), 30)
    return Run(process.returncode or 0, stdout.decode(), stderr.decode())


def tcp(node: LabNode, user: str = "alice") -> list[str]:
    host, port = node.tcp
    return ["--server", f"{host}:{port}", "--user", f"{user}@example.com", "--source-ip", CLI_IP]


T = TypeVar("T")


def with_node(tmp_path: Path, scenario: Callable[[LabNode], Awaitable[T]]) -> T:
    """Run ``scenario`` while a lab node runs."""

    async def run() -> T:
        async with lab_node(tmp_path) as node:
            return await scenario(node)

    return asyncio.run(asyncio.wait_for(run(), 60))


def test_register_prints_the_final_response_as_json(tmp_path: Path) -> None:
    async def scenario(node: LabNode) -> Run:
        return await intrafed_ua("register", *tcp(node), "--json", password=PASSWORDS["alice"])

    run = with_node(tmp_path, scenario)
    assert run.code == 0, run.stderr
    result = json.loads(run.stdout)
    assert (result["ok"], result["command"], result["status"]) == (True, "register", 200)
    assert result["contact"].startswith(f"<sip:alice@{CLI_IP}:")


def test_a_wrong_password_exits_1_with_one_line_naming_the_status(tmp_path: Path) -> None:
    async def scenario(node: LabNode) -> Run:
        return await intrafed_ua("register", *tcp(node), password="not the password")

    run = with_node(tmp_path, scenario)
    assert run.code == 1
    assert run.stdout == ""
    assert run.stderr.count("\n") == 1
    assert run.stderr.startswith("intrafed ua register: REGISTER sip:example.com: 401 Unauthorized")


def test_message_over_tls_with_register_reaches_the_registered_user(tmp_path: Path) -> None:
    async def scenario(node: LabNode) -> tuple[Run, MessageReceived]:
        async with UserAgent(node.settings("bob", BOB_IP, "tls")) as bob:
            await bob.register()
            host, port = node.tls
            run = await intrafed_ua(
                "message", "--register", "bob@example.com", "hello from the command line",
                "--user", "alice@example.com", "--password", PASSWORDS["alice"],
                "--transport", "tls", "--node", NODE_NAME, "--ip", host, "--port", str(port),
                "--ca", str(node.ca_file), "--source-ip", CLI_IP,
            )  # fmt: skip
            return run, await bob.next_event(MessageReceived)

    run, received = with_node(tmp_path, scenario)
    assert run.code == 0, run.stderr
    assert run.stdout.splitlines() == [
        "REGISTER alice@example.com: 200 OK",
        "MESSAGE to bob@example.com: 200 OK",
    ]
    assert (received.sender, received.text) == ("alice@example.com", "hello from the command line")


def test_a_message_to_an_offline_user_exits_1_with_the_nodes_warning(tmp_path: Path) -> None:
    async def scenario(node: LabNode) -> Run:
        return await intrafed_ua(
            "message", *tcp(node), "carol@example.com", "hi", password=PASSWORDS["alice"]
        )

    run = with_node(tmp_path, scenario)
    assert run.code == 1
    [line] = run.stderr.splitlines()
    assert "480 Temporarily Unavailable" in line
    assert "carol@example.com is provisioned here but not registered" in line


def test_options_as_json(tmp_path: Path) -> None:
    async def scenario(node: LabNode) -> Run:
        return await intrafed_ua("options", *tcp(node), "--json", password=PASSWORDS["alice"])

    run = with_node(tmp_path, scenario)
    assert run.code == 0, run.stderr
    result = json.loads(run.stdout)
    assert (result["status"], result["reason"]) == (200, "OK")


def test_a_node_that_does_not_listen_exits_1_with_one_line() -> None:
    result = CliRunner().invoke(
        main, ["ua", "options", "--server", "127.0.0.92:9", "--user", "alice@example.com"]
    )
    assert result.exit_code == 1
    assert result.output.startswith("intrafed ua options: cannot connect to 127.0.0.92:9")
    assert result.output.count("\n") == 1


USER = ["--user", "a@example.com"]


@pytest.mark.parametrize(
    ("arguments", "message"),
    [
        (USER, "--server: say where the node is"),
        (["--user", "alice", "--server", "127.0.0.2:5060"], "--user 'alice': expected"),
        ([*USER, "--server", "127.0.0.2"], "--server '127.0.0.2': expected HOST:PORT"),
        ([*USER, "--server", "127.0.0.2:5060", "--ip", "127.0.0.2"], "not both"),
        ([*USER, "--ip", "imp1.example.com"], "--ip 'imp1.example.com': expected an IP"),
        ([*USER, "--ip", "127.0.0.2", "--transport", "tls"], "--node: TLS verifies"),
    ],
)
def test_bad_usage_exits_2_with_one_line_naming_the_option(
    arguments: list[str], message: str
) -> None:
    result = CliRunner().invoke(main, ["ua", "options", *arguments])
    assert result.exit_code == 2
    assert message in result.output
    assert result.output.count("\n") == 1


def test_publish_then_subscribe_shows_the_published_state(tmp_path: Path) -> None:
    async def scenario(node: LabNode) -> tuple[Run, Run]:
        published = await intrafed_ua(
            "publish", *tcp(node), "--state", "do-not-disturb", "--note", "writing", "--json",
            password=PASSWORDS["alice"],
        )  # fmt: skip
        subscribed = await intrafed_ua(
            "subscribe", *tcp(node, "bob"), "--register", "alice@example.com",
            password=PASSWORDS["bob"],
        )  # fmt: skip
        return published, subscribed

    published, subscribed = with_node(tmp_path, scenario)
    assert published.code == 0, published.stderr
    result = json.loads(published.stdout)
    assert (result["status"], result["state"]) == (200, "do-not-disturb")
    assert result["etag"]
    assert subscribed.code == 0, subscribed.stderr
    assert subscribed.stdout.splitlines()[-1].startswith(
        "alice@example.com: Do Not Disturb — writing [active"
    )


def test_watch_prints_one_json_object_per_notify_until_count(tmp_path: Path) -> None:
    async def scenario(node: LabNode) -> tuple[int, list[dict[str, object]]]:
        async with UserAgent(node.settings("alice", "127.0.0.93")) as alice:
            await alice.register()
            host, port = node.tcp
            process = await asyncio.create_subprocess_exec(
                sys.executable, "-m", "intrafed", "ua", "watch", "alice@example.com",
                "--server", f"{host}:{port}", "--user", "bob@example.com",
                "--password", PASSWORDS["bob"], "--source-ip", CLI_IP,
                "--count", "2", "--timeout", "20", "--json",
                stdout=asyncio.subprocess.PIPE,
            )  # fmt: skip
            assert process.stdout is not None
            first = json.loads(await asyncio.wait_for(process.stdout.readline(), 20))
            await alice.publish(PresenceState.BE_RIGHT_BACK)
            second = json.loads(await asyncio.wait_for(process.stdout.readline(), 20))
            code = await asyncio.wait_for(process.wait(), 20)
            return code, [first, second]

    code, notifications = with_node(tmp_path, scenario)
    assert code == 0
    assert [n["state"] for n in notifications] == ["available", "be-right-back"]
    assert {n["presentity"] for n in notifications} == {"alice@example.com"}
    assert str(notifications[0]["subscription_state"]).startswith("active")


def test_watch_that_sees_fewer_notifications_than_count_exits_1(tmp_path: Path) -> None:
    async def scenario(node: LabNode) -> Run:
        return await intrafed_ua(
            "watch", *tcp(node, "bob"), "alice@example.com", "--count", "2", "--timeout", "1",
            password=PASSWORDS["bob"],
        )  # fmt: skip

    run = with_node(tmp_path, scenario)
    assert run.code == 1
    assert run.stdout.startswith("alice@example.com: Offline [active")
    assert run.stderr == "intrafed ua watch: 1 of 2 notifications within 1.0 s\n"
