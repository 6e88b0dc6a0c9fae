"""``intrafed serve`` and ``intrafed service …``: running a node, and the seed's "Restart
Services on OCS Front-End Servers" without losing anything.

A background node is ``intrafed serve`` started in its own session, with a pid file, a log
file and a status file (written once its listeners are up) in the home directory. The node
holds the home's lock (``home_lock``): a second node on the same home is refused, and only
the lock's holder is ever signalled.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any, NoReturn

import click

from intrafed.check import check_homes
from intrafed.check.probe import probe_home
from intrafed.cli import logs, systemd
from intrafed.cli.common import done, fail, home_option, json_option
from intrafed.cli.output import echo
from intrafed.config.document import apply_command, changes
from intrafed.config.model import ConfigError, NodeConfig
from intrafed.console.in_node import ConsoleBesideNode
from intrafed.control.client import ask
from intrafed.control.protocol import ControlError, Refused
from intrafed.control.server import ControlServer
from intrafed.core.meter import Meter
from intrafed.node import Node, settings_with_tls, tls_contexts_of
from intrafed.node_control import NodeControl, reload_staged
from intrafed.pki import PkiError
from intrafed.store import Store, open_store
from intrafed.store.home_lock import HomeInUseError, HomeLock, holder
from intrafed.transport import TransportError, eventloop

STARTUP_PROBE_DELAY = 3.0
"""Seconds after start before the live probe runs (both sides often start together)."""
PID_FILE = "intrafed.pid"
LOG_FILE = "intrafed.log"
STATUS_FILE = "status.json"
START_TIMEOUT = 15.0
STOP_GRACE = 10.0
STOP_TIMEOUT = STOP_GRACE + 5
"""Seconds a graceful stop may take before the node is killed (systemd's TimeoutStopSec)."""


def _open(home: Path) -> Store:
    try:
        return open_store(home)
    except ConfigError as exc:
        fail(str(exc))


def _running_pid(home: Path) -> int | None:
    """The pid of the node running on this home (the holder of its lock); a pid file left
    by a node that is gone is removed, and its pid never signalled."""
    pid = holder(home)
    if pid is None:
        (home / PID_FILE).unlink(missing_ok=True)
    return pid


def _read_status(home: Path) -> dict[str, Any] | None:
    try:
        status: dict[str, Any] = json.loads((home / STATUS_FILE).read_text())
    except (OSError, ValueError):
        return None
    return status


# -- serve ---------------------------------------------------------------------------


async def _serve(home: Path, store: Store, config: NodeConfig) -> None:
    tls = tls_contexts_of(home, config)
    meter = Meter() if config.metrics is not None else None
    node = Node(settings_with_tls(config, tls), state=store, meter=meter, pool=store.pool_feed())
    try:
        bound = await node.start()
        if not bound:
            raise TransportError("no listener could start (see the warnings above)")
    except TransportError:
        await node.stop(grace=0)
        raise
    # Only a configuration that started is the running one: a failed start keeps the
    # restart pending.
    store.promote(config)
    loop = asyncio.get_running_loop()
    stopping = asyncio.Event()
    started = time.time()
    listening = ", ".join(f"{transport} {host}:{port}" for transport, (host, port) in bound.items())

    def write_status(reload: dict[str, Any] | None = None) -> None:
        status = {
            "pid": os.getpid(),
            "fqdn": config.identity.fqdn,
            "role": config.role.value,
            "listeners": {transport: list(address) for transport, address in bound.items()},
            "started": started,
            "reload": reload,
        }
        temporary = home / f".{STATUS_FILE}.tmp"
        temporary.write_text(json.dumps(status))
        temporary.replace(home / STATUS_FILE)

    def reload() -> dict[str, Any] | Refused:
        systemd.notify(systemd.reloading())
        result = reload_staged(home, node, store, tls)
        reason = result.reason if isinstance(result, Refused) else None
        applied = [] if isinstance(result, Refused) else result["applied"]
        if reason is None:
            logging.getLogger(__name__).info("reloaded the staged configuration")
        else:
            logging.getLogger(__name__).warning("reload refused: %s", reason)
        outcome = {"ok": reason is None, "reason": reason, "applied": applied}
        write_status({**outcome, "at": time.time()})
        refused = "" if reason is None else f"; reload refused: {reason}"
        systemd.notify(f"READY=1\nSTATUS=listening on {listening}{refused}")
        return result

    control = NodeControl(home, node, started, reload)
    control_server = ControlServer(home, control)

    metrics = None
    if meter is not None and config.metrics is not None:
        from intrafed.node_metrics import serve_metrics  # prometheus_client only when on

        metrics = await serve_metrics(node, meter, config.metrics)
    loop.add_signal_handler(signal.SIGTERM, stopping.set)
    loop.add_signal_handler(signal.SIGINT, stopping.set)
    loop.add_signal_handler(signal.SIGHUP, reload)
    write_status()
    logging.getLogger(__name__).info(
        "%s listening on %s",
        config.identity.fqdn,
        listening,
        extra={"node": config.identity.fqdn, "listeners": bound},
    )
    await control_server.start()
    console = ConsoleBesideNode.start(home)
    systemd.notify(f"READY=1\nSTATUS=listening on {listening}")
    probing = loop.create_task(_log_probe_failures(home))
    await stopping.wait()
    probing.cancel()
    if console is not None:
        await asyncio.to_thread(console.stop)
    await control_server.close()
    if metrics is not None:
        await metrics.close()
    control.close()
    systemd.notify("STOPPING=1\nSTATUS=finishing pending transactions")
    logging.getLogger(__name__).info("stopping: finishing pending transactions")
    await node.stop(grace=STOP_GRACE)
    (home / STATUS_FILE).unlink(missing_ok=True)


def _log_check_errors(home: Path) -> None:
    """Log each error of the node's own static check once, with its fix; the node starts
    all the same."""
    logger = logging.getLogger(__name__)
    try:
        report = check_homes(home)
    except (ConfigError, PkiError, OSError) as exc:
        logger.warning("intrafed check could not run: %s", exc)
        return
    for finding in report.errors:
        logger.error("check %s: %s — fix: %s", finding.rule.id, finding.message, finding.fix_text)


async def _log_probe_failures(home: Path) -> None:
    """Once the node is up (and the peer had a moment to start too), probe the routes
    and log each failure once, in the probe's words, with its fix."""
    logger = logging.getLogger(__name__)
    await asyncio.sleep(STARTUP_PROBE_DELAY)
    try:
        report = await probe_home(home)
    except (ConfigError, PkiError, OSError) as exc:
        logger.warning("intrafed probe could not run: %s", exc)
        return
    for result in report.failures():
        logger.error(
            "probe %s %s: %s — fix: %s", result.check, result.target, result.message, result.fix
        )
    if report.ok:
        logger.info("probe: every route, handshake and OPTIONS round trip passed")


@click.command("serve")
@home_option()
@logs.log_options
@click.option(
    "--log-file",
    type=click.Path(dir_okay=False, path_type=Path),
    help="Append the log to this file (opened again once logrotate moves it) instead of stderr.",
)
def serve_command(home: Path, log_level: str, log_format: str, log_file: Path | None) -> None:
    """Run the node in the foreground with the staged configuration (which becomes the
    running one). SIGTERM or Ctrl-C stops it gracefully; SIGHUP reloads. Under systemd
    (intrafed service unit) it reports readiness, reloads and stopping to the manager, and
    logs to the journal without timestamps of its own."""
    logs.configure(log_level, log_format, log_file)

    def fatal(message: str, code: int) -> NoReturn:
        if log_file is None:
            fail(message, code)
        logging.getLogger(__name__).critical(message)  # the last line the starter reads
        sys.exit(code)

    try:
        store = open_store(home)
    except ConfigError as exc:
        fatal(str(exc), 2)
    try:
        lock = HomeLock(home)
    except HomeInUseError as exc:
        fatal(f"{exc}: stop it first (intrafed service stop --home {home})", 1)
    try:
        config = store.load("staged")
        _log_check_errors(home)
        eventloop.run(_serve(home, store, config))
    except ConfigError as exc:
        fatal(str(exc), 2)
    except (OSError, TransportError) as exc:
        reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else exc
        fatal(
            f"cannot start the node: {reason} — free the port or change the connection or "
            "listener (intrafed config show); the staged configuration stays pending",
            1,
        )
    finally:
        lock.release()


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
    with open_store(home) as store:
        running, staged = store.load("running"), store.load("staged")
        members = store.members_pending() if staged.identity.pool is not None else {}
    pending = changes(running, staged)
    pid = _running_pid(home)
    status = _read_status(home) if pid is not None else None
    return {
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
        status = _read_status(home)
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
    return f"started {state['node']} (pid {state['pid']}): {listeners or 'no listeners'}"


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
    _open(home).close()
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
    """Graceful stop, then start with the staged configuration."""
    _open(home).close()
    pid = _running_pid(home)
    killed = _stop(home, pid, timeout) if pid is not None else False
    state = _start(home, log_level, log_format)
    done(as_json, {**state, "stopped_pid": pid, "killed": killed}, [_started(state)])


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
    previous = (_read_status(home) or {}).get("reload")
    os.kill(pid, signal.SIGHUP)
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        reload = (_read_status(home) or {}).get("reload")
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
    "IM&P cluster, or null), members_behind (its members that run an older configuration)."
)
def status_command(home: Path, as_json: bool) -> None:
    """Whether the node runs (since when, with how many registrations, subscriptions and
    connections), where it listens, and whether a reload or restart is pending.

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
    started = (_read_status(home) or {}).get("started") if state["running"] else None
    state["uptime_seconds"] = round(time.time() - started) if started else None
    state["live"] = _live_status(home) if state["running"] else None
    if as_json:
        done(as_json, state, [])
    else:
        if state["running"]:
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
