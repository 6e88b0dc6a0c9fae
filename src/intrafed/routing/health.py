"""Which static-route next hops are down (DESIGN §4 failover, reliability matrix C1/C2),
pure: outcomes and the clock in, the usable hops out.

A hop that refused the connection is down at once; one that let requests time out is down
after ``timeouts_to_down`` in a row. A down hop is skipped for ``down_seconds``; then the
next request tries it again and its outcome decides. Any response means the hop is up.
"""

from __future__ import annotations

from collections.abc import Sequence

from intrafed.sip.transaction import NextHop

TIMEOUTS_TO_DOWN = 3
DOWN_SECONDS = 5.0


class HopHealth:
    """Recent failures of next hops."""

    def __init__(
        self, timeouts_to_down: int = TIMEOUTS_TO_DOWN, down_seconds: float = DOWN_SECONDS
    ) -> None:
        self.timeouts_to_down = timeouts_to_down
        self.down_seconds = down_seconds
        self._timeouts: dict[NextHop, int] = {}
        self._down: dict[NextHop, tuple[float, str]] = {}

    def answered(self, hop: NextHop) -> None:
        """``hop`` sent a response: it is up."""
        if self._timeouts or self._down:
            self._timeouts.pop(hop, None)
            self._down.pop(hop, None)

    def failed(self, hop: NextHop, reason: str, now: float, *, refused: bool) -> None:
        """A request to ``hop`` failed: ``refused`` (no connection) or timed out."""
        count = self._timeouts.get(hop, 0) + 1
        self._timeouts[hop] = count
        if refused or count >= self.timeouts_to_down:
            self._down[hop] = (now + self.down_seconds, reason)

    def usable(self, hops: Sequence[NextHop], now: float) -> list[NextHop]:
        """``hops`` in their order, without those that are down."""
        if not self._down:
            return list(hops)
        return [hop for hop in hops if not self._is_down(hop, now)]

    def down_reason(self, hop: NextHop, now: float) -> tuple[float, str] | None:
        """Seconds ``hop`` stays down and why, or None when it is up."""
        entry = self._down.get(hop)
        if entry is None or entry[0] <= now:
            return None
        return entry[0] - now, entry[1]

    def _is_down(self, hop: NextHop, now: float) -> bool:
        entry = self._down.get(hop)
        if entry is None:
            return False
        if entry[0] <= now:
            # Half open: the next request tries the hop, and its outcome decides.
            del self._down[hop]
            self._timeouts.pop(hop, None)
            return False
        return True
