"""Connection deadlines (DESIGN §8) as a pure object fed the time: no sockets, no loop."""

from __future__ import annotations

from intrafed.transport.deadlines import Deadlines
from intrafed.transport.flows import TransportLimits

LIMITS = TransportLimits(
    tls_handshake_timeout=5.0, first_data_timeout=10.0, message_timeout=20.0, idle_timeout=120.0
)


def test_tls_handshake_expires_at_its_timeout_and_then_gives_way_to_first_bytes() -> None:
    deadlines = Deadlines(LIMITS, inbound=True, handshake=True, now=100.0)
    assert deadlines.handshaking
    assert deadlines.next_deadline() == 105.0
    assert deadlines.expired(104.9) is None
    assert deadlines.expired(105.0) == "timed out after 5.0 s"
    deadlines.handshake_done(103.0)
    assert not deadlines.handshaking
    assert deadlines.expired(105.0) is None
    assert deadlines.next_deadline() == 113.0


def test_silent_inbound_connection_expires_at_the_first_data_timeout() -> None:
    deadlines = Deadlines(LIMITS, inbound=True, handshake=False, now=0.0)
    deadlines.handshake_done(0.0)
    assert deadlines.next_deadline() == 10.0
    assert deadlines.expired(9.99) is None
    assert deadlines.expired(10.0) == "no data within 10.0 s of connecting"


def test_first_bytes_lift_the_first_data_deadline_and_outbound_flows_never_have_one() -> None:
    inbound = Deadlines(LIMITS, inbound=True, handshake=False, now=0.0)
    inbound.handshake_done(0.0)
    inbound.received(3.0)
    assert inbound.got_data
    assert inbound.next_deadline() == 123.0
    outbound = Deadlines(LIMITS, inbound=False, handshake=False, now=0.0)
    outbound.handshake_done(0.0)
    assert outbound.next_deadline() == 120.0
    assert outbound.expired(50.0) is None


def test_message_must_arrive_whole_within_the_message_timeout_of_its_first_bytes() -> None:
    deadlines = Deadlines(LIMITS, inbound=True, handshake=False, now=0.0)
    deadlines.handshake_done(0.0)
    deadlines.received(1.0)
    assert deadlines.after_read(delivered=False, partial=True) == 21.0
    # More bytes of the same message neither move its deadline nor ask for a new timer.
    deadlines.received(15.0)
    assert deadlines.after_read(delivered=False, partial=True) is None
    assert deadlines.next_deadline() == 21.0
    assert deadlines.expired(20.9) is None
    assert deadlines.expired(21.0) == "message still incomplete after 20.0 s"


def test_a_read_that_completes_a_message_and_starts_the_next_restarts_its_clock() -> None:
    deadlines = Deadlines(LIMITS, inbound=True, handshake=False, now=0.0)
    deadlines.handshake_done(0.0)
    deadlines.received(1.0)
    deadlines.after_read(delivered=False, partial=True)
    deadlines.received(18.0)
    assert deadlines.after_read(delivered=True, partial=True) == 38.0
    assert deadlines.expired(21.0) is None
    deadlines.received(19.0)
    assert deadlines.after_read(delivered=True, partial=False) is None
    assert deadlines.expired(40.0) is None
    assert deadlines.next_deadline() == 139.0


def test_traffic_either_way_keeps_a_connection_from_going_idle() -> None:
    deadlines = Deadlines(LIMITS, inbound=False, handshake=False, now=0.0)
    deadlines.handshake_done(0.0)
    deadlines.sent(100.0)
    assert deadlines.expired(120.0) is None
    assert deadlines.next_deadline() == 220.0
    deadlines.received(200.0)
    assert deadlines.expired(319.9) is None
    assert deadlines.expired(320.0) == "no traffic for 120.0 s"
