"""A node's counters for its metrics, sans-IO: plain integers bumped where things happen
and read when Prometheus scrapes (``intrafed.observe.metrics``). Every label value comes
from a small fixed set, never from what a peer wrote: an unknown method is ``other``.
"""

from __future__ import annotations

import bisect
from collections import Counter
from collections.abc import Callable

from intrafed.sip import Request, Response
from intrafed.sip.transaction import (
    ClientKey,
    FlowId,
    NextHop,
    ResponseReceived,
    ServerKey,
    State,
    Target,
    TimerConfig,
    TransactionLayer,
)

METHODS = frozenset(
    (
        "INVITE",
        "ACK",
        "CANCEL",
        "BYE",
        "OPTIONS",
        "REGISTER",
        "MESSAGE",
        "INFO",
        "SUBSCRIBE",
        "NOTIFY",
        "PUBLISH",
        "PRACK",
        "UPDATE",
        "REFER",
    )
)
"""Methods counted by name; any other is counted as ``other``."""
STATUS_CLASSES = ("other", "1xx", "2xx", "3xx", "4xx", "5xx", "6xx")
_CLASSES = (*STATUS_CLASSES, *("other",) * 4)
"""By ``status // 100`` for any status a parsed or built message can have (100-999)."""

LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)
"""Upper bounds (seconds) of the transaction latency histogram's buckets (+Inf is implied)."""

_PARTIES_KEPT = 4096
"""Flows and next hops whose party the metered transaction layer remembers at most."""

PEER_PARTITION, CLIENT, OTHER = "peer_partition", "client", "other"
"""Whom a message goes to or comes from: the other partition, a client, or another host
(a trusted server that is not the partition, an in-dialog target)."""


def method_label(method: str) -> str:
    """``method``, or ``other`` when it is not one of ``METHODS``."""
    return method if method in METHODS else "other"


def status_class(status: int) -> str:
    """``2xx`` for 200 …; ``other`` outside 100-699."""
    index = status // 100
    return STATUS_CLASSES[index] if 0 < index < len(STATUS_CLASSES) else "other"


class Histogram:
    """Observations counted per bucket of ``LATENCY_BUCKETS`` (made cumulative when
    scraped), and their sum."""

    __slots__ = ("counts", "total")

    def __init__(self) -> None:
        self.counts = [0] * (len(LATENCY_BUCKETS) + 1)
        self.total = 0.0


class Meter:
    """What a node counted since it started."""

    def __init__(self) -> None:
        self.requests: Counter[tuple[str, str, str]] = Counter()
        """(direction "in"|"out", method, party) -> requests."""
        self.responses: Counter[tuple[str, str, str, str]] = Counter()
        """(direction, CSeq method, status class, party) -> responses."""
        self.latency: dict[tuple[str, str], Histogram] = {}
        """(method, party) -> seconds from a request sent to its final response."""
        self.authorization: Counter[tuple[str, str]] = Counter()
        """(decision "accept"|"challenge"|"reject", rule) -> requests."""
        self.rate_limited: Counter[str] = Counter()
        """Rate class ("client"|"server") -> requests refused with 503."""
        self.tls_failures: Counter[tuple[str, str, str]] = Counter()
        """(transport "TLS"|"MTLS", direction "inbound"|"outbound", reason) -> handshakes."""

    def tls_failed(self, transport: str, direction: str, kind: str) -> None:
        """A TLS handshake failed (``transport.tls.failure_kind`` words ``kind``)."""
        self.tls_failures[transport, direction, kind] += 1


class MeteredTransactions(TransactionLayer):
    """The transaction layer, counting every request and response received or sent (by
    the transaction user: retransmissions the layer makes on its own are not counted) and
    the latency of client transactions."""

    def __init__(
        self,
        timers: TimerConfig,
        meter: Meter,
        party_of_flow: Callable[[FlowId], str],
        party_of_hop: Callable[[NextHop], str],
    ) -> None:
        super().__init__(timers)
        self._meter = meter
        self._party_of_flow = party_of_flow
        self._party_of_hop = party_of_hop
        self._parties: dict[Target, str] = {}
        """Flow or next hop -> its party, until the flow closes or trust changes."""
        self._started: dict[ClientKey, tuple[float, Histogram]] = {}
        self._prune_at = 1024

    def forget_parties(self) -> None:
        """Trust changed (a reload): classify every flow again."""
        self._parties.clear()

    def _party(self, target: Target) -> str:
        party = self._parties.get(target)
        if party is None:
            if len(self._parties) >= _PARTIES_KEPT:
                # In-dialog next hops come from what peers wrote: keep the cache bounded.
                self._parties.clear()
            if isinstance(target, NextHop):
                party = self._party_of_hop(target)
            else:
                party = self._party_of_flow(target)
            self._parties[target] = party
        return party

    # The overrides call the base class directly (cheaper than super() on this path).

    def receive_request(self, request: Request, flow: FlowId, now: float) -> None:
        method = request.method
        party = self._parties.get(flow) or self._party(flow)
        self._meter.requests["in", method if method in METHODS else "other", party] += 1
        TransactionLayer.receive_request(self, request, flow, now)

    def receive_response(self, response: Response, flow: FlowId, now: float) -> None:
        status = response.status
        method = response.cseq.method
        party = self._parties.get(flow) or self._party(flow)
        method = method if method in METHODS else "other"
        self._meter.responses["in", method, _CLASSES[status // 100], party] += 1
        events = self._events
        queued = len(events)
        TransactionLayer.receive_response(self, response, flow, now)
        if status >= 200 and len(events) > queued:
            event = events[-1]
            if isinstance(event, ResponseReceived):
                started = self._started.pop(event.transaction, None)
                if started is not None:
                    at, histogram = started
                    seconds = now - at
                    histogram.counts[bisect.bisect_left(LATENCY_BUCKETS, seconds)] += 1
                    histogram.total += seconds

    def send_request(self, request: Request, target: Target, now: float) -> ClientKey:
        key = TransactionLayer.send_request(self, request, target, now)
        method = request.method
        if method not in METHODS:
            method = "other"
        party = self._party(target)
        meter = self._meter
        meter.requests["out", method, party] += 1
        started = self._started
        if len(started) >= self._prune_at:
            # Transactions that timed out or failed never got a final response.
            for stale in [k for k in started if self.client_state(k) is State.TERMINATED]:
                del started[stale]
            self._prune_at = 2 * len(started) + 1024
        histogram = meter.latency.get((method, party))
        if histogram is None:
            histogram = meter.latency[(method, party)] = Histogram()
        started[key] = (now, histogram)
        return key

    def send_response(self, key: ServerKey, response: Response, now: float) -> None:
        # Looked up first: a final response may end the transaction.
        transaction = self._servers.get(key)
        TransactionLayer.send_response(self, key, response, now)
        party = self._party(transaction.target) if transaction is not None else OTHER
        method = response.cseq.method
        method = method if method in METHODS else "other"
        self._meter.responses["out", method, _CLASSES[response.status // 100], party] += 1

    def send_stateless(self, target: Target, message: Request | Response) -> None:
        TransactionLayer.send_stateless(self, target, message)
        party = self._party(target)
        if isinstance(message, Request):
            self._meter.requests["out", method_label(message.method), party] += 1
        else:
            method = method_label(message.cseq.method)
            self._meter.responses["out", method, status_class(message.status), party] += 1

    def flow_closed(self, flow: FlowId, now: float, clean: bool = False) -> int:
        self._parties.pop(flow, None)
        return TransactionLayer.flow_closed(self, flow, now, clean)
