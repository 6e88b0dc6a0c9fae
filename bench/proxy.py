"""MESSAGE throughput through one node: SIPp UAC -> node -> SIPp UAS.

Over TCP, and over MTLS with stunnel wrapping SIPp's legs (Debian's SIPp has no TLS).
The offered rate steps up; each step lasts ``--step-seconds`` and passes only with zero
failed messages and p99 <= 100 ms (DESIGN §9). Latency comes from SIPp's response times
(1 ms resolution). Every run is bounded in count and time and stops by itself.

Run from the repository root: .venv/bin/python -m bench.proxy [--transport tcp|mtls|both]
"""

from __future__ import annotations

import asyncio
import logging
import sys
import tempfile
from pathlib import Path

from bench.steps import Step, print_best, step_options, step_up
from tests.integration.peers import proxy_chain


async def measure(transport: str, rates: list[int], seconds: float) -> list[Step]:
    """Step the offered rate up through one node until a step fails."""
    workdir = Path(tempfile.mkdtemp(prefix=f"intrafed-bench-{transport}-"))
    async with proxy_chain(transport, workdir) as chain:
        return await step_up(chain, rates, seconds, workdir)


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
