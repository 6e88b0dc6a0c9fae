"""OPTIONS probes of the static routes' next hops (RFC 3261 §11), sans-IO: the node calls
``probe`` when ``HopHealth.next_due`` says and hands every transaction event to
``outcome``; the verdicts go to ``HopHealth``, which says when each hop is probed.
"""

from __future__ import annotations

import itertools
import os
from collections.abc import Callable, Iterable

from intrafed.config.model import StaticRoute
from intrafed.routing.health import HopHealth
from intrafed.sip.headers import Headers
from intrafed.sip.message import Request
from intrafed.sip.transaction import (
    ClientKey,
    ClientTimedOut,
    ClientTransportFailed,
    NextHop,
    ResponseReceived,
    Target,
    TransactionEvent,
    TransactionLayer,
)
from intrafed.sip.uri import SipUri


def hop_of(route: StaticRoute) -> NextHop:
    """The next hop a static route names."""
    return NextHop(route.transport, route.next_hop, route.port)


class Prober:
    """Sends the probes ``health`` asks for and reports their outcomes to it."""

    def __init__(
        self,
        health: HopHealth,
        name: str,
        via_for: Callable[[Target], str],
    ) -> None:
        self._health = health
        self._name = name
        self._via_for = via_for
        self._sent: dict[ClientKey, NextHop] = {}
        self._call_ids = itertools.count(1)
        self._prefix = os.urandom(4).hex()

    @property
    def pending(self) -> int:
        """Probe transactions still alive (they do not hold up a graceful stop)."""
        return len(self._sent)

    def probe(
        self, transactions: TransactionLayer, routes: Iterable[StaticRoute], now: float
    ) -> bool:
        """Start an OPTIONS transaction to every next hop of ``routes`` that is due;
        whether any was started."""
        hops = self._health.probes_due([hop_of(route) for route in routes], now)
        for hop in hops:
            self._sent[transactions.send_request(self._options(hop), hop, now)] = hop
        return bool(hops)

    def outcome(self, event: TransactionEvent, now: float) -> bool:
        """Note the outcome of a probe; True when ``event`` was one (the proxy must not
        see it)."""
        if not isinstance(event, ResponseReceived | ClientTransportFailed | ClientTimedOut):
            return False
        hop = self._sent.get(event.transaction)
        if hop is None:
            return False
        if isinstance(event, ResponseReceived):
            self._health.answered(hop, now)
            if event.response.status >= 200:
                del self._sent[event.transaction]
        elif isinstance(event, ClientTransportFailed):
            del self._sent[event.transaction]
            self._health.probe_failed(hop, event.reason, now)
        else:
            del self._sent[event.transaction]
            self._health.probe_failed(hop, "no answer to OPTIONS", now)
        return True

    def _options(self, hop: NextHop) -> Request:
        number = next(self._call_ids)
        host = f"[{hop.host}]" if ":" in hop.host else hop.host
        uri = SipUri("sip", host, port=hop.port, params=(("transport", hop.transport.lower()),))
        headers = Headers(
            [
                ("Via", self._via_for(hop)),
                ("Max-Forwards", "70"),
                ("From", f"<sip:{self._name}>;tag=probe{self._prefix}"),
                ("To", f"<{uri}>"),
                ("Call-ID", f"probe-{self._prefix}-{number}@{self._name}"),
                ("CSeq", f"{number} OPTIONS"),
            ]
        )
        return Request("OPTIONS", uri, headers)
