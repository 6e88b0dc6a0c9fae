"""Rate limits per class (DESIGN §4 "Authorize", the OCS "Throttle As Server" flag): a
token bucket per key, pure (the caller passes the clock). Peers throttled as servers share
the high server class per trust entry; everyone else gets the client class per source IP,
lenient enough for a busy user, tight enough that a flood from one address cannot starve
the federation link."""

from __future__ import annotations

import math

from intrafed.config.model import RateLimits


class TokenBuckets:
    """One token bucket per key; keys idle long enough to be full again are forgotten."""

    def __init__(self, limits: RateLimits) -> None:
        self.limits = limits
        self._buckets: dict[tuple[bool, str], tuple[float, float]] = {}
        self._swept = 0.0

    def admit(self, key: str, server_class: bool, now: float) -> float | None:
        """None when a request from ``key`` may proceed; else the seconds until it may
        (for Retry-After)."""
        rate_class = self.limits.server if server_class else self.limits.client
        bucket_key = (server_class, key)
        tokens, stamp = self._buckets.get(bucket_key, (rate_class.burst, now))
        tokens = min(rate_class.burst, tokens + (now - stamp) * rate_class.rate)
        if tokens < 1.0:
            self._buckets[bucket_key] = (tokens, now)
            return (1.0 - tokens) / rate_class.rate
        self._buckets[bucket_key] = (tokens - 1.0, now)
        if now - self._swept > 60.0:
            self._sweep(now)
        return None

    def _sweep(self, now: float) -> None:
        self._swept = now
        for (server_class, key), (tokens, stamp) in list(self._buckets.items()):
            rate_class = self.limits.server if server_class else self.limits.client
            if tokens + (now - stamp) * rate_class.rate >= rate_class.burst:
                del self._buckets[(server_class, key)]


def retry_after(seconds: float) -> str:
    """The Retry-After value for a wait of ``seconds`` (whole seconds, at least 1)."""
    return str(max(1, math.ceil(seconds)))
