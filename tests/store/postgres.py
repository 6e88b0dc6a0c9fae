"""A real PostgreSQL for the store tests: the Debian cluster (started when it is down), a
throwaway role and database for the test run (dropped after it), emptied before each test;
and real faults made through a store's own connection."""

from __future__ import annotations

import glob
import os
import secrets
import shutil
import subprocess
from dataclasses import dataclass
from urllib.parse import quote

import psycopg
import pytest

from intrafed.store import Store
from intrafed.store.postgres import PostgresStore

INSTALL = "apt-get install -y postgresql"


def _run(*command: str, unless: str | None = None) -> str:
    """Run ``command``; the test fails when it does (unless its error says ``unless``)."""
    done = subprocess.run(command, capture_output=True, text=True, check=False, timeout=60)
    if done.returncode != 0 and (unless is None or unless not in done.stdout + done.stderr):
        said = (done.stderr or done.stdout).strip()
        pytest.fail(f"{' '.join(command)} failed: {said}", pytrace=False)
    return done.stdout


@dataclass(frozen=True, slots=True)
class Cluster:
    """One Debian PostgreSQL cluster (``pg_lsclusters``), managed as root."""

    version: str
    name: str
    port: int

    @classmethod
    def installed(cls) -> Cluster:
        """The cluster of the newest installed PostgreSQL, created if there is none,
        running; the test fails (never skips) when PostgreSQL is not installed."""
        servers = sorted(
            glob.glob("/usr/lib/postgresql/*/bin/postgres"),
            key=lambda path: int(path.split("/")[4]),
        )
        if not servers or shutil.which("pg_lsclusters") is None:
            pytest.fail(
                f"PostgreSQL is not installed: {INSTALL} (./dev test does it as root)",
                pytrace=False,
            )
        if os.geteuid() != 0:
            pytest.fail(
                "the PostgreSQL tests manage the cluster as root (runuser -u postgres)",
                pytrace=False,
            )
        version = servers[-1].split("/")[4]
        clusters = [
            line.split()
            for line in _run("pg_lsclusters", "--no-header").splitlines()
            if line.split()[:1] == [version]
        ]
        if not clusters:
            _run("pg_createcluster", version, "main")
            return cls.installed()
        _, name, port, status, *_ = clusters[0]
        cluster = cls(version, name, int(port))
        if status != "online":
            cluster.start()
        return cluster

    def start(self) -> None:
        # Another test run may have started it meanwhile.
        _run(
            "pg_ctlcluster", "--skip-systemctl-redirect", self.version, self.name, "start",
            unless="already running",
        )  # fmt: skip

    def stop(self) -> None:
        _run("pg_ctlcluster", "--skip-systemctl-redirect", self.version, self.name, "stop")

    def admin(self, *statements: str) -> None:
        """Run ``statements`` as the superuser (over the local socket, as the postgres
        OS user), each on its own."""
        command = ["runuser", "-u", "postgres", "--", "psql", "-X", "-q", "-p", str(self.port)]
        command += ["-v", "ON_ERROR_STOP=1", "-d", "postgres"]
        for statement in statements:
            command += ["-c", statement]
        _run(*command)


@dataclass(frozen=True, slots=True)
class Database:
    """The test run's role and database on ``cluster``; ``url`` logs in with a password
    that needs URL quoting."""

    cluster: Cluster
    name: str
    password: str

    @classmethod
    def create(cls, cluster: Cluster) -> Database:
        name = f"intrafed_test_{os.getpid()}_{secrets.token_hex(3)}"
        password = f"{secrets.token_urlsafe(12)}:@/%"
        quoted = password.replace("'", "''")
        cluster.admin(
            f"CREATE ROLE {name} LOGIN PASSWORD '{quoted}'", f"CREATE DATABASE {name} OWNER {name}"
        )
        return cls(cluster, name, password)

    @property
    def url(self) -> str:
        secret = quote(self.password, safe="")
        return f"postgresql://{self.name}:{secret}@127.0.0.1:{self.cluster.port}/{self.name}"

    def empty(self) -> None:
        """Drop every table (and end the connections a failed test left open)."""
        with psycopg.connect(self.url, autocommit=True) as connection:
            connection.execute(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                "WHERE usename = current_user AND pid <> pg_backend_pid()"
            )
            connection.execute("DROP SCHEMA public CASCADE")
            connection.execute("CREATE SCHEMA public")

    def drop(self) -> None:
        self.cluster.admin(f"DROP DATABASE IF EXISTS {self.name} WITH (FORCE)")
        self.cluster.admin(f"DROP ROLE IF EXISTS {self.name}")


def _connection(store: Store) -> psycopg.Connection[tuple[object, ...]]:
    assert isinstance(store, PostgresStore)
    connection = store._link.get()
    assert connection is not None
    return connection


def set_read_only(store: Store, read_only: bool) -> None:
    """Every write transaction of ``store`` fails ("cannot execute ... in a read-only
    transaction"), as on a standby; False lifts it."""
    mode = "READ ONLY" if read_only else "READ WRITE"
    _connection(store).execute(f"SET SESSION CHARACTERISTICS AS TRANSACTION {mode}")


def backend_pid(store: Store) -> int:
    """The server process that serves ``store``'s connection."""
    row = _connection(store).execute("SELECT pg_backend_pid()").fetchone()
    assert row is not None
    return int(str(row[0]))
