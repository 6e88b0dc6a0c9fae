"""The console served by the running node itself (``intrafed admin enable``): it comes and
goes with the node, restarts with it, and never keeps a node from starting."""

from __future__ import annotations

import json
import socket
import time
from pathlib import Path

import pytest

from intrafed.check import SeedDeployment
from intrafed.config.model import ConfigError
from intrafed.console.in_node import SETTING_FILE, InNodeConsole, configured, disable, enable
from intrafed.console.listen import Listen
from tests.check.running import seed_on_free_ports
from tests.console.running import CONSOLE_IP, Client, RunningConsole, intrafed, set_password
from tests.integration.peers import free_port

IMP_IP, OCS_IP = "127.0.18.30", "127.0.18.31"
COMEBACK_TIMEOUT = 30.0


@pytest.fixture
def deployment(tmp_path: Path) -> SeedDeployment:
    return seed_on_free_ports(tmp_path / "seed", IMP_IP, OCS_IP)


def test_the_setting_file_round_trips_and_a_damaged_one_is_named(tmp_path: Path) -> None:
    assert configured(tmp_path) is None
    setting = InNodeConsole(Listen.parse("[::1]:8443"), tls=True)
    enable(tmp_path, setting)
    assert configured(tmp_path) == setting
    assert disable(tmp_path)
    assert not disable(tmp_path)
    (tmp_path / SETTING_FILE).write_text('listen = "127.0.0.1"\n')
    with pytest.raises(ConfigError, match=r"--listen: '127\.0\.0\.1' is not IP:PORT"):
        configured(tmp_path)
    (tmp_path / SETTING_FILE).write_text("listen = [")
    with pytest.raises(ConfigError, match="is not valid TOML"):
        configured(tmp_path)


def _pid(home: Path) -> int | None:
    status = intrafed("service", "status", "--json", "--home", str(home))
    pid: int | None = json.loads(status.stdout)["pid"]
    return pid


def _answers(port: int) -> bool:
    with socket.socket() as probe:
        return probe.connect_ex((CONSOLE_IP, port)) == 0


def _log_in_when_back(target: RunningConsole) -> Client:
    deadline = time.monotonic() + COMEBACK_TIMEOUT
    while True:
        client = Client(target, source="127.0.18.32")
        try:
            if client.log_in().status == 303:
                return client
        except (ConnectionError, AssertionError):
            pass
        assert time.monotonic() < deadline, "the console did not come back with the node"
        time.sleep(0.2)


def test_the_node_serves_its_console_and_restarts_with_it(deployment: SeedDeployment) -> None:
    home = deployment.ocs.home
    set_password(home)
    port = free_port(CONSOLE_IP)
    enabled = intrafed("admin", "enable", "--home", str(home), "--listen", f"{CONSOLE_IP}:{port}")
    assert enabled.returncode == 0, enabled.stderr
    assert "intrafed service restart" in enabled.stdout
    started = intrafed("service", "start", "--home", str(home))
    assert started.returncode == 0, started.stderr
    try:
        target = RunningConsole(f"http://{CONSOLE_IP}:{port}", CONSOLE_IP, port, False, home)
        client = _log_in_when_back(target)
        assert 'id="service-state">running' in client.request("GET", "/status").body
        first = _pid(home)
        token = client.csrf("/status")
        answer = client.request("POST", "/status", {"csrf": token, "action": "restart"})
        assert answer.status == 200
        assert 'id="restarting"' in answer.body
        deadline = time.monotonic() + COMEBACK_TIMEOUT
        while _pid(home) in (None, first):
            assert time.monotonic() < deadline, "the node did not restart"
            time.sleep(0.2)
        again = _log_in_when_back(target)  # the new node's console: a new session
        assert 'id="service-state">running' in again.request("GET", "/status").body
        # The check's "restart pending" fix restarts this node the same way.
        second = _pid(home)
        connection = ["--transport", "TCP", "--port", str(free_port(OCS_IP)), "--ip", OCS_IP]
        staged = intrafed("config", "connection", "add", *connection, "--home", str(home))
        assert staged.returncode == 0, staged.stderr
        fix = f"intrafed service restart --home {home}"
        assert f'name="fix" value="{fix}"' in again.request("GET", "/check").body
        token = again.csrf("/check")
        answer = again.request("POST", "/check", {"csrf": token, "fix": fix})
        assert 'id="restarting"' in answer.body
        while _pid(home) in (None, second):
            assert time.monotonic() < deadline + COMEBACK_TIMEOUT, "the fix did not restart"
            time.sleep(0.2)
        third = _log_in_when_back(target)
        assert (
            "The staged configuration is the running one." in third.request("GET", "/status").body
        )
    finally:
        _stop_for_good(home)
    assert not _answers(port)


def _stop_for_good(home: Path) -> None:
    """Stop the node, and again should a detached restart still in flight start it anew."""
    deadline = time.monotonic() + 5.0
    intrafed("service", "stop", "--home", str(home))
    while time.monotonic() < deadline:
        if _pid(home) is not None:
            intrafed("service", "stop", "--home", str(home))
        time.sleep(0.2)


def test_a_console_that_cannot_run_does_not_keep_the_node_from_starting(
    deployment: SeedDeployment,
) -> None:
    home = deployment.ocs.home  # no admin password
    port = free_port(CONSOLE_IP)
    enable(home, InNodeConsole(Listen(CONSOLE_IP, port)))
    started = intrafed("service", "start", "--home", str(home))
    assert started.returncode == 0, started.stderr
    try:
        refusal = "web console not started: password: the console has no admin password"
        deadline = time.monotonic() + COMEBACK_TIMEOUT
        while refusal not in (home / "intrafed.log").read_text():
            assert time.monotonic() < deadline, "the node did not say why it has no console"
            time.sleep(0.1)
        assert not _answers(port)
        assert _pid(home) is not None
    finally:
        intrafed("service", "stop", "--home", str(home))
