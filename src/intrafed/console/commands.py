"""The intrafed commands the console runs as the administrator would type them: the
service lifecycle (restart, reload) and the fixes the checker prints."""

from __future__ import annotations

import shlex
import subprocess
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

COMMAND_TIMEOUT = 60.0
"""Seconds one command may take (a restart waits for a graceful stop and the new start)."""
APPLICABLE = (
    ("config",),
    ("service", "reload"),
    ("service", "restart"),
    ("pki", "select"),
)
"""The commands a fix button may run: configuration edits, applying them, and selecting a
certificate already in the store. Anything else (a CA, a file to write) stays a text."""


@dataclass(frozen=True, slots=True)
class Outcome:
    """What running commands gave: whether all succeeded, and their output."""

    ok: bool
    output: str


def fix_commands(fix: str, homes: Sequence[Path]) -> list[list[str]] | None:
    """The argument lists of the intrafed commands in ``fix`` (joined by ``&&``), when
    every one is applicable here and works on one of ``homes``; None otherwise."""
    try:
        words = shlex.split(fix)
    except ValueError:
        return None
    commands: list[list[str]] = [[]]
    for word in words:
        if word == "&&":
            commands.append([])
        else:
            commands[-1].append(word)
    known = {str(home) for home in homes}
    for command in commands:
        if len(command) < 2 or command[0] != "intrafed":
            return None
        if not any(tuple(command[1 : 1 + len(prefix)]) == prefix for prefix in APPLICABLE):
            return None
        if any("<" in word or "…" in word for word in command):
            return None
        if "--home" not in command[:-1] or command[command.index("--home") + 1] not in known:
            return None
    return [command[1:] for command in commands]


def run_intrafed(commands: Sequence[Sequence[str]]) -> Outcome:
    """Run each command in turn with this interpreter's intrafed; stop at the first that
    fails."""
    output: list[str] = []
    for arguments in commands:
        try:
            finished = subprocess.run(  # noqa: S603 (our own interpreter and command)
                [sys.executable, "-m", "intrafed", *arguments],
                stdin=subprocess.DEVNULL,
                capture_output=True,
                text=True,
                timeout=COMMAND_TIMEOUT,
                check=False,
            )
        except subprocess.TimeoutExpired:
            output.append(
                f"intrafed {shlex.join(arguments)}: no result within {COMMAND_TIMEOUT:g} s"
            )
            return Outcome(False, "\n".join(output))
        output.append(f"$ intrafed {shlex.join(arguments)}")
        output += [line for line in (finished.stdout + finished.stderr).splitlines() if line]
        if finished.returncode != 0:
            return Outcome(False, "\n".join(output))
    return Outcome(True, "\n".join(output))


def start_intrafed(arguments: Sequence[str]) -> None:
    """Start an intrafed command that must outlive this process (a restart of the node
    this console runs in), detached from it."""
    subprocess.Popen(  # noqa: S603 (our own interpreter and command)
        [sys.executable, "-m", "intrafed", *arguments],
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
