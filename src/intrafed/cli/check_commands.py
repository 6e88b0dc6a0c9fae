"""``intrafed check`` (the seed's task list, validated across both sides) and ``intrafed
probe`` (live checks from a running node).

Exit status 0 when nothing is wrong, 1 when a check or probe finds errors, 2 on bad usage.
"""

from __future__ import annotations

import asyncio
import json
import sys
from pathlib import Path

import click

from intrafed.check import CheckReport, Step, check_homes
from intrafed.check.probe import ProbeReport, probe_home
from intrafed.cli.common import home_option
from intrafed.cli.output import echo
from intrafed.pki import Severity
from intrafed.store.home_lock import holder

_MARKS = {
    "ok": ("PASS", "bold green"),
    Severity.WARNING: ("WARN", "bold yellow"),
    Severity.ERROR: ("FAIL", "bold red"),
}


def _plural(count: int, word: str) -> str:
    return f"{count} {word}{'s' if count != 1 else ''}"


def _print_check(report: CheckReport) -> None:
    click.echo(f"intrafed check: {', '.join(report.nodes)}")
    for step in Step:
        findings = [f for f in report.findings if f.step is step]
        severities = {f.severity for f in findings}
        worst = (
            Severity.ERROR
            if Severity.ERROR in severities
            else Severity.WARNING
            if Severity.WARNING in severities
            else "ok"
        )
        echo(_MARKS[worst], f"  {step.value}")
        for finding in findings:
            colour = {Severity.ERROR: "red", Severity.WARNING: "yellow"}.get(finding.severity, "")
            label = (f"{finding.severity.value:<7}", colour)
            echo("      ", label, f" {finding.rule.id:<32} {finding.node}: {finding.message}")
            click.echo(f"              fix: {finding.fix}")
    errors, warnings = len(report.errors), len(report.warnings)
    summary = (
        f"{_plural(errors, 'error')}, {_plural(warnings, 'warning')} "
        f"on {_plural(len(report.nodes), 'node')}"
    )
    echo((summary, "bold red" if errors else "bold yellow" if warnings else "bold green"))


@click.command("check")
@home_option()
@click.option(
    "--peer",
    "peers",
    multiple=True,
    type=click.Path(exists=True, path_type=Path),
    help="Another node of the deployment: its home, or a file from intrafed config export. "
    "Repeat for every node.",
)
@click.option("--json", "as_json", is_flag=True, help='Print {"ok": …, "findings": […]}.')
def check_command(home: Path, peers: tuple[Path, ...], as_json: bool) -> None:
    """Validate the seed's task list on one node, or across the deployment with --peer."""
    report = check_homes(home, peers, is_running=lambda path: holder(path) is not None)
    if as_json:
        click.echo(json.dumps(report.to_json(), indent=2))
    else:
        _print_check(report)
    if not report.ok:
        sys.exit(1)


def _print_probe(report: ProbeReport) -> None:
    click.echo(f"intrafed probe: from {report.node}")
    for result in report.results:
        mark = _MARKS["ok"] if result.ok else _MARKS[Severity.ERROR]
        echo(mark, f"  {result.check:<12} {result.target}: {result.message}")
        for name, value in result.details.items():
            click.echo(f"              {name}: {value}")
        if result.fix:
            click.echo(f"              fix: {result.fix}")
    failed = len([r for r in report.results if not r.ok])
    summary = f"{_plural(failed, 'failure')} in {_plural(len(report.results), 'check')}"
    echo((summary, "bold red" if failed else "bold green"))


@click.command("probe")
@home_option()
@click.option(
    "--timeout",
    type=click.FloatRange(0.1, 60),
    default=5.0,
    show_default=True,
    help="Seconds each connection, handshake or answer may take.",
)
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object.")
def probe_command(home: Path, timeout: float, as_json: bool) -> None:
    """Live checks from this node: its listeners, and for each static route name
    resolution, TCP, the TLS handshake with our certificate and an OPTIONS round trip."""
    report = asyncio.run(probe_home(home, timeout=timeout))
    if as_json:
        click.echo(json.dumps(report.to_json(), indent=2))
    else:
        _print_probe(report)
    if not report.ok:
        sys.exit(1)
