"""SIP trace records, sans-IO: one per message a node received or sent, as a JSON line;
filters by user, method and Call-ID; the ladder of messages between traced nodes."""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any, Literal

from intrafed.sip import RemoteSipError, Request, SipUri, parse_message

Direction = Literal["in", "out"]
Address = tuple[str, int]


class TraceFormatError(ValueError):
    """A trace line that is not a trace record."""


@dataclass(frozen=True, slots=True)
class TraceRecord:
    """One SIP message as a node received (``in``) or sent (``out``) it."""

    at: float
    """Wall-clock time, seconds since the epoch."""
    node: str
    """The FQDN of the node that traced it."""
    direction: Direction
    transport: str
    """UDP, TCP, TLS or MTLS."""
    local: Address
    remote: Address
    message: bytes

    def to_json_line(self) -> str:
        """The record as one JSON line (no newline)."""
        return json.dumps(
            {
                "at": round(self.at, 6),
                "node": self.node,
                "dir": self.direction,
                "transport": self.transport,
                "local": list(self.local),
                "remote": list(self.remote),
                "message": self.message.decode("utf-8", "surrogateescape"),
            }
        )

    @classmethod
    def from_json_line(cls, line: str) -> TraceRecord:
        """Read back ``to_json_line``; ``TraceFormatError`` for anything else."""
        try:
            data: dict[str, Any] = json.loads(line)
            direction = data["dir"]
            if direction not in ("in", "out"):
                raise TraceFormatError(f"direction {direction!r} is neither in nor out")
            return cls(
                at=float(data["at"]),
                node=str(data["node"]),
                direction=direction,
                transport=str(data["transport"]),
                local=(str(data["local"][0]), int(data["local"][1])),
                remote=(str(data["remote"][0]), int(data["remote"][1])),
                message=str(data["message"]).encode("utf-8", "surrogateescape"),
            )
        except (ValueError, KeyError, IndexError, TypeError) as exc:
            if isinstance(exc, TraceFormatError):
                raise
            raise TraceFormatError(f"not a trace record: {exc}") from None


@dataclass(frozen=True, slots=True)
class MessageSummary:
    """What a trace view shows of a message."""

    first_line: str
    """``METHOD Request-URI`` or ``STATUS Reason (METHOD)``."""
    method: str
    """The request's method, or the method a response answers."""
    call_id: str
    users: frozenset[str]
    """The From and To addresses (``user@host``)."""


def summarize(message: bytes) -> MessageSummary | None:
    """The summary of a traced message; None when it does not parse."""
    try:
        parsed = parse_message(message, stream=True)
        users = frozenset(
            addr.uri.aor if isinstance(addr.uri, SipUri) else str(addr.uri)
            for addr in (parsed.from_addr, parsed.to_addr)
        )
    except RemoteSipError:
        return None
    if isinstance(parsed, Request):
        first_line = f"{parsed.method} {parsed.uri}"
        method = parsed.method
    else:
        first_line = f"{parsed.status} {parsed.reason} ({parsed.cseq.method})"
        method = parsed.cseq.method
    return MessageSummary(first_line, method, parsed.call_id, users)


@dataclass(frozen=True, slots=True)
class TraceFilter:
    """Which messages a trace keeps or shows; every field given must match."""

    user: str | None = None
    """An address (``alice@example.com``) or a user part (``alice``) in From or To."""
    method: str | None = None
    call_id: str | None = None

    @property
    def everything(self) -> bool:
        """Whether the filter lets every message through."""
        return self.user is None and self.method is None and self.call_id is None

    def matches(self, message: bytes) -> bool:
        """Whether ``message`` passes (a message that does not parse passes only an
        empty filter)."""
        if self.everything:
            return True
        summary = summarize(message)
        if summary is None:
            return False
        if self.method is not None and summary.method != self.method.upper():
            return False
        if self.call_id is not None and summary.call_id != self.call_id:
            return False
        if self.user is not None:
            wanted = self.user.lower()
            return any(
                user.lower() == wanted or user.lower().split("@", 1)[0] == wanted
                for user in summary.users
            )
        return True

    def to_json(self) -> dict[str, str | None]:
        """The filter as JSON data."""
        return {"user": self.user, "method": self.method, "call_id": self.call_id}


@dataclass(frozen=True, slots=True)
class LadderRow:
    """One message between two traced nodes, as the receiver saw it."""

    at: float
    sender: str
    receiver: str
    first_line: str
    call_id: str


def ladder(records: Iterable[TraceRecord]) -> list[LadderRow]:
    """The messages that went between the traced nodes, in time order: each seen once, on
    the side that received it."""
    records = sorted(records, key=lambda record: record.at)
    names = {record.local[0]: record.node for record in records}
    rows = []
    for record in records:
        sender = names.get(record.remote[0])
        if record.direction != "in" or sender is None or sender == record.node:
            continue
        summary = summarize(record.message)
        if summary is not None:
            rows.append(
                LadderRow(record.at, sender, record.node, summary.first_line, summary.call_id)
            )
    return rows
