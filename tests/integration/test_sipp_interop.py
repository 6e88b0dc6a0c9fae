"""SIPp as a third-party client of two partitions configured as the seed says.

A: SIPp registers as alice, homed on imp1, with digest authentication (401, then
   credentials), then waits for a MESSAGE and answers 200.
B: SIPp sends bob's MESSAGE to alice into ocs1 (answering a 407 with digest credentials
   when challenged); ocs1 routes it over its static route (MTLS) to imp1, which delivers it
   to SIPp A over the connection it registered on.

Debian's SIPp 3.6 computes only MD5 and answers only the first challenge, while the nodes
offer SHA-256 first (RFC 8760): both sides are configured as an administrator with such
clients configures them, ``intrafed config digest MD5 SHA-256``.
"""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

from intrafed.check import SeedDeployment
from tests.integration.federation import (
    build_partitions,
    challenge_md5_first,
    running_partitions,
)
from tests.integration.peers import SippResult, free_port, run_sipp

IMP_IP, OCS_IP = "127.0.0.100", "127.0.0.101"
SIPP_ALICE_IP, SIPP_BOB_IP = "127.0.0.103", "127.0.0.105"
CALL_ID = "interop-%u@sipp"
"""SIPp's Call-ID pattern (``-cid_str``): the same for both, so that SIPp A's call receives
the MESSAGE that SIPp B sends."""


async def interop(deployment: SeedDeployment, workdir: Path) -> tuple[SippResult, SippResult]:
    alice, bob = "alice@example.com", "bob@example.com"
    async with running_partitions(deployment) as partitions:
        (workdir / "alice").mkdir()
        (workdir / "bob").mkdir()
        receiver = asyncio.create_task(
            run_sipp(
                "uac_register_await_message.xml",
                local=(SIPP_ALICE_IP, free_port(SIPP_ALICE_IP)),
                remote=partitions.imp_listeners["TCP"],
                keys={"user": "alice"},
                extra=["-au", "alice", "-ap", deployment.password(alice), "-cid_str", CALL_ID],
                timeout=30,
                workdir=workdir / "alice",
            )
        )
        deadline = time.monotonic() + 30
        while not partitions.imp.registrar.bindings(alice, time.time()):
            if receiver.done() or time.monotonic() > deadline:
                result = await receiver
                raise AssertionError(f"alice did not register: {result.output}")
            await asyncio.sleep(0.02)
        sender = await run_sipp(
            "uac_message_challenged.xml",
            local=(SIPP_BOB_IP, free_port(SIPP_BOB_IP)),
            remote=partitions.ocs_listeners["TCP"],
            keys={"user": "alice", "sender": bob},
            extra=["-au", "bob", "-ap", deployment.password(bob), "-cid_str", CALL_ID],
            timeout=30,
            workdir=workdir / "bob",
        )
        return await receiver, sender


def test_sipp_registers_with_digest_and_receives_a_message_across_the_partition(
    tmp_path: Path,
) -> None:
    deployment = build_partitions(tmp_path / "seed", IMP_IP, OCS_IP)
    challenge_md5_first(deployment.nodes)
    receiver, sender = asyncio.run(interop(deployment, tmp_path))
    assert sender.returncode == 0, "SIPp B (bob's MESSAGE into ocs1):\n" + sender.output
    assert receiver.returncode == 0, "SIPp A (alice on imp1):\n" + receiver.output
