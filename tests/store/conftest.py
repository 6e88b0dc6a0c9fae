"""The real PostgreSQL the store tests run against (see ``tests/store/postgres.py``)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.store.postgres import Cluster, Database


@pytest.fixture(scope="session")
def postgres_database() -> Iterator[Database]:
    """The test run's own role and database, dropped at the end."""
    database = Database.create(Cluster.installed())
    yield database
    database.drop()


@pytest.fixture
def postgres(postgres_database: Database) -> Database:
    """The test run's database, with no tables."""
    postgres_database.empty()
    return postgres_database


@pytest.fixture
def imp_database(postgres_database: Database) -> Iterator[Database]:
    """A second database, for the IM&P cluster."""
    database = Database.create(postgres_database.cluster)
    database.empty()
    yield database
    database.drop()
