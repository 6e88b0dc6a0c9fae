"""Which static-route next hops are down (DESIGN §4 failover, reliability matrix C1/C2),
pure: outcomes and the clock in, the usable hops and the OPTIONS probes due out.

A hop that refused the connection is down at once; one that let requests time out is down
after ``timeouts_to_down`` in a row, and one that leaves an OPTIONS probe unanswered for
``probe_timeout`` is down at once (sooner than three 32 s timer F's). A down hop is probed
about every ``probe_interval`` and is back on the first response to anything; a hop that
is up is probed when it was idle for ``keepalive_interval``.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from intrafed.sip.transaction import NextHop, Target

TIMEOUTS_TO_DOWN = 3
PROBE_INTERVAL = 1.0
"""Seconds between two probes of a hop that is down."""
KEEPALIVE_INTERVAL = 3.0
"""Seconds of silence from a hop that is up before it is probed."""
PROBE_TIMEOUT = 2.0
"""Seconds a probe may wait for its answer before its hop is down."""


@dataclass(frozen=True, slots=True)
class ProbeTimings:
    """How often hops are probed and how long a probe may take (seconds)."""

    probe_interval: float = PROBE_INTERVAL
    keepalive_interval: float = KEEPALIVE_INTERVAL
    probe_timeout: float = PROBE_TIMEOUT


class HopHealth:
    """Recent outcomes of next hops, and when each is probed next."""

    def __init__(
        self, timeouts_to_down: int = TIMEOUTS_TO_DOWN, timings: ProbeTimings | None = None
    ) -> None:
        self.timeouts_to_down = timeouts_to_down
        self.timings = timings or ProbeTimings()
        self._timeouts: dict[NextHop, int] = {}
        self._down: dict[NextHop, str] = {}
        self._heard: dict[NextHop, float] = {}
        """When each watched hop last answered (or was first watched, or last probed)."""
        self._probing: dict[NextHop, float] = {}
        """Hops with a probe out, and when it left."""

    def answered(self, hop: NextHop, now: float) -> None:
        """``hop`` sent a response (to a request or a probe): it is up."""
        self._timeouts.pop(hop, None)
        self._down.pop(hop, None)
        self._probing.pop(hop, None)
        self._heard[hop] = now

    def failed(self, hop: NextHop, reason: str, now: float, *, refused: bool) -> None:
        """A request to ``hop`` failed: ``refused`` (no connection) or timed out."""
        count = self._timeouts.get(hop, 0) + 1
        self._timeouts[hop] = count
        if refused or count >= self.timeouts_to_down:
            self._down[hop] = reason
            self._heard.setdefault(hop, now)

    def outcome(self, target: Target, failure: str | None, now: float, *, refused: bool) -> None:
        """What became of a request forwarded to ``target`` (only next hops are tracked):
        answered (``failure`` None) or failed."""
        if not isinstance(target, NextHop):
            return
        if failure is None:
            self.answered(target, now)
        else:
            self.failed(target, failure, now, refused=refused)

    def probe_failed(self, hop: NextHop, reason: str, now: float) -> None:
        """A probe of ``hop`` was refused or timed out: it is down."""
        self._probing.pop(hop, None)
        self._down[hop] = reason
        self._heard.setdefault(hop, now)

    def usable(self, hops: Sequence[NextHop], now: float) -> list[NextHop]:
        """``hops`` in their order, without those that are down."""
        if not self._down:
            return list(hops)
        return [hop for hop in hops if hop not in self._down]

    def down_reason(self, hop: NextHop, now: float) -> tuple[float, str] | None:
        """Seconds until ``hop`` may be back (its next probe) and why it is down, or None
        when it is up."""
        reason = self._down.get(hop)
        if reason is None:
            return None
        return self.timings.probe_interval, reason

    def all_down(self, hops: Sequence[NextHop], now: float) -> tuple[float, str]:
        """For a route whose every hop is down: the wait to suggest, and the rule."""
        downs = [(hop, self.down_reason(hop, now)) for hop in hops]
        wait = min((down[0] for _, down in downs if down is not None), default=0.0)
        reasons = "; ".join(
            f"{hop.transport} {hop.host}:{hop.port}: {down[1]}"
            for hop, down in downs
            if down is not None
        )
        return wait, f"static route next hops are down ({reasons})"

    def probes_due(self, hops: Iterable[NextHop], now: float) -> list[NextHop]:
        """Which of ``hops`` (the routes' next hops: every other hop is forgotten) to probe
        now (they count as probed from ``now``): down ones every ``probe_interval``, idle
        ones every ``keepalive_interval``. A probe left unanswered for ``probe_timeout``
        takes its hop down first."""
        timings = self.timings
        watched = dict.fromkeys(hops)
        # Outcomes of other hops (contacts, in-dialog targets) are not kept: memory stays
        # bounded by the routes.
        for table in (self._timeouts, self._down, self._heard, self._probing):
            for stale in [hop for hop in table if hop not in watched]:
                del table[stale]
        due = []
        for hop in watched:
            sent = self._probing.get(hop)
            if sent is not None:
                if now - sent < timings.probe_timeout:
                    continue
                self.probe_failed(
                    hop, f"no answer to OPTIONS within {timings.probe_timeout:g} s", now
                )
            last = self._heard.setdefault(hop, now)
            interval = timings.probe_interval if hop in self._down else timings.keepalive_interval
            if now - last >= interval:
                due.append(hop)
                self._probing[hop] = self._heard[hop] = now
        return due

    def next_due(self, hops: Iterable[NextHop], now: float) -> float | None:
        """When ``probes_due`` next has work for ``hops`` (``now`` for a hop never seen),
        None without hops. An outcome noted since only makes it later, except a failure."""
        timings = self.timings
        due: float | None = None
        for hop in hops:
            sent = self._probing.get(hop)
            if sent is not None:
                when = sent + timings.probe_timeout
            else:
                last = self._heard.get(hop)
                if last is None:
                    return now
                down = hop in self._down
                when = last + (timings.probe_interval if down else timings.keepalive_interval)
            due = when if due is None or when < due else due
        return due
