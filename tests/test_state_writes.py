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
from intrafed.state_writes import Offload, Settled, StateWriter, inline
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


class Harness:
    """A writer over a real store, registrar and presence agent, and the event loop as far
    as the writer sees it: what it schedules runs on ``next_turn()``."""

    def __init__(self, store: Store, offload: Offload = inline) -> None:
        self.store = store
        self.settled: list[Settled] = []
        self.scheduled: list[Callable[[], None]] = []
        self.registrar = Registrar(NODE, lambda aor: True)
        presence = PresenceAgent(
            NODE,
            is_homed=lambda aor: True,
            is_blocked=lambda presentity, watcher: False,
            via_for=lambda target: f"SIP/2.0/TCP {NODE};branch=z9hG4bK-n",
        )
        self.writer = StateWriter(
            store,
            NODE,
            self.registrar,
            presence,
            self.settled.extend,
            self.scheduled.append,
            offload,
        )

    def register(self, user: str, contact: str, cseq: int = 1) -> None:
        self.writer.register(register(user, contact, cseq), 1, NOW, SOURCE)

    def next_turn(self) -> None:
        scheduled, self.scheduled[:] = list(self.scheduled), []
        for flush in scheduled:
            flush()

    def statuses(self) -> list[int]:
        return [item.response.status for item in self.settled]


@pytest.fixture
def harness(tmp_path: Path) -> Iterator[Harness]:
    with create_store(tmp_path, NodeIdentity(Role.OCS, NODE, "127.0.0.2")) as store:
        yield Harness(store)


def test_registers_of_one_turn_are_answered_only_once_their_one_transaction_is_stored(
    harness: Harness,
) -> None:
    begun = count_transactions(harness.store)
    for n in range(3):
        harness.register(f"u{n}", f"sip:u{n}@127.0.0.10:5070")
    assert (harness.settled, begun, harness.store.load_bindings(0.0)) == ([], [], [])
    assert len(harness.scheduled) == 1
    harness.next_turn()
    assert harness.statuses() == [200, 200, 200]
    assert [item.registered for item in harness.settled] == [
        ("u0@example.com",),
        ("u1@example.com",),
        ("u2@example.com",),
    ]
    assert len(begun) == 1
    assert len(harness.store.load_bindings(0.0)) == 3


def test_a_batch_the_store_refuses_is_retried_request_by_request_and_memory_follows_the_store(
    harness: Harness,
) -> None:
    refuse_contact(harness.store, "sip:bob@127.0.0.11")
    harness.register("alice", "sip:alice@127.0.0.10")
    harness.register("bob", "sip:bob@127.0.0.11")
    harness.register("alice", "sip:alice@127.0.0.12", cseq=2)
    harness.next_turn()
    assert harness.statuses() == [200, 503, 200]
    warning = harness.settled[1].response.headers.get("warning") or ""
    assert "(this contact is refused)" in warning
    stored = sorted(row.contact for row in harness.store.load_bindings(0.0))
    remembered = sorted(
        b.contact
        for aor in ("alice@example.com", "bob@example.com")
        for b in harness.registrar.bindings(aor, NOW)
    )
    assert stored == remembered == ["sip:alice@127.0.0.10", "sip:alice@127.0.0.12"]


def test_a_request_whose_handling_raises_gets_500_and_the_rest_of_its_turn_is_stored(
    harness: Harness,
) -> None:
    def broken() -> tuple[Response, list[OutgoingNotify]]:
        raise RuntimeError("a bug")

    harness.register("alice", "sip:alice@127.0.0.10")
    harness.writer.presence_request(request("PUBLISH", "sip:alice@example.com"), broken)
    harness.next_turn()
    assert [(item.response.status, item.response.reason) for item in harness.settled] == [
        (200, "OK"),
        (500, "internal error (RuntimeError) while handling PUBLISH"),
    ]
    assert [row.contact for row in harness.store.load_bindings(0.0)] == ["sip:alice@127.0.0.10"]


class WriterThread:
    """The runner's writer thread as the writer sees it: each write waits until the test
    lets it run (``answer``), then its outcome is handed back."""

    def __init__(self) -> None:
        self.waiting: list[tuple[Callable[[], None], Callable[[BaseException | None], None]]] = []

    def __call__(
        self, write: Callable[[], None], done: Callable[[BaseException | None], None]
    ) -> None:
        self.waiting.append((write, done))

    def answer(self) -> None:
        [(write, done)] = self.waiting
        self.waiting.clear()
        inline(write, done)


def test_requests_that_come_while_a_write_is_in_flight_wait_unapplied_for_the_next_one(
    tmp_path: Path,
) -> None:
    thread = WriterThread()
    with create_store(tmp_path, NodeIdentity(Role.OCS, NODE, "127.0.0.2")) as store:
        harness = Harness(store, thread)
        harness.register("u0", "sip:u0@127.0.0.10:5070")
        harness.next_turn()
        assert (len(thread.waiting), harness.settled, harness.writer.writing) == (1, [], True)
        harness.register("u1", "sip:u1@127.0.0.10:5070")
        harness.register("u2", "sip:u2@127.0.0.10:5070")
        harness.next_turn()
        assert len(thread.waiting) == 1  # one write at a time
        assert harness.registrar.bindings("u1@example.com", NOW) == []  # not applied yet
        thread.answer()
        harness.next_turn()  # settles u0, then starts the write of u1 and u2
        assert harness.statuses() == [200]
        assert len(thread.waiting) == 1
        thread.answer()
        harness.next_turn()
        assert harness.statuses() == [200, 200, 200]
        assert not harness.writer.writing
        assert len(store.load_bindings(0.0)) == 3
