"""Real third-party peers for integration tests: SIPp (Debian sip-tester) and stunnel4.

Debian's SIPp speaks no TLS, so TLS legs put stunnel between SIPp and the node: SIPp
speaks TCP to stunnel, stunnel speaks TLS (with a client certificate for MTLS) to the node.
"""

from __future__ import annotations

import asyncio
import contextlib
import math
import shutil
import socket
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass
from pathlib import Path

from intrafed.config.model import StaticRoute
from intrafed.node import Node, NodeSettings
from intrafed.policy import PeerTrust
from intrafed.routing.health import ProbeTimings
from intrafed.transport import ListenerSpec
from tests.lab_pki import (
    ca_pem,
    issue_host,
    make_ca,
    node_client_context,
    node_server_context,
)

SIPP = shutil.which("sipp")
STUNNEL = shutil.which("stunnel4") or shutil.which("stunnel")
SCENARIOS = Path(__file__).resolve().parent.parent / "sipp"


def free_port(ip: str) -> int:
    """A TCP port nobody listens on at ``ip`` right now."""
    with socket.socket() as probe:
        probe.bind((ip, 0))
        return int(probe.getsockname()[1])


async def wait_listening(ip: str, port: int, timeout: float = 10.0) -> None:
    """Wait until something accepts TCP connections at ip:port."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while True:
        try:
            _, writer = await asyncio.open_connection(ip, port)
        except OSError:
            if loop.time() > deadline:
                raise TimeoutError(f"nothing listens on {ip}:{port} after {timeout} s") from None
            await asyncio.sleep(0.02)
            continue
        writer.close()
        with contextlib.suppress(OSError):
            await writer.wait_closed()
        return


@contextlib.asynccontextmanager
async def sipp_uas(
    scenario: str,
    *,
    local: tuple[str, int],
    calls: int,
    workdir: Path,
    keys: dict[str, str] | None = None,
    timeout: float = 60.0,
) -> AsyncIterator[asyncio.Task[SippResult]]:
    """Run a SIPp UAS in the background, listening before the block starts; stopped after."""
    task = asyncio.create_task(
        run_sipp(scenario, local=local, calls=calls, workdir=workdir, keys=keys, timeout=timeout)
    )
    try:
        await wait_listening(*local)
        yield task
    finally:
        if not task.done():
            task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task


@dataclass
class SippResult:
    """How a SIPp run ended."""

    returncode: int
    output: str


async def run_sipp(
    scenario: str,
    *,
    local: tuple[str, int],
    remote: tuple[str, int] | None = None,
    calls: int = 1,
    rate: int = 10,
    timeout: float = 60.0,
    keys: dict[str, str] | None = None,
    extra: Sequence[str] = (),
    workdir: Path,
) -> SippResult:
    """Run SIPp over TCP until ``calls`` calls end; exit status 0 means all succeeded."""
    assert SIPP is not None, "sipp is not installed (apt-get install sip-tester)"
    command = [
        SIPP,
        "-sf",
        str(SCENARIOS / scenario),
        "-t",
        "t1",
        "-i",
        local[0],
        "-p",
        str(local[1]),
        "-m",
        str(calls),
        "-r",
        str(rate),
        "-timeout",
        f"{int(timeout)}s",
        "-max_recv_loops",
        "1000",
        "-nostdin",
        "-trace_err",
        "-error_file",
        str(workdir / f"{scenario}.errors.log"),
        "-s",
        "bob",
    ]
    for name, value in (keys or {}).items():
        command += ["-key", name, value]
    command += extra
    if remote is not None:
        command.append(f"{remote[0]}:{remote[1]}")
    process = await asyncio.create_subprocess_exec(
        *command,
        stdout=asyncio.subprocess.DEVNULL,
        stderr=asyncio.subprocess.PIPE,
        cwd=workdir,
    )
    try:
        _, stderr = await asyncio.wait_for(process.communicate(), timeout + 30)
    finally:
        if process.returncode is None:
            process.kill()
            await process.wait()
    errors = workdir / f"{scenario}.errors.log"
    output = stderr.decode(errors="replace")
    if errors.exists():
        output += errors.read_text(errors="replace")[-4000:]
    return SippResult(process.returncode or 0, output)


@contextlib.asynccontextmanager
async def stunnel(
    config: str, workdir: Path, listening: list[tuple[str, int]]
) -> AsyncIterator[None]:
    """Run stunnel with ``config`` until the block ends."""
    assert STUNNEL is not None, "stunnel4 is not installed (apt-get install stunnel4)"
    path = workdir / "stunnel.conf"
    path.write_text(
        f"foreground = yes\npid =\ndebug = 4\noutput = {workdir / 'stunnel.log'}\n{config}"
    )
    process = await asyncio.create_subprocess_exec(
        STUNNEL, str(path), stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.DEVNULL
    )
    try:
        for ip, port in listening:
            await wait_listening(ip, port)
        yield
    finally:
        process.terminate()
        await process.wait()


@dataclass(frozen=True)
class TlsLegs:
    """Where stunnel wraps SIPp's TCP in TLS on both sides of the node."""

    uac_accept: tuple[str, int]
    """SIPp's UAC connects here over TCP ..."""
    node: tuple[str, int]
    """... and stunnel connects to the node's MTLS listener here, presenting the client cert."""
    node_name: str
    """The name the node's certificate must carry."""
    uas_accept: tuple[str, int]
    """The node connects here over TLS ..."""
    uas: tuple[str, int]
    """... and stunnel passes the TCP stream to SIPp's UAS here."""

    def config(self, ca: Path, client: tuple[Path, Path], server: tuple[Path, Path]) -> str:
        """The stunnel service sections."""
        return (
            f"[uac-leg]\nclient = yes\naccept = {self.uac_accept[0]}:{self.uac_accept[1]}\n"
            f"connect = {self.node[0]}:{self.node[1]}\nsni = {self.node_name}\n"
            f"checkHost = {self.node_name}\nverifyChain = yes\nCAfile = {ca}\n"
            f"cert = {client[0]}\nkey = {client[1]}\n"
            f"[uas-leg]\nclient = no\naccept = {self.uas_accept[0]}:{self.uas_accept[1]}\n"
            f"connect = {self.uas[0]}:{self.uas[1]}\ncert = {server[0]}\nkey = {server[1]}\n"
        )


NODE_IP, UAS_IP, UAC_IP, UAS_TLS_IP, UAC_TLS_IP = (
    "127.0.0.2",
    "127.0.0.3",
    "127.0.0.4",
    "127.0.0.5",
    "127.0.0.6",
)
NODE_NAME = "imp1.example.com"
SIPP_NEXT_HOP = ProbeTimings(keepalive_interval=math.inf)
"""A SIPp UAS scenario takes an OPTIONS keepalive for a call that failed: none to it."""


@dataclass(frozen=True)
class Chain:
    """A node between SIPp's UAC and UAS: where the UAC sends, and bob's Contact (and the
    other nodes the UAC's load is spread over, one UAC each)."""

    uac_remote: tuple[str, int]
    uas_local: tuple[str, int]
    contact: str
    spread_over: tuple[tuple[str, int], ...] = ()

    @property
    def entries(self) -> tuple[tuple[str, int], ...]:
        """Every address a UAC sends to."""
        return (self.uac_remote, *self.spread_over)


@contextlib.asynccontextmanager
async def proxy_chain(transport: str, workdir: Path) -> AsyncIterator[Chain]:
    """Run a node that forwards example.com to a SIPp UAS; over "tcp", or over "mtls" with
    stunnel turning both SIPp legs into TLS (client certificate towards the node)."""
    uas_local = (UAS_IP, free_port(UAS_IP))
    if transport == "tcp":
        settings = NodeSettings(
            name=NODE_NAME,
            address=NODE_IP,
            listeners=(ListenerSpec(NODE_IP, "TCP", 0),),
            routes=(StaticRoute("example.com", "TCP", uas_local[1], ip=uas_local[0]),),
            probes=SIPP_NEXT_HOP,
            # The load generator is a gateway throttled as a server, not a client.
            peers=lambda ip, names, outbound: (
                PeerTrust("host authorization") if ip == UAC_IP else None
            ),
        )
        async with running_node(settings) as bound:
            contact = f"{uas_local[0]}:{uas_local[1]};transport=tcp"
            yield Chain(bound["TCP"], uas_local, contact)
        return
    ca = make_ca("intrafed test CA")
    node_cert = issue_host(ca, NODE_NAME, dns_names=(NODE_NAME,), ip_addresses=(NODE_IP,))
    ca_path = workdir / "ca.pem"
    ca_path.write_bytes(ca_pem(ca))
    uas_tls_port = free_port(UAS_TLS_IP)
    settings = NodeSettings(
        name=NODE_NAME,
        address=NODE_IP,
        listeners=(ListenerSpec(NODE_IP, "MTLS", 0),),
        routes=(StaticRoute("example.com", "TLS", uas_tls_port, fqdn="bob.example.com"),),
        probes=SIPP_NEXT_HOP,
        hosts={"bob.example.com": UAS_TLS_IP},
        mtls_ssl=node_server_context(node_cert, ca, require_client_cert=True),
        peers=lambda ip, names, outbound: (
            PeerTrust("host authorization") if "alice-gw.example.com" in names else None
        ),
        client_ssl=node_client_context(node_cert, ca),
    )
    async with running_node(settings) as bound:
        legs = TlsLegs(
            uac_accept=(UAC_TLS_IP, free_port(UAC_TLS_IP)),
            node=bound["MTLS"],
            node_name=NODE_NAME,
            uas_accept=(UAS_TLS_IP, uas_tls_port),
            uas=uas_local,
        )
        client = issue_host(ca, "alice-gw.example.com", dns_names=("alice-gw.example.com",))
        server = issue_host(ca, "bob.example.com", dns_names=("bob.example.com",))
        config = legs.config(
            ca_path, client.write(workdir / "client"), server.write(workdir / "bob")
        )
        async with stunnel(config, workdir, [legs.uac_accept, legs.uas_accept]):
            contact = f"bob.example.com:{uas_tls_port};transport=tls"
            yield Chain(legs.uac_accept, uas_local, contact)


@contextlib.asynccontextmanager
async def running_node(settings: NodeSettings) -> AsyncIterator[dict[str, tuple[str, int]]]:
    """A started node; yields its bound listeners; stopped gracefully after the block."""
    node = Node(settings)
    bound = await node.start()
    try:
        yield bound
    finally:
        await node.stop(grace=1.0)
