"""Sessions, CSRF tokens and the login throttle, driven by the clock given."""

from __future__ import annotations

from intrafed.console.security import (
    FIRST_DELAY,
    IDLE_SECONDS,
    MAX_DELAY,
    MAX_SESSIONS,
    SESSION_SECONDS,
    Admitted,
    LoginThrottle,
    Sessions,
    Wait,
)


def test_a_session_is_found_by_its_token_until_idle_or_old() -> None:
    sessions = Sessions()
    session = sessions.open(0.0, authenticated=True)
    assert sessions.find(session.token, 10.0) is session
    assert sessions.find("not a token", 10.0) is None
    assert sessions.find(None, 10.0) is None
    assert sessions.find(session.token, 10.0 + IDLE_SECONDS + 1) is None
    assert sessions.find(session.token, 11.0) is None  # gone for good

    busy = sessions.open(0.0)
    moment = 0.0
    while moment + IDLE_SECONDS / 2 < SESSION_SECONDS:
        moment += IDLE_SECONDS / 2
        assert sessions.find(busy.token, moment) is busy
    assert sessions.find(busy.token, SESSION_SECONDS + 1) is None


def test_sessions_are_bounded_the_oldest_go_first() -> None:
    sessions = Sessions()
    first = sessions.open(0.0)
    kept = sessions.open(0.0)
    sessions.find(kept.token, 1.0)  # used: now the most recent
    for _ in range(MAX_SESSIONS - 1):
        sessions.open(2.0)
    assert sessions.find(first.token, 3.0) is None
    assert sessions.find(kept.token, 3.0) is kept


def test_the_csrf_token_must_be_the_sessions_own() -> None:
    session = Sessions().open(0.0)
    other = Sessions().open(0.0)
    assert session.csrf_matches(session.csrf)
    assert not session.csrf_matches(other.csrf)
    assert not session.csrf_matches("")
    assert not session.csrf_matches(None)
    assert session.csrf != session.token


def test_five_failures_are_free_then_each_attempt_waits_longer() -> None:
    throttle = LoginThrottle()
    for moment in range(5):
        assert throttle.admit("192.0.2.1", float(moment)) == Admitted()
        throttle.failed("192.0.2.1", float(moment))
    assert throttle.admit("192.0.2.1", 4.5) == Wait(FIRST_DELAY - 0.5)
    assert throttle.admit("192.0.2.2", 4.5) == Admitted()  # another source
    assert throttle.admit("192.0.2.1", 4.0 + FIRST_DELAY) == Admitted()
    throttle.failed("192.0.2.1", 10.0)
    assert throttle.admit("192.0.2.1", 10.0) == Wait(2 * FIRST_DELAY)
    for moment in range(11, 40):
        throttle.failed("192.0.2.1", float(moment))
    assert throttle.admit("192.0.2.1", 39.0) == Wait(MAX_DELAY)


def test_a_login_forgets_the_sources_failures() -> None:
    throttle = LoginThrottle()
    for _ in range(7):
        throttle.failed("192.0.2.1", 0.0)
    throttle.succeeded("192.0.2.1")
    assert throttle.admit("192.0.2.1", 0.0) == Admitted()
