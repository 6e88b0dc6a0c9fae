"""Sessions, CSRF tokens and the login throttle of the console, sans-IO: every decision
takes ``now`` and returns an explicit verdict."""

from __future__ import annotations

import hmac
import secrets
from collections import OrderedDict
from dataclasses import dataclass

SESSION_SECONDS = 8 * 3600.0
"""A session ends this long after it began, however busy."""
IDLE_SECONDS = 3600.0
"""A session unused this long ends."""
MAX_SESSIONS = 1000
"""Sessions kept at most (the oldest go first): a login page loaded in a loop cannot grow
the console's memory."""
FREE_FAILURES = 5
"""Wrong passwords from one source before each further attempt must wait."""
FIRST_DELAY = 2.0
MAX_DELAY = 300.0
"""The wait after the sixth failure, doubling with each further one, up to this."""
MAX_SOURCES = 10_000
"""Sources whose failures are remembered (the oldest are forgotten first)."""


@dataclass(slots=True)
class Session:
    """A browser's session: its cookie token, the CSRF token of its forms, and whether
    its user has logged in."""

    token: str
    csrf: str
    authenticated: bool
    started: float
    used: float
    notice: str | None = None
    """A message for the next page shown (after a redirect)."""

    def csrf_matches(self, submitted: str | None) -> bool:
        """Whether a form carried this session's CSRF token."""
        return submitted is not None and hmac.compare_digest(submitted, self.csrf)


class Sessions:
    """The live sessions, by cookie token."""

    def __init__(self) -> None:
        self._sessions: OrderedDict[str, Session] = OrderedDict()

    def open(self, now: float, *, authenticated: bool = False) -> Session:
        """A new session with fresh tokens."""
        session = Session(
            secrets.token_urlsafe(32), secrets.token_urlsafe(32), authenticated, now, now
        )
        self._sessions[session.token] = session
        while len(self._sessions) > MAX_SESSIONS:
            self._sessions.popitem(last=False)
        return session

    def find(self, token: str | None, now: float) -> Session | None:
        """The live session of ``token``; None when it is unknown or has expired."""
        session = self._sessions.get(token or "")
        if session is None:
            return None
        if now - session.started > SESSION_SECONDS or now - session.used > IDLE_SECONDS:
            self.close(session)
            return None
        session.used = now
        self._sessions.move_to_end(session.token)
        return session

    def close(self, session: Session) -> None:
        """End ``session``."""
        self._sessions.pop(session.token, None)


@dataclass(frozen=True, slots=True)
class Admitted:
    """The source may try a password now."""


@dataclass(frozen=True, slots=True)
class Wait:
    """The source failed too often: it may try again after ``seconds``."""

    seconds: float


@dataclass(slots=True)
class _Failures:
    count: int
    last: float


class LoginThrottle:
    """Counts wrong passwords per source address: five are free, then each further attempt
    waits 2 s, 4 s, 8 s … (at most 5 minutes) after the last failure."""

    def __init__(self) -> None:
        self._failures: OrderedDict[str, _Failures] = OrderedDict()

    def admit(self, source: str, now: float) -> Admitted | Wait:
        """May ``source`` try a password at ``now``?"""
        failures = self._failures.get(source)
        if failures is None or failures.count < FREE_FAILURES:
            return Admitted()
        delay = min(MAX_DELAY, FIRST_DELAY * 2 ** (failures.count - FREE_FAILURES))
        remaining = failures.last + delay - now
        return Wait(remaining) if remaining > 0 else Admitted()

    def failed(self, source: str, now: float) -> None:
        """``source`` gave a wrong password at ``now``."""
        failures = self._failures.pop(source, None) or _Failures(0, now)
        failures.count += 1
        failures.last = now
        self._failures[source] = failures
        while len(self._failures) > MAX_SOURCES:
            self._failures.popitem(last=False)

    def succeeded(self, source: str) -> None:
        """``source`` logged in: its failures are forgotten."""
        self._failures.pop(source, None)
