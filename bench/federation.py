"""Cross-partition MESSAGE throughput (SIPp UAC -> ocs1 -> imp1 -> SIPp UAS) and presence
NOTIFY fan-out to 1,000 watchers on the other partition.

Two partitions configured as the seed says (``build_seed_deployment``), each node in its
own process. alice is homed on imp1 and registered (by SIPp, with digest) with the SIPp
UAS's address as her Contact; SIPp's UAC sends her MESSAGEs into ocs1, which routes them
to imp1, which delivers them to her contact.

- ``tls``: stunnel wraps SIPp's legs (TLS into ocs1's TLS connection for users; imp1 opens
  TLS to alice's contact), and the nodes talk MTLS to each other, as the seed has them.
- ``tcp``: every leg is TCP; the static routes go by IP over TCP, trusted by host
  authorization (ocs1) and the incoming ACL (imp1).

The offered rate steps up as in ``bench.steps``: a step passes with zero failures and
p99 <= 100 ms. The load generator is one address standing for many users, so the nodes
give the client rate class the server class's limits (else the bench would measure the
per-address limit); the load generator is a host ocs1 trusts (host authorization), sending
as a user of example.com homed on neither node. The nodes challenge with MD5 first, the
setting Debian's SIPp 3.6 needs to register alice.

Fan-out, in the seed's configuration (MTLS between the nodes): ``--watchers`` users homed
on ocs1 (``intrafed.ua`` agents over TCP, 250 per source address) each register and
subscribe to alice's presence across the static route; alice then publishes Busy on
imp1, and the time runs until every watcher has received the NOTIFY that says so.

``--metrics``: both nodes serve Prometheus metrics (``intrafed config metrics``) and are
scraped every ``--scrape-interval`` s during the run (15 by default, as Prometheus is
commonly set up), to compare with a run without.
``--trace``: both nodes write their SIP trace (every message, JSON lines and pcap).

Run from the repository root: .venv/bin/python -m bench.federation [--transport tls|tcp|both]
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import multiprocessing
import os
import queue
import secrets
import signal
import statistics
import sys
import tempfile
import time
from collections.abc import AsyncIterator, Callable, Sequence
from dataclasses import dataclass
from multiprocessing.process import BaseProcess
from multiprocessing.queues import Queue
from pathlib import Path

from bench.cpu import Probe
from bench.steps import Step, print_best, step_options, step_up
from intrafed.check import SeedDeployment
from intrafed.check.deployment import SeedNode
from intrafed.config import edits
from intrafed.config.model import (
    AclEntry,
    HostAuthorization,
    HostEntry,
    MetricsListener,
    NodeConfig,
    StaticRoute,
)
from intrafed.core.meter import Meter
from intrafed.node import Node
from intrafed.node_control import NodeControl
from intrafed.node_metrics import serve_metrics
from intrafed.pki import CertificateAuthority
from intrafed.sip.pidf import PresenceState
from intrafed.store import open_store
from intrafed.transport import eventloop
from intrafed.ua import PresenceNotified, UaSettings, UserAgent
from tests.integration.federation import build_partitions, challenge_md5_first
from tests.integration.peers import UAC_IP, Chain, TlsLegs, free_port, run_sipp, stunnel
from tests.lab_pki import issue_host

IMP_IP, OCS_IP = "127.0.0.110", "127.0.0.111"
UAS_IP, UAC_TLS_IP, UAS_TLS_IP = "127.0.0.113", "127.0.0.114", "127.0.0.115"
REGISTER_IP = "127.0.0.117"
PRESENTITY_IP = "127.0.0.112"
WATCHER_IPS = ("127.0.0.116", "127.0.0.117", "127.0.0.118", "127.0.0.119")
WATCHERS_PER_IP = 250
"""Below the node's 256 connections per unauthorized address."""
SUBSCRIBING_AT_ONCE = 100
FANOUT_TIMEOUT = 120.0
RECIPIENT = "alice"
"""Homed on imp1 in the seed deployment."""
SENDER = "sipp@example.com"
"""Homed on neither node: ocs1 routes it, imp1 accepts it from the other partition."""
TLS_LOAD_IP = "127.0.0.1"
"""Where stunnel's connections to ocs1 come from (the system's choice on loopback)."""
ALICE_PC = "alice-pc.example.com"
"""The name of alice's contact over TLS (stunnel's certificate, imp1's hosts table)."""
NODE_START_TIMEOUT = 30.0
SCRAPE_INTERVAL = 15.0
"""Seconds between two scrapes of each node under --metrics (a common Prometheus setting)."""
LOAD_CLIENT_RATE, LOAD_CLIENT_BURST = 50_000, 100_000
"""SIPp sends from one address: the bench lifts the client class to the server one (what
``intrafed config rate-limit set`` does) so it measures the nodes, not the limit."""


def serve_node(home: Path, ready: Queue[str], trace: bool = False) -> None:
    """A node process: run the node of ``home`` until SIGTERM (as ``intrafed serve``
    does), with its SIP trace on when ``trace``; put its FQDN on ``ready`` once it
    listens."""
    logging.basicConfig(level=logging.ERROR)

    async def serve() -> None:
        with open_store(home) as store:
            listener = store.load("running").metrics
            meter = Meter() if listener is not None else None
            node = Node.from_home(home, store, meter=meter)
            await node.start()
            control = NodeControl(home, node, time.time(), dict)
            control.trace(trace, None, None)
            metrics = None
            if meter is not None and listener is not None:
                metrics = await serve_metrics(node, meter, listener)
            stopping = asyncio.Event()
            asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, stopping.set)
            ready.put(node.settings.name)
            await stopping.wait()
            if metrics is not None:
                await metrics.close()
            control.close()
            await node.stop(grace=1.0)

    eventloop.run(serve())


def wait_ready(processes: Sequence[BaseProcess], ready: Queue[str]) -> None:
    """Block until every node process has said it listens; fail at once if one dies."""
    deadline = time.monotonic() + NODE_START_TIMEOUT
    started: set[str] = set()
    while len(started) < len(processes):
        with contextlib.suppress(queue.Empty):
            started.add(ready.get(timeout=0.2))
        for process in processes:
            if process.exitcode is not None:
                raise RuntimeError(f"{process.name} exited with status {process.exitcode}")
        if time.monotonic() > deadline:
            raise TimeoutError(f"nodes not listening after {NODE_START_TIMEOUT} s")


@contextlib.asynccontextmanager
async def node_processes(
    nodes: Sequence[SeedNode], trace: bool = False
) -> AsyncIterator[dict[str, int]]:
    """Each of ``nodes`` in a process of its own (tracing when ``trace``), until the block
    ends; yields each node's FQDN -> pid."""
    context = multiprocessing.get_context("spawn")
    ready: Queue[str] = context.Queue()
    processes = [
        context.Process(target=serve_node, args=(node.home, ready, trace), name=node.fqdn)
        for node in nodes
    ]
    for process in processes:
        process.start()
    try:
        await asyncio.to_thread(wait_ready, processes, ready)
        yield {process.name: process.pid for process in processes if process.pid is not None}
    finally:
        for process in processes:
            process.terminate()
        for process in processes:
            await asyncio.to_thread(process.join, 15)
            if process.is_alive():
                process.kill()


def configure(deployment: SeedDeployment, transport: str) -> None:
    """The bench's additions to the seed configuration, applied as a restart would."""
    imp, ocs = deployment.imp, deployment.ocs
    domain = deployment.domain
    imp_edits: list[Callable[[NodeConfig], NodeConfig]]
    ocs_edits: list[Callable[[NodeConfig], NodeConfig]]
    load = HostAuthorization(ip=TLS_LOAD_IP if transport == "tls" else UAC_IP)
    if transport == "tls":
        imp_edits = [lambda c: edits.add_host(c, HostEntry(ALICE_PC, UAS_TLS_IP))]
        ocs_edits = [lambda c: edits.add_host_authorization(c, load)]
    else:
        to_ocs = StaticRoute(domain, "TCP", ocs.tcp_port, ip=ocs.ip)
        to_imp = StaticRoute(domain, "TCP", imp.tcp_port, ip=imp.ip)
        imp_edits = [
            lambda c: edits.remove_route(c, domain),
            lambda c: edits.add_route(c, to_ocs),
            lambda c: edits.add_acl(c, AclEntry(ip=ocs.ip)),
        ]
        ocs_edits = [
            lambda c: edits.remove_route(c, domain),
            lambda c: edits.add_route(c, to_imp),
            lambda c: edits.add_host_authorization(c, load),
        ]
    for home, steps in ((imp.home, imp_edits), (ocs.home, ocs_edits)):
        with open_store(home) as store:
            for step in steps:
                store.stage(step)
            store.promote()
    lift_client_rate_limit(deployment.nodes)


def lift_client_rate_limit(nodes: Sequence[SeedNode]) -> None:
    """A few addresses stand for many users: both nodes give the client class the server
    class's limits (``intrafed config rate-limit set``), so the bench measures the nodes,
    not the per-address limit."""
    for node in nodes:
        with open_store(node.home) as store:
            store.stage(
                lambda c: edits.set_rate_limits(
                    c, client_rate=LOAD_CLIENT_RATE, client_burst=LOAD_CLIENT_BURST
                )
            )
            store.promote()


async def register_recipient(imp: SeedNode, password: str, contact: str, workdir: Path) -> None:
    """alice registers ``contact`` at ``imp`` with SIPp, ``password`` hers (digest MD5: the
    bench's nodes challenge with MD5 first, see ``challenge_md5_first``)."""
    result = await run_sipp(
        "uac_register.xml",
        local=(REGISTER_IP, free_port(REGISTER_IP)),
        remote=(imp.ip, imp.tcp_port),
        keys={"user": RECIPIENT, "contact": contact},
        extra=["-au", RECIPIENT, "-ap", password],
        timeout=10,
        workdir=workdir,
    )
    if result.returncode != 0:
        raise RuntimeError(f"{RECIPIENT} could not register: {result.output}")


@contextlib.asynccontextmanager
async def federation_chain(
    deployment: SeedDeployment, transport: str, workdir: Path
) -> AsyncIterator[Chain]:
    """Where SIPp's UAC sends and where its UAS listens, with alice registered there."""
    uas_local = (UAS_IP, free_port(UAS_IP))
    if transport == "tcp":
        contact = f"{uas_local[0]}:{uas_local[1]};transport=tcp"
        await register_recipient(deployment.imp, recipient_password(deployment), contact, workdir)
        yield Chain((deployment.ocs.ip, deployment.ocs.tcp_port), uas_local, contact)
        return
    legs = TlsLegs(
        uac_accept=(UAC_TLS_IP, free_port(UAC_TLS_IP)),
        node=(deployment.ocs.ip, deployment.ocs.client_tls_port),
        node_name=deployment.ocs.fqdn,
        uas_accept=(UAS_TLS_IP, free_port(UAS_TLS_IP)),
        uas=uas_local,
    )
    lab_ca = CertificateAuthority.load(deployment.ca_dir)
    certificate = issue_host(lab_ca, ALICE_PC, dns_names=(ALICE_PC,)).write(workdir / "alice-pc")
    config = legs.config(deployment.ca_certificate, certificate, certificate)
    async with stunnel(config, workdir, [legs.uac_accept, legs.uas_accept]):
        contact = f"{ALICE_PC}:{legs.uas_accept[1]};transport=tls"
        await register_recipient(deployment.imp, recipient_password(deployment), contact, workdir)
        yield Chain(legs.uac_accept, uas_local, contact)


def recipient_password(deployment: SeedDeployment) -> str:
    """alice's password."""
    return deployment.password(f"{RECIPIENT}@{deployment.domain}")


def serve_metrics_on(deployment: SeedDeployment) -> list[MetricsListener]:
    """Both nodes serve metrics on a free port of their own address."""
    listeners = []
    for node in deployment.nodes:
        listener = MetricsListener(node.ip, free_port(node.ip))
        with open_store(node.home) as store:
            store.stage(lambda c, listener=listener: edits.set_metrics(c, listener))  # type: ignore[misc]
            store.promote()
        listeners.append(listener)
    return listeners


async def scrape_every(listeners: Sequence[MetricsListener], interval: float) -> None:
    """GET /metrics of every listener each ``interval`` s, as Prometheus would, until
    cancelled."""
    while True:
        for listener in listeners:
            reader, writer = await asyncio.open_connection(listener.ip, listener.port)
            writer.write(b"GET /metrics HTTP/1.1\r\nHost: bench\r\n\r\n")
            answer = await reader.read()
            writer.close()
            if not answer.startswith(b"HTTP/1.1 200 "):
                raise RuntimeError(f"scraping {listener} failed: {answer[:80]!r}")
        await asyncio.sleep(interval)


@contextlib.asynccontextmanager
async def running_federation(
    transport: str, workdir: Path, scrape: float | None = None, trace: bool = False
) -> AsyncIterator[tuple[Chain, dict[str, int]]]:
    """ocs1 and imp1 in their own processes, alice registered on imp1 at SIPp's UAS:
    the chain into ocs1, and the pids of ocs1 ("A", where the chain enters) and imp1 ("B").
    With ``scrape``, both serve metrics, scraped every ``scrape`` s while the block runs; with
    ``trace``, both write their SIP trace."""
    deployment = build_partitions(workdir / "seed", IMP_IP, OCS_IP)
    configure(deployment, transport)
    challenge_md5_first(deployment.nodes)
    listeners = serve_metrics_on(deployment) if scrape is not None else []
    async with (
        node_processes(deployment.nodes, trace) as pids,
        federation_chain(deployment, transport, workdir) as chain,
    ):
        scraping = asyncio.create_task(scrape_every(listeners, scrape or SCRAPE_INTERVAL))
        try:
            yield chain, {"A": pids[deployment.ocs.fqdn], "B": pids[deployment.imp.fqdn]}
        finally:
            scraping.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await scraping


UAC_KEYS = {"user": RECIPIENT, "sender": SENDER}
"""The MESSAGE of ``uac_message_challenged.xml``: from a user homed on neither node to alice."""


async def measure_messages(
    transport: str,
    rates: list[int],
    seconds: float,
    scrape: float | None = None,
    trace: bool = False,
    noisy_retries: int = 0,
) -> list[Step]:
    """Step the offered rate up across the two partitions until a step fails (a noisy
    step is run again up to ``noisy_retries`` times, 2 s later)."""
    workdir = Path(tempfile.mkdtemp(prefix=f"intrafed-bench-federation-{transport}-"))
    async with running_federation(transport, workdir, scrape, trace) as (chain, pids):
        return await step_up(
            chain,
            rates,
            seconds,
            workdir,
            uac_scenario="uac_message_challenged.xml",
            uac_keys=UAC_KEYS,
            probe=Probe(pids),
            noisy_retries=noisy_retries,
            noisy_pause=2.0,
        )


def provision_watchers(deployment: SeedDeployment, count: int) -> list[tuple[str, str]]:
    """``count`` users homed on ocs1, each with its own password (one staged edit, then
    promoted as a restart would); their (aor, password)."""
    watchers = [
        (f"watcher{number:04d}@{deployment.domain}", secrets.token_urlsafe(12))
        for number in range(count)
    ]

    def add_watchers(config: NodeConfig) -> NodeConfig:
        for aor, password in watchers:
            config = edits.add_user(config, aor, password)
        return config

    with open_store(deployment.ocs.home) as store:
        store.stage(add_watchers)
        store.promote()
    return watchers


@dataclass
class FanOut:
    """How long the NOTIFYs of one PUBLISH took to reach every watcher."""

    watchers: int
    publish_ms: float
    first_ms: float
    median_ms: float
    last_ms: float


async def notified_of(agent: UserAgent, state: PresenceState, timeout: float) -> float:
    """When (``perf_counter``) ``agent`` receives a NOTIFY that says ``state``."""
    async with asyncio.timeout(timeout):
        while (await agent.next_event(PresenceNotified, timeout=timeout)).state is not state:
            pass
    return time.perf_counter()


async def measure_fanout(count: int) -> FanOut:
    """``count`` watchers on ocs1 subscribe to alice on imp1; alice goes Busy."""
    if count > WATCHERS_PER_IP * len(WATCHER_IPS):
        raise ValueError(f"at most {WATCHERS_PER_IP * len(WATCHER_IPS)} watchers")
    workdir = Path(tempfile.mkdtemp(prefix="intrafed-bench-fanout-"))
    deployment = build_partitions(workdir / "seed", IMP_IP, OCS_IP)
    lift_client_rate_limit(deployment.nodes)
    watchers = provision_watchers(deployment, count)
    presentity = f"{RECIPIENT}@{deployment.domain}"
    imp = (deployment.imp.ip, deployment.imp.tcp_port)
    ocs = (deployment.ocs.ip, deployment.ocs.tcp_port)
    agents = [
        UserAgent(
            UaSettings(
                aor,
                ocs,
                password,
                source_ip=WATCHER_IPS[number // WATCHERS_PER_IP],
                timeout=FANOUT_TIMEOUT,
            )
        )
        for number, (aor, password) in enumerate(watchers)
    ]
    alice = UserAgent(
        UaSettings(presentity, imp, deployment.password(presentity), source_ip=PRESENTITY_IP)
    )
    gate = asyncio.Semaphore(SUBSCRIBING_AT_ONCE)

    async def subscribe(agent: UserAgent) -> None:
        async with gate:
            await agent.connect()
            # A client's NOTIFYs reach it over the flow it registered: only a trusted
            # peer's Via alias is honoured.
            await agent.register()
            await agent.subscribe(presentity)
            await agent.next_event(PresenceNotified, timeout=FANOUT_TIMEOUT)

    async with node_processes(deployment.nodes), alice:
        try:
            await alice.register()
            await alice.publish(PresenceState.AVAILABLE)
            async with asyncio.timeout(FANOUT_TIMEOUT):
                await asyncio.gather(*(subscribe(agent) for agent in agents))
            waiting = [
                asyncio.create_task(notified_of(agent, PresenceState.BUSY, FANOUT_TIMEOUT))
                for agent in agents
            ]
            started = time.perf_counter()
            await alice.publish(PresenceState.BUSY)
            published = time.perf_counter()
            arrivals = await asyncio.gather(*waiting)
        finally:
            await asyncio.gather(*(agent.close() for agent in agents))
    delays = sorted((arrival - started) * 1000 for arrival in arrivals)
    return FanOut(
        count, (published - started) * 1000, delays[0], statistics.median(delays), delays[-1]
    )


def main() -> int:
    arguments = step_options(
        __doc__.splitlines()[0], ["tls", "tcp"], "1000,2000,3000,3500,4000,4500,5000,5500,6000,7000"
    )
    arguments.add_argument(
        "--watchers", type=int, default=1000, help="presence watchers of the fan-out (0: none)"
    )
    arguments.add_argument(
        "--metrics",
        action="store_true",
        help="both nodes serve Prometheus metrics, scraped every --scrape-interval s",
    )
    arguments.add_argument(
        "--scrape-interval",
        type=float,
        default=SCRAPE_INTERVAL,
        help=f"seconds between two scrapes under --metrics (default {SCRAPE_INTERVAL:g})",
    )
    arguments.add_argument(
        "--trace", action="store_true", help="both nodes write their SIP trace (JSON lines, pcap)"
    )
    options = arguments.parse_args()
    logging.basicConfig(level=logging.ERROR)
    rates = [int(rate) for rate in options.rates.split(",")]
    transports = ["tls", "tcp"] if options.transport == "both" else [options.transport]
    for transport in transports:
        label = "TLS/MTLS" if transport == "tls" else "TCP"
        scrape = options.scrape_interval if options.metrics else None
        metrics = f", metrics on (scraped every {scrape:g} s)" if scrape is not None else ""
        metrics += ", trace on" if options.trace else ""
        print(
            f"{label}: SIPp UAC -> ocs1 -> imp1 -> SIPp UAS, MESSAGE, "
            f"{options.step_seconds:g} s per step{metrics} "
            f"(load average {os.getloadavg()[0]:.2f})",
            flush=True,
        )
        steps = asyncio.run(
            measure_messages(transport, rates, options.step_seconds, scrape, options.trace)
        )
        print_best(f"{label} cross-partition", steps)
    if options.watchers:
        print(
            f"Presence fan-out: {options.watchers:,} watchers on ocs1 -> alice on imp1 "
            f"(MTLS between the nodes; load average {os.getloadavg()[0]:.2f})",
            flush=True,
        )
        fanout = asyncio.run(measure_fanout(options.watchers))
        print(
            f"Presence fan-out: {fanout.watchers:,} NOTIFYs received {fanout.last_ms:,.0f} ms "
            f"after the PUBLISH (first {fanout.first_ms:.0f} ms, median "
            f"{fanout.median_ms:.0f} ms; PUBLISH answered in {fanout.publish_ms:.0f} ms)"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
