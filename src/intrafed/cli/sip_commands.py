"""``intrafed sip …``: tools for SIP messages copied from logs and traces."""

from __future__ import annotations

import json
import sys
from typing import Any, BinaryIO

import click

from intrafed.sip import RemoteSipError, Request, Response, parse_message


@click.group("sip")
def sip_group() -> None:
    """Work with SIP messages."""


def describe(message: Request | Response) -> dict[str, Any]:
    """A JSON-ready description of a parsed, valid message."""
    description: dict[str, Any] = {"valid": True}
    if isinstance(message, Request):
        description |= {
            "kind": "request",
            "method": message.method,
            "request_uri": str(message.uri),
        }
    else:
        description |= {"kind": "response", "status": message.status, "reason": message.reason}
    from_addr, to_addr = message.from_addr, message.to_addr
    description |= {
        "call_id": message.call_id,
        "cseq": {"number": message.cseq.number, "method": message.cseq.method},
        "from": {"uri": str(from_addr.uri), "tag": from_addr.tag},
        "to": {"uri": str(to_addr.uri), "tag": to_addr.tag},
        "via": [
            {"transport": via.transport, "sent_by": via.sent_by, "branch": via.branch}
            for via in message.vias
        ],
        "max_forwards": message.max_forwards,
        "headers": [{"name": name, "value": value} for name, value in message.headers],
        "body_length": len(message.body),
    }
    return description


def _summary(message: Request | Response) -> str:
    start = message.start_line()
    return (
        f"valid {start!r}: {len(message.headers)} headers, {len(message.body)}-byte body, "
        f"Call-ID {message.call_id}, CSeq {message.cseq}, {len(message.vias)} Via"
    )


def _printable(text: str) -> str:
    """Text with undecodable bytes shown as escapes instead of failing to print."""
    return text.encode("utf-8", "surrogateescape").decode("utf-8", "backslashreplace")


@sip_group.command("parse")
@click.argument("source", type=click.File("rb"))
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object instead of text.")
def parse_command(source: BinaryIO, as_json: bool) -> None:
    """Check one SIP message (a file, or - for standard input) as a server would.

    The input is read as one datagram: Content-Length, when present, must not exceed the
    body. Exit status 0 when the message is valid, 1 when it is not.
    """
    data = source.read()
    try:
        message = parse_message(data)
        message.validate()
    except RemoteSipError as exc:
        if as_json:
            click.echo(json.dumps({"valid": False, "status": exc.status, "reason": exc.reason}))
        else:
            click.echo(_printable(f"invalid: {exc.status} {exc.reason}"))
        sys.exit(1)
    if as_json:
        # ASCII escapes keep the output valid even for bytes that are not UTF-8.
        click.echo(json.dumps(describe(message), indent=2))
        return
    click.echo(_printable(_summary(message)))
    click.echo(_printable(message.start_line()))
    for name, value in message.headers:
        click.echo(_printable(f"  {name}: {value}"))
