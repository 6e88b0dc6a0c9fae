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
from typing import Any

import click

from intrafed.check import check_homes
from intrafed.check.probe import probe_home
from intrafed.cli.common import fail, home_option
from intrafed.cli.home_lock import HomeInUseError, HomeLock, holder
from intrafed.config.model import ConfigError, NodeConfig
from intrafed.node import Node, settings_with_tls, tls_contexts_of
from intrafed.pki import PkiError
from intrafed.store import Store, open_store
from intrafed.transport import TransportError

STARTUP_PROBE_DELAY = 3.0
"""Seconds after start before the live probe runs (both sides often start together)."""
PID_FILE = "intrafed.pid"
LOG_FILE = "intrafed.log"
STATUS_FILE = "status.json"
START_TIMEOUT = 15.0
STOP_GRACE = 10.0


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
    node = Node(settings_with_tls(config, tls), state=store)
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

    def write_status(reload: dict[str, Any] | None = None) -> None:
        status = {
            "pid": os.getpid(),
            "fqdn": config.identity.fqdn,
            "role": config.role.value,
            "listeners": {transport: list(address) for transport, address in bound.items()},
            "started": time.time(),
            "reload": reload,
        }
        temporary = home / f".{STATUS_FILE}.tmp"
        temporary.write_text(json.dumps(status))
        temporary.replace(home / STATUS_FILE)

    def reload() -> None:
        try:
            staged = store.load("staged")
            reason = tls.reload(staged) if tls is not None else None
            if reason is None:
                reason = node.reload(settings_with_tls(staged, tls))
            if reason is None:
                store.promote(staged)
        except ConfigError as exc:
            reason = str(exc)
        if reason is None:
            logging.getLogger(__name__).info("reloaded the staged configuration")
        else:
            logging.getLogger(__name__).warning("reload refused: %s", reason)
        write_status({"ok": reason is None, "reason": reason, "at": time.time()})

    loop.add_signal_handler(signal.SIGTERM, stopping.set)
    loop.add_signal_handler(signal.SIGINT, stopping.set)
    loop.add_signal_handler(signal.SIGHUP, reload)
    write_status()
    click.echo(json.dumps({"node": config.identity.fqdn, "listeners": bound}), err=True)
    probing = loop.create_task(_log_probe_failures(home))
    await stopping.wait()
    probing.cancel()
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
@click.option(
    "--log-level",
    default="INFO",
    show_default=True,
    type=click.Choice(["DEBUG", "INFO", "WARNING", "ERROR"]),
    help="Logging threshold.",
)
def serve_command(home: Path, log_level: str) -> None:
    """Run the node in the foreground with the staged configuration (which becomes the
    running one). SIGTERM or Ctrl-C stops it gracefully; SIGHUP reloads."""
    logging.basicConfig(level=log_level, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    store = _open(home)
    try:
        lock = HomeLock(home)
    except HomeInUseError as exc:
        fail(f"{exc}: stop it first (intrafed service stop --home {home})", 1)
    try:
        config = store.load("staged")
        _log_check_errors(home)
        asyncio.run(_serve(home, store, config))
    except ConfigError as exc:
        fail(str(exc))
    except (OSError, TransportError) as exc:
        reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else exc
        fail(
            f"cannot start the node: {reason} — free the port or change the connection or "
            "listener (intrafed config show); the staged configuration stays pending",
            1,
        )
    finally:
        lock.release()


# -- service ---------------------------------------------------------------------------


@click.group("service")
def service_group() -> None:
    """Start, stop, restart and reload the node in the background; show its status."""


def _start(home: Path) -> None:
    log = (home / LOG_FILE).open("ab")
    process = subprocess.Popen(  # noqa: S603 (our own interpreter and command)
        [sys.executable, "-m", "intrafed", "serve", "--home", str(home)],
        stdin=subprocess.DEVNULL,
        stdout=log,
        stderr=log,
        start_new_session=True,
    )
    (home / PID_FILE).write_text(f"{process.pid}\n")
    deadline = time.monotonic() + START_TIMEOUT
    while time.monotonic() < deadline:
        status = _read_status(home)
        if status is not None and status.get("pid") == process.pid:
            listeners = ", ".join(f"{t} {a[0]}:{a[1]}" for t, a in status["listeners"].items())
            click.echo(
                f"started {status['fqdn']} (pid {process.pid}): {listeners or 'no listeners'}"
            )
            return
        if process.poll() is not None:
            (home / PID_FILE).unlink(missing_ok=True)
            # The node's last words are its one-line reason.
            lines = (home / LOG_FILE).read_text(errors="replace").strip().splitlines()
            fail(f"the node did not start: {lines[-1] if lines else 'no reason logged'}", 1)
        time.sleep(0.05)
    fail(f"the node did not report ready within {START_TIMEOUT:g} s; see {home / LOG_FILE}", 1)


def _stop(home: Path, pid: int, timeout: float) -> None:
    os.kill(pid, signal.SIGTERM)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if _running_pid(home) != pid:
            break
        time.sleep(0.05)
    else:
        os.kill(pid, signal.SIGKILL)
        click.echo(f"the node did not stop within {timeout:g} s; killed pid {pid}", err=True)
    (home / PID_FILE).unlink(missing_ok=True)
    (home / STATUS_FILE).unlink(missing_ok=True)


@service_group.command("start")
@home_option()
def start_command(home: Path) -> None:
    """Start the node in the background (the staged configuration becomes running)."""
    _open(home).close()
    pid = _running_pid(home)
    if pid is not None:
        fail(f"already running (pid {pid}); use intrafed service restart to apply changes", 1)
    _start(home)


@service_group.command("stop")
@home_option()
@click.option("--timeout", default=STOP_GRACE + 5, show_default=True, help="Seconds before a kill.")
def stop_command(home: Path, timeout: float) -> None:
    """Stop gracefully: stop accepting, finish pending transactions, close."""
    pid = _running_pid(home)
    if pid is None:
        fail("not running", 1)
    _stop(home, pid, timeout)
    click.echo(f"stopped (pid {pid})")


@service_group.command("restart")
@home_option()
@click.option("--timeout", default=STOP_GRACE + 5, show_default=True, help="Seconds before a kill.")
def restart_command(home: Path, timeout: float) -> None:
    """Graceful stop, then start with the staged configuration."""
    _open(home).close()
    pid = _running_pid(home)
    if pid is not None:
        _stop(home, pid, timeout)
    _start(home)


@service_group.command("reload")
@home_option()
def reload_command(home: Path) -> None:
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
            if reload["ok"]:
                click.echo("reloaded")
                return
            fail(f"reload refused: {reload['reason']}", 1)
        time.sleep(0.05)
    fail(f"no answer to the reload within 10 s; see {home / LOG_FILE}", 1)


@service_group.command("status")
@home_option()
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object.")
def status_command(home: Path, as_json: bool) -> None:
    """Whether the node runs, where it listens, and whether a restart is pending."""
    store = _open(home)
    pending = store.pending_changes()
    pid = _running_pid(home)
    status = _read_status(home) if pid is not None else None
    result = {
        "running": pid is not None,
        "pid": pid,
        "listeners": status["listeners"] if status else {},
        "restart_pending": bool(pending),
        "pending_changes": pending,
    }
    if as_json:
        click.echo(json.dumps(result))
        return
    click.echo(f"running (pid {pid})" if pid is not None else "stopped")
    for transport, address in result["listeners"].items():
        click.echo(f"  {transport} {address[0]}:{address[1]}")
    if pending:
        click.echo("restart pending:")
        for line in pending:
            click.echo(f"  {line}")
