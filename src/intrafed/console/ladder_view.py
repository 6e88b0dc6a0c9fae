"""The SIP ladder of the Trace page as a drawing: one lifeline per node, one arrow per
message, laid out here and drawn as SVG by the template."""

from __future__ import annotations

import datetime
from collections.abc import Sequence
from dataclasses import dataclass

from intrafed.observe.trace import LadderRow

MAX_ARROWS = 60
"""The most recent messages drawn."""
COLUMN_GAP = 420
MARGIN = 150
HEAD = 50
ROW_HEIGHT = 34
LABEL_CHARACTERS = 52


@dataclass(frozen=True, slots=True)
class Lifeline:
    """A node's column."""

    name: str
    x: int


@dataclass(frozen=True, slots=True)
class Arrow:
    """One message from ``x1`` to ``x2`` at height ``y``."""

    y: int
    x1: int
    x2: int
    label: str
    time: str
    call_id: str

    @property
    def rightwards(self) -> bool:
        """Whether it points right (the head's side)."""
        return self.x2 > self.x1

    @property
    def label_x(self) -> int:
        """Where its label is centred."""
        return (self.x1 + self.x2) // 2


@dataclass(frozen=True, slots=True)
class Ladder:
    """The drawing: its size, lifelines and arrows."""

    width: int
    height: int
    lifelines: tuple[Lifeline, ...]
    arrows: tuple[Arrow, ...]


def layout(rows: Sequence[LadderRow]) -> Ladder:
    """The last ``MAX_ARROWS`` rows laid out, nodes in name order from left to right."""
    rows = list(rows)[-MAX_ARROWS:]
    names = sorted({row.sender for row in rows} | {row.receiver for row in rows})
    lifelines = tuple(
        Lifeline(name, MARGIN + index * COLUMN_GAP) for index, name in enumerate(names)
    )
    x = {line.name: line.x for line in lifelines}
    arrows = tuple(
        Arrow(
            HEAD + (index + 1) * ROW_HEIGHT,
            x[row.sender],
            x[row.receiver],
            _short(row.first_line),
            datetime.datetime.fromtimestamp(row.at).strftime("%H:%M:%S.%f")[:-3],
            row.call_id[:12],
        )
        for index, row in enumerate(rows)
    )
    width = MARGIN * 2 + max(0, len(names) - 1) * COLUMN_GAP
    return Ladder(width, HEAD + (len(rows) + 1) * ROW_HEIGHT, lifelines, arrows)


def _short(text: str) -> str:
    return text if len(text) <= LABEL_CHARACTERS else text[: LABEL_CHARACTERS - 3] + "..."
