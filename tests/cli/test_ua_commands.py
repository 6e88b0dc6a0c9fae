"""``intrafed ua``, run as a real process against a real node on loopback."""

from __future__ import annotations

import asyncio
import fcntl
import json
import os
import pty
import select
import signal
import subprocess
import sys
import termios
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import TypeVar

import pytest
from click.testing import CliRunner

from intrafed.cli import main
from intrafed.sip.pidf import PresenceState
from intrafed.ua import MessageReceived, SipError, UserAgent
from tests.integration.federation import build_partitions, running_partitions
from tests.ua.nodes import NODE_NAME, PASSWORDS, LabNode, lab_node

CLI_IP, BOB_IP = "127.0.0.90", "127.0.0.91"


class Run:
    """How one ``intrafed ua`` process ended."""

    def __init__(self, code: int, stdout: str, stderr: str) -> None:
        self.code, self.stdout, self.stderr = code, stdout, stderr


def ua_environment(password: str | None) -> dict[str, str]:
    """This environment with INTRAFED_PASSWORD set to ``password`` (or left out)."""
    environment = {k: v for k, v in os.environ.items() if k != "INTRAFED_PASSWORD"}
    if password is not None:
        environment["INTRAFED_PASSWORD"] = password
    return environment


async def intrafed_ua(
    *arguments: str, password: str | None = None, stdin: str | None = None
) -> Run:
    """Run ``python -m intrafed ua ARGUMENTS`` (password through INTRAFED_PASSWORD; ``stdin``
    its standard input)."""
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "intrafed",
        "ua",
        *arguments,
        stdin=asyncio.subprocess.PIPE,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        env=ua_environment(password),
    )
    communicated = process.communicate((stdin or "").encode())
    stdout, stderr = await asyncio.wait_for(communicated, 30)
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
                "--user", "alice@example.com", "--password-file", "-",
                "--transport", "tls", "--node", NODE_NAME, "--ip", host, "--port", str(port),
                "--ca", str(node.ca_file), "--source-ip", CLI_IP, stdin=PASSWORDS["alice"] + "\n",
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
        ([*USER, "--server", "127.0.0.2:5063", "--transport", "TLS"], "--node: TLS verifies"),
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
                "--source-ip", CLI_IP, "--count", "2", "--timeout", "20", "--json",
                stdout=asyncio.subprocess.PIPE, env=ua_environment(PASSWORDS["bob"]),
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


async def message_to(node: LabNode, to: str) -> int:
    """The final status of a MESSAGE from alice to ``to``."""
    async with UserAgent(node.settings("alice", "127.0.0.94")) as alice:
        try:
            return (await alice.message(to, "are you there?")).status
        except SipError as exc:
            return exc.status


def test_register_leaves_no_binding_behind_when_the_command_ends(tmp_path: Path) -> None:
    async def scenario(node: LabNode) -> tuple[Run, int]:
        run = await intrafed_ua("register", *tcp(node, "bob"), password=PASSWORDS["bob"])
        return run, await message_to(node, "bob@example.com")

    run, status = with_node(tmp_path, scenario)
    assert run.code == 0, run.stderr
    # Not 500 "connection refused" toward the contact of a connection that is gone.
    assert status == 480


def as_on_a_terminal() -> None:
    """Ctrl-C reaches a command run from a terminal: a test run started in the background
    of a shell (which ignores SIGINT there, and children inherit it) must not hide that."""
    signal.signal(signal.SIGINT, signal.SIG_DFL)


@pytest.mark.parametrize("stop", [signal.SIGTERM, signal.SIGINT], ids=["SIGTERM", "Ctrl-C"])
def test_a_stopped_watch_removes_its_registration(tmp_path: Path, stop: signal.Signals) -> None:
    async def scenario(node: LabNode) -> tuple[int, int, int]:
        host, port = node.tcp
        process = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "intrafed", "ua", "watch", "alice@example.com", "--register",
            "--server", f"{host}:{port}", "--user", "bob@example.com", "--source-ip", CLI_IP,
            stdin=asyncio.subprocess.DEVNULL, stdout=asyncio.subprocess.PIPE,
            env=ua_environment(PASSWORDS["bob"]), preexec_fn=as_on_a_terminal,
        )  # fmt: skip
        assert process.stdout is not None
        await asyncio.wait_for(process.stdout.readline(), 20)  # REGISTER ...: 200 OK
        await asyncio.wait_for(process.stdout.readline(), 20)  # alice's first NOTIFY
        while_running = await message_to(node, "bob@example.com")
        process.send_signal(stop)
        code = await asyncio.wait_for(process.wait(), 20)
        return code, while_running, await message_to(node, "bob@example.com")

    code, while_running, after = with_node(tmp_path, scenario)
    assert (code, while_running, after) == (0, 200, 480)


def test_tls_without_port_uses_the_client_tls_port_and_takes_any_case(tmp_path: Path) -> None:
    async def scenario() -> Run:
        async with lab_node(tmp_path, tls_port=5062) as node:
            return await intrafed_ua(
                "options", "--transport", "TLS", "--node", NODE_NAME, "--ip", node.tls[0],
                "--ca", str(node.ca_file), "--user", "alice@example.com", "--source-ip", CLI_IP,
                "--json", password=PASSWORDS["alice"],
            )  # fmt: skip

    run = asyncio.run(asyncio.wait_for(scenario(), 60))
    assert run.code == 0, run.stdout + run.stderr
    assert json.loads(run.stdout)["status"] == 200


def test_a_subscription_across_the_partitions_without_register_fails_in_bounded_time(
    tmp_path: Path,
) -> None:
    """bob on ocs1 watches alice on imp1 over TLS without registering: the NOTIFY from the
    other partition cannot reach him, and the command says so instead of waiting on."""
    deployment = build_partitions(tmp_path, "127.0.0.95", "127.0.0.96")

    async def scenario() -> list[Run]:
        async with running_partitions(deployment) as partitions:
            host, port = partitions.ocs_listeners["TLS"]
            where = [
                "--transport", "tls", "--node", deployment.ocs.fqdn, "--ip", host,
                "--port", str(port), "--ca", str(deployment.ca_certificate),
                "--user", "bob@example.com", "--source-ip", CLI_IP, "--request-timeout", "1",
            ]  # fmt: skip
            password = deployment.password("bob@example.com")
            return [
                await intrafed_ua(*command, "alice@example.com", *where, password=password)
                for command in (["subscribe"], ["watch", "--count", "1"])
            ]

    runs = asyncio.run(asyncio.wait_for(scenario(), 60))
    for command, run in zip(("subscribe", "watch"), runs, strict=True):
        assert run.code == 1
        [line] = run.stderr.splitlines()
        assert line.startswith(f"intrafed ua {command}: no NOTIFY for alice@example.com from ")
        assert line.endswith("add --register")


def test_a_password_on_the_command_line_is_refused_naming_the_safe_ways() -> None:
    result = CliRunner().invoke(
        main,
        ["ua", "options", "--server", "127.0.0.92:9", "--user", "a@x.com", "--password", "x"],
    )
    assert result.exit_code == 2
    assert "visible to every user" in result.output
    assert "--password-file FILE or the INTRAFED_PASSWORD" in result.output


def test_password_file_gives_the_password(tmp_path: Path) -> None:
    secret = tmp_path / "alice.password"
    secret.write_text(PASSWORDS["alice"] + "\n")

    async def scenario(node: LabNode) -> Run:
        return await intrafed_ua("register", *tcp(node), "--password-file", str(secret))

    run = with_node(tmp_path, scenario)
    assert run.code == 0, run.stderr


def test_usage_errors_under_json_are_one_json_object() -> None:
    result = CliRunner().invoke(
        main, ["ua", "options", "--json", "--server", "nowhere", "--user", "a@example.com"]
    )
    assert result.exit_code == 2
    assert json.loads(result.output) == {
        "ok": False,
        "error": "--server 'nowhere': expected HOST:PORT, e.g. 127.0.0.2:5060",
    }


def on_a_terminal(arguments: list[str], answer: str) -> tuple[int, str]:
    """Run ``intrafed ua ARGUMENTS`` on a pseudo-terminal (its controlling terminal, as a
    shell gives), type ``answer`` at the password prompt; its exit status and output."""
    primary, secondary = pty.openpty()

    def take_terminal() -> None:
        fcntl.ioctl(0, termios.TIOCSCTTY, 0)

    process = subprocess.Popen(
        [sys.executable, "-m", "intrafed", "ua", *arguments],
        stdin=secondary, stdout=secondary, stderr=secondary,
        env=ua_environment(None), start_new_session=True, preexec_fn=take_terminal,
    )  # fmt: skip
    os.close(secondary)
    output, answered = b"", False
    try:
        for _ in range(400):  # bounded: 400 reads of at most 0.1 s
            ready, _, _ = select.select([primary], [], [], 0.1)
            if ready:
                try:
                    chunk = os.read(primary, 4096)
                except OSError:  # the process ended and closed the terminal
                    break
                if not chunk:
                    break
                output += chunk
            if not answered and b"Password" in output:
                os.write(primary, answer.encode() + b"\n")
                answered = True
            if process.poll() is not None and not ready:
                break
        return process.wait(timeout=10), output.decode(errors="replace")
    finally:
        if process.poll() is None:
            process.kill()
        os.close(primary)


def test_the_password_is_asked_for_on_a_terminal_and_not_echoed(tmp_path: Path) -> None:
    async def scenario(node: LabNode) -> tuple[int, str]:
        arguments = ["register", *tcp(node)]
        return await asyncio.to_thread(on_a_terminal, arguments, PASSWORDS["alice"])

    code, output = with_node(tmp_path, scenario)
    assert code == 0, output
    assert "Password (empty for none): " in output
    assert PASSWORDS["alice"] not in output
    assert "REGISTER alice@example.com at <sip:alice@" in output


def test_listen_prints_each_message_and_session_until_sigterm_then_unregisters(
    tmp_path: Path,
) -> None:
    async def scenario(node: LabNode) -> tuple[int, list[dict[str, object]], int]:
        host, port = node.tcp
        process = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "intrafed", "ua", "listen", "--server", f"{host}:{port}",
            "--user", "bob@example.com", "--source-ip", CLI_IP, "--json",
            stdin=asyncio.subprocess.DEVNULL, stdout=asyncio.subprocess.PIPE,
            env=ua_environment(PASSWORDS["bob"]),
        )  # fmt: skip
        assert process.stdout is not None
        lines = [json.loads(await asyncio.wait_for(process.stdout.readline(), 20))]
        async with UserAgent(node.settings("alice", "127.0.0.95")) as alice:
            assert (await alice.message("bob@example.com", "ping")).status == 200
            lines.append(json.loads(await asyncio.wait_for(process.stdout.readline(), 20)))
            session = await alice.invite_im("bob@example.com")
            await session.message("in a session")
            await session.bye()
            for _ in range(3):
                lines.append(json.loads(await asyncio.wait_for(process.stdout.readline(), 20)))
        process.send_signal(signal.SIGTERM)
        code = await asyncio.wait_for(process.wait(), 20)
        return code, lines, await message_to(node, "bob@example.com")

    code, lines, after = with_node(tmp_path, scenario)
    assert code == 0
    assert lines == [
        {"registered": "bob@example.com"},
        {"event": "message", "from": "alice@example.com", "text": "ping",
         "content_type": "text/plain", "session": False},
        {"event": "session-started", "from": "alice@example.com"},
        {"event": "message", "from": "alice@example.com", "text": "in a session",
         "content_type": "text/plain", "session": True},
        {"event": "session-ended", "from": "alice@example.com"},
    ]  # fmt: skip
    assert after == 480  # the registration went with the command


def test_listen_with_count_prints_lines_and_stops(tmp_path: Path) -> None:
    async def scenario(node: LabNode) -> Run:
        arguments = ["listen", *tcp(node, "bob"), "--count", "1", "--timeout", "20"]
        listening = asyncio.create_task(intrafed_ua(*arguments, password=PASSWORDS["bob"]))
        async with UserAgent(node.settings("alice", "127.0.0.96")) as alice:
            for _ in range(100):  # until the listener has registered
                try:
                    await alice.message("bob@example.com", "hello bob")
                    break
                except SipError:
                    await asyncio.sleep(0.1)
        return await listening

    run = with_node(tmp_path, scenario)
    assert run.code == 0, run.stderr
    assert run.stdout.splitlines() == [
        "REGISTER bob@example.com: 200 OK",
        "MESSAGE from alice@example.com: hello bob",
    ]
