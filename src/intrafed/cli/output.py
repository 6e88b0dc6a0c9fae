"""Tables and colours on standard output, drawn by rich (imported only when something is
printed, so ``intrafed --help`` stays quick). Plain text, without an escape code, when
``NO_COLOR`` is set (https://no-color.org) or standard output is not a terminal."""

from __future__ import annotations

import os
import sys
from collections.abc import Sequence
from typing import TYPE_CHECKING

import click

if TYPE_CHECKING:
    from rich.console import Console

_PLAIN_WIDTH = 10_000
"""Line width when standard output is not a terminal: rows are never wrapped for a pipe."""

_RICH_ROWS = 500
"""Tables longer than this are laid out without rich, which takes minutes for 100,000 rows."""

Part = str | tuple[str, str]
"""A piece of a line: plain text, or (text, rich style) such as ``("FAIL", "bold red")``."""


def _colour() -> bool:
    return sys.stdout.isatty() and not os.environ.get("NO_COLOR")


def _console() -> Console:
    from rich.console import Console

    stream = sys.stdout
    terminal = stream.isatty()
    return Console(
        file=stream,
        # Not rich's own no_color: it keeps bold and underline, which are escape codes too.
        color_system="auto" if _colour() else None,
        force_terminal=terminal,
        width=None if terminal else _PLAIN_WIDTH,
        markup=False,
        emoji=False,
        highlight=False,
    )


def echo(*parts: Part) -> None:
    """Print one line made of ``parts`` (text from the network or a file is never read as
    markup)."""
    from rich.text import Text

    _console().print(Text.assemble(*parts), soft_wrap=True)


def print_table(headers: Sequence[str], rows: Sequence[Sequence[str]], indent: str = "") -> None:
    """Print ``rows`` under bold ``headers``, columns two spaces apart, or ``(none)``."""
    if not rows:
        click.echo(f"{indent}(none)")
        return
    if len(rows) > _RICH_ROWS or not _colour():
        _print_plain_table(headers, rows, indent)
        return
    from rich.table import Table

    table = Table(box=None, pad_edge=False, padding=(0, 1), header_style="bold")
    for header in headers:
        table.add_column(header)
    for row in rows:
        table.add_row(*row)
    console = _console()
    with console.capture() as captured:
        console.print(table)
    for line in captured.get().splitlines():
        click.echo(f"{indent}{line.rstrip()}", color=console.color_system is not None)


def _print_plain_table(headers: Sequence[str], rows: Sequence[Sequence[str]], indent: str) -> None:
    """The table as rich lays it out without colour or wrapping: each column as wide as
    its widest cell, two spaces apart, no trailing space."""
    from rich.cells import cell_len

    widths = [cell_len(header) for header in headers]
    for row in rows:
        for column, cell in enumerate(row):
            if len(cell) > widths[column] or not cell.isascii():
                widths[column] = max(widths[column], cell_len(cell))
    out = sys.stdout
    for row in (headers, *rows):
        line = "  ".join(
            cell + " " * (width - (len(cell) if cell.isascii() else cell_len(cell)))
            for cell, width in zip(row, widths, strict=True)
        )
        out.write(f"{indent}{line.rstrip()}\n")
    out.flush()
