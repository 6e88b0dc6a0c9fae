"""MESSAGE throughput through one node: SIPp UAC -> node -> SIPp UAS.

Over TCP, and over MTLS with stunnel wrapping SIPp's legs (Debian's SIPp has no TLS).
The offered rate steps up; each step lasts ``--step-seconds`` and passes only with zero
failed messages and p99 <= 100 ms (DESIGN §9). Latency comes from SIPp's response times
(1 ms resolution). Every run is bounded in count and time and stops by itself.

Run from the repository root: .venv/bin/python -m bench.proxy [--transport tcp|mtls|both]
"""

from __future__ import annotations

import argparse
import asyncio
import csv
import logging
import statistics
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

from tests.integration.peers import UAC_IP, Chain, free_port, proxy_chain, run_sipp, sipp_uas

P99_LIMIT_MS = 100.0


@dataclass
class Step:
    """One offered rate and what came of it."""

    offered: int
    achieved: float
    failed: int
    p50_ms: float
    p99_ms: float

    @property
    def passed(self) -> bool:
        """Zero failures, p99 within the limit, and the rate actually reached."""
        return (
            self.failed == 0
            and self.p99_ms <= P99_LIMIT_MS
            and self.achieved >= 0.95 * self.offered
        )


def percentile(values: list[float], fraction: float) -> float:
    """The ``fraction`` quantile (nearest rank)."""
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(fraction * len(ordered)))]


async def run_step(
    rate: int,
    seconds: float,
    chain: Chain,
    workdir: Path,
    *,
    uac_scenario: str = "uac_message.xml",
    uac_keys: dict[str, str] | None = None,
) -> Step:
    calls = int(rate * seconds)
    async with sipp_uas(
        "uas_message.xml",
        local=chain.uas_local,
        calls=calls,
        timeout=seconds + 30,
        keys={"contact": chain.contact},
        workdir=workdir,
    ):
        started = time.perf_counter()
        uac = await run_sipp(
            uac_scenario,
            local=(UAC_IP, free_port(UAC_IP)),
            remote=chain.uac_remote,
            calls=calls,
            rate=rate,
            timeout=seconds + 30,
            keys=uac_keys,
            extra=["-trace_rtt", "-rtt_freq", "1"],
            workdir=workdir,
        )
        elapsed = time.perf_counter() - started
    times: list[float] = []
    for path in workdir.glob(f"{Path(uac_scenario).stem}_*_rtt.csv"):
        with path.open() as table:
            times += [
                float(row["response_time_ms"]) for row in csv.DictReader(table, delimiter=";")
            ]
        path.unlink()
    failed = calls - len(times) if uac.returncode == 0 else max(1, calls - len(times))
    return Step(
        rate,
        len(times) / elapsed,
        failed,
        statistics.median(times) if times else float("inf"),
        percentile(times, 0.99) if times else float("inf"),
    )


async def step_up(
    chain: Chain,
    rates: list[int],
    seconds: float,
    workdir: Path,
    *,
    uac_scenario: str = "uac_message.xml",
    uac_keys: dict[str, str] | None = None,
) -> list[Step]:
    """Step the offered rate up along ``chain`` until a step fails; print each step."""
    steps: list[Step] = []
    for rate in rates:
        step = await run_step(
            rate, seconds, chain, workdir, uac_scenario=uac_scenario, uac_keys=uac_keys
        )
        steps.append(step)
        verdict = "pass" if step.passed else "FAIL"
        print(
            f"  offered {step.offered:6,}/s  achieved {step.achieved:8,.0f}/s  "
            f"failed {step.failed:5}  p50 {step.p50_ms:5.1f} ms  "
            f"p99 {step.p99_ms:6.1f} ms  {verdict}",
            flush=True,
        )
        if not step.passed:
            break
    return steps


def print_best(label: str, steps: list[Step]) -> None:
    """The highest passing step of a run."""
    passing = [step for step in steps if step.passed]
    best = max(passing, key=lambda step: step.achieved) if passing else None
    if best is None:
        print(f"{label}: no step passed")
    else:
        print(
            f"{label}: max passing {best.achieved:,.0f} msg/s "
            f"(p50 {best.p50_ms:.1f} ms, p99 {best.p99_ms:.1f} ms)"
        )


async def measure(transport: str, rates: list[int], seconds: float) -> list[Step]:
    """Step the offered rate up through one node until a step fails."""
    workdir = Path(tempfile.mkdtemp(prefix=f"intrafed-bench-{transport}-"))
    async with proxy_chain(transport, workdir) as chain:
        return await step_up(chain, rates, seconds, workdir)


def step_options(description: str, transports: list[str], rates: str) -> argparse.ArgumentParser:
    """The options of a stepped benchmark: --transport (one of ``transports``, or both),
    --step-seconds, and --rates (``rates`` by default)."""
    arguments = argparse.ArgumentParser(description=description)
    arguments.add_argument("--transport", choices=[*transports, "both"], default="both")
    arguments.add_argument(
        "--step-seconds", type=float, default=10.0, help="duration of each rate step"
    )
    arguments.add_argument("--rates", default=rates, help="offered rates, msg/s")
    return arguments


def main() -> int:
    options = step_options(
        __doc__.splitlines()[0], ["tcp", "mtls"], "500,1000,1500,2000,2500,3000,4000,5000"
    ).parse_args()
    logging.basicConfig(level=logging.ERROR)
    rates = [int(rate) for rate in options.rates.split(",")]
    transports = ["tcp", "mtls"] if options.transport == "both" else [options.transport]
    for transport in transports:
        label = transport.upper()
        print(
            f"{label}: SIPp UAC -> node -> SIPp UAS, MESSAGE, {options.step_seconds:g} s per step"
        )
        print_best(label, asyncio.run(measure(transport, rates, options.step_seconds)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
