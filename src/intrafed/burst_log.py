"""Logging a fault that repeats: one line when a burst of failures starts, then a count,
never a line (or a traceback) per failure."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable

SUMMARY_INTERVAL = 60.0
"""Seconds between the count lines of a burst that goes on."""


class BurstLog:
    """Logs the first failure of a burst with its reason; later ones only as "N more
    failures in the last X s", at most once per ``interval`` and when the burst ends."""

    def __init__(
        self,
        logger: logging.Logger,
        what: str,
        *,
        interval: float = SUMMARY_INTERVAL,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._logger = logger
        self._what = what
        self._interval = interval
        self._clock = clock
        self._counting_since: float | None = None
        """When the current count started (None: no burst)."""
        self._more = 0
        self.failures = 0
        """Every failure since the start (the metrics count them)."""

    def failed(self, reason: str, error: BaseException | None = None) -> None:
        """One more failure; ``error`` adds its traceback to the burst's first line (for
        faults nobody expected)."""
        self.failures += 1
        now = self._clock()
        since = self._counting_since
        if since is None:
            self._counting_since, self._more = now, 0
            self._logger.error("%s failed: %s", self._what, reason, exc_info=error)
            return
        self._more += 1
        if now - since >= self._interval:
            self._logger.error(
                "%d more %s failures in the last %.0f s (latest: %s)",
                self._more,
                self._what,
                now - since,
                reason,
            )
            self._counting_since, self._more = now, 0

    def succeeded(self) -> None:
        """An attempt worked: the burst, if any, is over."""
        since = self._counting_since
        if since is None:
            return
        self._counting_since = None
        self._logger.warning(
            "%s works again (%d more failures in the last %.0f s)",
            self._what,
            self._more,
            self._clock() - since,
        )
