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
