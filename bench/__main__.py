"""intrafed beside Kamailio in one run: cross-partition MESSAGE capacity, latency and CPU.

SIPp UAC -> A -> B -> SIPp UAS (alice registered on B), over TCP and over TLS (stunnel on
SIPp's legs, TLS between A and B), the offered rate stepped up until a step fails (pass:
zero failures, p99 <= 100 ms, the rate reached), then, --settle-seconds later, one step at
half the highest passing rate.

Each step also reads /proc: the CPU each node used per message, and what the rest of the
machine did (load average, CPU of processes outside the benchmark, steal). A step during
which other processes used more than --noise-threshold of a core is noisy: it is run again
(--noisy-retries), and a figure that rests on a noisy step is printed as "noisy".

Repetitions alternate the systems (for each repetition, for each transport: intrafed, then
Kamailio), each on freshly started nodes. Results: bench/results/<UTC time>.json and .png.

Run from the repository root: .venv/bin/python -m bench [--step-seconds S] [--rates R,...]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import datetime
import json
import logging
import os
import platform
import shlex
import subprocess
import sys
import tempfile
from collections.abc import Callable
from contextlib import AbstractAsyncContextManager
from pathlib import Path

from bench import federation, kamailio
from bench.cpu import NOISY_CORE_FRACTION, Probe
from bench.plot import plot
from bench.report import (
    LABELS,
    LEGEND,
    SYSTEMS,
    TRANSPORTS,
    Run,
    capacity,
    half_rate,
    jsonable,
    ratio_lines,
    run_record,
    run_row,
    summarise,
    summary_row,
    table,
)
from bench.steps import attempts_at, describe, run_step, step_up
from tests.integration.peers import Chain

RESULTS = Path(__file__).resolve().parent / "results"
UAC_SCENARIO = "uac_message_challenged.xml"
"""The same MESSAGE for both systems (intrafed's ocs1 trusts the load host, so no 407)."""
MAX_RUNGS = 100
WARM_UP_SECONDS = 1.0

Topology = Callable[[str, Path], AbstractAsyncContextManager[tuple[Chain, dict[str, int]]]]
TOPOLOGIES: dict[str, Topology] = {
    "intrafed": federation.running_federation,
    "kamailio": kamailio.running_kamailio,
}


def ladder(options: argparse.Namespace) -> list[int]:
    """The offered rates: --rates, else --start, --start + --step, ... up to --max."""
    if options.rates:
        rates = [int(rate) for rate in options.rates.split(",")]
    else:
        rates = list(range(options.start, options.max + 1, options.step))
    if not rates or min(rates) <= 0 or len(rates) > MAX_RUNGS:
        raise SystemExit(f"bench: 1 to {MAX_RUNGS} positive rates, please")
    return rates


def parse_options(arguments: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m bench", description=__doc__.splitlines()[0] if __doc__ else None
    )
    parser.add_argument("--systems", default=",".join(SYSTEMS), help="intrafed,kamailio")
    parser.add_argument("--transports", default=",".join(TRANSPORTS), help="tcp,tls")
    parser.add_argument("--repeat", type=int, default=2, help="repetitions (default 2)")
    parser.add_argument("--step-seconds", type=float, default=10.0, help="seconds per step")
    parser.add_argument("--rates", help="offered rates, msg/s, comma-separated")
    parser.add_argument("--start", type=int, default=500, help="first rate (without --rates)")
    parser.add_argument("--step", type=int, default=500, help="rate increment")
    parser.add_argument("--max", type=int, default=8000, help="last rate")
    parser.add_argument(
        "--noise-threshold",
        type=float,
        default=NOISY_CORE_FRACTION,
        help="share of one core other processes may use before a step is noisy",
    )
    parser.add_argument("--noisy-retries", type=int, default=1, help="reruns of a noisy step")
    parser.add_argument(
        "--noisy-pause", type=float, default=5.0, help="seconds before rerunning a noisy step"
    )
    parser.add_argument(
        "--settle-seconds",
        type=float,
        default=3.0,
        help="pause before the half-rate step, so it does not start in the failed step's backlog",
    )
    parser.add_argument("--results", type=Path, default=RESULTS, help="results directory")
    options = parser.parse_args(arguments)
    options.system_list = options.systems.split(",")
    options.transport_list = options.transports.split(",")
    unknown = set(options.system_list) - set(SYSTEMS) | set(options.transport_list) - set(
        TRANSPORTS
    )
    if (
        unknown
        or not 1 <= options.repeat <= 10
        or not 0 <= options.noisy_retries <= 5
        or not 0 <= options.noisy_pause <= 600
        or not 0 <= options.settle_seconds <= 600
        or not 0 < options.step_seconds <= 600
    ):
        raise SystemExit(f"bench: bad option value {sorted(unknown) or ''}".rstrip())
    return options


async def measure(
    system: str, transport: str, repetition: int, rates: list[int], options: argparse.Namespace
) -> Run:
    """One repetition: fresh nodes, the ladder, then the step at half its capacity."""
    workdir = Path(tempfile.mkdtemp(prefix=f"intrafed-bench-{system}-{transport}-"))
    print(
        f"{LABELS[system]} {LABELS[transport]} #{repetition}: SIPp UAC -> A -> B -> SIPp UAS, "
        f"MESSAGE, {options.step_seconds:g} s per step",
        flush=True,
    )
    async with TOPOLOGIES[system](transport, workdir) as (chain, pids):
        probe = Probe(pids, options.noise_threshold)
        # Connections and TLS sessions open here, outside the measured steps.
        warm = await run_step(
            rates[0],
            WARM_UP_SECONDS,
            chain,
            workdir,
            uac_scenario=UAC_SCENARIO,
            uac_keys=federation.UAC_KEYS,
        )
        print(f"  warm-up: {describe(warm).strip()}", flush=True)
        steps = await step_up(
            chain,
            rates,
            options.step_seconds,
            workdir,
            uac_scenario=UAC_SCENARIO,
            uac_keys=federation.UAC_KEYS,
            probe=probe,
            noisy_retries=options.noisy_retries,
            noisy_pause=options.noisy_pause,
        )
        half = half_rate(capacity(steps))
        attempts = []
        if half is not None:
            print(f"  at half the highest passing rate, {half:,}/s:", flush=True)
            await asyncio.sleep(options.settle_seconds)
            attempts = await attempts_at(
                half,
                options.step_seconds,
                chain,
                workdir,
                uac_scenario=UAC_SCENARIO,
                uac_keys=federation.UAC_KEYS,
                probe=probe,
                noisy_retries=options.noisy_retries,
                noisy_pause=options.noisy_pause,
            )
    return Run(system, transport, repetition, tuple(steps), tuple(attempts))


def machine() -> dict[str, object]:
    """What the results ran on."""
    model = next(
        (
            line.split(":", 1)[1].strip()
            for line in Path("/proc/cpuinfo").read_text().splitlines()
            if line.startswith("model name")
        ),
        platform.processor(),
    )
    return {
        "cpus": os.cpu_count(),
        "cpu_model": model,
        "kernel": platform.release(),
        "python": platform.python_version(),
        "kamailio": version([kamailio.KAMAILIO or "kamailio", "-v"]),
        "sipp": version(["sipp", "-v"]),
        "commit": version(["git", "rev-parse", "--short", "HEAD"]),
    }


def version(command: list[str]) -> str:
    """The first line a command prints (its version), or why not."""
    with contextlib.suppress(OSError, subprocess.SubprocessError):
        result = subprocess.run(command, capture_output=True, text=True, timeout=10, check=False)
        lines = [line.strip() for line in (result.stdout + result.stderr).splitlines()]
        return next((line for line in lines if line), "")
    return "unavailable"


async def measure_all(options: argparse.Namespace, rates: list[int]) -> list[Run]:
    runs = []
    for repetition in range(1, options.repeat + 1):
        for transport in options.transport_list:
            for system in options.system_list:
                runs.append(await measure(system, transport, repetition, rates, options))
    return runs


def main(arguments: list[str] | None = None) -> int:
    options = parse_options(arguments)
    rates = ladder(options)
    logging.basicConfig(level=logging.ERROR)
    started = datetime.datetime.now(datetime.UTC)
    command = "python -m bench " + shlex.join(sys.argv[1:] if arguments is None else arguments)
    host = machine()
    print(f"{command}\n{host['cpus']} x {host['cpu_model']}, {host['kamailio']}", flush=True)
    runs = asyncio.run(measure_all(options, rates))
    summaries = {
        (system, transport): summarise(
            [run for run in runs if run.system == system and run.transport == transport]
        )
        for system in options.system_list
        for transport in options.transport_list
    }
    rows = [run_row(run) for run in runs]
    rows += [summary_row(summary) for summary in summaries.values()]
    print()
    print(table(rows))
    print(LEGEND)
    for line in ratio_lines(summaries, runs):
        print(line)
    options.results.mkdir(parents=True, exist_ok=True)
    stem = started.strftime("%Y%m%dT%H%M%SZ")
    result = options.results / f"{stem}.json"
    picture = options.results / f"{stem}.png"
    record = {
        "command": command,
        "started": started.isoformat(),
        "machine": host,
        "settings": {
            "rates": rates,
            "step_seconds": options.step_seconds,
            "repeat": options.repeat,
            "noise_threshold_cores": options.noise_threshold,
            "noisy_retries": options.noisy_retries,
            "noisy_pause_seconds": options.noisy_pause,
            "settle_seconds": options.settle_seconds,
            "kamailio_children": kamailio.CHILDREN,
        },
        "runs": [run_record(run) for run in runs],
        "summary": [jsonable(summary) for summary in summaries.values()],
        "table": table(rows),
        "ratios": ratio_lines(summaries, runs),
    }
    result.write_text(json.dumps(record, indent=1, allow_nan=False) + "\n")
    plot(runs, picture, f"{command} ({started:%Y-%m-%d %H:%M} UTC, {host['cpus']} CPUs)")
    print(f"results: {result}\nplot: {picture}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
