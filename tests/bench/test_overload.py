"""The overload benchmark's bookkeeping, on plain inputs: /proc status, SIPp's statistics
and response-time rows, and the percentiles of what was (or was never) answered."""

from __future__ import annotations

import math

import pytest

from bench.loadstats import (
    Latency,
    Outcomes,
    Queued,
    cpu_seconds,
    elapsed_seconds,
    last_stats,
    outcomes,
    queued,
    response_times,
    sending_seconds,
    vm_rss_kib,
)

STATUS = "Name:\tpython\nVmPeak:\t  812345 kB\nVmRSS:\t  123456 kB\nRssAnon:\t  100000 kB\n"

STATS = (
    "StartTime;ElapsedTime(C);OutgoingCall(C);SuccessfulCall(C);FailedCall(C);"
    "FailedTimeoutOnRecv(C);FailedUnexpectedMessage(C);FailedCmdNotSent(C);\n"
    "t0;00:00:01;500;480;0;0;0;0;\n"
    "t1;00:00:02;1000;900;10;10;0;0;\n"
    "t2;00:00:03;1000;900;20;15;3;2;\n"
)


def test_vm_rss_is_read_from_its_own_line_not_vm_peak() -> None:
    assert vm_rss_kib(STATUS) == 123456


def test_a_status_without_vm_rss_is_an_error() -> None:
    with pytest.raises(ValueError, match="VmRSS"):
        vm_rss_kib("Name:\tpython\nState:\tZ (zombie)\n")


def test_outcomes_split_answers_by_response_time_name_and_failures_by_sipp_counter() -> None:
    result = outcomes(last_stats(STATS), {"ok": 700, "shed": 280})
    assert result == Outcomes(offered=1000, ok=700, shed=280, other=3, unanswered=15, not_sent=2)
    assert result.accounted == 1000


def test_last_stats_needs_a_row_beyond_the_header() -> None:
    with pytest.raises(ValueError, match="no statistics row"):
        last_stats("StartTime;OutgoingCall(C);\n")


def test_sending_ends_at_the_first_row_with_the_final_outgoing_count() -> None:
    assert sending_seconds(STATS) == 2.0


def test_elapsed_time_with_and_without_microseconds() -> None:
    assert elapsed_seconds("01:02:03") == 3723.0
    assert elapsed_seconds("00:00:01:500000") == 1.5


def test_response_times_are_grouped_by_name() -> None:
    rows = [
        {"Date_ms": "1", "response_time_ms": "3", "rtd_no": "ok"},
        {"Date_ms": "2", "response_time_ms": "1", "rtd_no": "shed"},
        {"Date_ms": "3", "response_time_ms": "5", "rtd_no": "ok"},
    ]
    assert response_times(rows) == {"ok": [3.0, 5.0], "shed": [1.0]}


def test_unanswered_requests_count_as_infinitely_late() -> None:
    latency = Latency.of([10.0] * 98, unanswered=2)
    assert (latency.count, latency.p50_ms) == (100, 10.0)
    assert latency.p99_ms == math.inf


def test_latency_of_nothing_is_not_a_number() -> None:
    latency = Latency.of([])
    assert latency.count == 0
    assert math.isnan(latency.p99_ms)


def test_cpu_time_is_user_plus_system_after_the_command_name() -> None:
    # A command name with spaces and a parenthesis must not shift the fields.
    stat = "4242 (python (x) y) S 1 4242 4242 0 -1 4194560 100 0 0 0 250 50 0 0 20 0 3 0"
    assert cpu_seconds(stat, 100) == 3.0


TCP_TABLE = (
    "  sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt\n"
    # SIPp's UAC (127.0.0.202:40000) to the node (127.0.0.200:5060): 0x100 unsent, 0x30
    # of answers unread.
    "   0: CA00007F:9C40 C800007F:13C4 01 00000100:00000030 00:00000000 00000000\n"
    # The node's side of the same connection: 0x2000 unread.
    "   1: C800007F:13C4 CA00007F:9C40 01 00000000:00002000 00:00000000 00000000\n"
    # The canary's connection to the node and the node's listener: not the load's.
    "   2: C800007F:13C4 CB00007F:9C41 01 00000000:00000500 00:00000000 00000000\n"
    "   3: C800007F:13C4 00000000:0000 0A 00000000:00000000 00:00000000 00000000\n"
)


def test_queued_bytes_are_those_of_the_load_connection_only() -> None:
    assert queued(TCP_TABLE, "127.0.0.202", ("127.0.0.200", 5060)) == Queued(0x100, 0x2000, 0x30)
