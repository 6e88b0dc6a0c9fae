"""The pure parts of bench.pool and bench.steps's sharing of a rate over front ends."""

from __future__ import annotations

from bench.pool import count_statements, database_load, describe_database
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


LOG = """\
2026-12-03 14:20:01.001 UTC [101] bench_db@bench_db LOG:  statement: BEGIN
2026-12-03 14:20:01.002 UTC [101] bench_db@bench_db LOG:  execute <unnamed>: SELECT 1
2026-12-03 14:20:01.003 UTC [101] bench_db@bench_db DETAIL:  parameters: $1 = 'x'
2026-12-03 14:20:01.004 UTC [102] other@other LOG:  statement: SELECT 2
2026-12-03 14:20:01.005 UTC [103] bench_db@bench_db_2 LOG:  statement: SELECT 3
2026-12-03 14:20:01.006 UTC [101] bench_db@bench_db LOG:  disconnection: session time
"""


def test_only_the_statements_of_the_database_are_counted() -> None:
    assert count_statements(LOG, "bench_db") == 2
    assert count_statements(LOG, "other") == 1
    assert count_statements("", "bench_db") == 0


def test_the_idle_statements_of_as_long_are_taken_off_before_dividing_by_the_messages() -> None:
    # Idle: 4 statements in 5 s; the step lasted 10 s and ran 28.
    load = database_load(28, 10.0, 4, 5.0, 1000)
    assert (load.during, load.idle, load.per_message) == (28, 8.0, 0.02)
    assert describe_database(load) == (
        "    database: 0.0200 statements per message beyond idle (28 during the step, "
        "8 idle in as long)"
    )
    assert database_load(3, 10.0, 4, 5.0, 1000).per_message == 0.0


def test_no_message_carried_makes_the_cost_per_message_infinite() -> None:
    assert database_load(3, 1.0, 0, 1.0, 0).per_message == float("inf")
