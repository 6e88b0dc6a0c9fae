"""Cross-partition MESSAGE throughput through an Enterprise pool: SIPp's UACs -> the OCS
front ends (1, then 2, on one PostgreSQL database) -> imp1 -> SIPp's UAS.

The pool is ``build_pool_deployment``'s (MTLS between the partitions and between the
members, as the seed has them), each member in its own process as ``bench.federation``
runs its nodes; imp1 is a single IM&P node on its own SQLite store. alice, homed on imp1,
is registered (by SIPp) with the SIPp UAS's address as her Contact; one SIPp UAC per front
end sends her MESSAGEs over TCP from an address the pool trusts (host authorization), the
offered rate shared out evenly, stepped up as in ``bench.steps`` (a step passes with zero
failures and p99 <= 100 ms).

Each step also reports the statements the pool's database ran meanwhile, as PostgreSQL
itself logs them (``log_statement`` set to ``all`` for the bench's database), less those
it runs when the pool is idle (each member's feed looks at who runs every few seconds),
per message carried: the hot path's goal is 0. (``pg_stat_database``'s counters lag: an
idle backend reports its transactions up to 10 s late.)

Run from the repository root as root (the bench manages a database of the Debian
PostgreSQL cluster as the tests do): .venv/bin/python -m bench.pool [--front-ends 1,2]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import subprocess
import sys
import tempfile
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from bench.cpu import Probe
from bench.federation import (
    RECIPIENT,
    UAC_KEYS,
    lift_client_rate_limit,
    node_processes,
    register_recipient,
)
from bench.steps import Step, describe, print_best, run_step, step_options
from intrafed.check.pool_deployment import PoolDeployment, build_pool_deployment
from intrafed.config import edits
from intrafed.config.model import HostAuthorization
from intrafed.pki import KeyType
from intrafed.store import open_store
from tests.integration.federation import challenge_md5_first, free_base_port
from tests.integration.peers import UAC_IP, Chain, free_port
from tests.store.postgres import Cluster, Database

IMP_IP, UAS_IP = "127.0.35.10", "127.0.35.13"
FRONT_END_IPS = ("127.0.35.11", "127.0.35.12")
STARTED_SETTLE = 5.0
"""Seconds after the members start before the database's idle work is counted (each
member's feed is still connecting and reading the pool)."""
LOGGED = (" LOG:  statement: ", " LOG:  execute ")
"""How PostgreSQL logs a statement (simple and extended protocol) under log_statement=all."""


def count_statements(log: str, database: str) -> int:
    """The statements ``log`` (PostgreSQL's log, its default line prefix ending in
    ``user@database``) shows run in ``database``."""
    marks = tuple(f"@{database}{logged}" for logged in LOGGED)
    return sum(1 for line in log.splitlines() if any(mark in line for mark in marks))


@dataclass(frozen=True, slots=True)
class DatabaseLoad:
    """The statements the database ran during a step beyond its idle work, per message
    carried."""

    during: int
    """statements run during the step"""
    idle: float
    """statements run in as long while the pool was idle"""
    per_message: float


def database_load(
    during: int, step_seconds: float, idle: int, idle_seconds: float, messages: int
) -> DatabaseLoad:
    """The statements of a step that lasted ``step_seconds`` less the idle ones of as long
    (``idle`` counted over ``idle_seconds``), per message (never below 0)."""
    idle_as_long = idle * step_seconds / idle_seconds if idle_seconds > 0 else 0.0
    beyond = max(0.0, during - idle_as_long) / messages if messages else float("inf")
    return DatabaseLoad(during, idle_as_long, beyond)


def describe_database(load: DatabaseLoad) -> str:
    """One line for a step's database work."""
    return (
        f"    database: {load.per_message:.4f} statements per message beyond idle "
        f"({load.during} during the step, {load.idle:.0f} idle in as long)"
    )


@dataclass(frozen=True, slots=True)
class StatementLog:
    """The statements PostgreSQL logs for one database (``log_statement`` set to ``all``
    for it, so every session that opens later logs each statement)."""

    path: Path
    database: str

    @classmethod
    def enable(cls, database: Database) -> StatementLog:
        cluster = database.cluster
        database.cluster.admin(f"ALTER DATABASE {database.name} SET log_statement = 'all'")
        listed = subprocess.run(
            ["pg_lsclusters", "--no-header"], capture_output=True, text=True, check=True
        ).stdout
        for line in listed.splitlines():
            fields = line.split()
            if fields[:2] == [cluster.version, cluster.name] and len(fields) >= 7:
                return cls(Path(fields[6]), database.name)
        raise RuntimeError(f"pg_lsclusters names no log file of cluster {cluster.name}")

    def end(self) -> int:
        return self.path.stat().st_size

    def since(self, offset: int) -> int:
        """The statements logged after ``offset``."""
        with self.path.open("rb") as log:
            log.seek(offset)
            return count_statements(log.read().decode(errors="replace"), self.database)


async def counted(log: StatementLog, seconds: float) -> tuple[int, float]:
    """The statements the database runs while ``seconds`` pass, and how long that took."""
    started, offset = time.monotonic(), log.end()
    await asyncio.sleep(seconds)
    return log.since(offset), time.monotonic() - started


def configure(deployment: PoolDeployment) -> None:
    """The bench's additions, each applied as a restart would on every member: the pool
    trusts SIPp's UAC by host authorization (a pool-scope edit, staged once through the
    first front end), the client rate class gets the server one's limits, and the nodes
    challenge with MD5 first (what Debian's SIPp answers)."""
    with open_store(deployment.front_ends[0].home) as store:
        store.stage(lambda c: edits.add_host_authorization(c, HostAuthorization(ip=UAC_IP)))
    for node in deployment.front_ends:
        with open_store(node.home) as store:
            store.promote()
    lift_client_rate_limit(deployment.nodes)
    challenge_md5_first(deployment.nodes)


@contextlib.asynccontextmanager
async def running_pool(
    front_ends: int, database: Database, workdir: Path
) -> AsyncIterator[tuple[Chain, dict[str, int]]]:
    """``front_ends`` front ends on ``database`` and imp1, each in its own process, alice
    registered at SIPp's UAS: the chain into the front ends, and each member's pid."""
    ips = FRONT_END_IPS[:front_ends]
    deployment = build_pool_deployment(
        workdir / "pool",
        ocs_db=database.url,
        imp_db=None,
        front_end_ips=ips,
        imp_ips=(IMP_IP,),
        base_port=free_base_port([*ips, IMP_IP]),
        key_type=KeyType.EC_P256,
    )
    configure(deployment)
    imp = deployment.imp_nodes[0]
    uas_local = (UAS_IP, free_port(UAS_IP))
    contact = f"{uas_local[0]}:{uas_local[1]};transport=tcp"
    entries = tuple((node.ip, node.tcp_port) for node in deployment.front_ends)
    async with node_processes(deployment.nodes) as pids:
        password = deployment.password(f"{RECIPIENT}@{deployment.domain}")
        await register_recipient(imp, password, contact, workdir)
        yield Chain(entries[0], uas_local, contact, entries[1:]), pids


async def measure_pool(
    front_ends: int, rates: list[int], seconds: float
) -> list[tuple[Step, DatabaseLoad]]:
    """Step the offered rate up through a pool of ``front_ends`` until a step fails."""
    workdir = Path(tempfile.mkdtemp(prefix=f"intrafed-bench-pool{front_ends}-"))
    database = Database.create(Cluster.installed())
    log = StatementLog.enable(database)
    steps: list[tuple[Step, DatabaseLoad]] = []
    try:
        async with running_pool(front_ends, database, workdir) as (chain, pids):
            probe = Probe(pids)
            await asyncio.sleep(STARTED_SETTLE)
            idle, idle_seconds = await counted(log, seconds)
            for rate in rates:
                offset, started = log.end(), time.monotonic()
                step = await run_step(
                    rate, seconds, chain, workdir, uac_scenario="uac_message_challenged.xml",
                    uac_keys=UAC_KEYS, probe=probe,
                )  # fmt: skip
                load = database_load(
                    log.since(offset), time.monotonic() - started, idle, idle_seconds,
                    step.carried,
                )  # fmt: skip
                print(describe(step), flush=True)
                print(describe_database(load), flush=True)
                steps.append((step, load))
                if not step.passed:
                    break
    finally:
        database.drop()
    return steps


def main() -> int:
    arguments = step_options(
        (__doc__ or "").splitlines()[0], ["tcp"], "250,500,1000,1500,2000,3000,4000"
    )
    arguments.add_argument(
        "--front-ends", default="1,2", help="pool sizes to measure, e.g. 1,2 (at most 2)"
    )
    options = arguments.parse_args()
    logging.basicConfig(level=logging.ERROR)
    sizes = numbers(arguments, "--front-ends", options.front_ends)
    if not all(1 <= size <= len(FRONT_END_IPS) for size in sizes):
        arguments.error(f"--front-ends: each size from 1 to {len(FRONT_END_IPS)}")
    rates = numbers(arguments, "--rates", options.rates)
    for size in sizes:
        print(f"Pool of {size} front end(s) -> imp1, MESSAGE over TCP:", flush=True)
        try:
            measured = asyncio.run(measure_pool(size, rates, options.step_seconds))
        except pytest.fail.Exception as exc:
            # The test fixtures' PostgreSQL cluster could not be used: they say why.
            print(f"bench.pool: {exc.msg}", file=sys.stderr)
            return 2
        print_best(f"Pool of {size} front end(s)", [step for step, _ in measured])
    return 0


def numbers(arguments: argparse.ArgumentParser, option: str, text: str) -> list[int]:
    """The comma-separated whole numbers of ``option`` (the parser's error otherwise)."""
    try:
        return [int(value) for value in text.split(",")]
    except ValueError:
        arguments.error(f"{option}: give whole numbers separated by commas, e.g. 1,2")


if __name__ == "__main__":
    sys.exit(main())
