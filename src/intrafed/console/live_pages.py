"""The pages of both roles that look at the running node: Status (running against staged,
Reload and Restart), Check (the report, each applicable fix a button), Probe, live
registrations and subscriptions, and the Trace page's SIP ladder."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

from starlette.concurrency import run_in_threadpool
from starlette.responses import Response

from intrafed.check import CheckReport, Step, check_homes
from intrafed.check.probe import probe_home
from intrafed.config.document import apply_command, changes
from intrafed.console.app import Visit
from intrafed.console.commands import fix_commands, run_intrafed, start_intrafed
from intrafed.console.ladder_view import layout
from intrafed.control.client import ask
from intrafed.control.protocol import ControlError
from intrafed.observe.trace import ladder
from intrafed.observe.trace_files import read_records, trace_directory
from intrafed.pki import Severity
from intrafed.store import open_store
from intrafed.store.home_lock import holder

_log = logging.getLogger(__name__)
PROBE_TIMEOUT = 3.0
"""Seconds each probe connection, handshake or answer may take."""


def _running(home: Path) -> bool:
    return holder(home) is not None


def _restarts_this_node(visit: Visit, arguments: list[str]) -> bool:
    """Whether ``arguments`` restart the node this console runs in: that command must not
    be waited on (the console stops with the node), so it runs detached."""
    return (
        visit.console.settings.in_node
        and arguments[:2] == ["service", "restart"]
        and arguments[-2:] == ["--home", str(visit.home)]
    )


async def status_page(visit: Visit) -> Response:
    """Running against staged, what a reload or restart would apply; the buttons."""
    home = visit.home
    if visit.form is not None:
        action = visit.form.text("action")
        if action not in ("reload", "restart"):
            return visit.redirect("/status", f"unknown action {action!r}")
        _log.info("service %s (%s)", action, visit.source)
        arguments = ["service", action, "--home", str(home)]
        if _restarts_this_node(visit, arguments):
            start_intrafed(arguments)
            return visit.render("restarting.html")
        result = await run_in_threadpool(run_intrafed, [arguments])
        return visit.redirect("/status", result.output)
    with open_store(home) as store:
        running_config, staged_config = store.load("running"), store.load("staged")
    running = _running(home)
    live: dict[str, Any] | None = None
    if running:
        try:
            answer = await run_in_threadpool(ask, home, "status", 2.0)
        except ControlError:
            answer = None
        live = answer if isinstance(answer, dict) else None
    return visit.render(
        "status.html",
        running=running,
        live=live,
        pending=changes(running_config, staged_config),
        apply=apply_command(running_config, staged_config),
    )


def _homes(visit: Visit) -> list[Path]:
    return [visit.home, *visit.console.settings.peers]


def _check(visit: Visit) -> CheckReport:
    return check_homes(
        visit.home,
        [peer for peer in visit.console.settings.peers if peer.exists()],
        is_running=_running,
    )


async def check_page(visit: Visit) -> Response:
    """The checker's report; a fix the console can apply is a button."""
    homes = _homes(visit)
    if visit.form is not None:
        fix = visit.form.text("fix") or ""
        report = await run_in_threadpool(_check, visit)
        offered = {finding.fix for finding in report.findings}
        commands = fix_commands(fix, homes) if fix in offered else None
        if commands is None:
            return visit.redirect("/check", "that fix is not offered by the check any more")
        _log.info("applying the fix %s (%s)", fix, visit.source)
        last = commands[-1]
        if _restarts_this_node(visit, last):
            outcome = await run_in_threadpool(run_intrafed, commands[:-1])
            if not outcome.ok:
                return visit.redirect("/check", outcome.output)
            start_intrafed(last)
            return visit.render("restarting.html")
        outcome = await run_in_threadpool(run_intrafed, commands)
        return visit.redirect("/check", outcome.output)
    report = await run_in_threadpool(_check, visit)
    steps = []
    for step in Step:
        findings = [f for f in report.findings if f.step is step]
        severities = {f.severity for f in findings}
        mark = (
            "fail"
            if Severity.ERROR in severities
            else "warn"
            if Severity.WARNING in severities
            else "pass"
        )
        rows = [(f, fix_commands(f.fix, homes) is not None) for f in findings]
        steps.append((step.value, mark, rows))
    return visit.render("check.html", report=report, steps=steps)


async def probe_page(visit: Visit) -> Response:
    """Live checks from the node: listeners, and each static route's next hop."""
    report = await probe_home(visit.home, timeout=PROBE_TIMEOUT)
    return visit.render("probe.html", report=report)


def _ask_list(home: Path, op: str) -> list[dict[str, Any]]:
    answer = ask(home, op, 2.0)
    return answer if isinstance(answer, list) else []


async def live_page(visit: Visit) -> Response:
    """The running node's registrations and subscriptions."""
    error = None
    registrations: list[dict[str, Any]] = []
    subscriptions: list[dict[str, Any]] = []
    try:
        registrations = await run_in_threadpool(_ask_list, visit.home, "registrations")
        subscriptions = await run_in_threadpool(_ask_list, visit.home, "subscriptions")
    except ControlError as exc:
        error = str(exc)
    return visit.render(
        "live.html", error=error, registrations=registrations, subscriptions=subscriptions
    )


async def trace_page(visit: Visit) -> Response:
    """Start or stop the trace; the ladder of recent cross-partition messages."""
    if visit.form is not None:
        state = "on" if visit.form.text("action") == "start" else "off"
        try:
            answer = await run_in_threadpool(lambda: ask(visit.home, "trace", state=state))
        except ControlError as exc:
            return visit.redirect("/trace", str(exc))
        notice = f"trace {'started' if state == 'on' else 'stopped'}"
        if isinstance(answer, dict) and answer.get("directory"):
            notice += f": {answer['directory']}"
        return visit.redirect("/trace", notice)
    homes = [home for home in _homes(visit) if trace_directory(home).is_dir()]
    bad: list[str] = []
    records = [record for home in homes for record in read_records(trace_directory(home), bad)]
    drawing = layout(ladder(records))
    return visit.render(
        "trace.html", drawing=drawing, traced=[str(home) for home in homes], damaged=len(bad)
    )


ROUTES = (
    ("/status", status_page, ["GET", "POST"]),
    ("/check", check_page, ["GET", "POST"]),
    ("/probe", probe_page, ["GET"]),
    ("/live", live_page, ["GET"]),
    ("/trace", trace_page, ["GET", "POST"]),
)
