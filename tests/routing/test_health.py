"""Next-hop health: refused is down at once, timeouts after three in a row, any answer is
up, and a down hop is tried again once its time is over."""

from __future__ import annotations

from intrafed.routing import HopHealth
from intrafed.sip.transaction import NextHop

FIRST = NextHop("TLS", "imp1.example.com", 5061)
SECOND = NextHop("TLS", "imp2.example.com", 5061)


def test_a_refused_connection_takes_the_hop_out_at_once() -> None:
    health = HopHealth(down_seconds=5.0)
    health.failed(FIRST, "connection refused", 100.0, refused=True)
    assert health.usable([FIRST, SECOND], 101.0) == [SECOND]
    assert health.down_reason(FIRST, 101.0) == (4.0, "connection refused")
    assert health.down_reason(SECOND, 101.0) is None


def test_timeouts_take_it_out_only_after_three_in_a_row_and_an_answer_resets_them() -> None:
    health = HopHealth(timeouts_to_down=3)
    health.failed(FIRST, "no answer", 1.0, refused=False)
    health.failed(FIRST, "no answer", 2.0, refused=False)
    health.answered(FIRST)
    health.failed(FIRST, "no answer", 3.0, refused=False)
    assert health.usable([FIRST], 3.0) == [FIRST]
    health.failed(FIRST, "no answer", 4.0, refused=False)
    health.failed(FIRST, "no answer", 5.0, refused=False)
    assert health.usable([FIRST], 5.0) == []


def test_a_down_hop_is_tried_again_when_its_time_is_over() -> None:
    health = HopHealth(down_seconds=5.0)
    health.failed(FIRST, "connection refused", 100.0, refused=True)
    assert health.usable([FIRST], 104.9) == []
    assert health.usable([FIRST], 105.0) == [FIRST]
    health.failed(FIRST, "connection refused", 105.1, refused=True)
    assert health.usable([FIRST], 105.2) == []
