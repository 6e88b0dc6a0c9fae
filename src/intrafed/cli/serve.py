"""``intrafed serve``: running a node in the foreground until SIGTERM (a graceful stop),
SIGHUP (a reload) or SIGUSR2 (a hand-over to a new process, ``handover``), with a pid
file, a status file (written once its listeners are up) and the home's lock
(``home_lock``): a second node on the same home is refused, and only the lock's holder is
ever signalled.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import signal
import sys
import time
from pathlib import Path
from typing import Any, NoReturn

import click

from intrafed.check import check_homes
from intrafed.check.probe import probe_home
from intrafed.cli import handover, logs, remembered, systemd
from intrafed.cli.common import fail, home_option
from intrafed.config.model import ConfigError, NodeConfig
from intrafed.console.in_node import ConsoleBesideNode
from intrafed.control.protocol import Refused
from intrafed.control.server import ControlServer
from intrafed.core.meter import Meter
from intrafed.node import Node, settings_with_tls, tls_contexts_of
from intrafed.node_control import NodeControl, reload_staged
from intrafed.pki import PkiError
from intrafed.store import Store, open_store
from intrafed.store.home_lock import ACQUIRE_ATTEMPTS, ACQUIRE_PAUSE, HomeInUseError, ServingLock
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
READY_POLL = 0.2
"""Seconds between two looks at whether a degraded node became ready."""
HANDOVER_LOCK_ATTEMPTS = int(STOP_TIMEOUT / ACQUIRE_PAUSE)
"""Tries of a successor to take the home's lock, which its predecessor gives up at once."""


def read_status(home: Path) -> dict[str, Any] | None:
    try:
        status: dict[str, Any] = json.loads((home / STATUS_FILE).read_text())
    except (OSError, ValueError):
        return None
    return status


# -- serve ---------------------------------------------------------------------------


async def _serve(
    home: Path,
    store: Store,
    config: NodeConfig,
    succession: handover.Succession | None,
    lock: ServingLock,
) -> None:
    """Run the node until SIGTERM (stop) or SIGUSR2 (hand over to a new process, which
    inherits the listening sockets: ``succession`` when this process is that one)."""
    tls = tls_contexts_of(home, config)
    meter = Meter() if config.metrics is not None else None
    node = Node(settings_with_tls(config, tls), state=store, meter=meter, pool=store.pool_feed())
    try:
        bound = await node.start(succession.sockets if succession is not None else None)
        if not bound:
            raise TransportError("no listener could start (see the warnings above)")
    except TransportError:
        await node.stop(grace=0)
        raise
    if node.degraded is None:
        # Only a configuration that started is the running one: a failed start keeps the
        # restart pending.
        store.promote(config)
        remembered.remember(home, config)
    if succession is not None:
        succession.close_unused(node.settings.listeners)
        succession.serving()
        await asyncio.to_thread(lock.take, HANDOVER_LOCK_ATTEMPTS)
        (home / PID_FILE).write_text(f"{os.getpid()}\n")
    loop = asyncio.get_running_loop()
    stopping = asyncio.Event()
    started = time.time()
    listening = ", ".join(f"{transport} {host}:{port}" for transport, (host, port) in bound.items())
    outcomes: dict[str, dict[str, Any] | None] = {"reload": None, "restart": None}
    handed_over = False

    def write_status(**outcome: dict[str, Any]) -> None:
        outcomes.update(outcome)
        status = {
            "pid": os.getpid(),
            "fqdn": config.identity.fqdn,
            "role": config.role.value,
            "listeners": {transport: list(address) for transport, address in bound.items()},
            "started": started,
            "handover": True,
            "degraded": node.degraded,
            **outcomes,
        }
        temporary = home / f".{STATUS_FILE}.{os.getpid()}.tmp"
        temporary.write_text(json.dumps(status))
        temporary.replace(home / STATUS_FILE)

    async def hand_over() -> None:
        nonlocal handed_over
        try:
            successor = handover.start_successor(node.transport.listening_fds())
            reason = await successor.ready(START_TIMEOUT)
        except OSError as exc:
            reason = f"cannot start the new process: {exc.strerror or exc}"
        if reason is None:
            handed_over = True
            stopping.set()
            return
        logging.getLogger(__name__).warning("restart failed, serving on: %s", reason)
        write_status(restart={"ok": False, "reason": reason, "at": time.time()})

    handing: asyncio.Task[None] | None = None

    async def until_ready() -> None:
        while node.degraded is not None:
            await asyncio.sleep(READY_POLL)
        write_status()
        systemd.notify(f"STATUS=listening on {listening}")

    def restart() -> None:
        nonlocal handing
        if not handed_over and (handing is None or handing.done()):
            handing = loop.create_task(hand_over())

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
        write_status(reload={**outcome, "at": time.time()})
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
    loop.add_signal_handler(signal.SIGUSR2, restart)
    write_status()
    logging.getLogger(__name__).info(
        "%s listening on %s",
        config.identity.fqdn,
        listening,
        extra={"node": config.identity.fqdn, "listeners": bound},
    )
    await control_server.start()
    console = ConsoleBesideNode.start(home)
    # A successor is the service's main process from now on (NotifyAccess=all).
    main = f"MAINPID={os.getpid()}\n" if succession is not None else ""
    degraded = "" if node.degraded is None else f"; degraded: {node.degraded}"
    systemd.notify(f"{main}READY=1\nSTATUS=listening on {listening}{degraded}")
    probing = loop.create_task(_log_probe_failures(home))
    readying = loop.create_task(until_ready()) if node.degraded is not None else None
    await stopping.wait()
    probing.cancel()
    if readying is not None:
        readying.cancel()
    if console is not None:
        await asyncio.to_thread(console.stop)
    await control_server.close()
    if metrics is not None:
        await metrics.close()
    control.close()
    if handed_over:
        lock.release()  # the successor takes the home: its status, its control socket
        logging.getLogger(__name__).info(
            "the new process serves: draining (no longer accepting; finishing transactions "
            "and connections)"
        )
        await node.drain(STOP_GRACE)
        return
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
    running one). SIGTERM or Ctrl-C stops it gracefully; SIGHUP reloads; SIGUSR2 hands the
    listeners to a new process and drains (intrafed service restart). A node whose
    PostgreSQL database cannot be reached starts degraded on the configuration it last
    ran, and reads its state once the database answers. Under systemd
    (intrafed service unit) it reports readiness, reloads and stopping to the manager, and
    logs to the journal without timestamps of its own."""
    logs.configure(log_level, log_format, log_file)

    def fatal(message: str, code: int) -> NoReturn:
        if log_file is None:
            fail(message, code)
        logging.getLogger(__name__).critical(message)  # the last line the starter reads
        sys.exit(code)

    config: NodeConfig | None = None
    try:
        store = open_store(home)
    except ConfigError as exc:
        away = remembered.unreachable_store(home, exc)
        if away is None:
            fatal(str(exc), 2)
        store, config = away
        logging.getLogger(__name__).error(
            "%s: starting with the configuration this node last ran", exc.message
        )
    lock = ServingLock(home)
    try:
        succession = handover.inherited()
        if succession is None:
            lock.take(ACQUIRE_ATTEMPTS)
        config = config or store.load("staged")
        _log_check_errors(home)
        eventloop.run(_serve(home, store, config, succession, lock))
    except HomeInUseError as exc:
        fatal(f"{exc}: stop it first (intrafed service stop --home {home})", 1)
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
