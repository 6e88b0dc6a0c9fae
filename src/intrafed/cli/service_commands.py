"""``intrafed service …``: running a node in the background, and the seed's "Restart
Services on OCS Front-End Servers" without losing anything.

A background node is ``intrafed serve`` (``cli.serve``) started in its own session, with
a pid file, a log file and a status file in the home directory.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import click

from intrafed.cli import logs, remembered, systemd
from intrafed.cli.common import done, fail, home_option, json_option
from intrafed.cli.output import echo
from intrafed.cli.serve import (
    LOG_FILE,
    PID_FILE,
    START_TIMEOUT,
    STATUS_FILE,
    STOP_GRACE,
    STOP_TIMEOUT,
    read_status,
)
from intrafed.config.document import apply_command, changes
from intrafed.config.model import ConfigError
from intrafed.control.client import ask
from intrafed.control.protocol import ControlError
from intrafed.node import listener_specs
from intrafed.store import open_store
from intrafed.store.home_lock import holder


def _check_store(home: Path) -> None:
    """Fail unless the node's store opens, or the node can start without it (degraded)."""
    try:
        open_store(home).close()
    except ConfigError as exc:
        if remembered.remembered(home) is None:
            fail(str(exc))


def _running_pid(home: Path) -> int | None:
    """The pid of the node running on this home (the holder of its lock); a pid file left
    by a node that is gone is removed, and its pid never signalled."""
    pid = holder(home)
    if pid is None:
        (home / PID_FILE).unlink(missing_ok=True)
    return pid


# -- service ---------------------------------------------------------------------------

STATUS_NOT_RUNNING = 3
"""``service status`` of a node that does not run: the LSB init-script status that
systemctl uses too (0: running, 1: the status cannot be told)."""


@click.group("service")
def service_group() -> None:
    """Start, stop, restart and reload the node in the background; show its status; print
    its systemd unit."""


def _state(home: Path) -> dict[str, Any]:
    """What every service command prints under --json: whether the node runs (pid,
    listeners), how the staged configuration differs from the running one, and the
    outcome of the last reload."""
    database = None
    try:
        with open_store(home) as store:
            running, staged = store.load("running"), store.load("staged")
            members = store.members_pending() if staged.identity.pool is not None else {}
    except ConfigError as exc:
        last = remembered.remembered(home)
        if last is None:
            raise
        running = staged = last  # what it would start with; pending changes are unknown
        members = {}
        database = exc.message
    pending = changes(running, staged)
    pid = _running_pid(home)
    status = read_status(home) if pid is not None else None
    return {
        "degraded": status.get("degraded") if status else None,
        "database_unreachable": database,
        "status": "running" if pid is not None else "stopped",
        "running": pid is not None,
        "pid": pid,
        "node": staged.identity.fqdn,
        "listeners": status["listeners"] if status else {},
        "staged_is_running": not pending,
        "apply": apply_command(running, staged),
        "restart_pending": bool(pending),
        "pending_changes": pending,
        "last_reload": status.get("reload") if status else None,
        "pool": staged.identity.pool,
        "members_behind": sorted(name for name, behind in members.items() if behind),
    }


def _start(home: Path, log_level: str, log_format: str) -> dict[str, Any]:
    log = home / LOG_FILE
    # Output before the node's logging is set up (or if that fails) lands in its log too.
    with log.open("ab") as early:
        process = subprocess.Popen(  # noqa: S603 (our own interpreter and command)
            [
                *(sys.executable, "-m", "intrafed", "serve", "--home", str(home)),
                *("--log-file", str(log), "--log-level", log_level, "--log-format", log_format),
            ],
            stdin=subprocess.DEVNULL,
            stdout=early,
            stderr=early,
            start_new_session=True,
        )
    (home / PID_FILE).write_text(f"{process.pid}\n")
    deadline = time.monotonic() + START_TIMEOUT
    while time.monotonic() < deadline:
        status = read_status(home)
        if status is not None and status.get("pid") == process.pid:
            break
        if process.poll() is not None:
            (home / PID_FILE).unlink(missing_ok=True)
            # The node's last words are its one-line reason.
            lines = log.read_text(errors="replace").strip().splitlines()
            reason = logs.message_of(lines[-1]) if lines else "no reason logged"
            fail(f"the node did not start: {reason}", 1)
        time.sleep(0.05)
    else:
        fail(f"the node did not report ready within {START_TIMEOUT:g} s; see {log}", 1)
    return _state(home)


def _started(state: dict[str, Any]) -> str:
    listeners = ", ".join(f"{t} {a[0]}:{a[1]}" for t, a in state["listeners"].items())
    degraded = f"; degraded: {state['degraded']}" if state["degraded"] else ""
    return f"started {state['node']} (pid {state['pid']}): {listeners or 'no listeners'}{degraded}"


def _stop(home: Path, pid: int, timeout: float) -> bool:
    """Stop the node gracefully; True when it had to be killed."""
    os.kill(pid, signal.SIGTERM)
    deadline = time.monotonic() + timeout
    killed = False
    while time.monotonic() < deadline:
        if _running_pid(home) != pid:
            break
        time.sleep(0.05)
    else:
        os.kill(pid, signal.SIGKILL)
        killed = True
        click.echo(f"the node did not stop within {timeout:g} s; killed pid {pid}", err=True)
    (home / PID_FILE).unlink(missing_ok=True)
    (home / STATUS_FILE).unlink(missing_ok=True)
    return killed


_TIMEOUT = click.option(
    "--timeout", default=STOP_TIMEOUT, show_default=True, help="Seconds before a kill."
)
_JSON_HELP = "Print one JSON object: the node's status after the command (see service status)."


@service_group.command("start")
@home_option()
@logs.log_options
@json_option(_JSON_HELP)
def start_command(home: Path, log_level: str, log_format: str, as_json: bool) -> None:
    """Start the node in the background (the staged configuration becomes running). It
    logs to HOME/intrafed.log, opened again when logrotate moves it."""
    _check_store(home)
    pid = _running_pid(home)
    if pid is not None:
        fail(f"already running (pid {pid}); use intrafed service restart to apply changes", 1)
    state = _start(home, log_level, log_format)
    done(as_json, state, [_started(state)])


@service_group.command("stop")
@home_option()
@_TIMEOUT
@json_option(_JSON_HELP)
def stop_command(home: Path, timeout: float, as_json: bool) -> None:
    """Stop gracefully: stop accepting, finish pending transactions, close."""
    pid = _running_pid(home)
    if pid is None:
        fail("not running", 1)
    killed = _stop(home, pid, timeout)
    done(as_json, {**_state(home), "stopped_pid": pid, "killed": killed}, [f"stopped (pid {pid})"])


@service_group.command("restart")
@home_option()
@_TIMEOUT
@logs.log_options
@json_option(_JSON_HELP)
def restart_command(
    home: Path, timeout: float, log_level: str, log_format: str, as_json: bool
) -> None:
    """Start a new process with the staged configuration that takes over the listening
    sockets; once it serves, the old one stops accepting, finishes its transactions and
    connections (up to the stop grace) and exits: no request is refused or lost. A node
    that cannot hand over (or whose listener changes need a port freed) is stopped
    gracefully, then started."""
    _check_store(home)
    pid = _running_pid(home)
    if pid is not None and (read_status(home) or {}).get("handover") and not _rebinds(home):
        state = _hand_over(home, pid)
        done(as_json, {**state, "stopped_pid": pid, "killed": False}, [_started(state)])
        return
    killed = _stop(home, pid, timeout) if pid is not None else False
    state = _start(home, log_level, log_format)
    done(as_json, {**state, "stopped_pid": pid, "killed": killed}, [_started(state)])


def _rebinds(home: Path) -> bool:
    """Whether the staged listeners need a port the running ones hold in another way (an
    address or transport changed): only a stop frees it for the new process."""
    try:
        with open_store(home) as store:
            running, staged = store.load("running"), store.load("staged")
    except ConfigError:
        return False  # the database is away: the node restarts on what it ran
    held = listener_specs(running)
    return any(s.port == h.port and s not in held for s in listener_specs(staged) for h in held)


def _hand_over(home: Path, pid: int) -> dict[str, Any]:
    """Ask the node ``pid`` to hand over to a new process; its status once that serves."""
    before = (read_status(home) or {}).get("restart")
    os.kill(pid, signal.SIGUSR2)
    deadline = time.monotonic() + START_TIMEOUT + 5
    while True:
        if time.monotonic() > deadline:
            fail(f"no new process served within {START_TIMEOUT + 5:g} s; see {home / LOG_FILE}", 1)
        status = read_status(home) or {}
        serving = _running_pid(home)
        if serving not in (None, pid) and status.get("pid") == serving:
            return _state(home)
        restart = status.get("restart")
        if status.get("pid") == pid and restart and restart != before:
            reason = f"{restart['reason']} (see {home / LOG_FILE})"
            fail(f"not restarted: {reason}; pid {pid} serves on", 1)
        time.sleep(0.05)


@service_group.command("reload")
@home_option()
@json_option(
    "Print one JSON object: the node's status and, under reload, what the reload applied "
    "(ok, applied) or why it was refused (reason)."
)
def reload_command(home: Path, as_json: bool) -> None:
    """Apply staged routes and hosts without dropping connections (listener changes need a
    restart)."""
    pid = _running_pid(home)
    if pid is None:
        fail("not running", 1)
    previous = (read_status(home) or {}).get("reload")
    os.kill(pid, signal.SIGHUP)
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        reload = (read_status(home) or {}).get("reload")
        if reload and reload != previous:
            state = {**_state(home), "reload": reload}
            if reload["ok"]:
                done(as_json, state, ["reloaded"])
                return
            fail(f"reload refused: {reload['reason']}", 1, **state)
        time.sleep(0.05)
    fail(f"no answer to the reload within 10 s; see {home / LOG_FILE}", 1)


def _live_status(home: Path) -> dict[str, Any] | None:
    """The running node's own status over its control API; None when it does not answer."""
    try:
        answer = ask(home, "status", timeout=2.0)
    except ControlError:
        return None
    return answer if isinstance(answer, dict) else None


def _duration(seconds: int) -> str:
    days, rest = divmod(seconds, 86400)
    hours, rest = divmod(rest, 3600)
    minutes, seconds = divmod(rest, 60)
    return f"{days}d {hours}h {minutes:02d}m" if days else f"{hours}h {minutes:02d}m {seconds:02d}s"


@service_group.command("unit")
@click.option(
    "--home-root",
    type=click.Path(exists=True, file_okay=False, path_type=Path),
    required=True,
    help="The directory holding one home per node: intrafed@NAME runs HOME-ROOT/NAME.",
)
@click.option("--user", help="The user the nodes run as.  [default: the owner of HOME-ROOT]")
@click.option(
    "--privileged-ports",
    is_flag=True,
    help="Grant CAP_NET_BIND_SERVICE, for listeners on ports below 1024 (5060 to 5063 need "
    "nothing).",
)
@click.option("--install", is_flag=True, help="Write the unit into --unit-dir.")
@click.option(
    "--unit-dir",
    type=click.Path(file_okay=False, path_type=Path),
    default=systemd.UNIT_DIR,
    show_default=True,
    help="Where --install writes the unit.",
)
def unit_command(
    home_root: Path, user: str | None, privileged_ports: bool, install: bool, unit_dir: Path
) -> None:
    """Print (or --install) the systemd unit template intrafed@.service: Type=notify,
    systemctl reload without dropping connections, a graceful stop, and a sandbox that
    writes only the node's home."""
    home_root = home_root.absolute()
    user = user or systemd.default_user(home_root)
    if user in ("root", "0"):
        fail(f"--user: {home_root} belongs to root; name the nodes' own user (--user NAME)")
    unit = systemd.render_unit(home_root, user, STOP_TIMEOUT, STOP_GRACE, privileged_ports)
    if not install:
        click.echo(unit, nl=False)
        return
    target = unit_dir / systemd.UNIT_NAME
    target.write_text(unit)
    click.echo(f"installed {target}; for a node whose home is {home_root}/NAME:")
    click.echo("  systemctl daemon-reload && systemctl enable --now intrafed@NAME")


@service_group.command("status")
@home_option()
@json_option(
    "Print one JSON object: status (running or stopped), pid, uptime_seconds, listeners, "
    "live (the running node's own status and counts, when it answers), staged_is_running, "
    "apply (reload or restart), pending_changes, last_reload, pool (the Enterprise pool or "
    "IM&P cluster, or null), members_behind (its members that run an older configuration), "
    "degraded (why a running node refuses writes: its database is away), "
    "database_unreachable."
)
def status_command(home: Path, as_json: bool) -> None:
    """Whether the node runs (since when, with how many registrations, subscriptions and
    connections) or runs degraded (and why), where it listens, and whether a reload or
    restart is pending.

    \b
    Exit status (the LSB and systemctl convention):
      0  the node runs
      3  the node does not run
      1  the status cannot be told (e.g. HOME is not a node's readable home)
    """
    try:
        state = _state(home)
    except (ConfigError, OSError) as exc:
        fail(str(exc) if isinstance(exc, ConfigError) else f"{home}: {exc.strerror or exc}", 1)
    started = (read_status(home) or {}).get("started") if state["running"] else None
    state["uptime_seconds"] = round(time.time() - started) if started else None
    state["live"] = _live_status(home) if state["running"] else None
    if as_json:
        done(as_json, state, [])
    else:
        if state["running"] and state["degraded"]:
            up = f", up {_duration(state['uptime_seconds'])}" if started else ""
            echo(("degraded", "bold yellow"), f" (pid {state['pid']}{up}): {state['degraded']}")
        elif state["running"]:
            up = f", up {_duration(state['uptime_seconds'])}" if started else ""
            echo(("running", "bold green"), f" (pid {state['pid']}{up})")
        else:
            echo(("stopped", "bold yellow"))
        for transport, address in state["listeners"].items():
            click.echo(f"  {transport} {address[0]}:{address[1]}")
        counts = {
            name: value
            for name, value in (state["live"] or {}).items()
            if isinstance(value, int) and not isinstance(value, bool)
        }
        if counts:
            click.echo("  " + ", ".join(f"{name} {value}" for name, value in counts.items()))
        if state["pending_changes"]:
            echo((f"{'restart' if not state['running'] else state['apply']} pending:", "yellow"))
            for line in state["pending_changes"]:
                click.echo(f"  {line}")
        if state["pool"] is not None:
            behind = state["members_behind"]
            text = (
                f"an older configuration runs on {', '.join(behind)}"
                if behind
                else "every member runs the staged configuration"
            )
            click.echo(f"pool {state['pool']}: {text}")
    sys.exit(0 if state["running"] else STATUS_NOT_RUNNING)
