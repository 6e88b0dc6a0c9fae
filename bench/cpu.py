"""CPU accounting from /proc over one benchmark step: the CPU each node used per message,
and what the rest of the machine did meanwhile (load average, other processes, steal).

The parsers take the text of /proc files, so they are tested with plain inputs; the
readers are the only part that touches /proc.

"Ours" is the benchmark's whole process tree (this process, the nodes, SIPp, stunnel):
each process's utime + stime + cutime + cstime, so a SIPp that ends and is reaped inside
the step moves into its parent's cutime instead of vanishing. "Other" is what /proc/stat
counts as busy on all CPUs minus ours: the engineers' tests, apt, anything else.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

CLOCK_TICKS = os.sysconf("SC_CLK_TCK")
NOISY_CORE_FRACTION = 0.2
"""A step during which other processes used more than this much of one core is noisy."""


@dataclass(frozen=True, slots=True)
class ProcessTimes:
    """One /proc/PID/stat line: the parent and the CPU ticks of the process itself and of
    its reaped children."""

    pid: int
    ppid: int
    own: int
    """utime + stime"""
    children: int
    """cutime + cstime"""


def parse_pid_stat(line: str) -> ProcessTimes:
    """Parse /proc/PID/stat; the command (field 2) may hold spaces and parentheses, so the
    fields are counted from its last ``)``."""
    pid = int(line[: line.index(" ")])
    fields = line[line.rindex(")") + 2 :].split()
    # fields[0] is the state (field 3): utime is field 14, stime 15, cutime 16, cstime 17.
    ppid = int(fields[1])
    utime, stime, cutime, cstime = (int(value) for value in fields[11:15])
    return ProcessTimes(pid, ppid, utime + stime, cutime + cstime)


@dataclass(frozen=True, slots=True)
class CpuTotals:
    """The first line of /proc/stat, in ticks summed over all CPUs."""

    busy: int
    """user + nice + system + irq + softirq (guest time is inside user already)"""
    steal: int
    total: int
    """busy + idle + iowait + steal"""


def parse_proc_stat(text: str) -> CpuTotals:
    """The aggregate ``cpu`` line of /proc/stat."""
    for line in text.splitlines():
        if line.startswith("cpu "):
            values = [int(value) for value in line.split()[1:]]
            values += [0] * (8 - len(values))
            user, nice, system, idle, iowait, irq, softirq, steal = values[:8]
            busy = user + nice + system + irq + softirq
            return CpuTotals(busy, steal, busy + idle + iowait + steal)
    raise ValueError("no aggregate cpu line in /proc/stat")


def parse_loadavg(text: str) -> float:
    """The one-minute load average of /proc/loadavg."""
    return float(text.split()[0])


def tree(processes: Mapping[int, ProcessTimes], root: int) -> list[ProcessTimes]:
    """``root`` and all its descendants among ``processes``."""
    children: dict[int, list[int]] = {}
    for process in processes.values():
        children.setdefault(process.ppid, []).append(process.pid)
    found: list[ProcessTimes] = []
    waiting = [root]
    while waiting:
        pid = waiting.pop()
        if pid in processes:
            found.append(processes[pid])
        waiting += children.get(pid, [])
    return found


def tree_ticks(processes: Mapping[int, ProcessTimes], root: int) -> int:
    """The CPU ticks of ``root``'s tree, reaped children included."""
    return sum(process.own + process.children for process in tree(processes, root))


@dataclass(frozen=True, slots=True)
class Snapshot:
    """The CPU counters at one instant."""

    at: float
    """seconds (monotonic)"""
    totals: CpuTotals
    ours: int
    """ticks of the benchmark's process tree"""
    nodes: Mapping[str, int]
    """ticks of each node's process tree"""


@dataclass(frozen=True, slots=True)
class StepLoad:
    """What one step cost each node and what the machine did meanwhile."""

    node_us_per_message: Mapping[str, float]
    other_core_fraction: float
    """CPU used by processes outside the benchmark, in cores (1.0: one whole core)"""
    steal_fraction: float
    """steal over all CPU time of the step"""
    load_average: float
    """one-minute load average at the end of the step"""
    threshold: float = NOISY_CORE_FRACTION
    """the share of a core other processes may use before the step is noisy"""

    @property
    def noisy(self) -> bool:
        """Other processes used more than ``threshold`` of a core."""
        return self.other_core_fraction > self.threshold


def step_load(
    before: Snapshot,
    after: Snapshot,
    messages: int,
    load_average: float,
    ticks_per_second: int,
    threshold: float = NOISY_CORE_FRACTION,
) -> StepLoad:
    """The cost of the ``messages`` carried between two snapshots."""
    seconds = after.at - before.at
    other = (after.totals.busy - before.totals.busy) - (after.ours - before.ours)
    total = after.totals.total - before.totals.total
    per_message = {
        name: (ticks - before.nodes.get(name, 0)) * 1e6 / ticks_per_second / messages
        if messages
        else float("inf")
        for name, ticks in after.nodes.items()
    }
    return StepLoad(
        per_message,
        max(0, other) / ticks_per_second / seconds if seconds > 0 else 0.0,
        (after.totals.steal - before.totals.steal) / total if total > 0 else 0.0,
        load_average,
        threshold,
    )


def read_processes(proc: Path = Path("/proc")) -> dict[int, ProcessTimes]:
    """Every process's /proc/PID/stat (those that end while being read are skipped)."""
    found: dict[int, ProcessTimes] = {}
    for entry in proc.iterdir():
        if entry.name.isdigit():
            try:
                found[int(entry.name)] = parse_pid_stat((entry / "stat").read_text())
            except (OSError, ValueError, IndexError):
                continue
    return found


class Probe:
    """Snapshots of the benchmark's tree and of each node's processes (``nodes``: name ->
    main pid; a node's workers are its descendants)."""

    def __init__(
        self,
        nodes: Mapping[str, int],
        threshold: float = NOISY_CORE_FRACTION,
        root: int | None = None,
    ) -> None:
        self.nodes = dict(nodes)
        self.threshold = threshold
        self.root = os.getpid() if root is None else root

    def snapshot(self, at: float) -> Snapshot:
        processes = read_processes()
        totals = parse_proc_stat(Path("/proc/stat").read_text())
        return Snapshot(
            at,
            totals,
            tree_ticks(processes, self.root),
            {name: tree_ticks(processes, pid) for name, pid in self.nodes.items()},
        )

    def load(self, before: Snapshot, after: Snapshot, messages: int) -> StepLoad:
        return step_load(
            before,
            after,
            messages,
            parse_loadavg(Path("/proc/loadavg").read_text()),
            CLOCK_TICKS,
            self.threshold,
        )
