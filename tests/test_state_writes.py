"""State writes without sockets: the requests of one turn of the event loop are stored in one
transaction and answered only then; what the store refuses fails alone."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from intrafed.config.model import NodeIdentity, Role
from intrafed.services.presence import OutgoingNotify, PresenceAgent
from intrafed.services.registrar import Registrar
from intrafed.sip import Request, Response
from intrafed.state_writes import Settled, StateWriter
from intrafed.store import Store, create_store
from tests.messages import request
from tests.store_faults import count_transactions, refuse_contact

NODE = "ocs1.example.com"
NOW = 1000.0
SOURCE = ("127.0.0.10", 5070)


def register(user: str, contact: str, cseq: int = 1) -> Request:
    return request(
        "REGISTER",
        uri="sip:example.com",
        to=f"<sip:{user}@example.com>",
        cseq=cseq,
        call_id=f"reg-{user}",
        branch=f"z9hG4bK-reg-{user}-{cseq}",
        extra=f"Contact: <{contact}>\r\n",
    )


class Turns:
    """The event loop, as far as the writer sees it: what is scheduled runs on ``next()``."""

    def __init__(self) -> None:
        self.scheduled: list[Callable[[], None]] = []

    def schedule(self, flush: Callable[[], None]) -> None:
        self.scheduled.append(flush)

    def next(self) -> None:
        scheduled, self.scheduled = self.scheduled, []
        for flush in scheduled:
            flush()


@pytest.fixture
def store(tmp_path: Path) -> Iterator[Store]:
    with create_store(tmp_path, NodeIdentity(Role.OCS, NODE, "127.0.0.2")) as store:
        yield store


def writer(store: Store, settled: list[Settled], turns: Turns) -> tuple[StateWriter, Registrar]:
    registrar = Registrar(NODE, lambda aor: True)
    presence = PresenceAgent(
        NODE,
        is_homed=lambda aor: True,
        is_blocked=lambda presentity, watcher: False,
        via_for=lambda target: f"SIP/2.0/TCP {NODE};branch=z9hG4bK-n",
    )
    return StateWriter(store, NODE, registrar, presence, settled.extend, turns.schedule), registrar


def test_registers_of_one_turn_are_answered_only_once_their_one_transaction_is_stored(
    store: Store,
) -> None:
    settled: list[Settled] = []
    turns = Turns()
    states, _ = writer(store, settled, turns)
    begun = count_transactions(store)
    for n in range(3):
        states.register(register(f"u{n}", f"sip:u{n}@127.0.0.10:5070"), 1, NOW, SOURCE)
    assert (settled, begun, store.load_bindings(0.0)) == ([], [], [])
    assert len(turns.scheduled) == 1
    turns.next()
    assert [item.response.status for item in settled] == [200, 200, 200]
    assert [item.registered for item in settled] == [
        ("u0@example.com",),
        ("u1@example.com",),
        ("u2@example.com",),
    ]
    assert len(begun) == 1
    assert len(store.load_bindings(0.0)) == 3


def test_a_batch_the_store_refuses_is_retried_request_by_request_and_memory_follows_the_store(
    store: Store,
) -> None:
    settled: list[Settled] = []
    turns = Turns()
    states, registrar = writer(store, settled, turns)
    refuse_contact(store, "sip:bob@127.0.0.11")
    states.register(register("alice", "sip:alice@127.0.0.10"), 1, NOW, SOURCE)
    states.register(register("bob", "sip:bob@127.0.0.11"), 1, NOW, SOURCE)
    states.register(register("alice", "sip:alice@127.0.0.12", cseq=2), 1, NOW, SOURCE)
    turns.next()
    assert [item.response.status for item in settled] == [200, 503, 200]
    assert "(this contact is refused)" in (settled[1].response.headers.get("warning") or "")
    stored = sorted(row.contact for row in store.load_bindings(0.0))
    remembered = sorted(
        b.contact
        for aor in ("alice@example.com", "bob@example.com")
        for b in registrar.bindings(aor, NOW)
    )
    assert stored == remembered == ["sip:alice@127.0.0.10", "sip:alice@127.0.0.12"]


def test_a_request_whose_handling_raises_gets_500_and_the_rest_of_its_turn_is_stored(
    store: Store,
) -> None:
    settled: list[Settled] = []
    turns = Turns()
    states, _ = writer(store, settled, turns)

    def broken() -> tuple[Response, list[OutgoingNotify]]:
        raise RuntimeError("a bug")

    states.register(register("alice", "sip:alice@127.0.0.10"), 1, NOW, SOURCE)
    states.presence_request(request("PUBLISH", "sip:alice@example.com"), broken)
    turns.next()
    assert [(item.response.status, item.response.reason) for item in settled] == [
        (200, "OK"),
        (500, "internal error (RuntimeError) while handling PUBLISH"),
    ]
    assert [row.contact for row in store.load_bindings(0.0)] == ["sip:alice@127.0.0.10"]
