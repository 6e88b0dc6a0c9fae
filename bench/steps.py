"""Stepped MESSAGE load through a chain of nodes: SIPp's UAC offers a rate for a fixed
time, SIPp's UAS answers, and the step passes only with zero failed messages, p99 <= 100 ms
(DESIGN §9) and the offered rate reached. Latency comes from SIPp's response times (1 ms
resolution). Every step is bounded in count (rate x seconds) and time (SIPp's timeouts)."""

from __future__ import annotations

import argparse
import asyncio
import csv
import statistics
import time
from dataclasses import dataclass
from pathlib import Path

from bench.cpu import Probe, StepLoad
from tests.integration.peers import UAC_IP, Chain, SippResult, free_port, run_sipp, sipp_uas

P99_LIMIT_MS = 100.0
REACHED_FRACTION = 0.95
"""A step passes only if the achieved rate is at least this share of the offered one."""


@dataclass(frozen=True, slots=True)
class Step:
    """One offered rate and what came of it (``load``: when a probe watched the step)."""

    offered: int
    achieved: float
    failed: int
    p50_ms: float
    p99_ms: float
    load: StepLoad | None = None
    carried: int = 0
    """messages answered"""

    @property
    def passed(self) -> bool:
        """Zero failures, p99 within the limit, and the rate actually reached."""
        return (
            self.failed == 0
            and self.p99_ms <= P99_LIMIT_MS
            and self.achieved >= REACHED_FRACTION * self.offered
        )

    @property
    def noisy(self) -> bool:
        """Other processes used enough CPU during the step to make its figures doubtful."""
        return self.load is not None and self.load.noisy


def percentile(values: list[float], fraction: float) -> float:
    """The ``fraction`` quantile (nearest rank)."""
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(fraction * len(ordered)))]


def split(total: int, parts: int) -> list[int]:
    """``total`` shared out over ``parts`` as evenly as whole numbers allow (the first ones
    take the remainder)."""
    share, remainder = divmod(total, parts)
    return [share + (1 if part < remainder else 0) for part in range(parts)]


async def uac_at(
    remote: tuple[str, int],
    rate: int,
    calls: int,
    seconds: float,
    workdir: Path,
    uac_scenario: str,
    uac_keys: dict[str, str] | None,
) -> SippResult:
    """One SIPp UAC offering ``rate`` MESSAGE/s to ``remote`` until ``calls`` end."""
    if calls == 0:
        return SippResult(0, "")
    try:
        return await run_sipp(
            uac_scenario,
            local=(UAC_IP, free_port(UAC_IP)),
            remote=remote,
            calls=calls,
            rate=max(1, rate),
            timeout=seconds + 30,
            keys=uac_keys,
            extra=["-trace_rtt", "-rtt_freq", "1"],
            workdir=workdir,
        )
    except TimeoutError:
        # SIPp did not stop by its own timeout (it was killed): the step failed.
        return SippResult(1, "SIPp's UAC did not stop in time")


async def run_step(
    rate: int,
    seconds: float,
    chain: Chain,
    workdir: Path,
    *,
    uac_scenario: str = "uac_message.xml",
    uac_keys: dict[str, str] | None = None,
    probe: Probe | None = None,
) -> Step:
    """Offer ``rate`` MESSAGE/s for ``seconds`` along ``chain`` (shared out over its
    entries, one UAC each); with ``probe``, account the CPU of the step from the UACs'
    start to their end."""
    calls = max(1, int(rate * seconds))
    async with sipp_uas(
        "uas_message.xml",
        local=chain.uas_local,
        calls=calls,
        timeout=seconds + 30,
        keys={"contact": chain.contact},
        workdir=workdir,
    ):
        started = time.perf_counter()
        before = probe.snapshot(time.monotonic()) if probe else None
        entries = chain.entries
        shares = zip(entries, split(rate, len(entries)), split(calls, len(entries)), strict=True)
        uacs = await asyncio.gather(
            *(
                uac_at(remote, share_rate, share_calls, seconds, workdir, uac_scenario, uac_keys)
                for remote, share_rate, share_calls in shares
            )
        )
        after = probe.snapshot(time.monotonic()) if probe else None
        elapsed = time.perf_counter() - started
    times: list[float] = []
    for path in workdir.glob(f"{Path(uac_scenario).stem}_*_rtt.csv"):
        with path.open() as table:
            times += [
                float(row["response_time_ms"]) for row in csv.DictReader(table, delimiter=";")
            ]
        path.unlink()
    succeeded = all(uac.returncode == 0 for uac in uacs)
    failed = calls - len(times) if succeeded else max(1, calls - len(times))
    load = probe.load(before, after, len(times)) if probe and before and after else None
    return Step(
        rate,
        len(times) / elapsed,
        failed,
        statistics.median(times) if times else float("inf"),
        percentile(times, 0.99) if times else float("inf"),
        load,
        len(times),
    )


def describe(step: Step) -> str:
    """One line for a step, with its CPU accounting when it has one."""
    text = (
        f"  offered {step.offered:6,}/s  achieved {step.achieved:8,.0f}/s  "
        f"failed {step.failed:5}  p50 {step.p50_ms:5.1f} ms  "
        f"p99 {step.p99_ms:6.1f} ms  {'pass' if step.passed else 'FAIL'}"
    )
    if step.load is not None:
        cpu = "  ".join(
            f"{name} {value:5.0f} us/msg" for name, value in step.load.node_us_per_message.items()
        )
        text += (
            f"  | {cpu}  others {step.load.other_core_fraction:4.0%} of a core  "
            f"steal {step.load.steal_fraction:4.1%}  load {step.load.load_average:.2f}"
            f"{'  NOISY' if step.noisy else ''}"
        )
    return text


async def attempts_at(
    rate: int,
    seconds: float,
    chain: Chain,
    workdir: Path,
    *,
    uac_scenario: str = "uac_message.xml",
    uac_keys: dict[str, str] | None = None,
    probe: Probe | None = None,
    noisy_retries: int = 0,
    noisy_pause: float = 0.0,
) -> list[Step]:
    """One step at ``rate``, run again (at most ``noisy_retries`` times, ``noisy_pause``
    seconds later) while it is noisy; every attempt, the one that counts last. Each is
    printed."""
    attempts: list[Step] = []
    while len(attempts) <= noisy_retries:
        if attempts:
            await asyncio.sleep(noisy_pause)
        step = await run_step(
            rate,
            seconds,
            chain,
            workdir,
            uac_scenario=uac_scenario,
            uac_keys=uac_keys,
            probe=probe,
        )
        attempts.append(step)
        print(describe(step), flush=True)
        if not step.noisy:
            break
    return attempts


async def step_up(
    chain: Chain,
    rates: list[int],
    seconds: float,
    workdir: Path,
    *,
    uac_scenario: str = "uac_message.xml",
    uac_keys: dict[str, str] | None = None,
    probe: Probe | None = None,
    noisy_retries: int = 0,
    noisy_pause: float = 0.0,
) -> list[Step]:
    """Step the offered rate up along ``chain`` until a step fails (a noisy step is tried
    again up to ``noisy_retries`` times first); every attempt, in order."""
    steps: list[Step] = []
    for rate in rates:
        attempts = await attempts_at(
            rate,
            seconds,
            chain,
            workdir,
            uac_scenario=uac_scenario,
            uac_keys=uac_keys,
            probe=probe,
            noisy_retries=noisy_retries,
            noisy_pause=noisy_pause,
        )
        steps += attempts
        if not attempts[-1].passed:
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
