"""The registrar (RFC 3261 §10.3) with plain REGISTER requests."""

from __future__ import annotations

from intrafed.services.registrar import MIN_EXPIRES, Registrar
from intrafed.sip import Request
from tests.messages import request

ALICE = "alice@example.com"


def register(contacts: str, *, cseq: int = 1, call_id: str = "reg-1", expires: str = "") -> Request:
    extra = "".join(f"Contact: {c}\r\n" for c in contacts.split("|") if c)
    if expires:
        extra += f"Expires: {expires}\r\n"
    return request(
        "REGISTER",
        uri="sip:example.com",
        to="<sip:alice@example.com>",
        cseq=cseq,
        call_id=call_id,
        branch=f"z9hG4bK-reg-{call_id}-{cseq}",
        extra=extra,
    )


def registrar() -> Registrar:
    return Registrar("imp1.example.com", lambda aor: aor == ALICE)


def test_register_binds_and_the_200_lists_the_bindings_with_expiry() -> None:
    service = registrar()
    outcome = service.register(register("<sip:alice@127.0.0.10:5070;transport=tcp>"), 7, now=1000.0)
    assert outcome.response.status == 200
    assert outcome.changed == (ALICE,)
    assert outcome.response.headers.get_all("contact") == [
        "<sip:alice@127.0.0.10:5070;transport=tcp>;expires=3600;q=1"
    ]
    [binding] = service.bindings(ALICE, now=1000.0)
    assert (binding.flow, binding.expires_at) == (7, 4600.0)
    assert service.bindings(ALICE, now=4600.0) == []


def test_q_values_order_the_bindings_and_expires_zero_removes_one() -> None:
    service = registrar()
    service.register(register("<sip:a@10.0.0.1>;q=0.5|<sip:a@10.0.0.2>;q=0.9"), 1, now=0.0)
    assert [b.contact for b in service.bindings(ALICE, now=1.0)] == [
        "sip:a@10.0.0.2",
        "sip:a@10.0.0.1",
    ]
    service.register(register("<sip:a@10.0.0.2>;expires=0", cseq=2), 1, now=2.0)
    assert [b.contact for b in service.bindings(ALICE, now=3.0)] == ["sip:a@10.0.0.1"]


def test_an_older_cseq_of_the_same_call_id_is_refused() -> None:
    service = registrar()
    service.register(register("<sip:a@10.0.0.1>", cseq=5), 1, now=0.0)
    outcome = service.register(register("<sip:a@10.0.0.1>", cseq=4), 1, now=1.0)
    assert outcome.response.status == 500
    assert outcome.changed == ()


def test_star_with_expires_zero_removes_everything_and_star_alone_is_refused() -> None:
    service = registrar()
    service.register(register("<sip:a@10.0.0.1>|<sip:a@10.0.0.2>"), 1, now=0.0)
    assert service.register(register("*", cseq=2), 1, now=1.0).response.status == 400
    assert service.register(register("*", cseq=3, expires="0"), 1, now=1.0).response.status == 200
    assert service.bindings(ALICE, now=2.0) == []


def test_too_brief_an_interval_gets_423_with_min_expires() -> None:
    response = registrar().register(register("<sip:a@10.0.0.1>;expires=5"), 1, now=0.0).response
    assert response.status == 423
    assert response.headers.get("min-expires") == str(MIN_EXPIRES)


def test_a_user_not_homed_here_gets_404_with_the_reason() -> None:
    service = Registrar("imp1.example.com", lambda aor: False)
    response = service.register(register("<sip:a@10.0.0.1>"), 1, now=0.0).response
    assert response.status == 404
    assert "alice@example.com is not a user of this node" in (response.headers.get("warning") or "")


def test_a_query_without_contact_lists_the_bindings_and_changes_nothing() -> None:
    service = registrar()
    service.register(register("<sip:a@10.0.0.1>"), 1, now=0.0)
    outcome = service.register(register("", cseq=2), 1, now=10.0)
    assert outcome.changed == ()
    assert outcome.response.headers.get_all("contact") == ["<sip:a@10.0.0.1>;expires=3590;q=1"]


def test_restore_brings_saved_bindings_back() -> None:
    first = registrar()
    first.register(register("<sip:a@10.0.0.1>"), 1, now=0.0)
    second = registrar()
    second.restore(first.bindings(ALICE, now=0.0))
    assert [b.contact for b in second.bindings(ALICE, now=1.0)] == ["sip:a@10.0.0.1"]


def test_a_disabled_user_stays_homed_but_cannot_register() -> None:
    service = Registrar("imp1.example.com", lambda aor: True, lambda aor: aor == ALICE)
    response = service.register(register("<sip:a@10.0.0.1>"), 1, now=0.0).response
    assert response.status == 403
    assert "alice@example.com is disabled on this node" in (response.headers.get("warning") or "")


def test_rollback_of_a_register_the_store_refused_restores_the_bindings_before_it() -> None:
    service = registrar()
    service.register(register("<sip:a@10.0.0.1>", cseq=1), 1, now=0.0)
    before = service.bindings(ALICE, now=1.0)
    replaced = service.register(
        register("<sip:a@10.0.0.1>;expires=0|<sip:a@10.0.0.2>", cseq=2), 2, now=1.0
    )
    assert [b.contact for b in service.bindings(ALICE, now=1.0)] == ["sip:a@10.0.0.2"]
    service.rollback(replaced)
    assert service.bindings(ALICE, now=1.0) == before
    assert service.binding_of_contact("sip:a@10.0.0.1", now=1.0) == before[0]
    assert service.binding_of_contact("sip:a@10.0.0.2", now=1.0) is None
    # The same REGISTER, sent again once the store works, is not taken for a repeat.
    again = service.register(register("<sip:a@10.0.0.2>", cseq=2), 2, now=2.0)
    assert again.response.status == 200
    removed = service.register(register("*", cseq=3, expires="0"), 2, now=3.0)
    service.rollback(removed)
    assert [b.contact for b in service.bindings(ALICE, now=3.0)] == [
        "sip:a@10.0.0.1",
        "sip:a@10.0.0.2",
    ]


def test_registered_lists_only_the_addresses_with_a_live_binding() -> None:
    service = registrar()
    assert service.registered(now=0.0) == []
    service.register(register("<sip:alice@127.0.0.10:5070>", expires="60"), 1, now=0.0)
    assert service.registered(now=59.0) == [ALICE]
    assert service.registered(now=60.0) == []
    service.register(register("*", cseq=2, expires="0"), 1, now=1.0)
    assert service.registered(now=2.0) == []
