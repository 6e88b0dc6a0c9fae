"""When a connection must be closed for being slow or silent (DESIGN §8), fed ``now``.

Sans-IO: the connection reports handshake, reads and writes with the loop's time; the
asyncio side keeps one timer at ``next_deadline()`` and asks ``expired(now)`` when it fires.
"""

from __future__ import annotations

from intrafed.transport.flows import TransportLimits


class Deadlines:
    """The handshake, first-bytes, whole-message and idle deadlines of one connection.

    Reads and writes only move deadlines later, except a message starting, which may bring
    one forward: ``after_read`` returns that deadline so the timer can be moved up.
    """

    __slots__ = (
        "_got_data",
        "_handshake_by",
        "_inbound",
        "_limits",
        "_message_started",
        "_opened_at",
        "last_activity",
    )

    def __init__(
        self, limits: TransportLimits, *, inbound: bool, handshake: bool, now: float
    ) -> None:
        self._limits = limits
        self._inbound = inbound
        self._handshake_by = now + limits.tls_handshake_timeout if handshake else None
        self._opened_at = now
        self._got_data = False
        self._message_started: float | None = None
        self.last_activity = now
        """When bytes last went either way."""

    @property
    def handshaking(self) -> bool:
        """Whether the TLS handshake is still running."""
        return self._handshake_by is not None

    @property
    def got_data(self) -> bool:
        """Whether any bytes came in yet."""
        return self._got_data

    def handshake_done(self, now: float) -> None:
        """The flow is ready: the first-bytes clock starts now."""
        self._handshake_by = None
        self._opened_at = now

    def received(self, now: float) -> None:
        """Bytes came in."""
        self.last_activity = now
        self._got_data = True

    def sent(self, now: float) -> None:
        """Bytes went out."""
        self.last_activity = now

    def after_read(self, delivered: bool, partial: bool) -> float | None:
        """Note whether the framer holds part of a message after the last read (and
        whether that read completed any); the new message deadline when one started."""
        if not partial:
            self._message_started = None
            return None
        if delivered or self._message_started is None:
            self._message_started = self.last_activity
            return self.last_activity + self._limits.message_timeout
        return None

    @property
    def within_message(self) -> bool:
        """Whether the framer holds part of a message (its deadline runs)."""
        return self._message_started is not None

    def next_deadline(self) -> float:
        """The earliest time ``expired`` may give a reason."""
        if self._handshake_by is not None:
            return self._handshake_by
        limits = self._limits
        deadline = self.last_activity + limits.idle_timeout
        if self._inbound and not self._got_data:
            deadline = min(deadline, self._opened_at + limits.first_data_timeout)
        if self._message_started is not None:
            deadline = min(deadline, self._message_started + limits.message_timeout)
        return deadline

    def expired(self, now: float) -> str | None:
        """Why the connection must close at ``now``, or None while every deadline is ahead."""
        limits = self._limits
        if self._handshake_by is not None:
            if now >= self._handshake_by:
                return f"timed out after {limits.tls_handshake_timeout} s"
            return None
        started = self._message_started
        first_data_by = self._opened_at + limits.first_data_timeout
        if self._inbound and not self._got_data and now >= first_data_by:
            return f"no data within {limits.first_data_timeout} s of connecting"
        if started is not None and now >= started + limits.message_timeout:
            return f"message still incomplete after {limits.message_timeout} s"
        if now >= self.last_activity + limits.idle_timeout:
            return f"no traffic for {limits.idle_timeout} s"
        return None
