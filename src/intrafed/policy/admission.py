"""Admission under overload (DESIGN §8 limits), pure: the transactions alive in, a 503 with
Retry-After out, before any body is parsed or the store is touched.

Beyond ``max_pending`` transactions, new requests from clients (sources that are not a
trusted peer) outside a dialog are shed first; beyond twice that, every new request but a
CANCEL or ACK is. Trusted peers (the other partition, gateways) and requests within
dialogs keep going in between, and responses are never shed: what was admitted finishes.
Memory then stays bounded by the transactions alive.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from intrafed.policy.ratelimit import retry_after
from intrafed.sip.errors import RemoteSipError
from intrafed.sip.message import Request, Response
from intrafed.sip.responses import local_tag, make_response, warning_value
from intrafed.sip.transaction import FlowId

MAX_PENDING = 4000
SHED_RETRY_AFTER = 5.0


@dataclass(frozen=True, slots=True)
class AdmissionLimits:
    """When the node sheds load."""

    max_pending: int = MAX_PENDING
    """Transactions alive beyond which new requests from clients get 503 (twice this,
    every new request)."""
    retry_after: float = SHED_RETRY_AFTER
    """Seconds a shed request is told to wait (Retry-After)."""


class Admission:
    """Decides per new request whether the node takes it on."""

    def __init__(
        self, limits: AdmissionLimits, agent: str, trusted: Callable[[FlowId], bool]
    ) -> None:
        self.limits = limits
        self._agent = agent
        self._trusted = trusted

    def shed(self, request: Request, flow: FlowId, pending: int) -> Response | None:
        """503 for ``request`` (on ``flow``) when ``pending`` transactions are too many
        for it, else None (admitted)."""
        limit = self.limits.max_pending
        if pending < limit or request.method in ("ACK", "CANCEL"):
            return None
        if pending < 2 * limit and (self._trusted(flow) or _in_dialog(request)):
            return None
        rule = f"overloaded: {pending} transactions pending (limit {limit})"
        return make_response(
            request,
            503,
            "Overloaded",
            to_tag=local_tag(request.call_id, str(request.cseq.number)),
            headers=[
                ("Retry-After", retry_after(self.limits.retry_after)),
                ("Warning", warning_value(self._agent, rule)),
            ],
        )


def _in_dialog(request: Request) -> bool:
    try:
        return request.to_addr.tag is not None
    except RemoteSipError:
        return False
