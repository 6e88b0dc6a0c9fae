"""The pass rule, noise marking, capacity, summaries over repetitions, and ratios."""

from __future__ import annotations

from bench.cpu import StepLoad
from bench.report import (
    Capacity,
    Run,
    capacity,
    common_cpu,
    decisive,
    half_rate,
    jsonable,
    ratio,
    summarise,
    summary_row,
)
from bench.steps import Step

QUIET_THRESHOLD = 0.2


def load(a: float = 300.0, b: float = 320.0, others: float = 0.05) -> StepLoad:
    return StepLoad({"A": a, "B": b}, others, 0.0, 0.7, QUIET_THRESHOLD)


def step(
    offered: int,
    *,
    failed: int = 0,
    p99: float = 5.0,
    achieved: float | None = None,
    others: float = 0.05,
    a: float = 300.0,
    b: float = 320.0,
) -> Step:
    reached = offered if achieved is None else achieved
    return Step(offered, reached, failed, 1.0, p99, load(a, b, others))


NOISY = 0.9


def test_a_step_passes_with_no_failure_p99_within_100_ms_and_the_rate_reached() -> None:
    assert step(1000, p99=100.0).passed
    assert not step(1000, p99=100.5).passed
    assert not step(1000, failed=1).passed
    assert not step(1000, achieved=940.0).passed
    assert step(1000, achieved=950.0).passed


def test_a_step_is_noisy_only_when_other_processes_exceeded_the_threshold() -> None:
    assert not step(1000, others=0.2).noisy
    assert step(1000, others=0.21).noisy
    assert not Step(1000, 1000.0, 0, 1.0, 5.0).noisy  # not probed


def test_a_retried_step_counts_by_its_last_attempt() -> None:
    first, again = step(1000, others=NOISY, failed=3), step(1000)
    assert decisive([step(500), first, again]) == [step(500), again]


def test_capacity_is_the_highest_rung_below_a_quiet_failure() -> None:
    ladder = [step(500), step(1000), step(1500, failed=2)]
    assert capacity(ladder) == Capacity(1000, noisy=False, exhausted=False)
    assert half_rate(capacity(ladder)) == 500


def test_a_ladder_stopped_by_a_noisy_failure_has_no_capacity_figure() -> None:
    ladder = [step(500), step(1000), step(1500, failed=2, others=NOISY)]
    assert capacity(ladder) == Capacity(1000, noisy=True, exhausted=False)


def test_a_noisy_failure_retried_quietly_into_a_pass_keeps_the_ladder_going() -> None:
    ladder = [step(500), step(1000, failed=2, others=NOISY), step(1000), step(1500, p99=300.0)]
    assert capacity(ladder) == Capacity(1000, noisy=False, exhausted=False)


def test_a_ladder_that_never_failed_gives_a_lower_bound() -> None:
    assert capacity([step(500), step(1000)]) == Capacity(1000, noisy=False, exhausted=True)
    assert capacity([step(500, failed=1)]) == Capacity(None, noisy=False, exhausted=False)
    assert half_rate(capacity([step(500, failed=1)])) is None


def run(repetition: int, steps: list[Step], half: list[Step], system: str = "intrafed") -> Run:
    return Run(system, "tcp", repetition, tuple(steps), tuple(half))


def test_over_repetitions_the_lowest_capacity_and_the_worst_half_rate_figures_count() -> None:
    first = run(1, [step(1000), step(2000), step(3000, failed=1)], [step(1000, p99=4.0, a=400)])
    second = run(2, [step(1000), step(2000, failed=1)], [step(500, p99=9.0, a=350, b=500)])
    summary = summarise([first, second])
    assert (summary.max_rate, summary.at_least, summary.noisy_repetitions) == (1000, False, 0)
    assert (summary.half_rate, summary.p99_ms) == (500, 9.0)
    assert summary.cpu_us == {"A": 400.0, "B": 500.0}


def test_a_noisy_repetition_is_left_out_and_counted() -> None:
    quiet = run(1, [step(1000), step(2000, failed=1)], [step(500)])
    noisy = run(2, [step(1000, failed=1, others=NOISY)], [])
    summary = summarise([quiet, noisy])
    assert (summary.max_rate, summary.noisy_repetitions) == (1000, 1)


def test_latency_and_cpu_at_half_rate_are_not_reported_from_a_noisy_step() -> None:
    quiet_ladder = [step(1000), step(2000, failed=1)]
    summary = summarise([run(1, quiet_ladder, [step(500, others=NOISY)])])
    assert summary.max_rate == 1000
    assert (summary.half_rate, summary.p50_ms, summary.p99_ms, summary.cpu_us) == (
        None,
        None,
        None,
        {},
    )


def test_only_noisy_repetitions_give_no_figure() -> None:
    summary = summarise([run(1, [step(1000, failed=1, others=NOISY)], [])])
    assert summary.max_rate is None
    assert summary.noisy_repetitions == 1


def test_the_ratio_is_intrafed_over_kamailio_and_absent_when_either_is_missing() -> None:
    assert ratio(1500.0, 4000.0) == 0.375
    assert ratio(None, 4000.0) is None
    assert ratio(1500.0, None) is None
    assert ratio(1500.0, 0.0) is None


def test_cpu_is_compared_at_the_highest_rate_both_systems_passed_quietly() -> None:
    ours = run(1, [step(1000, a=450, b=470), step(2000, a=330, b=340, others=NOISY)], [])
    theirs = run(
        1,
        [step(1000, a=180, b=190), step(2000, a=160, b=170), step(3000, failed=1)],
        [],
        system="kamailio",
    )
    assert common_cpu([ours, theirs], "tcp") == (1000, {"A": (450, 180), "B": (470, 190)})
    assert common_cpu([ours, theirs], "tls") is None


def test_results_have_no_infinity_json_cannot_carry() -> None:
    failed = Step(1000, 0.0, 10_000, float("inf"), float("inf"))
    record = jsonable(failed)
    assert record == {
        "offered": 1000,
        "achieved": 0.0,
        "failed": 10_000,
        "p50_ms": None,
        "p99_ms": None,
        "load": None,
        "carried": 0,
    }


def test_a_quiet_repetition_where_no_rung_passed_is_not_left_out() -> None:
    good = run(1, [step(1000), step(2000), step(3000, failed=1)], [step(1000)])
    broken = run(2, [step(1000, failed=4)], [])
    summary = summarise([good, broken])
    assert (summary.max_rate, summary.half_rate, summary.p99_ms) == (0, None, None)
    assert summary_row(summary)[3] == "none"
