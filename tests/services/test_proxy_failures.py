"""A handler that raises answers its own request and leaves no transaction behind (sans-IO,
over a real transaction layer; the node contains failures the same way per event)."""

from __future__ import annotations

from intrafed.services.proxy import StatefulProxy
from intrafed.sip import Request, Response, parse_message
from intrafed.sip.decisions import Forward
from intrafed.sip.errors import RemoteSipError
from intrafed.sip.transaction import State, TransactionLayer, server_key
from tests.messages import request
from tests.services.routers import TableRouter
from tests.services.test_proxy import LISTENERS, OCS

CLIENT_FLOW = 1


class FailingOnce:
    """A routing decision that fails the first time with ``error``, then forwards."""

    def __init__(self, error: Exception) -> None:
        self.error: Exception | None = error

    def __call__(self, message: Request, flow: int) -> Forward:
        error, self.error = self.error, None
        if error is not None:
            raise error
        return Forward(OCS)


def run(proxy: StatefulProxy, layer: TransactionLayer) -> list[Request | Response]:
    while (event := layer.next_event()) is not None:
        try:
            proxy.handle(event, 0.0)
        except Exception as exc:
            proxy.answer_failure(event, exc, 0.0)
    return [parse_message(data, stream=True) for _, data in layer.outgoing()]


def make(error: Exception) -> tuple[StatefulProxy, TransactionLayer]:
    layer = TransactionLayer()
    proxy = StatefulProxy(
        layer,
        name="imp1.example.com",
        listeners=LISTENERS,
        router=TableRouter(FailingOnce(error)),
    )
    return proxy, layer


def test_a_request_whose_handling_raised_gets_500_and_is_not_swallowed_when_sent_again() -> None:
    proxy, layer = make(KeyError("x"))
    message = request(extra="")
    layer.receive_request(message, CLIENT_FLOW, 0.0)
    [answer] = run(proxy, layer)
    assert isinstance(answer, Response)
    assert (answer.status, answer.reason) == (
        500,
        "internal error (KeyError) while handling MESSAGE",
    )
    assert "internal error (KeyError)" in (answer.headers.get("warning") or "")
    assert layer.server_state(server_key(message)) is State.TERMINATED
    # The same request again is handled afresh, not absorbed as a retransmission.
    layer.receive_request(message, CLIENT_FLOW, 0.0)
    [forwarded] = run(proxy, layer)
    assert isinstance(forwarded, Request)
    assert forwarded.method == "MESSAGE"


def test_a_header_error_met_by_a_handler_gets_400_naming_it() -> None:
    proxy, layer = make(RemoteSipError("Contact: '<' without '>'"))
    message = request(extra="")
    layer.receive_request(message, CLIENT_FLOW, 0.0)
    [answer] = run(proxy, layer)
    assert isinstance(answer, Response)
    assert (answer.status, answer.reason) == (400, "Contact: '<' without '>'")
    assert layer.server_state(server_key(message)) is State.TERMINATED
