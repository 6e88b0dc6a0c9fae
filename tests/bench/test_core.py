"""bench.core: the timing of calls into a core, the shares it reports, and the relay it
measures (which must fail rather than time messages that were not delivered)."""

from __future__ import annotations

import time

import pytest

from bench.core import (
    CoreClock,
    Figures,
    core_share,
    relay,
    report,
    time_core,
    timed,
    warmed_federation,
)


def busy(seconds: float) -> str:
    deadline = time.process_time() + seconds
    while time.process_time() < deadline:
        pass
    return "done"


def test_a_timed_call_adds_its_cpu_time_and_passes_its_result_through() -> None:
    clock = CoreClock()
    wrapped = timed(busy, clock)
    assert wrapped(0.002) == "done"
    assert wrapped(0.002) == "done"
    assert clock.calls == 2
    assert clock.seconds >= 0.004


def test_a_call_that_raises_is_timed_too() -> None:
    clock = CoreClock()

    def fails() -> None:
        raise ValueError("bad frame")

    with pytest.raises(ValueError, match="bad frame"):
        timed(fails, clock)()
    assert clock.calls == 1


def test_a_core_share_leaves_out_what_the_timer_itself_cost() -> None:
    assert core_share(CoreClock(seconds=0.010, calls=1000), 2e-6, 100) == pytest.approx(80.0)


def test_a_core_share_is_never_negative() -> None:
    assert core_share(CoreClock(seconds=0.001, calls=1000), 2e-6, 100) == 0.0


def test_the_report_shows_what_neither_core_spent_as_clients_and_wire() -> None:
    figures = Figures(total=400.0, ocs=150.0, imp=120.0)
    assert figures.rest == pytest.approx(130.0)
    lines = report(figures, 2000, 5).splitlines()
    assert "2000 messages" in lines[0]
    assert "minimum of 5 runs" in lines[0]
    assert lines[-1].split() == ["fake", "clients", "and", "wire", "130.0"]


def test_every_call_into_both_cores_is_timed_during_a_relay() -> None:
    fed = warmed_federation()
    clocks = time_core(fed.ocs), time_core(fed.imp)
    relay(fed, 3)
    assert all(clock.calls > 0 and clock.seconds > 0 for clock in clocks)
    assert fed.alice.inbox == []
    assert fed.bob.inbox == []


def test_a_message_not_answered_200_fails_the_run() -> None:
    fed = warmed_federation()
    fed.alice.answers["MESSAGE"] = 486
    with pytest.raises(RuntimeError, match="was not answered 200"):
        relay(fed, 1)
