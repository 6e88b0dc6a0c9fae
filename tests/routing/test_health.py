"""Next-hop health on a fake clock: refused is down at once, timeouts after three in a row,
any answer is up; a down hop is probed about every second and is back on the first answer,
an idle hop is probed every few seconds, and one that leaves a probe unanswered is down
within seconds."""

from __future__ import annotations

from intrafed.routing import HopHealth
from intrafed.routing.health import ProbeTimings
from intrafed.sip.transaction import NextHop

FIRST = NextHop("TLS", "imp1.example.com", 5061)
SECOND = NextHop("TLS", "imp2.example.com", 5061)
TIMINGS = ProbeTimings(probe_interval=1.0, keepalive_interval=5.0, probe_timeout=2.0)


def test_a_refused_connection_takes_the_hop_out_at_once() -> None:
    health = HopHealth(timings=TIMINGS)
    health.failed(FIRST, "connection refused", 100.0, refused=True)
    assert health.usable([FIRST, SECOND], 101.0) == [SECOND]
    assert health.down_reason(FIRST, 101.0) == (1.0, "connection refused")
    assert health.down_reason(SECOND, 101.0) is None
    assert health.all_down([FIRST], 101.0) == (
        1.0,
        "static route next hops are down (TLS imp1.example.com:5061: connection refused)",
    )


def test_timeouts_take_it_out_only_after_three_in_a_row_and_an_answer_resets_them() -> None:
    health = HopHealth(timeouts_to_down=3)
    health.failed(FIRST, "no answer", 1.0, refused=False)
    health.failed(FIRST, "no answer", 2.0, refused=False)
    health.answered(FIRST, 2.5)
    health.failed(FIRST, "no answer", 3.0, refused=False)
    assert health.usable([FIRST], 3.0) == [FIRST]
    health.failed(FIRST, "no answer", 4.0, refused=False)
    health.failed(FIRST, "no answer", 5.0, refused=False)
    assert health.usable([FIRST], 5.0) == []


def test_a_down_hop_is_probed_every_second_and_back_on_the_first_answer() -> None:
    health = HopHealth(timings=TIMINGS)
    health.failed(FIRST, "connection refused", 100.0, refused=True)
    assert health.probes_due([FIRST], 100.5) == []
    assert health.probes_due([FIRST], 101.0) == [FIRST]
    health.probe_failed(FIRST, "connection refused", 101.01)
    # Still down however long it has been: only an answer brings it back.
    assert health.usable([FIRST], 160.0) == []
    assert health.probes_due([FIRST], 102.0) == [FIRST]
    health.answered(FIRST, 102.1)
    assert health.usable([FIRST], 102.1) == [FIRST]


def test_an_idle_hop_is_probed_every_few_seconds_and_traffic_counts_as_an_answer() -> None:
    health = HopHealth(timings=TIMINGS)
    assert health.probes_due([FIRST, SECOND], 0.0) == []
    health.answered(SECOND, 3.0)
    assert health.probes_due([FIRST, SECOND], 5.0) == [FIRST]
    health.answered(FIRST, 5.1)
    assert health.probes_due([FIRST, SECOND], 8.0) == [SECOND]
    assert health.probes_due([FIRST, SECOND], 9.0) == []


def test_a_hop_that_leaves_a_probe_unanswered_is_down_after_the_probe_timeout() -> None:
    health = HopHealth(timings=TIMINGS)
    health.probes_due([FIRST], 0.0)
    assert health.probes_due([FIRST], 5.0) == [FIRST]
    assert health.probes_due([FIRST], 6.9) == []
    assert health.usable([FIRST], 6.9) == [FIRST]
    # Timed out at 7 s: down, and probed again at once.
    assert health.probes_due([FIRST], 7.0) == [FIRST]
    assert health.down_reason(FIRST, 7.0) == (1.0, "no answer to OPTIONS within 2 s")
    health.answered(FIRST, 7.5)
    assert health.usable([FIRST], 7.5) == [FIRST]


def test_only_the_watched_hops_are_remembered() -> None:
    health = HopHealth(timings=TIMINGS)
    health.failed(FIRST, "connection refused", 1.0, refused=True)
    health.failed(SECOND, "connection refused", 1.0, refused=True)
    assert health.probes_due([SECOND], 2.0) == [SECOND]
    assert health.usable([FIRST, SECOND], 2.0) == [FIRST]


def test_next_due_says_when_probes_due_has_work_so_no_polling_is_needed() -> None:
    health = HopHealth(timings=TIMINGS)
    assert health.next_due([], 100.0) is None
    assert health.next_due([FIRST], 100.0) == 100.0  # never seen: start watching now
    assert health.probes_due([FIRST], 100.0) == []
    assert health.next_due([FIRST], 100.0) == 105.0  # idle: the keepalive interval
    assert health.probes_due([FIRST], 104.9) == []
    assert health.probes_due([FIRST], 105.0) == [FIRST]
    assert health.next_due([FIRST], 105.0) == 107.0  # the probe's timeout
    health.probe_failed(FIRST, "no answer to OPTIONS", 107.0)
    assert health.next_due([FIRST], 107.0) == 106.0  # down: probed every second
    assert health.probes_due([FIRST], 107.0) == [FIRST]
