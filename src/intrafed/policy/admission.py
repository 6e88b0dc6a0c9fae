"""Admission under overload (DESIGN §8 limits), pure: the transactions alive in, a 503 with
Retry-After out, before any body is parsed or the store is touched.

Beyond ``max_pending`` transactions, new requests from clients (sources that are not a
trusted peer) outside a dialog are shed first; beyond twice that, every new request but a
CANCEL or ACK is. Trusted peers (the other partition, gateways) and requests within
dialogs keep going in between, and responses are never shed: what was admitted finishes.
Memory then stays bounded by the transactions alive.

Before that, a node that cannot keep up with what it reads sheds by queue delay: the
frames it handles are counted in windows of ``late_interval``; when at least
``late_share`` of a window's frames waited longer than ``max_read_delay`` after their
bytes were read (the node busy with the messages read before them) — a standing queue,
not a burst or a pause — then during the next window a new request outside a dialog that
waited too long is answered 503 from its raw bytes, unparsed, at a small fraction of what
serving it costs. The excess of an offered load above capacity is refused this way while
the rest is served in time, instead of everything waiting until it times out.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from intrafed.policy.ratelimit import retry_after
from intrafed.sip.errors import RemoteSipError
from intrafed.sip.message import Request, Response
from intrafed.sip.responses import local_tag, make_response, refusal_unparsed, warning_value
from intrafed.sip.transaction import FlowId

MAX_PENDING = 4000
SHED_RETRY_AFTER = 5.0
MAX_READ_DELAY = 0.05
LATE_INTERVAL = 1.0
LATE_SHARE = 0.25


@dataclass(frozen=True, slots=True)
class AdmissionLimits:
    """When the node sheds load."""

    max_pending: int = MAX_PENDING
    """Transactions alive beyond which new requests from clients get 503 (twice this,
    every new request)."""
    retry_after: float = SHED_RETRY_AFTER
    """Seconds a shed request is told to wait (Retry-After)."""
    max_read_delay: float = MAX_READ_DELAY
    """Seconds a new request may wait, once read, before it is handled; later, 503 ..."""
    late_interval: float = LATE_INTERVAL
    """... in the window after one of this many seconds in which ..."""
    late_share: float = LATE_SHARE
    """... at least this share of the frames handled waited longer than that."""


class Admission:
    """Decides per new request whether the node takes it on."""

    def __init__(
        self, limits: AdmissionLimits, agent: str, trusted: Callable[[FlowId], bool]
    ) -> None:
        self.limits = limits
        self._agent = agent
        self._trusted = trusted
        self._window_start = 0.0
        self._frames = 0
        self._late = 0
        self._shedding = False

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

    def refuse_late(self, frame: bytes, waited: float, now: float) -> bytes | None:
        """503 bytes for the raw ``frame``, read ``waited`` seconds before ``now``, when the
        node is shedding (the last window's frames were late often enough), this one waited
        too long, and it is a new request outside a dialog; else None (it goes on to be
        parsed and handled)."""
        limits = self.limits
        if now - self._window_start >= limits.late_interval:
            # A window that ended a whole window ago says nothing of now.
            recent = now - self._window_start < 2 * limits.late_interval
            late = self._late > 0 and self._late >= limits.late_share * self._frames
            self._shedding = recent and late
            self._window_start, self._frames, self._late = now, 0, 0
        self._frames += 1
        if waited <= limits.max_read_delay:
            return None
        self._late += 1
        if not self._shedding:
            return None
        limit = limits.max_read_delay
        rule = (
            f"overloaded: the request waited {waited * 1000:.0f} ms to be handled "
            f"(limit {limit * 1000:.0f} ms)"
        )
        return refusal_unparsed(
            frame, 503, "Overloaded", self._agent, rule, retry_after(self.limits.retry_after)
        )


def _in_dialog(request: Request) -> bool:
    try:
        return request.to_addr.tag is not None
    except RemoteSipError:
        return False
