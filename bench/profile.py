"""Flame graphs of both intrafed nodes on the federation path at one fixed rate.

SIPp UAC -> A (ocs1) -> B (imp1) -> SIPp UAS, MESSAGE, as ``bench.federation`` runs it;
py-spy (not a project dependency: pass its path) samples each node's process for the
step, and writes ``<out>/<transport>-<A|B>.svg`` (or collapsed stacks, ``--format raw``).

Run from the repository root:
.venv/bin/python -m bench.profile --py-spy /path/to/py-spy [--transport tcp|tls]
[--rate 2000] [--seconds 10] [--out bench/profiles]
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import tempfile
from pathlib import Path

from bench import federation
from bench.cpu import Probe
from bench.steps import describe, run_step

SAMPLE_RATE = 250
"""Samples per second (py-spy's default is 100)."""


def cpu_split(pid: int) -> tuple[int, int]:
    """User and system clock ticks of ``pid`` so far (/proc/PID/stat)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()
    return int(fields[11]), int(fields[12])


SUFFIXES = {"flamegraph": "svg", "raw": "txt", "speedscope": "json"}


async def profile(options: argparse.Namespace) -> None:
    workdir = Path(tempfile.mkdtemp(prefix="intrafed-profile-"))
    out = Path(options.out)
    out.mkdir(parents=True, exist_ok=True)
    async with federation.running_federation(options.transport, workdir) as (chain, pids):
        probe = Probe(pids)
        # A short warm-up, so connections are open and caches filled before sampling.
        await run_step(
            min(options.rate, 500),
            1.0,
            chain,
            workdir,
            uac_scenario="uac_message_challenged.xml",
            uac_keys=federation.UAC_KEYS,
        )
        spies = [
            await asyncio.create_subprocess_exec(
                options.py_spy,
                "record",
                "--pid",
                str(pid),
                "--rate",
                str(SAMPLE_RATE),
                "--duration",
                str(int(options.seconds)),
                "--nonblocking",
                *(["--gil"] if options.gil else []),
                "--format",
                options.format,
                "--output",
                str(out / f"{options.transport}-{name}.{SUFFIXES[options.format]}"),
                stdout=asyncio.subprocess.DEVNULL,
                stderr=asyncio.subprocess.DEVNULL,
            )
            for name, pid in pids.items()
        ]
        before = {name: cpu_split(pid) for name, pid in pids.items()}
        step = await run_step(
            options.rate,
            options.seconds,
            chain,
            workdir,
            uac_scenario="uac_message_challenged.xml",
            uac_keys=federation.UAC_KEYS,
            probe=probe,
        )
        after = {name: cpu_split(pid) for name, pid in pids.items()}
        for spy in spies:
            await spy.wait()
        print(describe(step), flush=True)
        for name in pids:
            user = after[name][0] - before[name][0]
            system = after[name][1] - before[name][1]
            share = 100 * system / max(1, user + system)
            print(f"  {name}: {user} user + {system} system ticks ({share:.0f}% system)")


def main() -> int:
    arguments = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    arguments.add_argument("--py-spy", default="py-spy", help="the py-spy executable")
    arguments.add_argument("--transport", choices=["tcp", "tls"], default="tcp")
    arguments.add_argument("--rate", type=int, default=2000)
    arguments.add_argument("--seconds", type=float, default=10.0)
    arguments.add_argument("--out", default="bench/profiles")
    arguments.add_argument(
        "--gil", action="store_true", help="sample only while the GIL is held (CPU, not waits)"
    )
    arguments.add_argument(
        "--format", choices=list(SUFFIXES), default="flamegraph", help="py-spy's output format"
    )
    asyncio.run(profile(arguments.parse_args()))
    return 0


if __name__ == "__main__":
    sys.exit(main())
