"""OPTIONS probes through a real transaction layer on a fake clock: what goes out, and
their outcomes decide the hop's health (the proxy never sees them)."""

from __future__ import annotations

from intrafed.config.model import StaticRoute
from intrafed.routing import HopHealth
from intrafed.routing.health import ProbeTimings
from intrafed.routing.probe import Prober
from intrafed.sip import Request, parse_message
from intrafed.sip.responses import make_response
from intrafed.sip.transaction import NextHop, Target, TransactionLayer

ROUTE = StaticRoute("example.com", "TCP", 5060, ip="127.0.0.2")
HOP = NextHop("TCP", "127.0.0.2", 5060)


def via(target: Target) -> str:
    return "SIP/2.0/TCP 127.0.0.1:5060;branch=z9hG4bK-probe1;alias"


def test_a_down_hop_is_probed_with_options_and_back_on_the_answer() -> None:
    health = HopHealth(timings=ProbeTimings(probe_interval=1.0))
    prober = Prober(health, "imp1.example.com", via)
    transactions = TransactionLayer()
    health.failed(HOP, "connection refused", 10.0, refused=True)
    assert not prober.probe(transactions, [ROUTE], 10.5)
    assert prober.probe(transactions, [ROUTE], 11.0)
    [(target, data)] = list(transactions.outgoing())
    options = parse_message(data, stream=True)
    assert isinstance(options, Request)
    assert (target, options.method, str(options.uri)) == (
        HOP,
        "OPTIONS",
        "sip:127.0.0.2:5060;transport=tcp",
    )
    transactions.receive_response(make_response(options, 200, to_tag="peer"), 1, 11.1)
    event = transactions.next_event()
    assert event is not None
    assert prober.outcome(event, 11.1)
    assert prober.pending == 0
    assert health.usable([HOP], 11.1) == [HOP]
