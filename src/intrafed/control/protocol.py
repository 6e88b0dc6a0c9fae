"""The control protocol, sans-IO: one JSON object per line in, one out.

A request is ``{"op": NAME, "args": {...}}``. The answer is ``{"ok": true, "result": ...}``,
``{"ok": false, "refused": {"reason": ..., "fix": ...}}`` when the node declines (a reload
that needs a restart), or ``{"ok": false, "error": ...}`` when the request itself is wrong.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, Protocol

MAX_REQUEST_BYTES = 64 * 1024
"""A control request is small; anything longer is refused unread."""

SOCKET_NAME = "control.sock"
"""The control socket's file name in the node's home."""


@dataclass(frozen=True, slots=True)
class Refused:
    """The node declined an operation: why, and what the operator can do instead."""

    reason: str
    fix: str


class ControlError(Exception):
    """A control request or answer that cannot be understood."""


JsonObject = dict[str, Any]


class ControlTarget(Protocol):
    """What a running node answers; every result is plain JSON data."""

    def status(self) -> JsonObject:
        """Identity, listeners, configuration version and counts of live state."""

    def reload(self) -> JsonObject | Refused:
        """Apply the staged configuration, or say why it needs a restart."""

    def explain(self, uri: str, source: str | None) -> JsonObject:
        """How a request for ``uri`` (from ``source``: an IP or FQDN, or a client when
        None) would be decided, by the node's own routing and authorization."""

    def registrations(self, user: str | None) -> list[JsonObject]:
        """Live bindings, of ``user`` only when given."""

    def subscriptions(self, user: str | None) -> list[JsonObject]:
        """Live presence subscriptions where ``user`` is watcher or presentity."""

    def publications(self, user: str | None) -> list[JsonObject]:
        """Live presence publications (PUBLISH), of ``user`` only when given."""

    def connections(self) -> list[JsonObject]:
        """Open connections: transport, who opened them, addresses, proven names."""

    def stats(self) -> JsonObject:
        """Live counts, and what the node counted since it started (when metrics are on)."""

    def trace(self, on: bool, user: str | None, method: str | None) -> JsonObject:
        """Start (with a filter) or stop the node's SIP trace; where it writes."""

    def user_moved(self, user: str) -> JsonObject | Refused:
        """``user`` moved to the other partition (and the reload that deleted it here is
        done): end its presence subscriptions as notifier, reason=deactivated."""


def _optional_text(args: Mapping[str, Any], name: str) -> str | None:
    value = args.get(name)
    if value is None or isinstance(value, str):
        return value
    raise ControlError(f"argument {name!r} must be a string")


def _required_text(args: Mapping[str, Any], name: str) -> str:
    value = _optional_text(args, name)
    if value is None:
        raise ControlError(f"argument {name!r} is required")
    return value


def _switch(args: Mapping[str, Any]) -> bool:
    state = _required_text(args, "state")
    if state not in ("on", "off"):
        raise ControlError(f"argument 'state' must be on or off, not {state!r}")
    return state == "on"


Operation = Callable[[ControlTarget, Mapping[str, Any]], "JsonObject | list[JsonObject] | Refused"]

OPERATIONS: dict[str, Operation] = {
    "status": lambda target, args: target.status(),
    "reload": lambda target, args: target.reload(),
    "explain": lambda target, args: target.explain(
        _required_text(args, "uri"), _optional_text(args, "source")
    ),
    "registrations": lambda target, args: target.registrations(_optional_text(args, "user")),
    "subscriptions": lambda target, args: target.subscriptions(_optional_text(args, "user")),
    "publications": lambda target, args: target.publications(_optional_text(args, "user")),
    "connections": lambda target, args: target.connections(),
    "stats": lambda target, args: target.stats(),
    "trace": lambda target, args: target.trace(
        _switch(args), _optional_text(args, "user"), _optional_text(args, "method")
    ),
    "user_moved": lambda target, args: target.user_moved(_required_text(args, "user")),
}


def encode_request(op: str, **args: str | None) -> bytes:
    """One request line."""
    return json.dumps({"op": op, "args": args}).encode() + b"\n"


def _decode_request(line: bytes) -> tuple[str, Mapping[str, Any]]:
    if len(line) > MAX_REQUEST_BYTES:
        raise ControlError(f"request longer than {MAX_REQUEST_BYTES} bytes")
    try:
        request = json.loads(line)
    except (ValueError, UnicodeDecodeError):
        raise ControlError("request is not one JSON object") from None
    if not isinstance(request, dict):
        raise ControlError("request is not one JSON object")
    op, args = request.get("op"), request.get("args", {})
    if not isinstance(op, str) or op not in OPERATIONS:
        raise ControlError(f"unknown operation {op!r}; known: {', '.join(sorted(OPERATIONS))}")
    if not isinstance(args, dict):
        raise ControlError("'args' must be an object")
    return op, args


def dispatch(target: ControlTarget, line: bytes) -> bytes:
    """Answer one request line for ``target``; never raises for bad input."""
    try:
        op, args = _decode_request(line)
        result = OPERATIONS[op](target, args)
    except ControlError as exc:
        return error_line(str(exc))
    if isinstance(result, Refused):
        answer = {"ok": False, "refused": {"reason": result.reason, "fix": result.fix}}
    else:
        answer = {"ok": True, "result": result}
    return json.dumps(answer).encode() + b"\n"


def error_line(message: str) -> bytes:
    """The answer to a request that cannot be served."""
    return json.dumps({"ok": False, "error": message}).encode() + b"\n"


def decode_answer(line: bytes) -> JsonObject | list[JsonObject] | Refused:
    """The result of an answer line; a refusal as ``Refused``; an error raises."""
    try:
        answer = json.loads(line)
    except (ValueError, UnicodeDecodeError):
        raise ControlError("the node's answer is not JSON") from None
    if not isinstance(answer, dict) or "ok" not in answer:
        raise ControlError("the node's answer is not a control answer")
    if answer["ok"]:
        result: JsonObject | list[JsonObject] = answer.get("result")  # type: ignore[assignment]
        return result
    if isinstance(answer.get("refused"), dict):
        refused = answer["refused"]
        return Refused(str(refused.get("reason", "")), str(refused.get("fix", "")))
    raise ControlError(str(answer.get("error", "the node refused the request")))
