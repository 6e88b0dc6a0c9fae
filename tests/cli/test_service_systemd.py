"""``intrafed serve`` under systemd, over a real process: READY=1 once its listeners are
up, RELOADING=1 and READY=1 around ``service reload`` (the unit's ExecReload), STOPPING=1 on
SIGTERM, on ``$NOTIFY_SOCKET``; after ``service restart``, MAINPID= and READY=1 from the
process that took over; log lines for the journal. The unit template that
``intrafed service unit`` renders passes ``systemd-analyze verify``."""

from __future__ import annotations

import json
import os
import pwd
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from intrafed.cli.systemd import notify, render_unit
from tests.homes import staged_ocs_home
from tests.integration.peers import free_port
from tests.integration.test_service_restart import intrafed

NODE_IP = "127.0.0.231"


@pytest.fixture
def notify_socket() -> Iterator[tuple[str, socket.socket]]:
    """A datagram socket standing in for systemd's notification socket (a short path: a
    Unix socket path has at most 107 bytes)."""
    with (
        tempfile.TemporaryDirectory(prefix="ifd-") as directory,
        socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as sock,
    ):
        path = os.path.join(directory, "notify")
        sock.bind(path)
        sock.settimeout(30)  # a bound on a broken node, not a measure
        yield path, sock


def notices(sock: socket.socket, until: str) -> list[str]:
    """The notices received up to the first that contains ``until``."""
    received: list[str] = []
    while not any(until in notice for notice in received):
        received.append(sock.recv(4096).decode())
    return received


def test_serve_tells_systemd_ready_reloading_and_stopping_and_logs_for_the_journal(
    tmp_path: Path, notify_socket: tuple[str, socket.socket]
) -> None:
    address, sock = notify_socket
    home = tmp_path / "ocs1"
    port = free_port(NODE_IP)
    staged_ocs_home(home, NODE_IP, port)
    journal = tmp_path / "journal"
    with journal.open("wb") as stream:
        status = os.fstat(stream.fileno())
        environment = {
            **os.environ,
            "NOTIFY_SOCKET": address,
            "JOURNAL_STREAM": f"{status.st_dev}:{status.st_ino}",
        }
        node = subprocess.Popen(
            [sys.executable, "-m", "intrafed", "serve", "--home", str(home)],
            stdout=stream,
            stderr=stream,
            env=environment,
        )
    try:
        ready = notices(sock, "READY=1")
        assert ready == [f"READY=1\nSTATUS=listening on TCP {NODE_IP}:{port}"]
        reloaded = intrafed("service", "reload", "--home", str(home))
        assert reloaded.returncode == 0, reloaded.stderr
        around = notices(sock, "READY=1")
        assert [notice.splitlines()[0] for notice in around] == ["RELOADING=1", "READY=1"]
        assert around[0].splitlines()[1].startswith("MONOTONIC_USEC=")
        node.send_signal(signal.SIGTERM)
        assert notices(sock, "STOPPING=1")[-1].startswith("STOPPING=1\n")
        assert node.wait(timeout=30) == 0
    finally:
        node.kill()
        node.wait()
    lines = journal.read_text().splitlines()
    # journald stamps each line and takes <N> as its syslog priority (6: info).
    assert (
        f"<6>INFO intrafed.cli.serve: ocs1.example.com listening on TCP {NODE_IP}:{port}"
    ) in lines
    assert "<6>INFO intrafed.cli.serve: reloaded the staged configuration" in lines


def test_a_restart_under_systemd_makes_the_new_process_main_and_ready_and_never_stopping(
    tmp_path: Path, notify_socket: tuple[str, socket.socket]
) -> None:
    address, sock = notify_socket
    home = tmp_path / "ocs1"
    port = free_port(NODE_IP)
    staged_ocs_home(home, NODE_IP, port)
    node = subprocess.Popen(
        [sys.executable, "-m", "intrafed", "serve", "--home", str(home)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        env={**os.environ, "NOTIFY_SOCKET": address},
    )
    successor = None
    try:
        notices(sock, "READY=1")
        restarted = intrafed("service", "restart", "--home", str(home), "--json")
        assert restarted.returncode == 0, restarted.stderr
        successor = json.loads(restarted.stdout)["pid"]
        told = notices(sock, "READY=1")
        assert told[-1] == (
            f"MAINPID={successor}\nREADY=1\nSTATUS=listening on TCP {NODE_IP}:{port}"
        )
        assert node.wait(timeout=30) == 0  # drained, then gone
        sock.settimeout(0.5)
        with pytest.raises(TimeoutError):  # the old process never says STOPPING=1
            sock.recv(4096)
    finally:
        node.kill()
        node.wait()
        if successor is not None:
            intrafed("service", "stop", "--home", str(home))


def test_notify_reaches_an_abstract_socket_and_nothing_is_sent_without_one(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    name = f"intrafed-test-{os.getpid()}"
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as sock:
        sock.bind("\0" + name)
        sock.settimeout(10)
        monkeypatch.setenv("NOTIFY_SOCKET", "@" + name)
        assert notify("READY=1")
        assert sock.recv(4096) == b"READY=1"
    monkeypatch.delenv("NOTIFY_SOCKET")
    assert not notify("READY=1")
    monkeypatch.setenv("NOTIFY_SOCKET", "@" + name)  # nobody listens there any more
    assert not notify("READY=1")


def render(tmp_path: Path, *options: str) -> str:
    (tmp_path / "homes").mkdir(exist_ok=True)
    shown = intrafed("service", "unit", "--home-root", str(tmp_path / "homes"), *options)
    assert shown.returncode == 0, shown.stderr
    return shown.stdout


def verify(unit_dir: Path) -> subprocess.CompletedProcess[str]:
    """``systemd-analyze verify`` of an instance of the template. It needs no running
    systemd (no PID 1): it loads the unit in a manager of its own; --generators=no and
    --man=no keep it off the host's generators and man pages, and --recursive-errors=no
    makes a unit's own bad setting fail it (otherwise reported with exit status 0)."""
    analyze = shutil.which("systemd-analyze")
    assert analyze is not None, "install the Debian package systemd (./dev test does as root)"
    return subprocess.run(
        [
            analyze, "verify", "--man=no", "--generators=no", "--recursive-errors=no",
            str(unit_dir / "intrafed@ocs1.service"),
        ],
        capture_output=True, text=True, check=False, timeout=60,
    )  # fmt: skip


def test_the_unit_template_passes_systemd_analyze_verify(tmp_path: Path) -> None:
    units = tmp_path / "units"
    units.mkdir()
    installed = intrafed(
        "service", "unit", "--home-root", str(tmp_path / "homes"), "--user", "intrafed",
        "--install", "--unit-dir", str(units),
    )  # fmt: skip
    assert installed.returncode == 2
    assert "does not exist" in installed.stderr
    (tmp_path / "homes").mkdir()
    installed = intrafed(
        "service", "unit", "--home-root", str(tmp_path / "homes"), "--user", "intrafed",
        "--install", "--unit-dir", str(units),
    )  # fmt: skip
    assert installed.returncode == 0, installed.stderr
    unit = (units / "intrafed@.service").read_text()
    assert f"ExecStart={sys.executable} -m intrafed serve --home {tmp_path}/homes/%i" in unit
    assert "Type=notify" in unit
    checked = verify(units)
    assert (checked.returncode, checked.stderr) == (0, "")
    exposure = subprocess.run(
        [
            "systemd-analyze", "security", "--offline=yes", "--threshold=25",
            str(units / "intrafed@ocs1.service"),
        ],
        capture_output=True, text=True, check=False, timeout=60,
    )  # fmt: skip
    assert exposure.returncode == 0, exposure.stdout[-400:]
    # The check can fail: a setting systemd does not know is reported.
    (units / "intrafed@.service").write_text(unit.replace("Type=notify", "Type=notified"))
    broken = verify(units)
    assert broken.returncode != 0
    assert "Failed to parse service type" in broken.stderr


def test_the_unit_grants_a_capability_only_for_ports_below_1024(tmp_path: Path) -> None:
    plain = render(tmp_path, "--user", "intrafed")
    assert "CapabilityBoundingSet=\nAmbientCapabilities=\n" in plain
    assert "NoNewPrivileges=yes" in plain
    assert f"ReadWritePaths={tmp_path}/homes/%i" in plain
    assert "TimeoutStopSec=15" in plain
    privileged = render(tmp_path, "--user", "intrafed", "--privileged-ports")
    assert "AmbientCapabilities=CAP_NET_BIND_SERVICE\n" in privileged
    owner = pwd.getpwuid((tmp_path / "homes").stat().st_uid).pw_name
    by_owner = intrafed("service", "unit", "--home-root", str(tmp_path / "homes"))
    if owner == "root":
        assert by_owner.returncode == 2
        assert "name the nodes' own user (--user NAME)" in by_owner.stderr
    else:
        assert f"User={owner}\n" in by_owner.stdout


def test_homes_under_home_stay_readable_to_the_node() -> None:
    unit = render_unit(Path("/home/sip/nodes"), "sip", 15, 10, privileged_ports=False)
    assert "ProtectHome=read-only\n" in unit
    assert "ReadWritePaths=/home/sip/nodes/%i\n" in unit
