"""The pure parts of bench.pool and bench.steps's sharing of a rate over front ends."""

from __future__ import annotations

from bench.pool import DatabaseCounters, database_load, describe_database
from bench.steps import split
from tests.integration.peers import Chain


def test_a_rate_is_shared_over_the_entries_evenly_the_first_taking_the_remainder() -> None:
    assert split(1001, 2) == [501, 500]
    assert split(3, 1) == [3]
    assert split(1, 2) == [1, 0]
    assert sum(split(997, 3)) == 997


def test_a_chain_with_front_ends_to_spread_over_has_one_entry_each() -> None:
    chain = Chain(("127.0.35.11", 5060), ("127.0.35.13", 5070), "c", (("127.0.35.12", 5060),))
    assert chain.entries == (("127.0.35.11", 5060), ("127.0.35.12", 5060))
    assert Chain(("127.0.35.11", 5060), ("127.0.35.13", 5070), "c").entries == (
        ("127.0.35.11", 5060),
    )


def test_counters_subtract_field_by_field() -> None:
    assert DatabaseCounters(10, 7) - DatabaseCounters(4, 7) == DatabaseCounters(6, 0)


def test_the_idle_work_of_as_long_is_taken_off_before_dividing_by_the_messages() -> None:
    # Idle: 4 transactions and 2 row accesses in 5 s; the step lasted 10 s.
    load = database_load(DatabaseCounters(28, 4), 10.0, DatabaseCounters(4, 2), 5.0, 1000)
    assert load.idle == DatabaseCounters(8, 4)
    assert (load.transactions_per_message, load.row_accesses_per_message) == (0.02, 0.0)
    assert "0.0200 transactions" in describe_database(load)
    assert "(28 and 4 during the step, 8 and 4 idle in as long)" in describe_database(load)


def test_no_message_carried_makes_the_cost_per_message_infinite() -> None:
    load = database_load(DatabaseCounters(3, 3), 1.0, DatabaseCounters(0, 0), 1.0, 0)
    assert load.transactions_per_message == float("inf")
