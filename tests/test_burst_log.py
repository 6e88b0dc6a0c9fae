"""One log line per burst of failures, with a fake clock."""

from __future__ import annotations

import logging

import pytest

from intrafed.burst_log import BurstLog


def test_a_burst_of_failures_logs_its_first_a_count_per_interval_and_its_end(
    caplog: pytest.LogCaptureFixture,
) -> None:
    now = [100.0]
    log = BurstLog(logging.getLogger("test.burst"), "writing", interval=60, clock=lambda: now[0])
    caplog.set_level(logging.INFO, "test.burst")
    for _ in range(150):
        log.failed("disk full")
        now[0] += 1
    log.succeeded()
    log.succeeded()
    log.failed("read-only")
    assert [(r.levelno, r.getMessage()) for r in caplog.records] == [
        (logging.ERROR, "writing failed: disk full"),
        (logging.ERROR, "60 more writing failures in the last 60 s (latest: disk full)"),
        (logging.ERROR, "60 more writing failures in the last 60 s (latest: disk full)"),
        (logging.WARNING, "writing works again (29 more failures in the last 30 s)"),
        (logging.ERROR, "writing failed: read-only"),
    ]
