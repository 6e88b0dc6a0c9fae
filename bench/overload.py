"""Overload: one node offered five times its capacity for MESSAGE over TCP.

One IM&P node in a process of its own forwards example.com to a SIPp UAS. SIPp's UAC
sends as alice@example.com, a user provisioned on the node without a password (accepted
as a client without a challenge); the node gives the client rate class the server class's
limits, so the per-address limit does not answer first.

1. Capacity C: the offered rate steps up as in ``bench.proxy`` (zero failures, p99 <=
   100 ms; a failed step runs once more, the machine being shared); C is the best
   passing step's achieved rate.
2. 5 x C (``--factor``) for ``--seconds``: every request's outcome (200, 503, other,
   unanswered within ``--recv-timeout``), from SIPp's statistics and response times; the node's RSS
   (VmRSS) before, at its peak (sampled every 0.5 s) and ``--settle`` seconds after the
   load stops; and a canary: a trusted host (the node's incoming ACL) sending one
   MESSAGE every 100 ms through the node, its latency p50/p99 and failures.
   Also the node's CPU time and the load connection's kernel queues (/proc/net/tcp):
   bytes the node has not read yet, and answers SIPp has not read (SIPp the bottleneck).
3. A table on stdout and bench/results/overload-<timestamp>.json.

Before the load, the bench waits until the node forwards a canary MESSAGE again: a ladder
step beyond capacity can leave the next hop down until the node's OPTIONS probe is
answered (the UAS answers OPTIONS for that). ``--capacity C`` skips the ladder;
``--max-pending 0`` makes the node shed every request (the canary's too), which measures
how fast shedding alone answers.

The issue's bar (item 9): nothing unanswered, memory bounded and returned, canary p99
< 1 s. Everything is bounded in count and time and talks only to 127.0.0.0/8.

Run from the repository root: .venv/bin/python -m bench.overload
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import csv
import dataclasses
import json
import logging
import multiprocessing
import os
import signal
import sys
import tempfile
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from multiprocessing.process import BaseProcess
from multiprocessing.queues import Queue
from pathlib import Path

from bench.canary import (
    CANARY_INTERVAL,
    CANARY_IP,
    FORWARDING_TIMEOUT,
    Canary,
    run_canary,
    until_forwarding,
)
from bench.federation import LOAD_CLIENT_BURST, LOAD_CLIENT_RATE, wait_ready
from bench.loadstats import (
    Latency,
    Outcomes,
    Queued,
    cpu_seconds,
    last_stats,
    outcomes,
    queued,
    response_times,
    sending_seconds,
    vm_rss_kib,
)
from bench.steps import Step, step_up
from intrafed.config.model import (
    AclEntry,
    ImpListeners,
    NodeConfig,
    NodeIdentity,
    RateClass,
    RateLimits,
    Role,
    StaticRoute,
    User,
)
from intrafed.node import Node, settings_from_config
from intrafed.policy.admission import MAX_PENDING, AdmissionLimits
from tests.integration.peers import SIPP_NEXT_HOP, Chain, free_port, run_sipp, sipp_uas

NODE_IP, UAS_IP, UAC_IP = "127.0.0.200", "127.0.0.201", "127.0.0.202"
NODE_NAME = "imp1.example.com"
SENDER = "alice@example.com"
"""Provisioned on the node without a password: a client, accepted without a challenge."""
"""Homed on neither side: forwarded along the static route to the SIPp UAS."""
RESULTS = Path(__file__).resolve().parent / "results"
SAMPLE_INTERVAL = 0.5
CANARY_P99_LIMIT_MS = 1000.0

UAC_SCENARIO = """<?xml version="1.0" encoding="ISO-8859-1" ?>
<!DOCTYPE scenario SYSTEM "sipp.dtd">
<!-- alice sends a MESSAGE to bob; 200 and 503 both end the call (counted apart by
     their response-time names), any other final response is an unexpected message. -->
<scenario name="uac MESSAGE under overload">
  <send>
    <![CDATA[
MESSAGE sip:bob@example.com SIP/2.0
Via: SIP/2.0/[transport] [local_ip]:[local_port];branch=[branch]
From: "Alice" <sip:alice@example.com>;tag=[pid]SIPpTag00[call_number]
To: <sip:bob@example.com>
Call-ID: [call_id]
CSeq: 1 MESSAGE
Max-Forwards: 70
Content-Type: text/plain
Content-Length: [len]

Hello bob, message [call_number] from alice.
]]>
  </send>
  <recv response="100" optional="true"/>
  <recv response="503" optional="true" rtd="shed" next="1"/>
  <recv response="200" rtd="ok"/>
  <label id="1"/>
</scenario>
"""


UAS_SCENARIO = """<?xml version="1.0" encoding="ISO-8859-1" ?>
<!DOCTYPE scenario SYSTEM "sipp.dtd">
<!-- bob's side: 200 OK to every MESSAGE, and to the node's OPTIONS probes, which bring
     back a next hop the node took down (e.g. after a ladder step it could not carry). -->
<scenario name="uas MESSAGE or OPTIONS">
  <recv request="OPTIONS" optional="true" next="1"/>
  <recv request="MESSAGE"/>
  <label id="1"/>
  <send>
    <![CDATA[
SIP/2.0 200 OK
[last_Via:]
[last_From:]
[last_To:];tag=[pid]SIPpTag01[call_number]
[last_Call-ID:]
[last_CSeq:]
Content-Length: 0

]]>
  </send>
</scenario>
"""


def node_config(port: int, uas: tuple[str, int]) -> NodeConfig:
    """The node under load: example.com served here (alice provisioned without a
    password), everything else of example.com to the UAS, the canary in the ACL, and the
    client class lifted to the server class (SIPp is one address standing for many)."""
    return NodeConfig(
        NodeIdentity(Role.IMP, NODE_NAME, NODE_IP),
        domains=("example.com",),
        listeners=ImpListeners(
            tcp=port, peer_auth=free_port(NODE_IP), server_auth=free_port(NODE_IP)
        ),
        routes=(StaticRoute("example.com", "TCP", uas[1], ip=uas[0]),),
        acl=(AclEntry(ip=CANARY_IP),),
        users=(User(SENDER),),
        rate_limits=RateLimits(client=RateClass(LOAD_CLIENT_RATE, LOAD_CLIENT_BURST)),
    )


def serve_config(config: NodeConfig, admission: AdmissionLimits, ready: Queue[str]) -> None:
    """A node process: run ``config`` (TCP only, no probes of the SIPp next hop, shedding
    at ``admission``) until SIGTERM; put its FQDN on ``ready`` once it listens."""
    logging.basicConfig(level=logging.ERROR)

    async def serve() -> None:
        settings = dataclasses.replace(
            settings_from_config(config), probes=SIPP_NEXT_HOP, admission=admission
        )
        node = Node(settings)
        await node.start()
        stopping = asyncio.Event()
        asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, stopping.set)
        ready.put(node.settings.name)
        await stopping.wait()
        await node.stop(grace=1.0)

    asyncio.run(serve())


@contextlib.asynccontextmanager
async def node_process(
    config: NodeConfig, admission: AdmissionLimits
) -> AsyncIterator[BaseProcess]:
    """The node of ``config`` in a process of its own, until the block ends."""
    context = multiprocessing.get_context("spawn")
    ready: Queue[str] = context.Queue()
    process = context.Process(target=serve_config, args=(config, admission, ready), name=NODE_NAME)
    process.start()
    try:
        await asyncio.to_thread(wait_ready, [process], ready)
        yield process
    finally:
        process.terminate()
        await asyncio.to_thread(process.join, 15)
        if process.is_alive():
            process.kill()


@dataclass(frozen=True, slots=True)
class Sample:
    """The node's RSS and CPU time, the load's TCP queues and the machine's 1-minute
    load average at one moment."""

    at: float
    """Seconds since the load started (negative before)."""
    rss_kib: int
    cpu_s: float
    queued: Queued
    load: float


@dataclass
class Sampler:
    """Samples the node (``pid``, listening at ``node``) every ``SAMPLE_INTERVAL``."""

    pid: int
    node: tuple[str, int]
    origin: float
    samples: list[Sample] = field(default_factory=list)

    def sample(self) -> Sample:
        status = Path(f"/proc/{self.pid}/status").read_text()
        stat = Path(f"/proc/{self.pid}/stat").read_text()
        table = Path("/proc/net/tcp").read_text()
        load = float(Path("/proc/loadavg").read_text().split()[0])
        taken = Sample(
            time.monotonic() - self.origin,
            vm_rss_kib(status),
            cpu_seconds(stat, os.sysconf("SC_CLK_TCK")),
            queued(table, UAC_IP, self.node),
            load,
        )
        self.samples.append(taken)
        return taken

    async def run(self, until: float) -> None:
        """Sample until ``until`` seconds after the origin."""
        while time.monotonic() - self.origin < until:
            self.sample()
            await asyncio.sleep(SAMPLE_INTERVAL)


@dataclass
class Overload:
    """What happened at ``--factor`` x C."""

    rate: int
    seconds: float
    sending: float
    """Seconds SIPp took to send what it offered."""
    settle: float
    forwarding_after: float
    """Seconds the node took to forward again before the load (next hop back up)."""
    outcomes: Outcomes
    ok_latency: Latency
    shed_latency: Latency
    rss_before_kib: int
    rss_peak_kib: int
    rss_after_kib: int
    canary: Canary
    samples: list[Sample]


async def offer(
    node: BaseProcess,
    chain: Chain,
    rate: int,
    options: argparse.Namespace,
    workdir: Path,
) -> Overload:
    """Offer ``rate`` MESSAGEs a second for ``options.seconds`` with a canary alongside."""
    seconds, recv_timeout, settle = options.seconds, options.recv_timeout, options.settle
    calls = int(rate * seconds)
    scenario = workdir / "uac_message_overload.xml"
    scenario.write_text(UAC_SCENARIO)
    stats = workdir / "overload_stats.csv"
    assert node.pid is not None
    sampler = Sampler(node.pid, chain.uac_remote, time.monotonic())
    async with next_hop(
        chain, 10 * calls, FORWARDING_TIMEOUT + seconds + recv_timeout + settle + 60, workdir
    ):
        # With --max-pending 0 the node sheds the canary too: nothing to wait for.
        recovered = await until_forwarding(chain.uac_remote) if options.max_pending else 0.0
        before = sampler.sample()
        sampler.samples.clear()
        sampler.origin = time.monotonic()
        sampling = asyncio.create_task(sampler.run(2 * seconds + recv_timeout + settle + 60))
        canary = asyncio.create_task(run_canary(chain.uac_remote, seconds, recv_timeout))
        uac = await run_sipp(
            str(scenario),
            local=(UAC_IP, free_port(UAC_IP)),
            remote=chain.uac_remote,
            calls=calls,
            rate=rate,
            timeout=2 * seconds + recv_timeout + 30,
            extra=[
                # No cap on calls open at once (SIPp's default cap would throttle the
                # offer when answers lag), a receive timeout that ends each unanswered
                # call, statistics and every response time.
                *("-l", str(calls), "-recv_timeout", f"{int(recv_timeout * 1000)}"),
                *("-trace_stat", "-stf", str(stats), "-fd", "1"),
                *("-trace_rtt", "-rtt_freq", "1"),
            ],
            workdir=workdir,
        )
        canary_result = await canary
    if not stats.exists():
        sampling.cancel()
        raise RuntimeError(f"SIPp wrote no statistics: {uac.output[-2000:]}")
    sending = sending_seconds(stats.read_text())
    await asyncio.sleep(max(0.0, sending + settle - (time.monotonic() - sampler.origin)))
    sampling.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await sampling
    rtt_rows: list[dict[str, str]] = []
    for path in workdir.glob(f"{scenario.stem}_*_rtt.csv"):
        with path.open() as table:
            rtt_rows += csv.DictReader(table, delimiter=";")
    times = response_times(rtt_rows)
    result = outcomes(last_stats(stats.read_text()), {k: len(v) for k, v in times.items()})
    after = min(sampler.samples, key=lambda sample: abs(sample.at - (sending + settle)))
    return Overload(
        rate,
        seconds,
        sending,
        settle,
        recovered,
        result,
        Latency.of(times.get("ok", [])),
        Latency.of(times.get("shed", [])),
        before.rss_kib,
        max(sample.rss_kib for sample in [before, *sampler.samples]),
        after.rss_kib,
        canary_result,
        sampler.samples,
    )


def print_report(capacity: float, steps: list[Step], run: Overload) -> None:
    """The table of a run."""
    out = run.outcomes
    offered = max(out.offered, 1)
    print(
        f"Capacity C = {capacity:,.0f} msg/s; offered {run.rate / capacity:.0f} x C ="
        f" {run.rate:,}/s for "
        f"{run.seconds:g} s (SIPp sent for {run.sending:.1f} s; the node forwarded again"
        f" {run.forwarding_after:.1f} s after the ladder)"
    )
    print(f"  {'outcome':<26}{'requests':>10}{'share':>8}")
    for label, count in (
        ("offered (sent by SIPp)", out.offered),
        ("200 OK", out.ok),
        ("503 (shed)", out.shed),
        ("other final response", out.other),
        ("unanswered (timeout)", out.unanswered),
        ("not sent", out.not_sent),
    ):
        print(f"  {label:<26}{count:>10,}{count / offered:>8.1%}")
    if out.accounted != out.offered:
        print(f"  ({out.offered - out.accounted:,} offered requests have no outcome)")
    print(
        f"  200 latency p50 {run.ok_latency.p50_ms:,.0f} ms, p99 {run.ok_latency.p99_ms:,.0f} ms;"
        f" 503 latency p50 {run.shed_latency.p50_ms:,.0f} ms,"
        f" p99 {run.shed_latency.p99_ms:,.0f} ms"
    )
    print(
        f"  node RSS: before {run.rss_before_kib / 1024:,.0f} MiB, peak"
        f" {run.rss_peak_kib / 1024:,.0f} MiB, {run.settle:g} s after the load"
        f" {run.rss_after_kib / 1024:,.0f} MiB"
    )
    canary = run.canary
    print(
        f"  canary (trusted host, 1 per {CANARY_INTERVAL * 1000:.0f} ms): sent {canary.sent},"
        f" failed {canary.failures} (answers {dict(sorted(canary.statuses.items()))}),"
        f" p50 {canary.latency.p50_ms:,.0f} ms, p99 {canary.latency.p99_ms:,.0f} ms"
    )
    if canary.first_failure:
        print(f"  canary's first failure: {canary.first_failure}")
    loading = [sample for sample in run.samples if sample.at <= run.sending]
    if len(loading) > 1:
        cpu = (loading[-1].cpu_s - loading[0].cpu_s) / (loading[-1].at - loading[0].at)
        print(
            f"  node CPU while SIPp sent: {cpu:.0%} of a core; the load's TCP connection"
            f" held up to {max(s.queued.unread for s in run.samples):,} bytes unread by the"
            f" node, {max(s.queued.unsent for s in run.samples):,} unacknowledged from SIPp,"
            f" {max(s.queued.answers_unread for s in run.samples):,} of answers unread by SIPp"
        )
    loads = [sample.load for sample in run.samples]
    print(f"  load average (1 min) during the run: {min(loads):.2f} .. {max(loads):.2f}")
    verdicts = {
        "every request answered": out.unanswered == 0 and out.accounted == out.offered,
        "answered in time (200 and 503 p99 < 1 s)": max(
            run.ok_latency.p99_ms if run.ok_latency.count else 0.0,
            run.shed_latency.p99_ms if run.shed_latency.count else 0.0,
        )
        < CANARY_P99_LIMIT_MS,
        "memory returned": run.rss_after_kib <= 1.5 * run.rss_before_kib,
        "canary p99 < 1 s, no failures": canary.latency.p99_ms < CANARY_P99_LIMIT_MS
        and canary.failures == 0,
    }
    for label, passed in verdicts.items():
        print(f"  {label}: {'pass' if passed else 'FAIL'}")


def report(capacity: float, steps: list[Step], run: Overload) -> dict[str, object]:
    """The JSON record of a run."""
    return {
        "capacity_msg_s": capacity,
        "ladder": [dataclasses.asdict(step) | {"passed": step.passed} for step in steps],
        "overload": {
            "rate": run.rate,
            "factor": run.rate / capacity,
            "seconds": run.seconds,
            "sending_s": run.sending,
            "forwarding_after_s": run.forwarding_after,
            "outcomes": dataclasses.asdict(run.outcomes),
            "ok_latency": dataclasses.asdict(run.ok_latency),
            "shed_latency": dataclasses.asdict(run.shed_latency),
            "rss_kib": {
                "before": run.rss_before_kib,
                "peak": run.rss_peak_kib,
                "after": run.rss_after_kib,
                "settle_s": run.settle,
            },
            "canary": {
                "sent": run.canary.sent,
                "failures": run.canary.failures,
                "statuses": run.canary.statuses,
                "latency": dataclasses.asdict(run.canary.latency),
                "first_failure": run.canary.first_failure,
            },
            "samples": [dataclasses.asdict(sample) for sample in run.samples],
        },
    }


@contextlib.asynccontextmanager
async def next_hop(chain: Chain, calls: int, timeout: float, workdir: Path) -> AsyncIterator[None]:
    """A SIPp UAS answering MESSAGE and OPTIONS at ``chain.uas_local``, for the block."""
    scenario = workdir / "uas_message_or_options.xml"
    scenario.write_text(UAS_SCENARIO)
    async with sipp_uas(
        str(scenario), local=chain.uas_local, calls=calls, timeout=timeout, workdir=workdir
    ):
        yield


async def ladder(chain: Chain, rates: list[int], seconds: float, workdir: Path) -> list[Step]:
    """``step_up`` one rate at a time; a failed step is run once more (the machine is
    shared: one hiccup must not set C), after the node forwards again."""
    steps: list[Step] = []
    for rate in rates:
        for attempt in range(2):
            if attempt:
                async with next_hop(chain, 1000, FORWARDING_TIMEOUT + 10, workdir):
                    await until_forwarding(chain.uac_remote)
            step = (await step_up(chain, [rate], seconds, workdir))[0]
            if step.passed:
                break
        steps.append(step)
        if not step.passed:
            break
    return steps


async def measure(options: argparse.Namespace) -> tuple[float, list[Step], Overload]:
    """Find C along the ladder (unless ``--capacity`` gives it), then offer ``--factor``
    x C."""
    workdir = Path(tempfile.mkdtemp(prefix="intrafed-bench-overload-"))
    port = free_port(NODE_IP)
    uas = (UAS_IP, free_port(UAS_IP))
    chain = Chain((NODE_IP, port), uas, f"{UAS_IP}:{uas[1]};transport=tcp")
    admission = AdmissionLimits(max_pending=options.max_pending)
    async with node_process(node_config(port, uas), admission) as node:
        steps: list[Step] = []
        capacity = options.capacity
        if not capacity:
            rates = [int(rate) for rate in options.rates.split(",")]
            steps = await ladder(chain, rates, options.step_seconds, workdir)
            passing = [step.achieved for step in steps if step.passed]
            capacity = max(passing) if passing else steps[0].achieved
        run = await offer(node, chain, int(options.factor * capacity), options, workdir)
    return capacity, steps, run


def main() -> int:
    arguments = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    arguments.add_argument("--rates", default="500,1000,2000,3000,4000,5000,6000,7000,8000,10000")
    arguments.add_argument("--step-seconds", type=float, default=4.0)
    arguments.add_argument("--capacity", type=float, default=0, help="skip the ladder")
    arguments.add_argument("--factor", type=float, default=5.0, help="the overload, x C")
    arguments.add_argument("--seconds", type=float, default=20.0, help="duration of the overload")
    arguments.add_argument(
        "--recv-timeout",
        type=float,
        default=32.0,
        help="seconds SIPp waits for a final response (Timer F: a client gives up then)",
    )
    arguments.add_argument("--settle", type=float, default=10.0, help="RSS after the load")
    arguments.add_argument(
        "--max-pending",
        type=int,
        default=MAX_PENDING,
        help="the node's admission limit (0: shed every request, to measure shedding alone)",
    )
    options = arguments.parse_args()
    logging.basicConfig(level=logging.ERROR)
    print(
        f"Overload: SIPp UAC ({SENDER}) -> node -> SIPp UAS, MESSAGE over TCP"
        f" (load average {Path('/proc/loadavg').read_text().split()[0]})",
        flush=True,
    )
    capacity, steps, run = asyncio.run(measure(options))
    print_report(capacity, steps, run)
    RESULTS.mkdir(exist_ok=True)
    path = RESULTS / f"overload-{time.strftime('%Y%m%dT%H%M%SZ', time.gmtime())}.json"
    path.write_text(json.dumps(report(capacity, steps, run), indent=2) + "\n")
    print(
        f"  written to {path.relative_to(Path.cwd()) if path.is_relative_to(Path.cwd()) else path}"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
