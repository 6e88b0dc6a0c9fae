"""The README's walk-through ("The seed's procedures, done with intrafed") and its
``intrafed ua`` examples, run as written: every command of their fenced ``sh`` blocks and
every ``$ `` line of their ``console`` blocks, in order, by bash, in an empty directory,
with ``intrafed`` being ``python -m intrafed`` of this checkout and real node processes.

How the commands are run, as a reader would type them:
- a command exits 0, except a refusal: when the README shows a line ``--option: …`` under
  it (the CLI's one-line refusal), it must exit 2 printing exactly that line; and
  ``intrafed service status`` shown printing ``stopped`` must exit 3 (its documented status
  for a node that does not run, the LSB and systemctl convention);
- ``export NAME=VALUE`` sets the variable for the commands after it;
- a command ending in ``&`` runs in the background, and the next command starts once it
  has printed as many lines as the README shows under it; ``wait`` waits for it (exit 0);
- the nodes listen on 127.0.0.2 and 127.0.0.3, ports 5060-5063, as written. No other test
  uses these ports (they pick free ports from 20000 up); if something else on the machine
  holds one, every ``127.0.0.2`` and ``127.0.0.3`` in the commands is replaced by another
  free pair of loopback addresses, the same way in every command.

The walk ends with a MESSAGE from alice (imp1) to bob (ocs1) and bob seeing alice go Busy.
"""

from __future__ import annotations

import contextlib
import os
import queue
import re
import shlex
import socket
import subprocess
import sys
import threading
from dataclasses import dataclass
from pathlib import Path

import pytest

README = Path(__file__).resolve().parents[2] / "README.md"
SECTIONS = (
    "## The seed's procedures, done with intrafed",
    "## `intrafed ua`: a SIP client for labs and scripts",
)
ADDRESSES = ("127.0.0.2", "127.0.0.3")
PORTS = range(5060, 5064)
REFUSAL = re.compile(r"--[a-z][a-z-]*: ")
EXPORT = re.compile(r"export ([A-Z_]+)=(\S+)")
COMMAND_TIMEOUT = 120.0
BLOCK = re.compile(r"^```(sh|console)\n(.*?)^```", re.MULTILINE | re.DOTALL)


@dataclass(frozen=True, slots=True)
class Command:
    """One command of the README and the output lines shown under it (console blocks)."""

    line: str
    shown: tuple[str, ...] = ()


def section(text: str, heading: str) -> str:
    start = text.index(heading)
    end = text.find("\n## ", start + len(heading))
    return text[start : end if end != -1 else len(text)]


def commands(text: str) -> list[Command]:
    """The commands of the fenced sh and console blocks, in order."""
    found: list[Command] = []
    for kind, body in BLOCK.findall(text):
        lines = body.splitlines()
        if kind == "sh":
            found += [Command(line) for line in lines if line.strip() and not line.startswith("#")]
            continue
        for index, line in enumerate(lines):
            if line.startswith("$ "):
                shown = []
                for after in lines[index + 1 :]:
                    if after.startswith("$ "):
                        break
                    shown.append(after)
                found.append(Command(line.removeprefix("$ "), tuple(shown)))
    return found


def documented_status(command: Command) -> int:
    """The exit status the README's output implies: 3 for a ``service status`` shown
    ``stopped``, else 0."""
    stopped = command.shown[:1] == ("stopped",)
    return 3 if stopped and command.line.startswith("intrafed service status ") else 0


def walkthrough() -> list[Command]:
    text = README.read_text(encoding="utf-8")
    return [command for heading in SECTIONS for command in commands(section(text, heading))]


def ports_free(addresses: tuple[str, ...]) -> bool:
    try:
        with contextlib.ExitStack() as held:
            for address in addresses:
                for port in PORTS:
                    held.enter_context(socket.socket()).bind((address, port))
    except OSError:
        return False
    return True


def addresses_to_use() -> dict[str, str]:
    """README address → the address the test uses (itself when the ports are free)."""
    if ports_free(ADDRESSES):
        return {address: address for address in ADDRESSES}
    for last in range(102, 250, 2):
        pair = (f"127.0.0.{last}", f"127.0.0.{last + 1}")
        if ports_free(pair):
            return dict(zip(ADDRESSES, pair, strict=True))
    pytest.fail("ports 5060-5063 are busy on 127.0.0.2/3 and on every other loopback pair")


class Reader:
    """The lines a background command prints, as they come."""

    def __init__(self, process: subprocess.Popen[str]) -> None:
        self.lines: queue.Queue[str] = queue.Queue()
        self._stdout = process.stdout
        self._thread = threading.Thread(target=self._read)
        self._thread.start()

    def _read(self) -> None:
        for line in self._stdout or ():
            self.lines.put(line)

    def rest(self) -> str:
        """Everything not read yet, once the command has ended."""
        self._thread.join(COMMAND_TIMEOUT)
        if self._stdout is not None:
            self._stdout.close()
        rest = ""
        while not self.lines.empty():
            rest += self.lines.get()
        return rest


class Shell:
    """Runs README commands in ``directory`` with ``intrafed`` on the PATH."""

    def __init__(self, directory: Path, addresses: dict[str, str]) -> None:
        self.directory = directory
        self.addresses = addresses
        bin_dir = directory / ".bin"
        bin_dir.mkdir()
        launcher = bin_dir / "intrafed"
        launcher.write_text(f'#!/bin/sh\nexec {shlex.quote(sys.executable)} -m intrafed "$@"\n')
        launcher.chmod(0o755)
        self.env = {
            name: value
            for name, value in os.environ.items()
            if not name.startswith("INTRAFED_") and name != "NO_COLOR"
        }
        self.env["PATH"] = f"{bin_dir}{os.pathsep}{self.env.get('PATH', '')}"
        if "PYTHONPATH" in self.env:  # the commands run elsewhere: keep it pointing here
            entries = self.env["PYTHONPATH"].split(os.pathsep)
            self.env["PYTHONPATH"] = os.pathsep.join(str(Path(e).resolve()) for e in entries)
        self.background: list[tuple[Command, subprocess.Popen[str], Reader]] = []
        self.outputs: dict[str, str] = {}

    def substituted(self, line: str) -> str:
        for written, used in self.addresses.items():
            line = re.sub(rf"{re.escape(written)}(?!\d)", used, line)
        return line

    def run(self, command: Command) -> None:
        line = self.substituted(command.line)
        if exported := EXPORT.fullmatch(line):
            self.env[exported.group(1)] = exported.group(2)
        elif line == "wait":
            self.wait()
        elif line.endswith("&"):
            self.start(command, line.removesuffix("&"))
        else:
            self.foreground(command, line)

    def foreground(self, command: Command, line: str) -> None:
        result = subprocess.run(
            ["bash", "-c", line],
            cwd=self.directory,
            env=self.env,
            capture_output=True,
            text=True,
            check=False,
            timeout=COMMAND_TIMEOUT,
        )
        self.outputs[command.line] = result.stdout
        said = f"$ {line}\n{result.stdout}{result.stderr}"
        if command.shown and REFUSAL.match(command.shown[0]):
            assert (result.returncode, result.stderr.strip()) == (2, command.shown[0]), said
        else:
            assert result.returncode == documented_status(command), said

    def start(self, command: Command, line: str) -> None:
        process = subprocess.Popen(
            ["bash", "-c", line],
            cwd=self.directory,
            env=self.env,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        reader = Reader(process)
        self.background.append((command, process, reader))
        printed = ""
        for _ in command.shown:
            try:
                printed += reader.lines.get(timeout=COMMAND_TIMEOUT)
            except queue.Empty:
                pytest.fail(f"$ {line}\nprinted only: {printed}")
        self.outputs[command.line] = printed

    def wait(self) -> None:
        for command, process, reader in self.background:
            returncode = process.wait(timeout=COMMAND_TIMEOUT)
            self.outputs[command.line] += reader.rest()
            assert returncode == 0, f"$ {command.line}\n{self.outputs[command.line]}"
        self.background.clear()

    def stop(self) -> None:
        """Stop what the walk started (the README leaves the nodes running)."""
        for _command, process, reader in self.background:
            process.kill()
            process.wait(timeout=COMMAND_TIMEOUT)
            reader.rest()
        for home in ("imp1", "ocs1"):
            if (self.directory / home).is_dir():
                subprocess.run(
                    ["bash", "-c", f"intrafed service stop --home {home}"],
                    cwd=self.directory,
                    env=self.env,
                    capture_output=True,
                    check=False,
                    timeout=COMMAND_TIMEOUT,
                )


def test_the_readme_walkthrough_works_as_written(tmp_path: Path) -> None:
    steps = walkthrough()
    shell = Shell(tmp_path, addresses_to_use())
    try:
        for command in steps:
            shell.run(command)
    finally:
        shell.stop()
    outputs = "\n".join(shell.outputs.values())
    assert "MESSAGE to bob@example.com: 200 OK" in outputs
    [watch] = [line for line in shell.outputs if line.startswith("intrafed ua watch alice")]
    assert "alice@example.com: Busy" in shell.outputs[watch]
    [ladder] = [line for line in shell.outputs if line.endswith("--ladder")]
    arrows = shell.outputs[ladder].splitlines()[1:]
    assert "|-- MESSAGE sip:bob@example.com" in arrows[0]
    assert "|<-- 200 OK (MESSAGE)" in arrows[1]


def test_the_walkthrough_extraction_finds_every_step() -> None:
    """A README block the extraction misses would silently go untested."""
    lines = [command.line for command in walkthrough()]
    assert lines[0].startswith("intrafed init --home ocs1")
    assert sum(line.startswith("intrafed pki select --file") for line in lines) == 2
    assert "wait" in lines
    refusals = [c for c in walkthrough() if c.shown and REFUSAL.match(c.shown[0])]
    assert [c.line.split()[:4] for c in refusals] == [["intrafed", "config", "route", "add"]]
    stopped = [c.line for c in walkthrough() if documented_status(c) == 3]
    assert stopped == ["intrafed service status --home ocs1"]
