"""``intrafed user move``: users from one partition to the other, with their HA1s, block
lists and the IM&P directory, the running nodes reloaded and the watchers re-subscribed."""

from __future__ import annotations

import contextlib
import csv
import io
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import IO

import click

from intrafed.admin.user_move import (
    MovePlan,
    StagedConfiguration,
    apply_move,
    forget_state,
    plan_move,
)
from intrafed.cli.common import done, json_option
from intrafed.cli.config_staging import utf8
from intrafed.config.document import DocumentFile
from intrafed.control.client import NodeNotRunningError, ask
from intrafed.control.protocol import ControlError, Refused
from intrafed.store import Store, open_database, open_store


@click.group("user")
def user_group() -> None:
    """Move users between the partitions (credentials, block lists, directory, watchers)."""


_SIDE_HELP = (
    "a node's home (its running node is reloaded), a file written by intrafed config "
    "export --file (edited in place: import it where that node runs), or a database URL "
    "(sqlite:///PATH, or postgresql://… of an Enterprise pool or an IM and Presence cluster)"
)


@dataclass(frozen=True, slots=True)
class _Side:
    """One side of a move, and how its nodes learn of it: a home's node is reloaded; an
    exported file or a database is applied by its own administrator."""

    where: str
    configuration: StagedConfiguration
    home: Path | None = None
    store: Store | None = None


def _open_side(value: str, option: str, stack: contextlib.ExitStack) -> _Side:
    if "://" in value:
        store = stack.enter_context(open_database(value, option))
        return _Side(store.location, store, store=store)
    path = Path(value)
    if path.is_file():
        return _Side(value, DocumentFile(path, option))
    store = stack.enter_context(open_store(path))
    return _Side(value, store, home=path, store=store)


@user_group.command("move")
@click.argument("aors", metavar="USER@DOMAIN...", nargs=-1)
@click.option("--from", "from_", required=True, help=f"The old side: {_SIDE_HELP}.")
@click.option("--to", required=True, help="The new side, as --from.")
@click.option(
    "--csv",
    "source",
    type=click.File("rb"),
    help="Also move the users of this file (- for standard input): the address column of "
    "a users CSV (see intrafed config user import --help), or one address per line.",
)
@click.option("--dry-run", is_flag=True, help="Print the plan; change nothing.")
@json_option()
def move_command(
    aors: tuple[str, ...],
    from_: str,
    to: str,
    source: IO[bytes] | None,
    dry_run: bool,
    as_json: bool,
) -> None:
    """Move USER@DOMAIN... from the side of --from to the side of --to.

    Each user must be on the old side only. In order: the users are added on the new side
    with their HA1s (no password needed) and block lists, then disabled and deleted on the
    old side; the IM and Presence directory of OCS users follows. A failed step puts both
    sides back. Then, for a side given by its home, its running node is reloaded — the old
    side first, which ends the users' presence subscriptions (terminated;reason=deactivated)
    — so that watchers subscribe again and reach the new home. Registrations are not ended:
    the next refresh on the old side gets 404 (not a user of this node) and the client
    registers at the new home. A side given as an exported file or a database URL is
    changed there; the lines say what applies it. Exits 1 when a running node could not be
    reloaded (the move is staged; the line says what to run).
    """
    wanted = [*aors, *(_addresses(utf8(source, "--csv")) if source is not None else [])]
    with contextlib.ExitStack() as stack:
        old = _open_side(from_, "--from", stack)
        new = _open_side(to, "--to", stack)
        plan = plan_move(wanted, old.configuration.load("staged"), new.configuration.load("staged"))
        lines = plan.steps()
        if dry_run:
            lines += [f"{side.where}: {_would_apply(side)}" for side in (new, old)]
            done(as_json, {"dry_run": True, "users": list(plan.aors), "steps": lines}, lines)
            return
        apply_move(old.configuration, new.configuration, plan)
        lines = [f"moved {', '.join(plan.aors)}", *lines]
        # The old side first: its NOTIFYs are sent as the users, which the new side
        # refuses from a peer once it homes them.
        reloads = [_apply(old, "old side")]
        lines += [reloads[0][0], *_end_sessions(old, plan)]
        if old.home is not None:
            _settle(old.home)
        reloads.append(_apply(new, "new side"))
        lines.append(reloads[1][0])
    applied = all(ok for _, ok in reloads)
    done(as_json, {"users": list(plan.aors), "steps": lines, "applied": applied}, lines)
    if not applied:
        sys.exit(1)


def _addresses(text: str) -> list[str]:
    """The addresses of --csv: its address column, or the first field of each line."""
    rows = [row for row in csv.reader(io.StringIO(text, newline="")) if row and row[0].strip()]
    header = [name.strip().lower() for name in rows[0]] if rows else []
    if "address" in header:
        column = header.index("address")
        return [row[column].strip() for row in rows[1:] if len(row) > column]
    return [row[0].strip() for row in rows if not row[0].lstrip().startswith("#")]


def _elsewhere(side: _Side) -> str:
    """What applies the move on a side not given by its home."""
    if side.store is None:
        return (
            f"an exported configuration: import it where that node runs (intrafed config "
            f"import {side.where} --home HOME), then reload it"
        )
    return "a database: reload each node that uses it (intrafed service reload --home HOME)"


def _would_apply(side: _Side) -> str:
    if side.home is None:
        return _elsewhere(side)
    home = side.home
    try:
        ask(home, "status", timeout=2.0)
    except NodeNotRunningError:
        return "not running: its next start applies the move"
    except ControlError as exc:
        return f"its control API does not answer ({exc}): reload it by hand"
    return "running: it would be reloaded"


def _apply(where: _Side, side: str) -> tuple[str, bool]:
    """Reload the node of a home when it runs; say truthfully what happened, and whether
    the node now runs the move (a stopped node will when it starts)."""
    home = where.home
    if home is None:
        return f"{side} ({where.where}) is {_elsewhere(where)}", True
    try:
        answer = ask(home, "reload", timeout=10.0)
    except NodeNotRunningError:
        return f"{side} ({home}) is not running: its next start applies the move", True
    except ControlError as exc:
        fix = f"intrafed service reload --home {home}"
        return f"{side} ({home}) not reloaded ({exc}): run {fix}", False
    if isinstance(answer, Refused):
        return f"{side} ({home}) refused the reload: {answer.reason} — {answer.fix}", False
    return f"{side} ({home}) reloaded", True


def _settle(home: Path, limit: float = 5.0) -> None:
    """Wait (up to ``limit`` s) until the node of ``home`` has no pending transaction:
    its final NOTIFYs were answered."""
    deadline = time.monotonic() + limit
    while time.monotonic() < deadline:
        try:
            status = ask(home, "status", timeout=2.0)
        except ControlError:
            return
        if not isinstance(status, dict) or not status.get("pending_transactions"):
            return
        time.sleep(0.05)


def _end_sessions(side: _Side, plan: MovePlan) -> list[str]:
    """The old side's node ends the users' subscriptions; a stopped node's stored ones are
    deleted instead (the watchers find out at their next refresh)."""
    home, store = side.home, side.store
    if home is None or store is None:
        return [
            f"{aor}: its watchers on the old side find out at their next refresh (481)"
            for aor in plan.aors
        ]
    lines = []
    for aor in plan.aors:
        try:
            answer = ask(home, "user_moved", timeout=10.0, user=aor)
        except NodeNotRunningError:
            ended = forget_state(store, [aor], time.time())
            lines.append(f"{aor}: {ended} stored subscription(s) deleted on the stopped old side")
            continue
        except ControlError as exc:
            lines.append(
                f"{aor}: the old side did not end its subscriptions ({exc}); they end at "
                "their expiry"
            )
            continue
        if isinstance(answer, Refused):
            lines.append(f"{aor}: the old side refused to end its subscriptions: {answer.reason}")
        else:
            ended = answer.get("ended", 0) if isinstance(answer, dict) else 0
            lines.append(f"{aor}: {ended} subscription(s) ended (reason=deactivated)")
    return lines
