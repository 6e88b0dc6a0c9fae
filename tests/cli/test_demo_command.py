"""``intrafed demo``, run as a real process: both partitions on 127.0.0.2 and 127.0.0.3 (on
free ports), alice and bob as TLS clients, the steps' outcomes as the process reports them."""

from __future__ import annotations

import asyncio
import json
import signal
import socket
import subprocess
import sys
from pathlib import Path
from typing import Any

from intrafed.demo import IMP_IP, OCS_IP
from intrafed.ua import MessageReceived, UaSettings, UserAgent
from tests.integration.federation import free_base_port

STEPS = [
    "deployment built as the seed configures it",
    "the task-list check passes with no errors",
    "nodes started",
    "alice and bob register over TLS",
    "they subscribe to each other and each sees the other Available",
    "alice goes Busy and bob sees Busy",
    "pager IM alice -> bob",
    "pager IM bob -> alice",
    "session IM alice -> bob",
    "session IM bob -> alice",
    "unknown user nobody@example.com gets 404 without a loop",
]


def intrafed_demo(*arguments: str) -> subprocess.CompletedProcess[str]:
    """Run ``python -m intrafed demo ARGUMENTS`` to its end."""
    return subprocess.run(
        [sys.executable, "-m", "intrafed", "demo", *arguments],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def base_port() -> str:
    return str(free_base_port([IMP_IP, OCS_IP]))


def test_json_every_step_ok_and_home_kept(tmp_path: Path) -> None:
    home = tmp_path / "lab"
    run = intrafed_demo("--json", "--base-port", base_port(), "--home", str(home))
    assert run.returncode == 0, run.stdout + run.stderr
    result = json.loads(run.stdout)
    assert list(result)[:2] == ["ok", "steps"]
    assert result["ok"] is True
    assert [step["name"] for step in result["steps"]] == STEPS
    for step in result["steps"]:
        assert set(step) == {"name", "ok", "detail"}
        assert step["ok"] is True, step
    assert result["elapsed_s"] < 30
    unknown = result["steps"][-1]["detail"]
    assert unknown.startswith("404 Not Found")
    assert "ocs1.example.com received it once" in unknown
    crossed = {(entry["from"], entry["message"].split()[0]) for entry in result["ladder"]}
    assert ("imp1.example.com", "SUBSCRIBE") in crossed
    assert ("ocs1.example.com", "NOTIFY") in crossed
    assert ("ocs1.example.com", "INVITE") in crossed
    assert {path.name for path in home.iterdir()} == {"ca", "imp1", "ocs1"}


def test_human_output_has_the_ladder_and_a_summary() -> None:
    run = intrafed_demo("--base-port", base_port())
    assert run.returncode == 0, run.stdout + run.stderr
    lines = run.stdout.splitlines()
    assert any("|-- MESSAGE sip:bob@example.com " in line for line in lines)
    assert any("|<-- MESSAGE sip:alice@example.com " in line for line in lines)
    assert any("|<-- 404 Not Found (MESSAGE) " in line for line in lines)
    assert lines[-1].startswith(f"{len(STEPS)} of {len(STEPS)} steps ok; ")
    assert "cross-partition messages" in lines[-1]
    assert "elapsed" in lines[-1]
    assert "Traceback" not in run.stderr


def test_non_empty_home_is_refused_in_one_line(tmp_path: Path) -> None:
    (tmp_path / "notes.txt").write_text("mine")
    run = intrafed_demo("--home", str(tmp_path), "--base-port", base_port())
    assert run.returncode == 2
    assert run.stdout == ""
    [line] = run.stderr.splitlines()
    assert line.startswith(f"--home {tmp_path}: ")
    assert "empty directory" in line
    assert {path.name for path in tmp_path.iterdir()} == {"notes.txt"}


def test_busy_ports_are_one_line_naming_base_port() -> None:
    base = int(base_port())
    with socket.socket() as taken:
        taken.bind((OCS_IP, base + 1))
        taken.listen()
        run = intrafed_demo("--base-port", str(base))
    assert run.returncode == 2
    [line] = run.stderr.splitlines()
    assert line.startswith("--base-port: ")
    assert f"{OCS_IP}:{base + 1}" in line


def user_agent(endpoints: dict[str, Any], aor: str, source_ip: str) -> UserAgent:
    """A TLS client of ``aor``'s home node, from what ``--serve`` printed."""
    user = next(user for user in endpoints["users"] if user["aor"] == aor)
    node = next(node for node in endpoints["nodes"] if node["name"] == user["home_node"])
    [port] = [listener["port"] for listener in node["listeners"] if listener["transport"] == "TLS"]
    return UserAgent(
        UaSettings(
            aor,
            (node["ip"], port),
            password=user["password"],
            transport="tls",
            server_name=node["fqdn"],
            ca_file=Path(endpoints["ca_cert"]),
            source_ip=source_ip,
        )
    )


def test_serve_prints_the_endpoints_keeps_running_and_stops_on_sigterm() -> None:
    process = subprocess.Popen(
        [sys.executable, "-m", "intrafed", "demo", "--serve", "--base-port", base_port()],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert process.stdout is not None
        endpoints = json.loads(process.stdout.readline())
        assert list(endpoints) == ["home", "ca_cert", "domain", "nodes", "users"]
        assert endpoints["domain"] == "example.com"
        assert [(n["name"], n["role"], n["ip"]) for n in endpoints["nodes"]] == [
            ("imp1", "imp", IMP_IP),
            ("ocs1", "ocs", OCS_IP),
        ]
        assert {u["aor"]: u["home_node"] for u in endpoints["users"]} == {
            "alice@example.com": "imp1",
            "bob@example.com": "ocs1",
        }

        async def federate() -> None:
            async with (
                user_agent(endpoints, "alice@example.com", "127.0.0.4") as alice,
                user_agent(endpoints, "bob@example.com", "127.0.0.5") as bob,
            ):
                assert (await alice.register()).status == 200
                assert (await bob.register()).status == 200
                assert (await alice.message("bob@example.com", "served")).status == 200
                assert (await bob.next_event(MessageReceived)).text == "served"

        asyncio.run(federate())
        home = Path(endpoints["home"])
        assert Path(endpoints["ca_cert"]).is_file()
        process.send_signal(signal.SIGTERM)
        assert process.wait(timeout=30) == 0
        assert not home.exists()
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
        for stream in (process.stdout, process.stderr):
            if stream is not None:
                stream.close()
