"""Persistence: the node's configuration (staged and running) and the state that survives a
restart, behind ``store.base``; ``open_store`` gives the implementation a home names."""

from __future__ import annotations

from pathlib import Path

from intrafed.config.model import ConfigError, NodeConfig, NodeIdentity
from intrafed.store.base import (
    BindingRow,
    Configuration,
    PublicationRow,
    StagedEdit,
    StateChanges,
    StateStore,
    Store,
    StoreError,
    SubscriptionRow,
)
from intrafed.store.sqlite import LOCATOR, SqliteStore, database_path, home_containing
from intrafed.store.urls import is_postgresql


def _url(home: Path) -> str | None:
    locator = home / LOCATOR
    return locator.read_text().strip() if locator.exists() else None


def on_postgresql(home: Path) -> bool:
    """Whether the node at ``home`` keeps its store in PostgreSQL (a database that may be
    away while the node runs)."""
    url = _url(home)
    return url is not None and is_postgresql(url)


def open_store(home: Path) -> Store:
    """The store of the node at ``home``: the database its ``store.url`` names (a
    ``sqlite:///PATH`` or ``postgresql://`` URL), else ``HOME/intrafed.db``. ``ConfigError``
    when ``home`` was never initialized or names a database this version cannot use."""
    locator = home / LOCATOR
    url = _url(home)
    if url is not None and is_postgresql(url):
        from intrafed.store.postgres import PostgresStore  # psycopg only when used

        return PostgresStore.open(home, url)
    return SqliteStore.open(home, database_path(home, url, str(locator)))


def open_unreachable_store(home: Path, node: NodeIdentity, why: str) -> Store | None:
    """The store of ``home`` (of ``node``) whose PostgreSQL database cannot be
    reached now (``why``): it connects in the background and fails every operation
    (``StoreError``) until then. None when the home's store is not PostgreSQL."""
    url = _url(home)
    if url is None or not is_postgresql(url):
        return None
    from intrafed.store.postgres import PostgresStore

    return PostgresStore.unreachable(home, url, node, why)


def create_store(home: Path, identity: NodeIdentity, url: str | None = None) -> Store:
    """Initialize ``home`` for a new node whose database is at ``url`` (``--db``: an
    ``sqlite:///PATH`` file, or a PostgreSQL database that holds no node yet; by default
    ``HOME/intrafed.db``); refuses to overwrite an existing node."""
    if url is not None and is_postgresql(url):
        from intrafed.store.postgres import PostgresStore

        return PostgresStore.create(home, identity, url)
    return SqliteStore.create(home, identity, url)


def load_staged(home: Path) -> NodeConfig:
    """The staged configuration of the node at ``home``."""
    with open_store(home) as store:
        return store.load("staged")


def open_database(url: str, setting: str) -> Store:
    """The store in the database at ``url`` (``sqlite:///PATH`` or ``postgresql://``) of the
    one node, or the one pool, it holds, when no home is at hand; ``setting`` names where
    the URL came from, for messages."""
    if is_postgresql(url):
        from intrafed.store.postgres import PostgresStore

        return PostgresStore(url, None, setting)
    path = database_path(Path(), url, setting)
    if not path.is_file():
        raise ConfigError(setting, f"{path} does not exist", "give the path of a node's database")
    return SqliteStore(path)


__all__ = [
    "BindingRow",
    "Configuration",
    "PublicationRow",
    "StagedEdit",
    "StateChanges",
    "StateStore",
    "Store",
    "StoreError",
    "SubscriptionRow",
    "create_store",
    "home_containing",
    "load_staged",
    "on_postgresql",
    "open_database",
    "open_store",
    "open_unreachable_store",
]
