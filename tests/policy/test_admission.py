"""Admission under overload: clients outside dialogs are shed first, trusted peers and
dialogs next, CANCEL and ACK never."""

from __future__ import annotations

from intrafed.policy.admission import Admission, AdmissionLimits
from tests.messages import request

TRUSTED_FLOW, CLIENT_FLOW = 1, 2


def admission() -> Admission:
    limits = AdmissionLimits(max_pending=10, retry_after=4)
    return Admission(limits, "imp1.example.com", lambda flow: flow == TRUSTED_FLOW)


def test_below_the_limit_everything_is_admitted() -> None:
    assert admission().shed(request(), CLIENT_FLOW, 9) is None


def test_beyond_the_limit_a_new_client_request_gets_503_with_retry_after() -> None:
    shed = admission().shed(request(), CLIENT_FLOW, 10)
    assert shed is not None
    assert (shed.status, shed.reason, shed.headers.get("retry-after")) == (503, "Overloaded", "4")
    assert "10 transactions pending (limit 10)" in (shed.headers.get("warning") or "")


def test_trusted_peers_and_dialogs_pass_until_twice_the_limit() -> None:
    in_dialog = request(to="<sip:bob@example.com>;tag=b1")
    assert admission().shed(request(), TRUSTED_FLOW, 19) is None
    assert admission().shed(in_dialog, CLIENT_FLOW, 19) is None
    assert admission().shed(request(), TRUSTED_FLOW, 20) is not None
    assert admission().shed(in_dialog, CLIENT_FLOW, 20) is not None


def test_cancel_is_never_shed() -> None:
    assert admission().shed(request("CANCEL"), CLIENT_FLOW, 1000) is None


def late(admission: Admission, waited: float, now: float) -> bytes | None:
    return admission.refuse_late(request().to_bytes(), waited, now)


def test_a_pause_is_served_however_late_its_requests() -> None:
    shedding = admission()
    answers = [late(shedding, 0.01, step * 0.01) for step in range(100)]  # a quiet second
    answers += [late(shedding, 0.5, 1.0 + step * 0.01) for step in range(10)]  # a pause
    answers += [late(shedding, 0.01, 1.1 + step * 0.01) for step in range(90)]
    answers += [late(shedding, 0.5, 2.0)]  # the window with the pause: 10 % late
    assert answers == [None] * len(answers)


def test_a_standing_queue_sheds_the_requests_that_waited_too_long() -> None:
    shedding = admission()
    for step in range(100):  # a second in which a third of the frames waited 60 ms
        assert late(shedding, 0.06 if step % 3 == 0 else 0.01, step * 0.01) is None
    answer = late(shedding, 0.06, 1.0)
    assert answer is not None
    assert answer.startswith(b"SIP/2.0 503 Overloaded\r\n")
    assert b"Retry-After: 4\r\n" in answer
    assert b"the request waited 60 ms to be handled (limit 50 ms)" in answer
    assert late(shedding, 0.04, 1.01) is None  # on time: served, even while shedding


def test_shedding_stops_after_a_window_without_a_standing_queue() -> None:
    shedding = admission()
    for step in range(100):
        late(shedding, 0.06, step * 0.01)
    assert late(shedding, 0.06, 1.0) is not None
    for step in range(1, 100):
        late(shedding, 0.01, 1.0 + step * 0.01)
    assert late(shedding, 0.06, 2.0) is None


def test_a_window_long_past_does_not_start_shedding_after_a_silence() -> None:
    shedding = admission()
    for step in range(100):
        late(shedding, 0.06, step * 0.01)
    assert late(shedding, 0.06, 30.0) is None
