"""The control protocol, sans-IO: request lines in, answer lines out, never an exception."""

from __future__ import annotations

import json

import pytest
from hypothesis import given
from hypothesis import strategies as st

from intrafed.control.protocol import (
    MAX_REQUEST_BYTES,
    ControlError,
    JsonObject,
    Refused,
    decode_answer,
    dispatch,
    encode_request,
)


class FakeNode:
    """A target that records what it was asked."""

    def __init__(self, refuse_reload: bool = False) -> None:
        self.asked: list[tuple[str, object]] = []
        self.refuse_reload = refuse_reload

    def status(self) -> JsonObject:
        self.asked.append(("status", None))
        return {"name": "imp1.example.com", "registrations": 1}

    def reload(self) -> JsonObject | Refused:
        self.asked.append(("reload", None))
        if self.refuse_reload:
            return Refused("listeners changed", "intrafed service restart --home imp1")
        return {"applied": ["routes"]}

    def explain(self, uri: str, source: str | None) -> JsonObject:
        self.asked.append(("explain", (uri, source)))
        return {"decision": "local"}

    def registrations(self, user: str | None) -> list[JsonObject]:
        self.asked.append(("registrations", user))
        return [{"aor": "alice@example.com"}]

    def subscriptions(self, user: str | None) -> list[JsonObject]:
        self.asked.append(("subscriptions", user))
        return []

    def trace(self, on: bool, user: str | None, method: str | None) -> JsonObject:
        self.asked.append(("trace", (on, user, method)))
        return {"tracing": on}

    def user_moved(self, user: str) -> JsonObject:
        self.asked.append(("user_moved", user))
        return {"user": user, "ended": 1}


def test_each_operation_reaches_the_target_with_its_arguments() -> None:
    node = FakeNode()
    answers = [
        decode_answer(dispatch(node, encode_request("status"))),
        decode_answer(dispatch(node, encode_request("reload"))),
        decode_answer(dispatch(node, encode_request("explain", uri="sip:a@b", source=None))),
        decode_answer(dispatch(node, encode_request("registrations", user="alice@example.com"))),
        decode_answer(dispatch(node, encode_request("subscriptions"))),
        decode_answer(dispatch(node, encode_request("trace", state="on", method="MESSAGE"))),
    ]
    assert answers == [
        {"name": "imp1.example.com", "registrations": 1},
        {"applied": ["routes"]},
        {"decision": "local"},
        [{"aor": "alice@example.com"}],
        [],
        {"tracing": True},
    ]
    assert node.asked == [
        ("status", None),
        ("reload", None),
        ("explain", ("sip:a@b", None)),
        ("registrations", "alice@example.com"),
        ("subscriptions", None),
        ("trace", (True, None, "MESSAGE")),
    ]


def test_a_refused_reload_comes_back_typed_with_its_fix() -> None:
    answer = decode_answer(dispatch(FakeNode(refuse_reload=True), encode_request("reload")))
    assert answer == Refused("listeners changed", "intrafed service restart --home imp1")


@pytest.mark.parametrize(
    ("line", "error"),
    [
        (b"not json\n", "request is not one JSON object"),
        (b"[1, 2]\n", "request is not one JSON object"),
        (b'{"op": "shutdown"}\n', "unknown operation 'shutdown'"),
        (b'{"op": "status", "args": []}\n', "'args' must be an object"),
        (b'{"op": "explain", "args": {}}\n', "argument 'uri' is required"),
        (b'{"op": "registrations", "args": {"user": 5}}\n', "argument 'user' must be a string"),
        (b"\xff\xfe\n", "request is not one JSON object"),
        (b'{"op": "trace", "args": {"state": "maybe"}}\n', "must be on or off"),
        (b"{" * (MAX_REQUEST_BYTES + 1), f"request longer than {MAX_REQUEST_BYTES} bytes"),
    ],
)
def test_a_bad_request_gets_an_error_naming_what_is_wrong(line: bytes, error: str) -> None:
    node = FakeNode()
    with pytest.raises(ControlError, match=error):
        decode_answer(dispatch(node, line))
    assert node.asked == []


@given(st.binary(max_size=512))
def test_no_request_line_makes_dispatch_raise(line: bytes) -> None:
    answer = json.loads(dispatch(FakeNode(), line))
    assert isinstance(answer, dict)
    assert "ok" in answer
