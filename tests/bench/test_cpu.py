"""CPU accounting from /proc text: per-process ticks, machine totals, and what one step cost."""

from __future__ import annotations

import pytest

from bench.cpu import (
    CpuTotals,
    ProcessTimes,
    Snapshot,
    parse_loadavg,
    parse_pid_stat,
    parse_proc_stat,
    step_load,
    tree_ticks,
)


def stat_line(pid: int, comm: str, ppid: int, utime: int, stime: int, cutime: int = 0) -> str:
    """A /proc/PID/stat line (fields 4-13 and 18-52 as a real one has them)."""
    middle = f"{ppid} {pid} {pid} 0 -1 4194560 532 0 0 0"
    tail = "20 0 1 0 347702 3133440 360 18446744073709551615 0 0 0 0 0 0 0 0 0 0 0 0 17 1"
    return f"{pid} ({comm}) S {middle} {utime} {stime} {cutime} 4 {tail}\n"


def test_pid_stat_counts_fields_after_a_command_with_spaces_and_parentheses() -> None:
    times = parse_pid_stat(stat_line(4242, "kamailio (tcp) x", 4200, 150, 50, 7))
    assert times == ProcessTimes(pid=4242, ppid=4200, own=200, children=11)


def test_proc_stat_busy_leaves_out_idle_iowait_and_steal() -> None:
    text = "cpu  100 10 40 1000 20 3 7 5 0 0\ncpu0 50 5 20 500 10 1 3 2 0 0\nintr 123\n"
    assert parse_proc_stat(text) == CpuTotals(busy=160, steal=5, total=1185)


def test_proc_stat_without_the_aggregate_line_is_refused() -> None:
    with pytest.raises(ValueError, match="no aggregate cpu line"):
        parse_proc_stat("cpu0 1 2 3 4\n")


def test_loadavg_is_the_one_minute_figure() -> None:
    assert parse_loadavg("1.37 0.98 0.41 3/101 6543\n") == 1.37


def processes(*entries: ProcessTimes) -> dict[int, ProcessTimes]:
    return {entry.pid: entry for entry in entries}


def test_a_node_s_ticks_include_its_workers_and_their_children_but_not_its_siblings() -> None:
    table = processes(
        ProcessTimes(10, 1, 5, 0),  # the main process
        ProcessTimes(11, 10, 30, 0),  # a worker
        ProcessTimes(12, 11, 7, 0),  # a worker's child
        ProcessTimes(20, 1, 1000, 0),  # another node
    )
    assert tree_ticks(table, 10) == 42


def test_a_child_reaped_during_the_step_stays_in_its_parent_s_ticks() -> None:
    before = processes(ProcessTimes(10, 1, 5, 0), ProcessTimes(11, 10, 30, 0))
    after = processes(ProcessTimes(10, 1, 6, 30))  # 11 ended; its 30 ticks went to cutime
    assert tree_ticks(after, 10) - tree_ticks(before, 10) == 1


def snapshot(at: float, busy: int, steal: int, total: int, ours: int, **nodes: int) -> Snapshot:
    return Snapshot(at, CpuTotals(busy, steal, total), ours, nodes)


def test_cpu_per_message_per_node_is_the_node_s_ticks_over_the_messages() -> None:
    before = snapshot(0.0, 0, 0, 0, 0, A=1000, B=2000)
    after = snapshot(2.0, 400, 0, 400, 400, A=1050, B=2080)
    load = step_load(before, after, messages=1000, load_average=0.5, ticks_per_second=100)
    assert load.node_us_per_message == {"A": 500.0, "B": 800.0}


def test_other_processes_are_the_machine_s_busy_ticks_minus_the_benchmark_s() -> None:
    before = snapshot(10.0, 1000, 0, 5000, 300)
    after = snapshot(12.0, 1300, 0, 5400, 560)
    load = step_load(before, after, messages=1, load_average=0.5, ticks_per_second=100)
    assert load.other_core_fraction == pytest.approx(0.2)
    assert not load.noisy  # at the threshold, not above it


def test_a_step_where_others_used_more_than_the_threshold_is_noisy() -> None:
    before = snapshot(10.0, 1000, 0, 5000, 300)
    after = snapshot(12.0, 1310, 0, 5400, 560)
    load = step_load(before, after, messages=1, load_average=0.5, ticks_per_second=100)
    assert load.other_core_fraction == pytest.approx(0.25)
    assert load.noisy
    quieter = step_load(before, after, 1, 0.5, 100, threshold=0.3)
    assert not quieter.noisy


def test_steal_is_a_share_of_all_cpu_time_of_the_step() -> None:
    before = snapshot(0.0, 100, 10, 1000, 100)
    after = snapshot(1.0, 150, 30, 1200, 150)
    load = step_load(before, after, messages=1, load_average=0.5, ticks_per_second=100)
    assert load.steal_fraction == pytest.approx(0.1)
    assert load.other_core_fraction == 0.0


def test_a_step_that_carried_no_message_has_no_finite_cost() -> None:
    before = snapshot(0.0, 0, 0, 0, 0, A=0)
    after = snapshot(1.0, 10, 0, 10, 10, A=10)
    load = step_load(before, after, messages=0, load_average=0.5, ticks_per_second=100)
    assert load.node_us_per_message["A"] == float("inf")
