"""``intrafed ua``: a small SIP client for labs and scripts — one user over one TCP or TLS
connection to its home node: register, message, options, publish, subscribe, watch, listen."""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
import json
import os
import signal
import sys
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import IO, Any, TypeVar

import click

from intrafed.cli.common import fail
from intrafed.config.values import is_ip_address
from intrafed.sip.pidf import PresenceState
from intrafed.ua import (
    DEFAULT_TIMEOUT,
    Event,
    MessageReceived,
    PresenceNotified,
    Reply,
    SessionEnded,
    SessionStarted,
    SipError,
    TypingReceived,
    UaError,
    UaSettings,
    UserAgent,
)

F = TypeVar("F", bound=Callable[..., Any])
_DEFAULT_PORTS = {"tcp": 5060, "tls": 5062}
"""TLS: the node's client TLS port (OCS's TLS connection; IM&P's Server Auth listener), never
the MTLS / Peer Auth port 5061, which asks every client for a certificate."""
PASSWORD_ENV = "INTRAFED_PASSWORD"  # noqa: S105 - the variable's name
_WHERE = "say where the node is: --server HOST:PORT, or --node FQDN --ip ADDR [--port N]"


def _ip_address(ctx: click.Context, param: click.Parameter, value: str | None) -> str | None:
    """Refuse an --ip that is not an IP address, in one line."""
    if value is not None:
        try:
            ipaddress.ip_address(value)
        except ValueError:
            fail(f"--ip {value!r}: expected an IP address (the FQDN goes in --node)")
    return value


def _visible_password(ctx: click.Context, param: click.Parameter, value: str | None) -> None:
    """Refuse a password on the command line: every user of the machine sees it in ps."""
    if value is not None:
        fail(
            "--password: a password on the command line is visible to every user (ps); "
            f"use --password-file FILE or the {PASSWORD_ENV} environment variable"
        )


_CONNECTION_OPTIONS = (
    click.option(
        "--user", "aor", required=True, metavar="AOR", help="The user, alice@example.com."
    ),
    click.option(
        "--password-file",
        type=click.File("rb"),
        metavar="FILE",
        help="A file whose first line is the user's digest password (- for standard input); "
        "or set INTRAFED_PASSWORD; asked for when neither is given on a terminal.",
    ),
    click.option("--password", "password_argument", hidden=True, callback=_visible_password),
    click.option("--server", metavar="HOST:PORT", help="The node to connect to."),
    click.option("--node", "node_fqdn", metavar="FQDN", help="The node's FQDN (TLS checks it)."),
    click.option(
        "--ip", "node_ip", metavar="ADDR", callback=_ip_address, help="The node's IP address."
    ),
    click.option(
        "--port",
        type=click.IntRange(1, 65535),
        help="The node's port with --ip/--node [default: 5060 for tcp; 5062 for tls, the "
        "client TLS port: OCS's TLS connection, IM&P's Server Auth (give --port 5063 where "
        "it was moved there, as the seed does)]. --server HOST:PORT names the port itself.",
    ),
    click.option(
        "--transport",
        type=click.Choice(["tcp", "tls"], case_sensitive=False),
        default="tcp",
        show_default=True,
        help="TCP, or TLS verified against --ca.",
    ),
    click.option(
        "--ca",
        "ca_file",
        type=click.Path(exists=True, dir_okay=False, path_type=Path),
        help="TLS: the CA certificate (PEM) that signed the node's certificate.",
    ),
    click.option("--source-ip", metavar="ADDR", help="Connect from this local address."),
    click.option(
        "--request-timeout",
        type=click.FloatRange(min=0.1),
        default=DEFAULT_TIMEOUT,
        show_default=True,
        help="Seconds to wait for a connection and for each final response.",
    ),
    click.option("--json", "as_json", is_flag=True, help="Print JSON instead of text."),
)


def _connection_options(command: F) -> F:
    for option in reversed(_CONNECTION_OPTIONS):
        command = option(command)
    return command


def _ua_settings(options: dict[str, Any]) -> UaSettings:
    """The agent's settings from the connection options; bad usage exits 2 naming the fix."""
    aor = options["aor"]
    user, at, domain = aor.removeprefix("sip:").partition("@")
    if not (user and at and domain):
        fail(f"--user {aor!r}: expected an address of record such as alice@example.com")
    transport = options["transport"]
    server, node_fqdn, node_ip = options["server"], options["node_fqdn"], options["node_ip"]
    if server is not None:
        if node_ip is not None or options["port"] is not None:
            fail("--server: give either --server HOST:PORT or --ip/--port, not both")
        host, _, port_text = server.rpartition(":")
        if not host or not port_text.isdigit() or not 0 < int(port_text) <= 65535:
            fail(f"--server {server!r}: expected HOST:PORT, e.g. 127.0.0.2:5060")
        address = (host.strip("[]"), int(port_text))
    elif node_ip is not None or node_fqdn is not None:
        address = (node_ip or node_fqdn, options["port"] or _DEFAULT_PORTS[transport])
    else:
        fail(f"--server: {_WHERE}")
    if transport == "tls" and node_fqdn is None and is_ip_address(address[0]):
        fail("--node: TLS verifies the node's certificate by name; add --node FQDN")
    return UaSettings(
        aor.removeprefix("sip:"),
        address,
        password=_password(options["password_file"]),
        transport=transport,
        server_name=node_fqdn,
        ca_file=options["ca_file"],
        source_ip=options["source_ip"],
        timeout=options["request_timeout"],
    )


def _password(source: IO[bytes] | None) -> str | None:
    """The password from --password-file, else INTRAFED_PASSWORD, else asked for on a
    terminal (empty: none); None when there is none."""
    if source is not None:
        try:
            text = source.read().decode("utf-8")
        except UnicodeDecodeError:
            fail("--password-file: is not UTF-8 text; save it as UTF-8")
        lines = text.splitlines()
        return lines[0] if lines else ""
    if PASSWORD_ENV in os.environ:
        return os.environ[PASSWORD_ENV]
    if sys.stdin.isatty():
        answer: str = click.prompt(
            "Password (empty for none)",
            hide_input=True,
            default="",
            show_default=False,
            err=True,
        )
        return answer or None
    return None


def _reply_fields(reply: Reply) -> dict[str, object]:
    return {"status": reply.status, "reason": reply.reason, "warning": reply.warning}


def _reply_line(what: str, reply: Reply) -> str:
    line = f"{what}: {reply.status} {reply.reason}"
    return line + (f" ({reply.warning})" if reply.warning else "")


def _run(
    options: dict[str, Any],
    command: str,
    action: Callable[[UserAgent], Awaitable[dict[str, object]]],
    *,
    summary: bool = True,
) -> None:
    """Connect, run ``action``, print its result (unless it printed as it went: not
    ``summary``); a failure is one line (one JSON object with --json) and exit 1."""
    settings = _ua_settings(options)
    as_json = options["as_json"]

    async def session() -> dict[str, object]:
        task = asyncio.current_task()
        assert task is not None
        # SIGTERM ends the command as Ctrl-C does: the registration is removed first.
        asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, task.cancel)
        async with UserAgent(settings) as agent:
            try:
                return await action(agent)
            finally:
                await _unregister(agent)

    try:
        result = asyncio.run(session())
    except SipError as exc:
        if as_json:
            error = {"ok": False, "command": command, "error": str(exc), "status": exc.status}
            click.echo(json.dumps({**error, "reason": exc.reason, "warning": exc.warning}))
            raise SystemExit(1) from None
        fail(f"intrafed ua {command}: {exc}", 1)
    except (UaError, TimeoutError) as exc:
        if as_json:
            click.echo(json.dumps({"ok": False, "command": command, "error": str(exc)}))
            raise SystemExit(1) from None
        fail(f"intrafed ua {command}: {exc}", 1)
    except (KeyboardInterrupt, asyncio.CancelledError):
        return
    lines = result.pop("lines", [])
    if not summary:
        return
    if as_json:
        click.echo(json.dumps({"ok": True, "command": command, **result}))
    else:
        for line in lines if isinstance(lines, list) else ():
            click.echo(line)


async def _unregister(agent: UserAgent) -> None:
    """Remove the binding this command made: the node must not keep a contact whose
    connection is gone (a MESSAGE to the user then gets 480, not a failed delivery)."""
    if agent.registered:
        with contextlib.suppress(UaError):
            await agent.unregister()


def _no_notify(agent: UserAgent, presentity: str) -> UaError:
    host, port = agent.settings.server
    return UaError(
        f"no NOTIFY for {presentity} from {host}:{port} within {agent.settings.timeout:g} s "
        "after the subscription was accepted: the node delivers NOTIFYs to a registered "
        "contact; add --register"
    )


async def _first_notify(agent: UserAgent, presentity: str) -> PresenceNotified:
    """The NOTIFY a subscription's acceptance is followed by (RFC 6665 §4.2.1), waited
    for no longer than the request timeout."""
    try:
        return await agent.next_event(PresenceNotified)
    except TimeoutError:
        raise _no_notify(agent, presentity) from None


def _presence_fields(event: PresenceNotified) -> dict[str, object]:
    return {
        "presentity": event.presentity,
        "state": event.state.value if event.state is not None else None,
        "note": event.note,
        "subscription_state": event.subscription_state,
    }


def _presence_line(event: PresenceNotified) -> str:
    state = event.state.label if event.state is not None else "(no presence document)"
    note = f" — {event.note}" if event.note else ""
    return f"{event.presentity}: {state}{note} [{event.subscription_state}]"


async def _register_first(agent: UserAgent, register: bool) -> list[str]:
    if not register:
        return []
    reply = await agent.register()
    return [_reply_line(f"REGISTER {agent.uri.aor}", reply)]


_REGISTER_OPTION = click.option(
    "--register",
    is_flag=True,
    help="Register first (the registration is removed when the command ends, Ctrl-C and "
    "SIGTERM included).",
)


@click.group("ua")
def ua_group() -> None:
    """A small SIP client: one user over one TCP or TLS connection to its home node."""


@ua_group.command("register")
@_connection_options
@click.option("--expires", type=click.IntRange(0), default=3600, show_default=True, help="Seconds.")
def register_command(expires: int, **options: Any) -> None:
    """Register the user (digest authentication when challenged), then unregister and exit.

    The registration is bound to this connection, so it is removed (Expires: 0) before the
    command ends: use it to check credentials and reachability.
    """

    async def action(agent: UserAgent) -> dict[str, object]:
        reply = await agent.register(expires)
        line = _reply_line(f"REGISTER {agent.uri.aor} at {agent.contact}", reply)
        return {**_reply_fields(reply), "contact": agent.contact, "lines": [line]}

    _run(options, "register", action)


@ua_group.command("message")
@_connection_options
@_REGISTER_OPTION
@click.argument("to")
@click.argument("text")
def message_command(to: str, text: str, register: bool, **options: Any) -> None:
    """Send TEXT to TO (user@domain) as a pager-mode MESSAGE."""

    async def action(agent: UserAgent) -> dict[str, object]:
        lines = await _register_first(agent, register)
        reply = await agent.message(to, text)
        lines.append(_reply_line(f"MESSAGE to {to}", reply))
        return {**_reply_fields(reply), "to": to, "lines": lines}

    _run(options, "message", action)


@ua_group.command("options")
@_connection_options
@click.argument("uri", required=False)
def options_command(uri: str | None, **options: Any) -> None:
    """Send OPTIONS to URI (default: the user's domain, answered by the node)."""

    async def action(agent: UserAgent) -> dict[str, object]:
        reply = await agent.options(uri)
        allow = reply.response.headers.get("allow")
        lines = [_reply_line(f"OPTIONS {uri or agent.uri.host}", reply)]
        if allow:
            lines.append(f"  Allow: {allow}")
        return {**_reply_fields(reply), "allow": allow, "lines": lines}

    _run(options, "options", action)


@ua_group.command("publish")
@_connection_options
@click.option(
    "--state",
    required=True,
    type=click.Choice([state.value for state in PresenceState], case_sensitive=False),
    help="The presence state to publish.",
)
@click.option("--note", help="A free-text note shown with the state.")
@click.option("--expires", type=click.IntRange(0), default=3600, show_default=True, help="Seconds.")
def publish_command(state: str, note: str | None, expires: int, **options: Any) -> None:
    """Publish the user's presence (PUBLISH with a PIDF document)."""

    async def action(agent: UserAgent) -> dict[str, object]:
        reply = await agent.publish(PresenceState(state), note, expires)
        line = _reply_line(f"PUBLISH {agent.uri.aor} {state}", reply)
        etag = reply.response.headers.get("sip-etag")
        return {**_reply_fields(reply), "state": state, "etag": etag, "lines": [line]}

    _run(options, "publish", action)


@ua_group.command("subscribe")
@_connection_options
@_REGISTER_OPTION
@click.argument("to")
def subscribe_command(to: str, register: bool, **options: Any) -> None:
    """Subscribe to TO's presence, print the first NOTIFY, and unsubscribe."""

    async def action(agent: UserAgent) -> dict[str, object]:
        lines = await _register_first(agent, register)
        subscription = await agent.subscribe(to)
        event = await _first_notify(agent, to)
        lines.append(_presence_line(event))
        if subscription.state != "terminated":
            await subscription.unsubscribe()
        return {**_presence_fields(event), "lines": lines}

    _run(options, "subscribe", action)


@ua_group.command("watch")
@_connection_options
@_REGISTER_OPTION
@click.option("--count", type=click.IntRange(1), help="Stop after N notifications.")
@click.option(
    "--timeout",
    "duration",
    type=click.FloatRange(min=0),
    help="Stop after S seconds (default: run until --count or Ctrl-C).",
)
@click.argument("presentities", nargs=-1, required=True)
def watch_command(
    presentities: tuple[str, ...],
    register: bool,
    count: int | None,
    duration: float | None,
    **options: Any,
) -> None:
    """Subscribe to the presence of each PRESENTITY and print every NOTIFY as it comes
    (one line, or one JSON object per line with --json)."""
    as_json = options["as_json"]

    def show(line: str, fields: dict[str, object]) -> None:
        click.echo(json.dumps(fields) if as_json else line)

    async def action(agent: UserAgent) -> dict[str, object]:
        for line in await _register_first(agent, register):
            show(line, {"registered": agent.uri.aor})
        unnotified = {(await agent.subscribe(p)).presentity: p for p in presentities}
        seen = 0
        loop = asyncio.get_running_loop()
        deadline = loop.time() + duration if duration is not None else None
        first_by = loop.time() + agent.settings.timeout
        while count is None or seen < count:
            left = float("inf") if deadline is None else max(0.0, deadline - loop.time())
            if unnotified:
                left = min(left, max(0.0, first_by - loop.time()))
            try:
                event = await agent.next_event(PresenceNotified, timeout=left)
            except TimeoutError:
                if unnotified and (deadline is None or loop.time() < deadline):
                    raise _no_notify(agent, ", ".join(unnotified.values())) from None
                break
            unnotified.pop(event.presentity, None)
            seen += 1
            show(_presence_line(event), _presence_fields(event))
        if count is not None and seen < count:
            raise UaError(f"{seen} of {count} notifications within {duration} s")
        return {}

    _run(options, "watch", action, summary=False)


@ua_group.command("listen")
@_connection_options
@click.option("--count", type=click.IntRange(1), help="Stop after N received requests.")
@click.option(
    "--timeout",
    "duration",
    type=click.FloatRange(min=0),
    help="Stop after S seconds (default: run until --count, Ctrl-C or SIGTERM).",
)
@click.option(
    "--expires",
    type=click.IntRange(60),
    default=600,
    show_default=True,
    help="Seconds of each registration; it is refreshed at half of that.",
)
def listen_command(count: int | None, duration: float | None, expires: int, **options: Any) -> None:
    """Register the user and print each MESSAGE, IM session (INVITE, BYE, typing) and
    NOTIFY it receives as it comes (one line, or one JSON object per line with --json),
    until --count, --timeout, Ctrl-C or SIGTERM; the registration is removed on exit."""
    as_json = options["as_json"]

    def show(line: str, fields: dict[str, object]) -> None:
        click.echo(json.dumps(fields) if as_json else line)

    async def action(agent: UserAgent) -> dict[str, object]:
        loop = asyncio.get_running_loop()
        reply = await agent.register(expires)
        show(_reply_line(f"REGISTER {agent.uri.aor}", reply), {"registered": agent.uri.aor})
        refresh_at = loop.time() + expires / 2
        deadline = loop.time() + duration if duration is not None else None
        seen = 0
        while count is None or seen < count:
            left = refresh_at - loop.time()
            if deadline is not None:
                if deadline <= loop.time():
                    break
                left = min(left, deadline - loop.time())
            try:
                event = await agent.next_event(timeout=max(0.0, left))
            except TimeoutError:
                if loop.time() >= refresh_at:
                    await agent.register(expires)
                    refresh_at = loop.time() + expires / 2
                continue
            seen += 1
            show(*_received(event))
        if count is not None and seen < count:
            raise UaError(f"{seen} of {count} requests within {duration} s")
        return {}

    _run(options, "listen", action, summary=False)


def _received(event: Event) -> tuple[str, dict[str, object]]:
    """What ``listen`` prints of an event: a line, and its JSON object."""
    if isinstance(event, PresenceNotified):
        return _presence_line(event), {"event": "notify", **_presence_fields(event)}
    if isinstance(event, MessageReceived):
        where = "in session " if event.session is not None else ""
        fields: dict[str, object] = {"event": "message", "from": event.sender}
        fields |= {"text": event.text, "content_type": event.content_type}
        fields["session"] = event.session is not None
        return f"MESSAGE {where}from {event.sender}: {event.text}", fields
    name = {
        SessionStarted: ("session-started", "INVITE from {}: IM session accepted"),
        SessionEnded: ("session-ended", "BYE from {}: IM session ended"),
        TypingReceived: ("typing", "{} is typing"),
    }[type(event)]
    return name[1].format(event.sender), {"event": name[0], "from": event.sender}
