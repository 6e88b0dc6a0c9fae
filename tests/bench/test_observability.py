"""What metrics and the trace cost: medians over repetitions of passing, quiet steps only,
the added share, and each setting's capacity (the lowest over repetitions)."""

from __future__ import annotations

from bench.cpu import StepLoad
from bench.observability import Setting, report
from bench.steps import Step


def step(offered: int, a: float, b: float, *, failed: int = 0, others: float = 0.0) -> Step:
    load = StepLoad({"A": a, "B": b}, others, 0.0, 0.5, 0.2)
    return Step(offered, offered * (1 if not failed else 0.5), failed, 4.0, 8.0, load)


def test_cpu_is_the_median_of_passing_quiet_steps() -> None:
    setting = Setting(
        "off",
        [
            [step(1000, 100, 110), step(2000, 90, 95)],
            [step(1000, 104, 112), step(2000, 80, 99, others=0.9)],  # noisy: left out
            [step(1000, 500, 500, failed=3)],  # failed: left out
        ],
    )
    assert setting.cpu(1000, "A") == 102
    assert setting.cpu(2000, "B") == 95
    assert setting.cpu(3000, "A") is None
    assert setting.capacity() == 0  # the third repetition passed nothing


def test_the_report_gives_what_metrics_and_trace_add_per_rate_and_node() -> None:
    settings = [
        Setting("off", [[step(1000, 100, 200), step(2000, 90, 180)]]),
        Setting("metrics", [[step(1000, 103, 204), step(2000, 91, 183)]]),
        Setting("trace", [[step(1000, 170, 340)]]),
    ]
    lines = report(settings, [1000, 2000])
    assert lines[1].split() == ["1,000", "A", "100", "103", "+3.0%", "170", "+70.0%"]
    assert lines[4].split() == ["2,000", "B", "180", "183", "+1.7%", "-", "-"]
    assert lines[-1] == (
        "highest passing rate: off 2,000/s, metrics 2,000/s, trace 1,000/s "
        "(lowest over the repetitions)"
    )
