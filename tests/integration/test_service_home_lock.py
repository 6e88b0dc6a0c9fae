"""One node per home, over real processes: a second node is refused in one line, a stale pid
file never gets another process signalled, and a node that cannot bind its ports fails in
one line and leaves the staged configuration pending."""

from __future__ import annotations

import fcntl
import json
import socket
import subprocess
import time
from pathlib import Path

from tests.homes import staged_ocs_home
from tests.integration.peers import free_port
from tests.integration.test_service_restart import intrafed

NODE_IP = "127.0.0.176"


def make_home(home: Path, port: int) -> None:
    """A node whose staged configuration (one TCP connection) differs from the running one."""
    staged_ocs_home(home, NODE_IP, port)


def wait_until_locked(path: Path) -> None:
    for _ in range(500):
        with path.open() as probe:
            try:
                fcntl.flock(probe, fcntl.LOCK_SH | fcntl.LOCK_NB)
            except BlockingIOError:
                return
        time.sleep(0.01)
    raise AssertionError(f"nobody locked {path}")


def status(home: Path) -> dict[str, object]:
    shown = intrafed("service", "status", "--home", str(home), "--json")
    result: dict[str, object] = json.loads(shown.stdout)
    assert shown.returncode == (0 if result["running"] else 3), shown.stderr
    return result


def test_a_second_node_on_the_same_home_is_refused_naming_the_running_pid(
    tmp_path: Path,
) -> None:
    home = tmp_path / "ocs1"
    make_home(home, free_port(NODE_IP))
    started = intrafed("service", "start", "--home", str(home))
    assert started.returncode == 0, started.stderr
    try:
        pid = status(home)["pid"]
        assert isinstance(pid, int)
        second = intrafed("serve", "--home", str(home))
        again = intrafed("service", "start", "--home", str(home))
    finally:
        stopped = intrafed("service", "stop", "--home", str(home))
    assert second.returncode == 1
    assert "Traceback" not in second.stderr
    assert second.stderr.splitlines()[-1] == (
        f"a node already runs on {home} (pid {pid}): "
        f"stop it first (intrafed service stop --home {home})"
    )
    assert (again.returncode, again.stderr) == (
        1,
        f"already running (pid {pid}); use intrafed service restart to apply changes\n",
    )
    assert (stopped.returncode, stopped.stdout) == (0, f"stopped (pid {pid})\n")
    assert status(home)["running"] is False


def test_service_stop_never_signals_a_process_named_by_a_stale_pid_file(tmp_path: Path) -> None:
    home = tmp_path / "ocs1"
    make_home(home, free_port(NODE_IP))
    # A node that died left its pid behind, and the pid now belongs to someone else.
    bystander = subprocess.Popen(["sleep", "60"])
    try:
        (home / "intrafed.pid").write_text(f"{bystander.pid}\n")
        (home / "intrafed.lock").write_text(f"{bystander.pid}\n")
        stopped = intrafed("service", "stop", "--home", str(home))
        reloaded = intrafed("service", "reload", "--home", str(home))
        shown = status(home)
        alive = bystander.poll() is None
    finally:
        bystander.kill()
        bystander.wait()
    assert alive
    assert (stopped.returncode, stopped.stderr) == (1, "not running\n")
    assert (reloaded.returncode, reloaded.stderr) == (1, "not running\n")
    assert (shown["running"], shown["pid"]) == (False, None)
    assert not (home / "intrafed.pid").exists()


def test_service_stop_never_signals_a_lock_holder_that_is_not_a_node(tmp_path: Path) -> None:
    home = tmp_path / "ocs1"
    make_home(home, free_port(NODE_IP))
    lock = home / "intrafed.lock"
    lock.write_text("")
    # Another program holds the lock file (flock -F execs sleep, which keeps the lock).
    holder = subprocess.Popen(["flock", "-F", str(lock), "sleep", "60"])
    try:
        wait_until_locked(lock)
        lock.write_text(f"{holder.pid}\n")
        (home / "intrafed.pid").write_text(f"{holder.pid}\n")
        stopped = intrafed("service", "stop", "--home", str(home))
        alive = holder.poll() is None
    finally:
        holder.kill()
        holder.wait()
    assert alive
    assert (stopped.returncode, stopped.stderr) == (1, "not running\n")


def test_a_node_that_cannot_bind_fails_in_one_line_and_the_restart_stays_pending(
    tmp_path: Path,
) -> None:
    home = tmp_path / "ocs1"
    with socket.socket() as taken:
        taken.bind((NODE_IP, 0))
        taken.listen()
        port = taken.getsockname()[1]
        make_home(home, port)
        served = intrafed("serve", "--home", str(home))
        started = intrafed("service", "start", "--home", str(home))
        shown = status(home)
    reason = f"cannot start the node: cannot listen on {NODE_IP}:{port} (TCP): "
    assert served.returncode == 1
    assert "Traceback" not in served.stderr
    assert served.stderr.splitlines()[-1].startswith(reason)
    assert served.stderr.splitlines()[-1].endswith("the staged configuration stays pending")
    assert started.returncode == 1
    assert started.stderr.startswith(f"the node did not start: {reason}")
    assert len(started.stderr.splitlines()) == 1
    assert (shown["running"], shown["restart_pending"]) == (False, True)
    # With the port free the same configuration starts and becomes the running one.
    started = intrafed("service", "start", "--home", str(home))
    try:
        assert started.returncode == 0, started.stderr
        assert status(home)["restart_pending"] is False
    finally:
        intrafed("service", "stop", "--home", str(home))
