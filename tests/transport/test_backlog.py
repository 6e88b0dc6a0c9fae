"""The time bytes waited unread in the socket: a node behind on a connection sees it."""

from __future__ import annotations

import asyncio
import socket
import threading
import time

from intrafed.transport import Flow, ListenerSpec
from intrafed.transport.backlog import MAX_MARKS, ReadBacklog
from intrafed.transport.connection import FRAMES_PER_TURN
from tests.transport.helpers import Node, call_id_of, request, run


def test_a_read_that_drains_the_socket_is_as_old_as_the_read() -> None:
    backlog = ReadBacklog()
    assert backlog.read(500, 0, 1.0) == 1.0
    assert backlog.read(500, 0, 2.0) == 2.0


def test_bytes_left_in_the_kernel_are_as_old_as_the_read_that_saw_them_waiting() -> None:
    backlog = ReadBacklog()
    # Each read takes 100 kB and finds 300 kB more waiting; handling it takes 50 ms.
    assert backlog.read(100_000, 300_000, 0.0) == 0.0
    assert backlog.read(100_000, 300_000, 0.05) == 0.0
    assert backlog.read(100_000, 300_000, 0.10) == 0.0
    assert backlog.read(100_000, 300_000, 0.15) == 0.0  # up to 400 kB: seen at 0.0
    assert backlog.read(100_000, 300_000, 0.20) == 0.05  # up to 500 kB: seen at 0.05
    assert backlog.read(100_000, 0, 0.25) == 0.10


def test_a_read_partly_beyond_what_was_seen_waiting_counts_from_the_later_mark() -> None:
    backlog = ReadBacklog()
    backlog.read(100, 50, 0.0)  # 150 bytes received by 0.0
    assert backlog.read(100, 0, 1.0) == 1.0  # bytes 100-200: the last 50 only seen at 1.0


def test_the_marks_stay_bounded_and_later_reads_then_look_younger_never_older() -> None:
    backlog = ReadBacklog()
    for step in range(10 * MAX_MARKS):
        # The kernel holds ever more: every read would mark a new offset.
        seen = backlog.read(10, 10 * MAX_MARKS + step, float(step))
        assert seen <= step
    assert len(backlog._marks) <= MAX_MARKS


BUSY_IP, SENDER_IP, CANARY_IP = "127.0.47.1", "127.0.47.2", "127.0.47.3"
FRAMES = 1200
HANDLING = 0.001
"""Seconds the busy node spends on each frame: 1,200 frames take over a second, while one
read (at most 256 kB, about a hundred frames of 2 kB) takes about a tenth of one."""


def test_a_node_behind_on_a_connection_sees_how_long_its_bytes_waited_in_the_socket() -> None:
    """Regression: the queue delay the node sheds by was counted from the read only, so a
    megabyte waiting unread in the kernel looked like no delay at all."""
    waits: list[float] = []

    class BusyNode(Node):
        def on_message(self, flow: Flow, frame: bytes) -> None:
            waits.append(asyncio.get_running_loop().time() - flow.read_at)
            time.sleep(HANDLING)

    async def scenario() -> None:
        async with BusyNode() as node:
            address = await node.layer.listen(ListenerSpec(BUSY_IP, "TCP", 0))
            stream = b"".join(request(f"c{n}", b"x" * 2000) for n in range(FRAMES))
            with socket.create_connection(address, source_address=(SENDER_IP, 0)) as sender:
                await asyncio.to_thread(sender.sendall, stream)
                while len(waits) < FRAMES:
                    await asyncio.sleep(0.05)

    run(scenario())
    # Without the bytes' time in the kernel, no frame would look older than one read.
    assert max(waits) > 0.5
    assert min(waits) >= 0


def test_a_connection_with_a_long_queue_lets_the_others_in_between() -> None:
    """A read of hundreds of frames is handled a few dozen per loop turn: a frame that came
    meanwhile on another connection (an answer to one of our requests, a canary) does not
    wait for all of them."""
    order: list[str] = []
    written = threading.Event()

    class HoldingNode(Node):
        def on_message(self, flow: Flow, frame: bytes) -> None:
            call_id = call_id_of(frame)
            order.append(call_id)
            if call_id == "hold":
                # The node is busy until both peers have written (however slow the machine).
                assert written.wait(10)

    def peers(address: tuple[str, int]) -> None:
        with (
            socket.create_connection(address, source_address=(SENDER_IP, 0)) as busy,
            socket.create_connection(address, source_address=(CANARY_IP, 0)) as canary,
        ):
            busy.sendall(request("hold"))
            time.sleep(0.1)
            busy.sendall(b"".join(request(f"q{n}") for n in range(300)))
            canary.sendall(request("canary"))
            written.set()
            time.sleep(0.5)

    async def scenario() -> None:
        async with HoldingNode() as node:
            address = await node.layer.listen(ListenerSpec(BUSY_IP, "TCP", 0))
            await asyncio.to_thread(peers, address)

    run(scenario())
    assert len(order) == 302
    # Without the limit the canary would come last; the loop may give the busy flow a
    # few turns before it polls again, but never all of them.
    assert order.index("canary") < len(order) - 1 - FRAMES_PER_TURN
