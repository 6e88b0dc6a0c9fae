"""CPU per cross-partition MESSAGE in the two node cores, without sockets or a harness.

The seed's federation (``bench.loopback``: ocs1 and imp1 on a fake clock, alice and bob
registered at home) relays N pager MESSAGEs from bob on ocs1 to alice on imp1 and their
200 OK back; every run checks that each one arrived and was answered 200. Printed: CPU µs
per message (``time.process_time``, the minimum over the runs) for everything in the
process, and, from separate runs that time every call into a core, for each core. The
figures are deterministic enough to compare commits on a busy machine, unlike the
socket harness (``python -m bench``).

Run from the repository root:
.venv/bin/python -m bench.core [--messages 2000] [--runs 5] [--profile core.prof]
"""

from __future__ import annotations

import argparse
import cProfile
import functools
import io
import pstats
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from bench.loopback import (
    Federation,
    Partition,
    imp_config,
    message,
    ocs_config,
    pump,
    registered,
)
from intrafed.config import edits

WARM_UP = 50
"""Messages relayed before measuring: connections open, caches filled."""
SPACING = 0.001
"""Fake seconds between two messages (1,000 a second: timers come due as they would)."""
TIMED_METHODS = (
    "receive",
    "next_action",
    "get_timer",
    "handle_timer",
    "persist",
    "sent_on",
    "undeliverable",
)
"""Every ``NodeCore`` method ``bench.loopback`` calls."""


@dataclass
class CoreClock:
    """CPU seconds spent inside one core's methods, and how many calls were timed."""

    seconds: float = 0.0
    calls: int = 0


def timed(method: Callable[..., Any], clock: CoreClock) -> Callable[..., Any]:
    """``method`` that adds the CPU time of each call to ``clock``."""

    @functools.wraps(method)
    def call(*args: Any, **kwargs: Any) -> Any:
        started = time.process_time()
        try:
            return method(*args, **kwargs)
        finally:
            clock.seconds += time.process_time() - started
            clock.calls += 1

    return call


def time_core(partition: Partition) -> CoreClock:
    """From now on, time every call ``bench.loopback`` makes into ``partition``'s core."""
    clock = CoreClock()
    core = partition.core
    for name in TIMED_METHODS:
        setattr(core, name, timed(getattr(core, name), clock))
    return clock


def timer_cost(samples: int = 20_000) -> float:
    """CPU seconds one ``timed`` wrapper adds to a call (subtracted from the per-core
    figures, so that timing does not inflate them)."""
    clock = CoreClock()

    def nothing() -> None:
        return None

    wrapped = timed(nothing, clock)
    best = float("inf")
    for _ in range(5):
        started = time.process_time()
        for _ in range(samples):
            wrapped()
        plain_started = time.process_time()
        for _ in range(samples):
            nothing()
        ended = time.process_time()
        best = min(best, ((plain_started - started) - (ended - plain_started)) / samples)
    return max(best, 0.0)


def relay(fed: Federation, count: int) -> None:
    """Send ``count`` MESSAGEs from bob to alice, each relayed to its final response;
    raises when one did not reach alice or was not answered 200."""
    delivered = len(fed.alice.requests("MESSAGE"))
    for _ in range(count):
        request = message(fed.bob, "alice@example.com")
        fed.bob.send(request)
        pump(fed.ocs, fed.imp, fed.clock)
        fed.clock.now += SPACING
        final = fed.bob.inbox[-1]
        if getattr(final, "status", None) != 200 or final.call_id != request.call_id:
            raise RuntimeError(f"MESSAGE {request.call_id} was not answered 200: {final!r}")
    received = len(fed.alice.requests("MESSAGE")) - delivered
    if received != count:
        raise RuntimeError(f"alice received {received} of {count} MESSAGEs")
    fed.alice.inbox.clear()
    fed.bob.inbox.clear()


def warmed_federation(metered: bool = False) -> Federation:
    """The seed's federation, registered, with ``WARM_UP`` messages relayed. bob stands
    for many users: the client rate class gets the server class's limits, as in
    ``bench.federation``."""
    configs = (
        edits.set_rate_limits(
            config,
            client_rate=config.rate_limits.server.rate,
            client_burst=config.rate_limits.server.burst,
        )
        for config in (imp_config(), ocs_config())
    )
    imp, ocs = configs
    fed = registered(imp, ocs, metered)
    answer = fed.bob.call(message(fed.bob, "alice@example.com"), fed.ocs, fed.imp)
    if answer.status != 200:
        raise RuntimeError(f"the first MESSAGE got {answer.status} {answer.reason}")
    relay(fed, WARM_UP)
    return fed


def cpu_per_message(fed: Federation, count: int) -> float:
    """CPU seconds per message for ``relay(fed, count)``."""
    started = time.process_time()
    relay(fed, count)
    return (time.process_time() - started) / count


@dataclass(frozen=True)
class Figures:
    """CPU µs per message: the whole process, and each core's share."""

    total: float
    ocs: float
    imp: float

    @property
    def rest(self) -> float:
        """The fake clients and the wire."""
        return self.total - self.ocs - self.imp


def core_share(clock: CoreClock, cost: float, count: int) -> float:
    """µs per message spent in one core, the timer's own cost taken out."""
    return max(clock.seconds - clock.calls * cost, 0.0) / count * 1e6


def measure(count: int, runs: int, metered: bool = False) -> Figures:
    """The minimum over ``runs`` of each figure (``metered``: the cores count for metrics)."""
    fed = warmed_federation(metered)
    total = min(cpu_per_message(fed, count) for _ in range(runs)) * 1e6
    timed_fed = warmed_federation(metered)
    clocks = time_core(timed_fed.ocs), time_core(timed_fed.imp)
    cost = timer_cost()
    shares: list[tuple[float, float]] = []
    for _ in range(runs):
        for clock in clocks:
            clock.seconds, clock.calls = 0.0, 0
        relay(timed_fed, count)
        shares.append((core_share(clocks[0], cost, count), core_share(clocks[1], cost, count)))
    return Figures(total, min(ocs for ocs, _ in shares), min(imp for _, imp in shares))


def report(figures: Figures, count: int, runs: int) -> str:
    """The lines ``main`` prints."""
    return "\n".join(
        (
            f"cross-partition MESSAGE bob (ocs1) -> alice (imp1) and its 200 back: "
            f"{count} messages, CPU µs per message, minimum of {runs} runs",
            f"  both cores, clients and wire {figures.total:8.1f}",
            f"  ocs1 core                    {figures.ocs:8.1f}",
            f"  imp1 core                    {figures.imp:8.1f}",
            f"  fake clients and wire        {figures.rest:8.1f}",
        )
    )


def profile(count: int, path: str, metered: bool = False) -> str:
    """Profile ``relay`` of ``count`` messages with cProfile (``metered``: the cores count
    for metrics): the data goes to ``path`` (``python -m pstats``, snakeviz); returns the
    top functions by own time."""
    fed = warmed_federation(metered)
    profiler = cProfile.Profile()
    profiler.runcall(relay, fed, count)
    profiler.dump_stats(path)
    text = io.StringIO()
    pstats.Stats(path, stream=text).strip_dirs().sort_stats("tottime").print_stats(30)
    return text.getvalue()


def main() -> int:
    arguments = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    arguments.add_argument("--messages", type=int, default=2000, help="messages per run")
    arguments.add_argument("--runs", type=int, default=5, help="runs; the minimum is shown")
    arguments.add_argument(
        "--profile", metavar="PATH", help="also write a cProfile of one run to PATH"
    )
    arguments.add_argument(
        "--metrics", action="store_true", help="the cores count for metrics, as with metrics on"
    )
    options = arguments.parse_args()
    if options.messages < 1 or options.runs < 1:
        arguments.error("--messages and --runs must be at least 1")
    figures = measure(options.messages, options.runs, options.metrics)
    print(report(figures, options.messages, options.runs))
    if options.profile:
        print(profile(options.messages, options.profile, options.metrics))
    return 0


if __name__ == "__main__":
    sys.exit(main())
