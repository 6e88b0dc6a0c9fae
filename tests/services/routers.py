"""A router for proxy tests: a routing function, one listener kind for every flow, and
every request authorized unless told otherwise."""

from __future__ import annotations

from collections.abc import Callable

from intrafed.sip import Request, Response, Uri
from intrafed.sip.addressing import next_hop_for_uri
from intrafed.sip.decisions import Accepted, Decision, Reject, Verdict
from intrafed.sip.transaction import FlowId, Target

Decide = Callable[[Request, FlowId], Decision]


class TableRouter:
    """``services.proxy.Router`` from a ``decide`` function."""

    def __init__(
        self,
        decide: Decide,
        kind: str = "TCP",
        authorize: Callable[[Request, FlowId], Verdict] = lambda request, flow: Accepted(request),
    ) -> None:
        self._decide = decide
        self._kind = kind
        self._authorize = authorize

    def authorize(self, request: Request, flow: FlowId) -> Verdict:
        return self._authorize(request, flow)

    def decide(self, request: Request, flow: FlowId) -> Decision:
        return self._decide(request, flow)

    def dialog_target(self, uri: Uri) -> Target | Reject | None:
        return next_hop_for_uri(uri)

    def hop_outcome(self, target: Target, failure: str | None, refused: bool) -> None:
        return None

    def shed(self, request: Request, flow: FlowId, pending: int) -> Response | None:
        return None

    def listener_kind(self, flow: FlowId) -> str:
        return self._kind
