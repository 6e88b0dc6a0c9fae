"""Token buckets per rate class: the burst passes, then the sustained rate, with the
wait for Retry-After; the server class is separate and larger."""

from __future__ import annotations

from intrafed.config.model import RateClass, RateLimits
from intrafed.policy import TokenBuckets, retry_after

LIMITS = RateLimits(client=RateClass(rate=10, burst=20), server=RateClass(1000, 2000))


def test_a_client_gets_its_burst_then_the_sustained_rate() -> None:
    buckets = TokenBuckets(LIMITS)
    assert all(buckets.admit("127.0.0.9", False, 0.0) is None for _ in range(20))
    wait = buckets.admit("127.0.0.9", False, 0.0)
    assert wait is not None
    assert 0.09 < wait <= 0.1
    assert buckets.admit("127.0.0.9", False, 0.1) is None
    assert buckets.admit("127.0.0.9", False, 0.1) is not None


def test_sources_and_classes_have_separate_buckets() -> None:
    buckets = TokenBuckets(LIMITS)
    for _ in range(20):
        buckets.admit("127.0.0.9", False, 0.0)
    assert buckets.admit("127.0.0.9", False, 0.0) is not None
    assert buckets.admit("127.0.0.8", False, 0.0) is None
    assert all(buckets.admit("imp1", True, 0.0) is None for _ in range(2000))
    assert buckets.admit("imp1", True, 0.0) is not None


def test_idle_sources_are_forgotten_and_start_full() -> None:
    buckets = TokenBuckets(LIMITS)
    for _ in range(25):
        buckets.admit("127.0.0.9", False, 0.0)
    buckets.admit("127.0.0.7", False, 100.0)
    assert all(buckets.admit("127.0.0.9", False, 100.0) is None for _ in range(20))


def test_retry_after_is_whole_seconds_and_at_least_one() -> None:
    assert retry_after(0.01) == "1"
    assert retry_after(1.2) == "2"
