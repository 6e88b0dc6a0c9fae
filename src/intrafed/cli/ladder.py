"""A SIP ladder between two nodes, one arrow per message, as the demo and ``trace show
--ladder`` print it."""

from __future__ import annotations

ARROW_WIDTH = 56
"""Characters between the two node columns."""


def ladder_heading(left: str, right: str, time_width: int = 7) -> str:
    """The column heads: the left node's name over its column, the right's at the end."""
    return f"{'time':>{time_width}}  {left:<{ARROW_WIDTH - len(right)}}{right}"


def arrow(text: str, rightwards: bool) -> str:
    """``|-- text ----->|`` (left to right) or ``|<-- text -----|``."""
    if len(text) > ARROW_WIDTH - 8:
        text = text[: ARROW_WIDTH - 11] + "..."
    body = f"-- {text} ".ljust(ARROW_WIDTH - 3, "-")
    return f"|{body}>|" if rightwards else f"|<{body}|"
