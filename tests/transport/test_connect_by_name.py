"""An outbound connection to a name with one A record per member (an IM&P cluster's name),
resolved by the system resolver of a real process: a member that refuses is skipped at
once, and one that does not answer after ``connect_attempt_delay``, not the whole
``connect_timeout``."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from collections.abc import Iterator
from contextlib import ExitStack
from pathlib import Path

import pytest

from tests.hosts_namespace import hosts_file, needs_root, with_hosts
from tests.paths import REPO

SILENT_IP, LIVE_IP = "127.0.48.21", "127.0.48.22"
NAME = "members.example.com"
CONNECT = """
import json, sys, time
from intrafed.transport import Destination, TransportLayer
from intrafed.transport.eventloop import run

async def main() -> None:
    layer = TransportLayer(on_message=lambda flow, frame: None, on_bad_stream=lambda f, e: None)
    started = time.monotonic()
    flow = await layer.connect(Destination("TCP", sys.argv[1], int(sys.argv[2])))
    print(json.dumps({"peer": flow.remote[0], "seconds": time.monotonic() - started}))
    await layer.close(grace=0.1)

run(main())
"""


@pytest.fixture(params=["uvloop", "asyncio"])
def event_loop_choice(request: pytest.FixtureRequest) -> str:
    """``INTRAFED_EVENT_LOOP`` for the connecting process: a node serves on uvloop when
    it is installed (``uvloop`` leaves the choice to the node), else on asyncio's loop."""
    choice: str = request.param
    return choice


@pytest.fixture
def live_port() -> Iterator[int]:
    """A port listening on ``LIVE_IP`` (the kernel completes connects to it)."""
    with socket.socket() as listener:
        listener.bind((LIVE_IP, 0))
        listener.listen(8)
        yield listener.getsockname()[1]


def connect_by_name(tmp_path: Path, port: int, event_loop: str) -> dict[str, object]:
    """What a ``TransportLayer`` in a process whose /etc/hosts names ``NAME`` at
    ``SILENT_IP`` then ``LIVE_IP`` connected to, and how long it took, on the node's event
    loop (``event_loop``: ``INTRAFED_EVENT_LOOP``)."""
    hosts = hosts_file(tmp_path / "hosts", [(SILENT_IP, NAME), (LIVE_IP, NAME)])
    argv = with_hosts(hosts, [sys.executable, "-c", CONNECT, NAME, str(port)])
    environment = {**os.environ, "PYTHONPATH": str(REPO / "src")}
    environment["INTRAFED_EVENT_LOOP"] = event_loop
    done = subprocess.run(argv, capture_output=True, text=True, timeout=30, env=environment)
    assert done.returncode == 0, done.stderr
    answer: dict[str, object] = json.loads(done.stdout)
    return answer


@needs_root
def test_a_member_that_refuses_is_skipped_for_the_next_address(
    tmp_path: Path, live_port: int, event_loop_choice: str
) -> None:
    answer = connect_by_name(tmp_path, live_port, event_loop_choice)
    assert answer["peer"] == LIVE_IP


@needs_root
def test_a_member_that_does_not_answer_costs_the_attempt_delay_not_the_connect_timeout(
    tmp_path: Path, live_port: int, event_loop_choice: str
) -> None:
    with ExitStack() as stack:
        # A listener that never accepts, its one-slot backlog taken: SYNs to it are dropped.
        silent = stack.enter_context(socket.socket())
        silent.bind((SILENT_IP, live_port))
        silent.listen(0)
        for _ in range(2):
            filler = stack.enter_context(socket.socket())
            filler.setblocking(False)
            filler.connect_ex((SILENT_IP, live_port))
        answer = connect_by_name(tmp_path, live_port, event_loop_choice)
    assert answer["peer"] == LIVE_IP
    # connect_attempt_delay is 0.25 s; connect_timeout (5 s) would have failed it.
    assert isinstance(answer["seconds"], float)
    assert answer["seconds"] < 2.0
