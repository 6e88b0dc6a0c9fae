"""What watching a node costs: the cross-partition MESSAGE chain of ``bench.federation``
run with nothing on, with Prometheus metrics on (scraped), and with the SIP trace on.

Each repetition runs the three, in an order that rotates from one repetition to the next,
on freshly started nodes, stepping the offered rate up (``bench.steps``: a noisy step is run
again). It prints, per rate, the median over the repetitions of each node's CPU µs per
message (from /proc, non-noisy passing steps only) and how much metrics and trace add to
it, then each setting's highest passing rate (the lowest over the repetitions).

Run from the repository root: .venv/bin/python -m bench.observability [--transport tcp|tls]
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import statistics
import sys
from collections.abc import Sequence
from dataclasses import dataclass

from bench.federation import SCRAPE_INTERVAL, measure_messages
from bench.steps import Step

SETTINGS = ("off", "metrics", "trace")
"""Nothing on; metrics on and scraped; the SIP trace on (metrics off)."""
NODES = ("A", "B")


@dataclass(frozen=True, slots=True)
class Setting:
    """One way of running the nodes, and every step it ran."""

    name: str
    runs: list[list[Step]]

    def cpu(self, rate: int, node: str) -> float | None:
        """Median µs per message of ``node`` at ``rate`` over the repetitions whose step
        there passed and was not noisy."""
        values = [
            step.load.node_us_per_message[node]
            for steps in self.runs
            for step in steps
            if step.offered == rate and step.passed and not step.noisy and step.load is not None
        ]
        return statistics.median(values) if values else None

    def capacity(self) -> int:
        """The highest passing rate, the lowest over the repetitions (0: none passed)."""
        best = [max((s.offered for s in steps if s.passed), default=0) for steps in self.runs]
        return min(best, default=0)


def cell(value: float | None) -> str:
    """A CPU figure, or a dash when there is none."""
    return f"{value:8.0f}" if value is not None else "       -"


def overhead(cost: float | None, base: float | None) -> str:
    """``cost`` against ``base`` in percent, or a dash when either is missing."""
    if cost is None or base is None:
        return "      -"
    return f"{(cost - base) / base:+7.1%}"


def report(settings: Sequence[Setting], rates: list[int]) -> list[str]:
    """The table of CPU per message per rate, and the capacities."""
    by_name = {setting.name: setting for setting in settings}
    lines = ["rate/s  node       off   metrics  (added)     trace  (added)"]
    for rate in rates:
        for node in NODES:
            off, metrics, trace = (by_name[name].cpu(rate, node) for name in SETTINGS)
            if off is None and metrics is None and trace is None:
                continue
            lines.append(
                f"{rate:6,}  {node}     {cell(off)}  {cell(metrics)}  {overhead(metrics, off)}"
                f"  {cell(trace)}  {overhead(trace, off)}"
            )
    lines.append(
        "highest passing rate: "
        + ", ".join(f"{s.name} {s.capacity():,}/s" for s in settings)
        + " (lowest over the repetitions)"
    )
    return lines


def main() -> int:
    arguments = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    arguments.add_argument("--transport", choices=["tcp", "tls"], default="tcp")
    arguments.add_argument("--rates", default="500,1000,1500,2000,2500,3000,4000,5000")
    arguments.add_argument("--step-seconds", type=float, default=5.0)
    arguments.add_argument("--repeat", type=int, default=3)
    options = arguments.parse_args()
    logging.basicConfig(level=logging.ERROR)
    rates = [int(rate) for rate in options.rates.split(",")]
    runs: dict[str, list[list[Step]]] = {name: [] for name in SETTINGS}
    for repetition in range(options.repeat):
        shift = repetition % len(SETTINGS)
        for name in SETTINGS[shift:] + SETTINGS[:shift]:
            print(
                f"repetition {repetition + 1}/{options.repeat}, {name}, "
                f"{options.transport.upper()} (load average {os.getloadavg()[0]:.2f})",
                flush=True,
            )
            scrape = SCRAPE_INTERVAL if name == "metrics" else None
            steps = measure_messages(
                options.transport, rates, options.step_seconds, scrape, name == "trace", 2
            )
            runs[name].append(asyncio.run(steps))
    settings = [Setting(name, runs[name]) for name in SETTINGS]
    print(
        f"\nCPU µs per message per node, median over {options.repeat} repetitions "
        f"({options.transport.upper()}, {options.step_seconds:g} s steps, metrics scraped "
        f"every {SCRAPE_INTERVAL:g} s):"
    )
    print("\n".join(report(settings, rates)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
