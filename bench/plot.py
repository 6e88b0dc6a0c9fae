"""The p99 of every step against the offered rate, per transport, for both systems."""

from __future__ import annotations

import math
from collections.abc import Sequence
from pathlib import Path

from bench.report import LABELS, TRANSPORTS, Run, decisive
from bench.steps import P99_LIMIT_MS

COLOURS = {"intrafed": "tab:blue", "kamailio": "tab:orange"}


def plot(runs: Sequence[Run], path: Path, title: str) -> None:
    """Write a PNG: one panel per transport, one line per system and repetition; hollow
    markers for noisy steps, crosses for failed ones."""
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib import pyplot

    transports = [t for t in TRANSPORTS if any(run.transport == t for run in runs)]
    figure, axes = pyplot.subplots(
        1, len(transports), figsize=(6 * len(transports), 4.5), squeeze=False
    )
    for panel, transport in zip(axes[0], transports, strict=True):
        for run in runs:
            if run.transport != transport:
                continue
            steps = [step for step in decisive(run.steps) if math.isfinite(step.p99_ms)]
            colour = COLOURS[run.system]
            label = f"{LABELS[run.system]} #{run.repetition}"
            style = "-" if run.repetition == 1 else "--"
            panel.plot(
                [s.offered for s in steps],
                [s.p99_ms for s in steps],
                style,
                color=colour,
                label=label,
            )
            for step in steps:
                panel.plot(
                    step.offered,
                    step.p99_ms,
                    "x" if not step.passed else "o",
                    color=colour,
                    markerfacecolor="none" if step.noisy else colour,
                )
        panel.axhline(P99_LIMIT_MS, color="grey", linewidth=0.8, linestyle=":")
        panel.set_yscale("symlog", linthresh=1.0)
        panel.set_ylim(bottom=0)
        panel.set_xlabel("offered MESSAGE/s")
        panel.set_ylabel("p99 ms (SIPp, 1 ms resolution)")
        panel.set_title(f"{LABELS[transport]}: UAC -> A -> B -> UAS")
        panel.grid(True, alpha=0.3)
        panel.legend(fontsize="small")
    figure.suptitle(
        f"{title}\nfilled: quiet pass, hollow: noisy step, x: failed step", fontsize="small"
    )
    figure.tight_layout()
    figure.savefig(path, dpi=100)
    pyplot.close(figure)
