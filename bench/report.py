"""What a comparison run found, reduced to figures: each repetition's capacity, the
latency and CPU at half of it, and intrafed's ratio to Kamailio. Pure: it takes the steps
and returns text and JSON-ready values.

A figure comes only from steps that were not noisy. The capacity of a repetition is its
highest passing rung, known only if the step that stopped the ladder was quiet (a failure
under noise says nothing); over repetitions the lowest capacity counts, and at half of it
the worst p50/p99 and the highest CPU per message: the same rule for both systems.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field

from bench.steps import Step

SYSTEMS = ("intrafed", "kamailio")
TRANSPORTS = ("tcp", "tls")
LABELS = {"intrafed": "intrafed", "kamailio": "Kamailio", "tcp": "TCP", "tls": "TLS"}
NODES = ("A", "B")
"""A receives from SIPp's UAC and relays to B, where alice is registered."""


@dataclass(frozen=True, slots=True)
class Run:
    """One repetition of one system over one transport: every attempt of the rate ladder,
    then every attempt at half of the capacity found."""

    system: str
    transport: str
    repetition: int
    steps: tuple[Step, ...]
    half: tuple[Step, ...] = ()


@dataclass(frozen=True, slots=True)
class Capacity:
    """The highest passing rung of a ladder (None: none passed)."""

    rate: int | None
    noisy: bool
    """the step that stopped the ladder was noisy: the capacity is not known"""
    exhausted: bool
    """every rung passed: the capacity is at least ``rate``"""


def decisive(steps: Sequence[Step]) -> list[Step]:
    """The last attempt at each offered rate, in ladder order."""
    last: dict[int, Step] = {}
    for step in steps:
        last[step.offered] = step
    return list(last.values())


def capacity(steps: Sequence[Step]) -> Capacity:
    """The capacity a ladder shows, and whether it can be reported."""
    final = decisive(steps)
    rate = max((step.offered for step in final if step.passed), default=None)
    stop = next((step for step in final if not step.passed), None)
    if stop is None:
        return Capacity(rate, noisy=False, exhausted=bool(final))
    return Capacity(rate, noisy=stop.noisy, exhausted=False)


def half_rate(found: Capacity) -> int | None:
    """Where latency and CPU are read: half the capacity (None if no rung passed)."""
    return max(1, found.rate // 2) if found.rate is not None else None


@dataclass(frozen=True, slots=True)
class Summary:
    """The reported figures of one system over one transport (None: no figure)."""

    system: str
    transport: str
    max_rate: int | None
    """0: a quiet repetition passed no rung; None: no quiet repetition"""
    at_least: bool
    """a counted repetition passed every rung: the capacity is at least ``max_rate``"""
    noisy_repetitions: int
    half_rate: int | None = None
    p50_ms: float | None = None
    p99_ms: float | None = None
    cpu_us: dict[str, float] = field(default_factory=dict)
    """CPU per message per node at half the capacity"""


def summarise(runs: Sequence[Run]) -> Summary:
    """The figures of one system and transport over its repetitions."""
    first = runs[0]
    counted = [(run, capacity(run.steps)) for run in runs]
    known = [(run, found) for run, found in counted if not found.noisy]
    noisy = sum(1 for _, found in counted if found.noisy)
    if not known:
        return Summary(first.system, first.transport, None, False, noisy)
    # A quiet repetition where no rung passed counts as 0: it is not left out.
    lowest = min(found.rate or 0 for _, found in known)
    if lowest == 0:
        return Summary(first.system, first.transport, 0, False, noisy)
    at_least = any(found.exhausted and found.rate == lowest for _, found in known)
    halves = [run.half[-1] for run, _ in known if run.half and not run.half[-1].noisy]
    if not halves:
        return Summary(first.system, first.transport, lowest, at_least, noisy)
    cpu: dict[str, float] = {}
    for step in halves:
        for node, value in (step.load.node_us_per_message if step.load else {}).items():
            cpu[node] = max(cpu.get(node, 0.0), value)
    return Summary(
        first.system,
        first.transport,
        lowest,
        at_least,
        noisy,
        min(step.offered for step in halves),
        max(step.p50_ms for step in halves),
        max(step.p99_ms for step in halves),
        cpu,
    )


def ratio(ours: float | None, theirs: float | None) -> float | None:
    """``ours / theirs``, or None when either is missing (noisy) or ``theirs`` is zero."""
    if ours is None or theirs is None or theirs == 0 or not math.isfinite(ours / theirs):
        return None
    return ours / theirs


def common_cpu(
    runs: Sequence[Run], transport: str
) -> tuple[int, dict[str, tuple[float, float]]] | None:
    """CPU per message per node of intrafed and Kamailio at the same offered rate: the
    highest rung both passed in a quiet step (the highest value over repetitions)."""
    per_system: dict[str, dict[int, dict[str, float]]] = {system: {} for system in SYSTEMS}
    for run in runs:
        if run.transport != transport:
            continue
        for step in decisive(run.steps):
            if not step.passed or step.noisy or step.load is None:
                continue
            at_rate = per_system[run.system].setdefault(step.offered, {})
            for node, value in step.load.node_us_per_message.items():
                at_rate[node] = max(at_rate.get(node, 0.0), value)
    shared = set(per_system["intrafed"]) & set(per_system["kamailio"])
    if not shared:
        return None
    rate = max(shared)
    ours, theirs = per_system["intrafed"][rate], per_system["kamailio"][rate]
    return rate, {node: (ours[node], theirs[node]) for node in ours if node in theirs}


def figure(value: float | None, template: str = "{:,.0f}") -> str:
    return "noisy" if value is None else template.format(value)


def run_row(run: Run) -> list[str]:
    """A repetition's row: capacity, the half step, and the worst noise of its steps.
    A value measured during a noisy step is shown in parentheses: not a figure."""
    found = capacity(run.steps)
    rate = "none" if found.rate is None else f"{'>=' if found.exhausted else ''}{found.rate:,}"
    half = run.half[-1] if run.half else None
    loads = [step.load for step in (*run.steps, *run.half) if step.load is not None]
    cpu = half.load.node_us_per_message if half and half.load else {}

    def at_half(value: float | None, template: str) -> str:
        if half is None or value is None:
            return "-"
        return f"({template.format(value)})" if half.noisy else template.format(value)

    return [
        LABELS[run.system],
        LABELS[run.transport],
        str(run.repetition),
        f"({rate})" if found.noisy else rate,
        f"{half.offered:,}" if half else "-",
        at_half(half.p50_ms if half else None, "{:.1f}"),
        at_half(half.p99_ms if half else None, "{:.1f}"),
        *(at_half(cpu.get(node), "{:,.0f}") for node in NODES),
        f"{max(load.load_average for load in loads):.2f}" if loads else "-",
        f"{max(load.other_core_fraction for load in loads):.0%}" if loads else "-",
        f"{max(load.steal_fraction for load in loads):.1%}" if loads else "-",
    ]


def summary_row(summary: Summary) -> list[str]:
    rate = "none" if summary.max_rate == 0 else figure(summary.max_rate)
    if summary.at_least and summary.max_rate:
        rate = ">=" + rate
    return [
        LABELS[summary.system],
        LABELS[summary.transport],
        "all",
        rate,
        figure(summary.half_rate),
        figure(summary.p50_ms, "{:.1f}"),
        figure(summary.p99_ms, "{:.1f}"),
        *(figure(summary.cpu_us.get(node)) for node in NODES),
        "",
        "",
        "",
    ]


HEADER = [
    "system",
    "transport",
    "rep",
    "max msg/s",
    "half",
    "p50 ms",
    "p99 ms",
    "A us/msg",
    "B us/msg",
    "load",
    "others",
    "steal",
]


LEGEND = (
    "half: the offered rate of the step p50, p99 and CPU come from (half a repetition's "
    "capacity). (x): measured during a noisy step, not a figure; noisy: no quiet "
    "measurement. load: 1-min load average, others: CPU of other processes in % of one "
    "core, steal: share of CPU time; the worst step of the repetition."
)


def table(rows: Sequence[Sequence[str]]) -> str:
    """Rows under ``HEADER``, columns aligned (text left, figures right)."""
    lines = [HEADER, *rows]
    widths = [max(len(line[column]) for line in lines) for column in range(len(HEADER))]
    return "\n".join(
        "  ".join(
            cell.ljust(width) if column < 3 else cell.rjust(width)
            for column, (cell, width) in enumerate(zip(line, widths, strict=True))
        ).rstrip()
        for line in lines
    )


def ratio_lines(summaries: Mapping[tuple[str, str], Summary], runs: Sequence[Run]) -> list[str]:
    """intrafed / Kamailio per transport: capacity, and CPU per message per node at the
    same offered rate."""
    lines = []
    for transport in TRANSPORTS:
        ours = summaries.get(("intrafed", transport))
        theirs = summaries.get(("kamailio", transport))
        if ours is None or theirs is None:
            continue
        rate = ratio(
            float(ours.max_rate) if ours.max_rate is not None else None,
            float(theirs.max_rate) if theirs.max_rate is not None else None,
        )
        text = f"intrafed / Kamailio, {LABELS[transport]}: max rate {figure(rate, '{:.2f}x')}"
        common = common_cpu(runs, transport)
        if common is None:
            text += "; CPU per message: no rate both passed quietly"
        else:
            at, cpu = common
            nodes = ", ".join(
                f"{node} {figure(ratio(mine, other), '{:.2f}x')} ({mine:,.0f} vs {other:,.0f} us)"
                for node, (mine, other) in sorted(cpu.items())
            )
            text += f"; CPU per message at {at:,} msg/s: {nodes}"
        lines.append(text)
    return lines


def jsonable(value: object) -> object:
    """``value`` with dataclasses as dicts and infinities as None (JSON has none)."""
    if hasattr(value, "__dataclass_fields__"):
        return jsonable(asdict(value))  # type: ignore[call-overload]
    if isinstance(value, dict):
        return {str(key): jsonable(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [jsonable(item) for item in value]
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


def step_record(step: Step) -> object:
    """A step for the results file, with its verdicts."""
    record = jsonable(step)
    assert isinstance(record, dict)
    return {**record, "passed": step.passed, "noisy": step.noisy}


def run_record(run: Run) -> object:
    """A repetition for the results file."""
    found = capacity(run.steps)
    return {
        "system": run.system,
        "transport": run.transport,
        "repetition": run.repetition,
        "capacity": jsonable(found),
        "steps": [step_record(step) for step in run.steps],
        "half": [step_record(step) for step in run.half],
    }
