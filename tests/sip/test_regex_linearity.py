"""Every regular expression applied to network input runs in linear time.

A Content-Length header followed by 60 KB of blanks once stopped a node for ~48 s: its
regex had three adjacent repeats over the same blanks. The first test audits the structure
of every pattern of the packages that read untrusted input (so a new quadratic pattern fails
by name); the second parses 256 KiB pathological messages under a CPU budget a thousand
times what they need, which the quadratic patterns overran by orders of magnitude.
"""

from __future__ import annotations

import ast
import contextlib
import importlib
import inspect
import os
import pkgutil
import re
import subprocess
import sys
from collections.abc import Iterator
from types import ModuleType

import pytest

from intrafed import policy, routing, services, sip
from intrafed.sip import StreamFramer, parse_message
from intrafed.sip.errors import RemoteSipError
from tests.paths import REPO
from tests.sip.regex_audit import backtracking_problems

_SCANNING = {"search", "sub", "subn", "findall", "finditer", "split"}
_RE_FUNCTIONS = {"compile", "match", "fullmatch", *_SCANNING}


def _modules() -> Iterator[ModuleType]:
    for package in (sip, policy, routing, services):
        for info in pkgutil.walk_packages(package.__path__, f"{package.__name__}."):
            yield importlib.import_module(info.name)


def _patterns() -> dict[str, tuple[re.Pattern[str] | re.Pattern[bytes], bool]]:
    """Every pattern of those modules by name, and whether some call scans with it."""
    found: dict[str, tuple[re.Pattern[str] | re.Pattern[bytes], bool]] = {}
    by_id: dict[int, str] = {}
    for module in _modules():
        for name, value in vars(module).items():
            if isinstance(value, re.Pattern) and id(value) not in by_id:
                by_id[id(value)] = f"{module.__name__}.{name}"
                found[by_id[id(value)]] = (value, False)
    for module in _modules():
        tree = ast.parse(inspect.getsource(module))
        for call in ast.walk(tree):
            if not (isinstance(call, ast.Call) and isinstance(call.func, ast.Attribute)):
                continue
            method, owner = call.func.attr, call.func.value
            if (
                isinstance(owner, ast.Name)
                and owner.id == "re"
                and method in _RE_FUNCTIONS
                and call.args
                and isinstance(call.args[0], ast.Constant)
                and isinstance(call.args[0].value, str)
            ):
                where = f"{module.__name__}:{call.lineno}"
                found[where] = (re.compile(call.args[0].value), method in _SCANNING)
            elif method in _SCANNING:
                target = None
                if isinstance(owner, ast.Name):
                    target = vars(module).get(owner.id)
                elif isinstance(owner, ast.Attribute) and isinstance(owner.value, ast.Name):
                    target = getattr(vars(module).get(owner.value.id), owner.attr, None)
                if isinstance(target, re.Pattern) and id(target) in by_id:
                    found[by_id[id(target)]] = (target, True)
    return found


def test_every_regex_that_reads_network_input_is_linear() -> None:
    patterns = _patterns()
    assert "intrafed.sip.framing._CONTENT_LENGTH_RE" in patterns
    assert patterns["intrafed.sip._abnf.FOLD_RE"][1], "FOLD_RE scans (sub/split)"
    problems = {
        name: found
        for name, (pattern, scanned) in patterns.items()
        if (found := backtracking_problems(pattern, scanned=scanned))
    }
    assert problems == {}


@pytest.mark.parametrize(
    ("pattern", "scanned"),
    [
        # what froze the node: Content-Length with blanks around a lazy value
        (rb"\n(?:content-length|l)[ \t]*:(?:[ \t]|\r?\n[ \t])*([^\r\n]*?)[ \t]*\r?$", False),
        (r"(?:[ \t]*;[ \t]*([a-z]+)(?:=([a-z]+))?[ \t]*)*", False),
        (r"[0-9.]*[0-9][0-9.]*", False),
        (r"[ \t]*(?P<display>[a-z]+)?[ \t]*<", False),
        (r"(?:[a-z]+\.?)*@", False),
        (r"[ \t]*\r?\n[ \t]+", True),
    ],
)
def test_the_audit_finds_the_shapes_that_backtrack(pattern: str, scanned: bool) -> None:
    assert backtracking_problems(re.compile(pattern), scanned=scanned)


def test_the_audit_accepts_an_unrolled_quoted_string() -> None:
    assert backtracking_problems(re.compile(r'"[^"\\]*(?:\\.[^"\\]*)*"'), scanned=True) == []


_RUN = 256 * 1024
_REQUEST = (
    "MESSAGE sip:bob@example.com SIP/2.0\r\nVia: SIP/2.0/TCP 192.0.2.1;branch=z9hG4bK1\r\n"
    "From: <sip:alice@example.com>;tag=1\r\nTo: <sip:bob@example.com>\r\n"
    "Call-ID: c1\r\nCSeq: 1 MESSAGE\r\nMax-Forwards: 70\r\n"
)


def _pathological() -> Iterator[bytes]:
    """256 KiB header sections built from the runs that made the old patterns backtrack."""
    blanks, tabs, quotes = " " * _RUN, "\t " * (_RUN // 2), '"' * _RUN
    for run in (blanks, tabs):
        heads = [
            f"Content-Length:{run}\r\r\n",
            f"l:\r\n{run}x\r\n",
            f"Via: SIP/2.0/TCP h;a{run}x\r\n",
            f"Via: SIP/2.0/TCP h{run}x\r\n",
            f"From: {run}x<sip:a@b>\r\nX: \r\n y\r\n",
            f'To: <sip:a@b>;a{run};x="\r\n',
            f"Contact: <tel:+{'1' * _RUN}!>\r\n",
            f"Contact: <tel:{'1.' * (_RUN // 2)}!>\r\n",
            f"X: a{run}\r\n b{run}\r\n",
            f"Event: a;b={run}\r\n",
            f"Content-Type: a/b{';c=d' * (_RUN // 4)} x\r\n",
            f"Contact: {'<sip:a@b>, ' * (_RUN // 11)},\r\n",
            f"Route: {quotes}\r\n",
        ]
        for head in heads:
            yield (_REQUEST + head + "\r\n").encode()
    yield b"OPTIONS" + b" " * _RUN + b"x\r\n\r\n"


def parse_pathological() -> int:
    """Frame and parse every pathological message (typed headers included), and frame a
    trickled start line; how many cases ran."""
    count = 0
    for data in _pathological():
        framer = StreamFramer(max_header_bytes=4 * _RUN)
        framer.receive_data(data)
        with contextlib.suppress(RemoteSipError):
            frame = framer.next_frame()
            if frame is not None:
                parse_message(frame, stream=True).validate()
        with contextlib.suppress(RemoteSipError):
            parse_message(data).validate()
        count += 1
    # a 1.5 MiB start line trickled in 16 bytes at a time: each byte is checked once
    framer = StreamFramer(max_header_bytes=2 * 1024 * 1024)
    for _ in range(96 * 1024):
        framer.receive_data(b"A" * 16)
        framer.next_frame()
    return count + 1


def test_256_kib_pathological_headers_are_parsed_within_a_cpu_budget() -> None:
    # Bounded work, not wall time: the child may use 60 s of CPU for what takes well under
    # one; the quadratic patterns needed hours for a single one of these messages.
    code = (
        "import resource\n"
        "resource.setrlimit(resource.RLIMIT_CPU, (60, 60))\n"
        "from tests.sip.test_regex_linearity import parse_pathological\n"
        "print(parse_pathological())\n"
    )
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(REPO / "src"), str(REPO)])}
    result = subprocess.run(
        [sys.executable, "-c", code], cwd=REPO, env=env, capture_output=True, text=True, check=False
    )
    assert result.returncode == 0, result.stderr[-2000:]
    assert int(result.stdout) == len(list(_pathological())) + 1
