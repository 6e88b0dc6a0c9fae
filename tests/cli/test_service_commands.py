"""``intrafed service …`` as scripts use it: ``status`` exits 0 running, 3 stopped (LSB,
systemctl), 1 when it cannot tell; every command prints one JSON object under --json, errors
included. Over real background node processes."""

from __future__ import annotations

import dataclasses
import json
import subprocess
from pathlib import Path
from typing import Any

from intrafed.config.model import Connection, StaticRoute
from intrafed.store import open_store
from tests.homes import staged_ocs_home
from tests.integration.peers import free_port
from tests.integration.test_service_restart import intrafed

NODE_IP = "127.0.0.216"


def make_home(home: Path) -> None:
    """An OCS node listening on one free TCP port, staged but never started."""
    staged_ocs_home(home, NODE_IP, free_port(NODE_IP))


def as_json(run: subprocess.CompletedProcess[str]) -> dict[str, Any]:
    """The one JSON object a command printed (nothing else on stdout)."""
    result: dict[str, Any] = json.loads(run.stdout)
    return result


def test_service_status_exits_3_for_a_stopped_node_and_1_when_it_cannot_tell(
    tmp_path: Path,
) -> None:
    home = tmp_path / "ocs1"
    make_home(home)
    stopped = intrafed("service", "status", "--home", str(home))
    assert (stopped.returncode, stopped.stdout.splitlines()[0]) == (3, "stopped")
    assert "restart pending:" in stopped.stdout
    shown = intrafed("service", "status", "--home", str(home), "--json")
    assert shown.returncode == 3
    assert as_json(shown) | {"pending_changes": []} == {
        "ok": True,
        "status": "stopped",
        "running": False,
        "pid": None,
        "uptime_seconds": None,
        "live": None,
        "node": "ocs1.example.com",
        "listeners": {},
        "staged_is_running": False,
        "apply": "restart",
        "restart_pending": True,
        "pending_changes": [],
        "last_reload": None,
        "pool": None,
        "members_behind": [],
        "degraded": None,
        "database_unreachable": None,
    }
    not_a_home = intrafed("service", "status", "--home", str(tmp_path))
    assert not_a_home.returncode == 1
    assert not_a_home.stderr.startswith(f"--home: {tmp_path} is not an intrafed home")
    assert len(not_a_home.stderr.splitlines()) == 1
    in_json = intrafed("service", "status", "--home", str(tmp_path), "--json")
    assert in_json.returncode == 1
    assert as_json(in_json)["ok"] is False
    assert "is not an intrafed home" in as_json(in_json)["error"]
    helped = intrafed("service", "status", "--help")
    assert "3  the node does not run" in helped.stdout


def test_every_service_command_prints_one_json_object_and_its_errors_as_json(
    tmp_path: Path,
) -> None:
    home = tmp_path / "ocs1"
    make_home(home)
    not_running = intrafed("service", "stop", "--home", str(home), "--json")
    assert not_running.returncode == 1
    assert as_json(not_running) == {"ok": False, "error": "not running"}
    started = intrafed("service", "start", "--home", str(home), "--json")
    assert started.returncode == 0, started.stderr
    try:
        state = as_json(started)
        pid = state["pid"]
        assert isinstance(pid, int)
        assert (state["ok"], state["status"], state["restart_pending"]) == (True, "running", False)
        assert list(state["listeners"]) == ["TCP"]
        status = intrafed("service", "status", "--home", str(home), "--json")
        assert (status.returncode, as_json(status)["pid"]) == (0, pid)

        with open_store(home) as store:
            store.stage(
                lambda config: dataclasses.replace(
                    config, routes=(StaticRoute("example.com", "TCP", 5070, ip=NODE_IP),)
                )
            )
        pending = as_json(intrafed("service", "status", "--home", str(home), "--json"))
        assert (pending["apply"], pending["staged_is_running"]) == ("reload", False)
        reloaded = intrafed("service", "reload", "--home", str(home), "--json")
        assert reloaded.returncode == 0, reloaded.stdout
        reload = as_json(reloaded)["reload"]
        assert (reload["ok"], reload["applied"]) == (True, ["routes: added example.com"])
        assert as_json(reloaded)["staged_is_running"] is True

        with open_store(home) as store:
            store.stage(
                lambda config: dataclasses.replace(
                    config,
                    connections=(*config.connections, Connection("TCP", 5999, NODE_IP)),
                )
            )
        refused = intrafed("service", "reload", "--home", str(home), "--json")
        assert refused.returncode == 1
        answer = as_json(refused)
        assert answer["ok"] is False
        assert answer["error"].startswith("reload refused: ")
        assert answer["reload"]["ok"] is False
        assert "restart" in answer["reload"]["reason"]
        assert (answer["apply"], answer["pid"]) == ("restart", pid)

        again = intrafed("service", "start", "--home", str(home), "--json")
        assert again.returncode == 1
        assert as_json(again)["error"].startswith(f"already running (pid {pid})")

        restarted = intrafed("service", "restart", "--home", str(home), "--json")
        assert restarted.returncode == 0, restarted.stdout
        after = as_json(restarted)
        assert (after["stopped_pid"], after["killed"], after["status"]) == (pid, False, "running")
        assert after["pid"] != pid
        assert after["staged_is_running"] is True
    finally:
        stopped = intrafed("service", "stop", "--home", str(home), "--json")
    assert stopped.returncode == 0, stopped.stdout
    final = as_json(stopped)
    assert (final["status"], final["pid"], final["stopped_pid"]) == ("stopped", None, after["pid"])
