"""``intrafed service restart`` under a steady SIPp MESSAGE load, over TCP: the new process
inherits the listening sockets and the old one drains, so SIPp counts zero failed calls;
``service status`` shows the new process; the old one exits once drained."""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import json
import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

from intrafed.config.model import Connection, NodeIdentity, Role, StaticRoute, User
from intrafed.store import create_store, open_store
from tests.integration.peers import free_port, run_sipp
from tests.integration.test_service_restart import intrafed
from tests.integration.uas import answer_200

NODE_IP, UAS_IP, UAC_IP = "127.0.25.21", "127.0.25.22", "127.0.25.23"
CALLS, RATE = 1200, 120  # ten seconds of MESSAGEs; the restart comes after three


def make_home(home: Path, node_port: int, uas_port: int) -> None:
    with create_store(home, NodeIdentity(Role.OCS, "ocs1.example.com", NODE_IP)) as store:
        store.stage(
            lambda config: dataclasses.replace(
                config,
                domains=("example.com",),
                connections=(Connection("TCP", node_port, NODE_IP),),
                routes=(StaticRoute("example.com", "TCP", uas_port, ip=UAS_IP),),
                users=(User("alice@example.com"),),
            )
        )


@contextlib.contextmanager
def running_node(tmp_path: Path) -> Iterator[tuple[Path, int]]:
    """A background node (its home, its TCP port), stopped at the end."""
    home, node_port = tmp_path / "ocs1", free_port(NODE_IP)
    make_home(home, node_port, free_port(UAS_IP))
    started = intrafed("service", "start", "--home", str(home))
    assert started.returncode == 0, started.stderr
    try:
        yield home, node_port
    finally:
        intrafed("service", "stop", "--home", str(home))


def gone(pid: int) -> bool:
    try:
        return "intrafed" not in Path(f"/proc/{pid}/cmdline").read_text()
    except OSError:
        return True


def test_restart_under_a_steady_sipp_load_fails_no_call(tmp_path: Path) -> None:
    home, node_port, uas_port = tmp_path / "ocs1", free_port(NODE_IP), free_port(UAS_IP)
    make_home(home, node_port, uas_port)

    async def scenario() -> tuple[int, str, dict[str, object], int, float, str]:
        started = await asyncio.to_thread(intrafed, "service", "start", "--home", str(home))
        assert started.returncode == 0, started.stderr
        old = json.loads((home / "status.json").read_text())["pid"]
        try:
            uas = await asyncio.start_server(answer_200, UAS_IP, uas_port)
            uac = asyncio.create_task(
                run_sipp(
                    "uac_message.xml",
                    local=(UAC_IP, free_port(UAC_IP)),
                    remote=(NODE_IP, node_port),
                    calls=CALLS,
                    rate=RATE,
                    workdir=tmp_path,
                    timeout=40,
                    extra=("-t", "tn", "-max_socket", "1000"),
                )
            )
            await asyncio.sleep(3)
            restarted = await asyncio.to_thread(
                intrafed, "service", "restart", "--home", str(home), "--json"
            )
            assert restarted.returncode == 0, restarted.stderr
            began = time.monotonic()
            while not gone(old) and time.monotonic() - began < 15:
                await asyncio.sleep(0.05)
            drained = time.monotonic() - began
            sent = await uac
            uas.close()
            shown = await asyncio.to_thread(intrafed, "service", "status", "--home", str(home))
        finally:
            await asyncio.to_thread(intrafed, "service", "stop", "--home", str(home))
        answer = json.loads(restarted.stdout)
        return sent.returncode, sent.output, answer, old, drained, shown.stdout

    code, output, restarted, old, drained, shown = asyncio.run(asyncio.wait_for(scenario(), 120))
    assert code == 0, output  # SIPp: every call got its 200, none failed
    assert restarted["stopped_pid"] == old
    assert restarted["running"] is True
    assert restarted["pid"] not in (None, old)
    assert gone(old)
    assert drained < 10
    assert restarted["listeners"] == {"TCP": [NODE_IP, node_port]}
    assert shown.startswith(f"running (pid {restarted['pid']}")


def test_a_restart_whose_new_process_cannot_start_leaves_the_old_one_serving(
    tmp_path: Path,
) -> None:
    with running_node(tmp_path) as (home, _port):
        old = json.loads((home / "status.json").read_text())["pid"]
        with socket.socket() as taken, open_store(home) as store:
            taken.bind((NODE_IP, 0))
            taken.listen()
            busy = Connection("TCP", taken.getsockname()[1], NODE_IP)
            busy_at = f"{NODE_IP}:{busy.port} (TCP)"
            store.stage(
                lambda config: dataclasses.replace(config, connections=(*config.connections, busy))
            )
            refused = intrafed("service", "restart", "--home", str(home))
        status = json.loads(intrafed("service", "status", "--home", str(home), "--json").stdout)
    assert refused.returncode == 1
    assert refused.stderr == (
        "not restarted: the new process ended (exit status 1) before it served "
        f"(see {home / 'intrafed.log'}); pid {old} serves on\n"
    )
    log = (home / "intrafed.log").read_text()
    assert f"cannot start the node: cannot listen on {busy_at}: Address already in use" in log
    assert (status["pid"], status["running"], status["restart_pending"]) == (old, True, True)


def test_a_restart_that_moves_a_listener_onto_every_address_stops_then_starts(
    tmp_path: Path,
) -> None:
    with running_node(tmp_path) as (home, node_port), open_store(home) as store:
        store.stage(
            lambda config: dataclasses.replace(
                config, connections=(Connection("TCP", node_port, "All"),)
            )
        )
        restarted = intrafed("service", "restart", "--home", str(home), "--json")
    assert restarted.returncode == 0, restarted.stderr
    every = "0.0.0.0"  # noqa: S104 - what "All" binds
    assert json.loads(restarted.stdout)["listeners"] == {"TCP": [every, node_port]}


def test_serve_refuses_handed_over_sockets_it_cannot_use_in_one_line(tmp_path: Path) -> None:
    home = tmp_path / "ocs1"
    make_home(home, free_port(NODE_IP), free_port(UAS_IP))
    refused = subprocess.run(
        [sys.executable, "-m", "intrafed", "serve", "--home", str(home)],
        capture_output=True,
        text=True,
        check=False,
        timeout=60,
        env={**os.environ, "INTRAFED_LISTEN_FDS": "[[1]]", "INTRAFED_READY_FD": "9"},
    )
    assert refused.returncode == 2
    assert refused.stderr.startswith(
        "INTRAFED_LISTEN_FDS: cannot use the listening sockets handed over ("
    )
    assert refused.stderr.endswith(
        "unset INTRAFED_LISTEN_FDS and INTRAFED_READY_FD: only intrafed service restart sets them\n"
    )
