"""``intrafed probe`` from a front end whose route names the IM&P cluster by a DNS name
with one A record per member checks every member: run as a real process whose system
resolver reads a hosts file naming the cluster at both members (``tests.hosts_namespace``),
it reports a connection, a TLS handshake and an OPTIONS per member, and names the member
that is down."""

from __future__ import annotations

import asyncio
import contextlib
import json
import sys
from pathlib import Path
from typing import Any

from intrafed.check.deployment import SeedNode
from intrafed.check.pool_deployment import CLUSTER
from intrafed.node import Node
from intrafed.store import open_store
from tests.hosts_namespace import hosts_file, needs_root, with_hosts
from tests.store.postgres import Database
from tests.store.test_pool_cluster_name import build

FE_IP, IMP_IPS = "127.0.49.31", ("127.0.49.33", "127.0.49.34")


async def probe(fe1: SeedNode, hosts: Path) -> tuple[int | None, dict[str, Any]]:
    """``intrafed probe --home fe1 --json`` with ``hosts`` as its /etc/hosts: its exit
    status and its report."""
    argv = [sys.executable, "-m", "intrafed", "probe", "--home", str(fe1.home), "--json"]
    process = await asyncio.create_subprocess_exec(
        *with_hosts(hosts, [*argv, "--timeout", "2"]),
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    stdout, stderr = await asyncio.wait_for(process.communicate(), 60)
    assert stdout, stderr.decode()
    return process.returncode, json.loads(stdout)


def failures(report: dict[str, Any]) -> list[dict[str, Any]]:
    return [r for r in report["results"] if not r["ok"]]


def per_member(report: dict[str, Any], check: str) -> dict[str, dict[str, Any]]:
    """The route's ``check`` results by the address their target names."""
    return {
        r["target"].rsplit(" (", 1)[1].rstrip(")"): r
        for r in report["results"]
        if r["check"] == check and r["target"].startswith("route example.com")
    }


@needs_root
def test_the_probe_checks_every_member_behind_the_cluster_name(
    postgres: Database, imp_database: Database, tmp_path: Path
) -> None:
    deployment = build(tmp_path, postgres, imp_database, FE_IP, IMP_IPS)
    fe1, (imp1, imp2) = deployment.front_ends[0], deployment.imp_nodes
    hosts = hosts_file(tmp_path / "hosts", [(imp1.ip, CLUSTER), (imp2.ip, CLUSTER)])
    port = imp1.tls_port

    async def scenario() -> None:
        async with contextlib.AsyncExitStack() as stack:
            running = {}
            for member in (fe1, imp1, imp2):
                store = stack.enter_context(open_store(member.home))
                running[member.fqdn] = Node.from_home(member.home, store)
                await running[member.fqdn].start()

            async def stop_running() -> None:
                for node in running.values():
                    await node.stop(grace=1.0)

            stack.push_async_callback(stop_running)
            status, report = await probe(fe1, hosts)
            assert (status, report["ok"]) == (0, True), failures(report)
            [resolved] = [r for r in report["results"] if r["check"] == "resolve"]
            assert resolved["message"] == f"{CLUSTER} → {imp1.ip}, {imp2.ip} (DNS)"
            for check in ("connect", "tls", "options"):
                assert list(per_member(report, check)) == [imp1.ip, imp2.ip], check
            tls = per_member(report, "tls")
            assert [r["details"]["subject"] for r in tls.values()] == [
                f"CN={imp1.fqdn}",
                f"CN={imp2.fqdn}",
            ]
            assert tls[imp2.ip]["target"] == (
                f"route example.com → TLS {CLUSTER}:{port} ({imp2.ip})"
            )
            trusted = {r["target"] for r in report["results"] if r["target"].startswith("peer ")}
            assert trusted == {f"peer {CLUSTER} ({imp1.ip})", f"peer {CLUSTER} ({imp2.ip})"}

            await running.pop(imp2.fqdn).stop(grace=1.0)
            status, report = await probe(fe1, hosts)
            assert (status, report["ok"]) == (1, False)
            [down] = failures(report)
            assert (down["check"], down["target"], down["message"]) == (
                "connect",
                f"route example.com → TLS {CLUSTER}:{port} ({imp2.ip})",
                f"connection refused at {imp2.ip}:{port}",
            )
            assert per_member(report, "options")[imp1.ip]["ok"]

    asyncio.run(asyncio.wait_for(scenario(), 120))
