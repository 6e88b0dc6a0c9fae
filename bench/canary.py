"""The overload bench's canary: a trusted host's MESSAGEs through the node at a steady
pace while the load runs, with the latency and status of each answer."""

from __future__ import annotations

import asyncio
import contextlib
import time
from dataclasses import dataclass, field

from bench.loadstats import Latency
from intrafed.sip import Response, StreamFramer, parse_message
from tests.integration.clients import connect, message

CANARY_IP = "127.0.0.203"
RECIPIENT = "bob@example.com"
CANARY_INTERVAL = 0.1
FORWARDING_TIMEOUT = 60.0


@dataclass
class Canary:
    """A trusted host's MESSAGEs through the node: latencies and failures."""

    latencies_ms: list[float] = field(default_factory=list)
    statuses: dict[int, int] = field(default_factory=dict)
    sent: int = 0
    first_failure: str = ""
    """The status line and Warning of the first answer that was not 200."""

    @property
    def failures(self) -> int:
        return self.sent - self.statuses.get(200, 0)

    @property
    def latency(self) -> Latency:
        return Latency.of(self.latencies_ms, self.sent - len(self.latencies_ms))


def answer_line(response: Response) -> str:
    """A response's status, reason and Warning, for the record."""
    warning = response.headers.get("warning")
    return f"{response.status} {response.reason}" + (f" ({warning})" if warning else "")


async def until_forwarding(node: tuple[str, int]) -> float:
    """Seconds until the node forwards a canary MESSAGE to the UAS and brings back its 200
    (a ladder step beyond capacity may have left the next hop down until a probe)."""
    opened: list[asyncio.StreamWriter] = []
    began = time.monotonic()
    try:
        peer = await connect(node, CANARY_IP, opened)
        for number in range(int(FORWARDING_TIMEOUT / 0.5)):
            peer.writer.write(message(RECIPIENT, 1_000_000 + number, CANARY_IP))
            answer = await peer.next()
            if isinstance(answer, Response) and answer.status == 200:
                return time.monotonic() - began
            await asyncio.sleep(0.5)
        last = answer_line(answer) if isinstance(answer, Response) else "a request"
        raise RuntimeError(f"the node does not forward after {FORWARDING_TIMEOUT:g} s: {last}")
    finally:
        for writer in opened:
            writer.close()


async def run_canary(node: tuple[str, int], seconds: float, grace: float) -> Canary:
    """Send one MESSAGE every ``CANARY_INTERVAL`` for ``seconds`` from ``CANARY_IP``;
    wait ``grace`` seconds more for the last answers."""
    canary = Canary()
    reader, writer = await asyncio.open_connection(*node, local_addr=(CANARY_IP, 0))
    sent_at: dict[str, float] = {}

    async def read() -> None:
        framer = StreamFramer()
        while data := await reader.read(65536):
            framer.receive_data(data)
            while (frame := framer.next_frame()) is not None:
                response = parse_message(frame, stream=True)
                if not isinstance(response, Response) or response.status < 200:
                    continue
                started = sent_at.pop(response.call_id, None)
                if started is None:
                    continue
                canary.statuses[response.status] = canary.statuses.get(response.status, 0) + 1
                if response.status == 200:
                    canary.latencies_ms.append((time.perf_counter() - started) * 1000)
                elif not canary.first_failure:
                    canary.first_failure = answer_line(response)

    reading = asyncio.create_task(read())
    try:
        begun = time.perf_counter()
        for number in range(int(seconds / CANARY_INTERVAL)):
            await asyncio.sleep(max(0.0, begun + number * CANARY_INTERVAL - time.perf_counter()))
            sent_at[f"m{number}@{CANARY_IP}"] = time.perf_counter()
            writer.write(message(RECIPIENT, number, CANARY_IP))
            canary.sent += 1
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(grace):
                while sent_at:
                    await asyncio.sleep(0.05)
    finally:
        reading.cancel()
        with contextlib.suppress(asyncio.CancelledError, ConnectionError):
            await reading
        writer.close()
    return canary
