"""Pure bookkeeping of the load benchmarks: readings of /proc (a process's RSS and CPU
time, a TCP connection's kernel queues), SIPp's statistics and response times, and the
percentiles of what was (or was never) answered."""

from __future__ import annotations

import csv
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from bench.steps import percentile


def vm_rss_kib(status: str) -> int:
    """The resident set size in KiB from the text of /proc/PID/status."""
    for line in status.splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    raise ValueError("no VmRSS line (is the process a zombie?)")


def cpu_seconds(stat: str, ticks: int) -> float:
    """User plus system CPU time in seconds from the text of /proc/PID/stat."""
    fields = stat[stat.rindex(")") + 2 :].split()
    return (int(fields[11]) + int(fields[12])) / ticks


def hex_address(ip: str) -> str:
    """An IPv4 address as /proc/net/tcp writes it (little-endian hex)."""
    return "".join(f"{int(part):02X}" for part in reversed(ip.split(".")))


@dataclass(frozen=True, slots=True)
class Queued:
    """Bytes in the kernel on the load's TCP connections."""

    unsent: int
    """Written by SIPp's UAC, not yet acknowledged by the node's side."""
    unread: int
    """Received at the node's side, not yet read by the node."""
    answers_unread: int
    """Responses received at SIPp's side, not yet read by SIPp (SIPp the bottleneck)."""


def queued(table: str, uac_ip: str, node: tuple[str, int]) -> Queued:
    """The queues between ``uac_ip`` and ``node`` in the text of /proc/net/tcp."""
    uac, listener = hex_address(uac_ip), f"{hex_address(node[0])}:{node[1]:04X}"
    unsent = unread = answers_unread = 0
    for line in table.splitlines()[1:]:
        fields = line.split()
        local, remote, (tx, rx) = fields[1], fields[2], fields[4].split(":")
        if local.startswith(uac) and remote == listener:
            unsent += int(tx, 16)
            answers_unread += int(rx, 16)
        elif local == listener and remote.startswith(uac):
            unread += int(rx, 16)
    return Queued(unsent, unread, answers_unread)


@dataclass(frozen=True, slots=True)
class Outcomes:
    """What came of every request SIPp's UAC offered."""

    offered: int
    ok: int
    shed: int
    other: int
    unanswered: int
    not_sent: int
    """Never went out (SIPp's send failed or its connection broke)."""

    @property
    def accounted(self) -> int:
        return self.ok + self.shed + self.other + self.unanswered + self.not_sent


def last_stats(text: str) -> dict[str, str]:
    """The last row of a SIPp statistics file (``-trace_stat``, ';'-separated), by column."""
    rows = [row for row in csv.reader(text.splitlines(), delimiter=";") if row]
    if len(rows) < 2:
        raise ValueError("SIPp wrote no statistics row")
    return dict(zip(rows[0], rows[-1], strict=False))


def outcomes(stats: Mapping[str, str], answered: Mapping[str, int]) -> Outcomes:
    """The outcomes of a UAC run from SIPp's cumulative statistics and the number of
    responses timed per response-time name (``ok``: 200, ``shed``: 503)."""

    def total(name: str) -> int:
        return int(stats.get(f"{name}(C)", "0") or 0)

    return Outcomes(
        offered=total("OutgoingCall"),
        ok=answered.get("ok", 0),
        shed=answered.get("shed", 0),
        other=total("FailedUnexpectedMessage") + total("FailedCallRejected"),
        unanswered=total("FailedTimeoutOnRecv"),
        not_sent=total("FailedCmdNotSent")
        + total("FailedOutboundCongestion")
        + total("FailedTimeoutOnSend"),
    )


def response_times(rows: Iterable[Mapping[str, str]]) -> dict[str, list[float]]:
    """Response times (ms) per response-time name from SIPp's ``-trace_rtt`` rows."""
    times: dict[str, list[float]] = {}
    for row in rows:
        times.setdefault(row["rtd_no"], []).append(float(row["response_time_ms"]))
    return times


@dataclass(frozen=True, slots=True)
class Latency:
    """p50/p99 in ms of a set of requests; those never answered count as infinite."""

    count: int
    p50_ms: float
    p99_ms: float

    @staticmethod
    def of(times: list[float], unanswered: int = 0) -> Latency:
        values = times + [float("inf")] * unanswered
        if not values:
            return Latency(0, float("nan"), float("nan"))
        return Latency(len(values), percentile(values, 0.5), percentile(values, 0.99))


def elapsed_seconds(value: str) -> float:
    """SIPp's ``ElapsedTime`` (``HH:MM:SS``, or ``HH:MM:SS:uuuuuu``) in seconds."""
    hours, minutes, seconds, *micros = (int(part) for part in value.split(":"))
    return hours * 3600 + minutes * 60 + seconds + sum(micros) / 1e6


def sending_seconds(text: str) -> float:
    """When SIPp's UAC had sent its last request: the elapsed time of the first
    statistics row (``-trace_stat``) whose outgoing calls reach the final count."""
    rows = list(csv.DictReader(text.splitlines(), delimiter=";"))
    if not rows:
        raise ValueError("SIPp wrote no statistics row")
    final = rows[-1]["OutgoingCall(C)"]
    first = next(row for row in rows if row["OutgoingCall(C)"] == final)
    return elapsed_seconds(first["ElapsedTime(C)"])
