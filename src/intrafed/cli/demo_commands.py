"""``intrafed demo``: both partitions on loopback with a fresh CA, alice and bob federating
across them; prints the SIP ladder of the cross-partition messages and a summary, or one
JSON object (``--json``), or keeps the nodes running (``--serve``).

Exit status 0 when every step is ok, 1 when one fails, 2 on bad usage (a non-empty
--home, busy ports).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import signal
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

import click

from intrafed.check.deployment import IMP_FQDN, OCS_FQDN, SIP_PORT
from intrafed.cli.common import fail
from intrafed.cli.ladder import arrow, ladder_heading
from intrafed.cli.output import echo
from intrafed.demo import (
    IMP_IP,
    OCS_IP,
    PORTS_PER_NODE,
    DemoEndpoints,
    DemoReport,
    LadderEntry,
    StepResult,
    run_demo,
    short_call_id,
)
from intrafed.demo_pool import FRONT_END_IPS, run_pool_demo
from intrafed.store.urls import is_postgresql

_PASS = ("PASS", "bold green")
_FAIL = ("FAIL", "bold red")


@contextlib.contextmanager
def _demo_root(home: Path | None) -> Iterator[Path]:
    """``home`` (new or empty), or a temporary directory removed afterwards."""
    if home is None:
        with tempfile.TemporaryDirectory(prefix="intrafed-demo-") as temporary:
            yield Path(temporary)
        return
    if home.exists() and any(home.iterdir()):
        fail(f"--home {home}: the directory is not empty; give a new or empty directory")
    home.mkdir(parents=True, exist_ok=True)
    yield home


def _print_step(step: StepResult, ladder: list[LadderEntry], left: str, right: str) -> None:
    echo(_PASS if step.ok else _FAIL, f"  {step.name}")
    for part in step.detail.split("; "):
        click.echo(f"      {part}")
    if ladder:
        click.echo(f"      {ladder_heading(left, right)}")
        for entry in ladder:
            line = arrow(entry.first_line, entry.sender == left)
            click.echo(f"      {entry.at:6.3f}s  {line}  {short_call_id(entry.call_id)}")
    click.echo()


def _print_report(report: DemoReport, left: str, right: str) -> None:
    click.echo(f"intrafed demo: {left} ({IMP_IP}, alice) and {right} ({OCS_IP}, bob)\n")
    for index, step in enumerate(report.steps):
        ladder = [entry for entry in report.ladder if entry.step == index]
        _print_step(step, ladder, left, right)
    passed = sum(step.ok for step in report.steps)
    rightwards = sum(entry.sender == left for entry in report.ladder)
    left_name, right_name = left.split(".", 1)[0], right.split(".", 1)[0]
    summary = (
        f"{passed} of {len(report.steps)} steps ok; {len(report.ladder)} cross-partition "
        f"messages ({rightwards} {left_name} -> {right_name}, "
        f"{len(report.ladder) - rightwards} {right_name} -> {left_name}); "
        f"elapsed {report.elapsed:.2f} s"
    )
    echo((summary, "bold green" if report.ok else "bold red"))


async def _serve_until_signalled(endpoints: DemoEndpoints) -> None:
    """Print the endpoints as one JSON line, then wait for SIGTERM or Ctrl-C."""
    loop = asyncio.get_running_loop()
    stopping = asyncio.Event()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stopping.set)
    click.echo(json.dumps(endpoints.to_json()))
    sys.stdout.flush()
    click.echo("serving; SIGTERM or Ctrl-C stops both nodes", err=True)
    await stopping.wait()
    click.echo("stopping both nodes", err=True)


@click.command("demo")
@click.option("--json", "as_json", is_flag=True, help='Print {"ok": …, "steps": […]} only.')
@click.option(
    "--serve",
    is_flag=True,
    help="After setup keep both nodes running until SIGTERM or Ctrl-C; print the endpoints, "
    "users and passwords as one JSON line.",
)
@click.option(
    "--base-port",
    type=click.IntRange(1, 65536 - PORTS_PER_NODE),
    default=SIP_PORT,
    show_default=True,
    help=f"The TCP port; the other {PORTS_PER_NODE - 1} follow it (MTLS/Peer Auth, OCS "
    "client TLS, Server Auth), on 127.0.0.2 and 127.0.0.3.",
)
@click.option(
    "--pool",
    "members",
    type=click.IntRange(2, len(FRONT_END_IPS)),
    help="Run an Enterprise pool of this many OCS front ends on the --db PostgreSQL database "
    "(and one IM and Presence node) instead.",
)
@click.option(
    "--db",
    help="With --pool: an empty PostgreSQL database for the pool, "
    "postgresql://USER:PASSWORD@HOST:PORT/DATABASE.",
)
@click.option(
    "--home",
    type=click.Path(file_okay=False, path_type=Path),
    help="Keep the generated configuration and PKI in this new or empty directory "
    "[default: a temporary directory, removed at the end].",
)
def demo_command(
    as_json: bool,
    serve: bool,
    base_port: int,
    members: int | None,
    db: str | None,
    home: Path | None,
) -> None:
    """Run imp1.example.com (alice) and ocs1.example.com (bob) on loopback, federated as
    the seed configures them, and show presence, pager and session IM crossing over."""
    if members is not None:
        _pool_demo(members, db, as_json, serve, base_port, home)
        return
    with _demo_root(home) as root:
        try:
            report = asyncio.run(
                run_demo(root, base_port=base_port, serve=_serve_until_signalled if serve else None)
            )
        except KeyboardInterrupt:
            fail("intrafed demo: interrupted", 130)
    if serve and report.ok:
        return
    if as_json:
        click.echo(json.dumps(report.to_json(), indent=2))
    else:
        _print_report(report, IMP_FQDN, OCS_FQDN)
    if not report.ok:
        sys.exit(1)


def _pool_demo(
    members: int, db: str | None, as_json: bool, serve: bool, base_port: int, home: Path | None
) -> None:
    """``demo --pool N``: the steps and whether each went as the pool should."""
    if serve:
        fail("--serve: not with --pool; leave out one of them")
    if db is None or not is_postgresql(db):
        fail(
            "--db: intrafed demo --pool needs an empty PostgreSQL database for the pool — give "
            "--db postgresql://USER:PASSWORD@HOST:PORT/DATABASE (Debian: apt-get install "
            "postgresql, then as the postgres user: createuser --pwprompt intrafed && "
            "createdb -O intrafed intrafed_demo)"
        )
    with _demo_root(home) as root:
        report = asyncio.run(run_pool_demo(root, db=db, members=members, base_port=base_port))
    if as_json:
        click.echo(json.dumps(report.to_json(), indent=2))
    else:
        for step in report.steps:
            echo(_PASS if step.ok else _FAIL, f"  {step.name}")
            click.echo(f"      {step.detail}")
        passed = sum(step.ok for step in report.steps)
        summary = f"{passed} of {len(report.steps)} steps ok; elapsed {report.elapsed:.2f} s"
        echo((summary, "bold green" if report.ok else "bold red"))
    if not report.ok:
        sys.exit(1)
