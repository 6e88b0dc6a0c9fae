"""``intrafed show``: the live state of a running node, asked over its control API —
registrations, subscriptions, publications, connections and counters."""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import click

from intrafed.cli.common import fail, home_option, json_option
from intrafed.cli.output import print_table
from intrafed.control.client import NodeNotRunningError, ask
from intrafed.control.protocol import ControlError, JsonObject

NOT_RUNNING = 3
"""Exit status when no node runs on the home (as ``service status``)."""

_USER = click.option(
    "--user", metavar="USER[@DOMAIN]", help="Only the entries of this user (address or user part)."
)


@click.group("show")
def show_group() -> None:
    """Live state of the running node: registrations, subscriptions, publications,
    connections, stats. Exit status 3 when the node does not run."""


def _ask(home: Path, op: str, user: str | None = None) -> Any:
    try:
        answer = ask(home, op, user=user) if user is not None else ask(home, op)
    except NodeNotRunningError as exc:
        fail(str(exc), NOT_RUNNING)
    except ControlError as exc:
        fail(str(exc), 1)
    return answer


def _list(
    home: Path,
    op: str,
    user: str | None,
    as_json: bool,
    headers: Sequence[str],
    row: Callable[[JsonObject], Sequence[str]],
) -> None:
    entries = _ask(home, op, user)
    if as_json:
        click.echo(json.dumps(entries, indent=2))
        return
    print_table(headers, [[str(cell) for cell in row(entry)] for entry in entries])


def _expires(seconds: int) -> str:
    minutes, seconds = divmod(seconds, 60)
    return f"{minutes}m{seconds:02d}s" if minutes else f"{seconds}s"


@show_group.command("registrations")
@home_option()
@_USER
@json_option("Print the bindings as a JSON list.")
def registrations_command(home: Path, user: str | None, as_json: bool) -> None:
    """Registered contacts: user, contact, expiry, q, whether bound to its connection
    (RFC 5626 flow) and whether that connection is still open."""
    _list(
        home,
        "registrations",
        user,
        as_json,
        ("USER", "CONTACT", "EXPIRES", "Q", "FLOW", "CONNECTED"),
        lambda b: (
            b["aor"],
            b["contact"],
            _expires(b["expires_in"]),
            "" if b["q"] is None else f"{b['q']:g}",
            "yes" if b["flow_bound"] else "no",
            "yes" if b["connected"] else "no",
        ),
    )


@show_group.command("subscriptions")
@home_option()
@_USER
@json_option("Print the subscriptions as a JSON list.")
def subscriptions_command(home: Path, user: str | None, as_json: bool) -> None:
    """Presence subscriptions: presentity, watcher, event, expiry (--user: as either)."""
    _list(
        home,
        "subscriptions",
        user,
        as_json,
        ("PRESENTITY", "WATCHER", "EVENT", "EXPIRES"),
        lambda s: (s["presentity"], s["watcher"], s["event"], _expires(s["expires_in"])),
    )


@show_group.command("publications")
@home_option()
@_USER
@json_option("Print the publications as a JSON list.")
def publications_command(home: Path, user: str | None, as_json: bool) -> None:
    """Published presence (PUBLISH): user, state, note, entity tag, expiry."""
    _list(
        home,
        "publications",
        user,
        as_json,
        ("USER", "STATE", "NOTE", "ETAG", "EXPIRES"),
        lambda p: (p["aor"], p["state"], p["note"] or "", p["etag"], _expires(p["expires_in"])),
    )


@show_group.command("connections")
@home_option()
@json_option("Print the connections as a JSON list.")
def connections_command(home: Path, as_json: bool) -> None:
    """Open connections: flow id, transport, who opened it, addresses, the names its
    peer's certificate proves."""
    _list(
        home,
        "connections",
        None,
        as_json,
        ("FLOW", "TRANSPORT", "DIRECTION", "LOCAL", "REMOTE", "PROVEN NAMES"),
        lambda c: (
            c["flow"],
            c["transport"],
            c["direction"],
            c["local"],
            c["remote"],
            ", ".join(c["names"]),
        ),
    )


@show_group.command("stats")
@home_option()
@json_option("Print one JSON object: live (counts now) and counted (since start, or null).")
def stats_command(home: Path, as_json: bool) -> None:
    """Live counts, and what the node counted since it started: requests and responses by
    method and party, authorization decisions, rate-limit refusals, TLS handshake
    failures, failovers, store errors (counted only while metrics are on)."""
    stats = _ask(home, "stats")
    if as_json:
        click.echo(json.dumps(stats, indent=2))
        return
    live = stats["live"]
    click.echo(
        f"{live['name']}: up {live['uptime']} s, {live['registrations']} registrations of "
        f"{live['registered_users']} users, {live['subscriptions']} subscriptions, "
        f"{live['connections']} connections, {live['pending_transactions']} pending "
        "transactions"
    )
    counted = stats["counted"]
    if counted is None:
        click.echo(
            f"nothing counted: metrics are off (intrafed config metrics --home {home} "
            "--listen 127.0.0.1:9464, then intrafed service restart)"
        )
        return
    for title, key in (
        ("requests", "requests"),
        ("responses", "responses"),
        ("authorization", "authorization"),
        ("TLS handshake failures", "tls_handshake_failures"),
    ):
        rows = counted[key]
        click.echo(f"{title}:")
        headers = [name.upper().replace("_", " ") for name in rows[0]] if rows else ["COUNT"]
        print_table(headers, [[str(value) for value in row.values()] for row in rows], "  ")
    limited = ", ".join(f"{name} {count}" for name, count in counted["rate_limited"].items())
    click.echo(f"rate-limit refusals: {limited or 0}")
    click.echo(f"route failovers: {counted['route_failovers']}")
    click.echo(f"store errors: {counted['store_errors']}")
