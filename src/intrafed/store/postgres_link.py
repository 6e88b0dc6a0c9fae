"""The PostgreSQL store's one connection (``postgres.PostgresStore``): every wait ends at a
deadline, and a broken connection is made again in the background, so an operation never
waits for a database that is down or has stopped answering."""

from __future__ import annotations

import math
import threading
import time
from collections.abc import Callable
from typing import Any, TypeVar

import psycopg
from psycopg.abc import PQGen

RECONNECT_INTERVAL = 0.5
"""Seconds between attempts to connect again after the connection broke."""

_T = TypeVar("_T")


class Connection(psycopg.Connection[tuple[Any, ...]]):
    """A connection whose every wait ends at ``deadline`` (``time.monotonic``): an
    operation on a server that stopped answering fails instead of hanging the node."""

    deadline = math.inf

    def wait(self, gen: PQGen[_T], interval: float = 0.1, timeout: float | None = None) -> _T:
        # Every statement, COMMIT and ROLLBACK of a psycopg connection waits through here.
        if timeout is None and self.deadline < math.inf:
            timeout = max(self.deadline - time.monotonic(), 0.0)
        return super().wait(gen, interval, timeout)


class Link:
    """The store's connection, made again in the background after it broke: an operation
    never waits for a connection, it fails at once while there is none (``why``)."""

    def __init__(
        self, conninfo: str, describe: Callable[[psycopg.Error], str], why: str = ""
    ) -> None:
        """Connect now, or with ``why`` (the database cannot be reached) in the background."""
        self._conninfo = conninfo
        self._describe = describe
        self._lock = threading.Lock()
        self._closed = threading.Event()
        self._reconnecting: threading.Thread | None = None
        self.why = why
        self._connection: Connection | None = None
        if why:
            with self._lock:
                self._reconnect_soon()
        else:
            self._connection = Connection.connect(conninfo, autocommit=True)

    def get(self) -> Connection | None:
        """The connection, or None while there is none."""
        return self._connection

    def broke(self, connection: Connection, why: str) -> None:
        """``connection`` cannot be used again (``why``): drop it and connect anew."""
        connection.close()
        with self._lock:
            if self._connection is connection:
                self._connection = None
                self.why = why
            self._reconnect_soon()

    def _reconnect_soon(self) -> None:
        running = self._reconnecting is not None and self._reconnecting.is_alive()
        if self._closed.is_set() or running:
            return
        self._reconnecting = threading.Thread(
            target=self._reconnect, name="intrafed-store-reconnect", daemon=True
        )
        self._reconnecting.start()

    def close(self) -> None:
        """Close the connection and stop connecting."""
        with self._lock:
            self._closed.set()
            connection, self._connection = self._connection, None
            self.why = "the store is closed"
        if connection is not None:
            connection.close()

    def _reconnect(self) -> None:
        while not self._closed.wait(RECONNECT_INTERVAL):
            try:
                connection = Connection.connect(self._conninfo, autocommit=True)
            except psycopg.Error as exc:
                self.why = self._describe(exc)
                continue
            with self._lock:
                if not self._closed.is_set():
                    self._connection = connection
                    return
            connection.close()
            return
