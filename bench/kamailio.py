"""The federation topology with Kamailio as both partitions, for comparison: SIPp UAC ->
A (relays the shared domain to B, ``t_relay``) -> B (registrar: usrloc without a database)
-> SIPp UAS registered there as alice. Both are transaction-stateful.

The configurations are bench/kamailio/*.cfg, rendered into a work directory ({{NAME}}
placeholders). Over TLS the nodes talk TLS to each other with certificates of a lab CA made
by ``intrafed.pki`` (each side verifies the other, as MTLS), and stunnel wraps SIPp's legs
as for intrafed.
"""

from __future__ import annotations

import asyncio
import contextlib
import secrets
import shutil
import socket
from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass
from pathlib import Path

from tests.integration.peers import Chain, TlsLegs, free_port, run_sipp, stunnel, wait_listening
from tests.lab_pki import ca_pem, issue_host, make_ca

KAMAILIO = shutil.which("kamailio", path="/usr/sbin:/usr/bin:/sbin:/bin")
MODULES = Path("/usr/lib/x86_64-linux-gnu/kamailio/modules")
CONFIGS = Path(__file__).resolve().parent / "kamailio"
A_IP, B_IP = "127.0.0.120", "127.0.0.121"
UAS_IP, UAC_TLS_IP, UAS_TLS_IP, REGISTER_IP = (
    "127.0.0.123",
    "127.0.0.124",
    "127.0.0.125",
    "127.0.0.127",
)
A_NAME, B_NAME, ALICE_PC = "kam-a.example.com", "kam-b.example.com", "alice-pc.example.com"
DOMAIN, RECIPIENT = "example.com", "alice"
CHILDREN = 4
"""Worker processes per node (children and tcp_children): Kamailio's way to use both cores."""
START_TIMEOUT = 20.0
SHARED_MEMORY_MB = 1024


def render(template: str, values: Mapping[str, str]) -> str:
    """``template`` with each ``{{NAME}}`` replaced; every placeholder must have a value."""
    for name, value in values.items():
        template = template.replace("{{" + name + "}}", value)
    if "{{" in template:
        start = template.index("{{")
        raise ValueError(f"no value for {template[start : template.index('}}', start) + 2]}")
    return template


@dataclass(frozen=True, slots=True)
class Ports:
    """One node's listening ports."""

    tcp: int
    tls: int


def free_ports(ip: str) -> Ports:
    """Two different free ports at ``ip`` (held open together while they are chosen)."""
    with socket.socket() as tcp, socket.socket() as tls:
        tcp.bind((ip, 0))
        tls.bind((ip, 0))
        return Ports(tcp.getsockname()[1], tls.getsockname()[1])


def write_node(
    workdir: Path,
    name: str,
    template: str,
    ip: str,
    ports: Ports,
    tls: tuple[Path, Path, Path] | None,
    extra: Mapping[str, str],
) -> Path:
    """Render one node's configuration (and its tls.cfg) into ``workdir / name``."""
    directory = workdir / name
    directory.mkdir(parents=True, exist_ok=True)
    common = directory / "common.cfg"
    values = {
        "CHILDREN": str(CHILDREN),
        "IP": ip,
        "TCP_PORT": str(ports.tcp),
        "TLS_PORT": str(ports.tls),
        "MODULES": str(MODULES),
        "TLS_CONFIG": str(directory / "tls.cfg"),
        "COMMON": str(common),
        "DOMAIN": DOMAIN,
        **extra,
    }
    common.write_text(render((CONFIGS / "common.cfg").read_text(), values))
    if tls is not None:
        certificate, key, ca = tls
        tls_values = {"CERTIFICATE": str(certificate), "KEY": str(key), "CA": str(ca)}
        (directory / "tls.cfg").write_text(render((CONFIGS / "tls.cfg").read_text(), tls_values))
    path = directory / "kamailio.cfg"
    path.write_text(render((CONFIGS / template).read_text(), values))
    return path


@contextlib.asynccontextmanager
async def kamailio(
    config: Path, listening: tuple[str, int], tls: bool, workdir: Path
) -> AsyncIterator[int]:
    """Run Kamailio in the foreground (its workers are children of the yielded pid)."""
    assert KAMAILIO is not None, "kamailio is not installed (apt-get install kamailio)"
    runtime = config.parent / "run"
    runtime.mkdir(exist_ok=True)
    command = [KAMAILIO, "-DD", "-E", "-f", str(config), "-Y", str(runtime)]
    command += ["-m", str(SHARED_MEMORY_MB), *(["-A", "WITH_TLS"] if tls else [])]
    log = (config.parent / "kamailio.log").open("wb")
    process = await asyncio.create_subprocess_exec(
        *command, stdout=log, stderr=asyncio.subprocess.STDOUT, cwd=workdir
    )
    try:
        waiting = asyncio.create_task(wait_listening(*listening, timeout=START_TIMEOUT))
        exited = asyncio.create_task(process.wait())
        done, _ = await asyncio.wait({waiting, exited}, return_when=asyncio.FIRST_COMPLETED)
        if exited in done:
            waiting.cancel()
            log.flush()
            tail = (config.parent / "kamailio.log").read_text(errors="replace")[-2000:]
            raise RuntimeError(f"kamailio ({config}) exited at start:\n{tail}")
        exited.cancel()
        await waiting
        yield process.pid
    finally:
        if process.returncode is None:
            process.terminate()
            try:
                await asyncio.wait_for(process.wait(), 10)
            except TimeoutError:
                process.kill()
                await process.wait()
        log.close()


@contextlib.asynccontextmanager
async def running_kamailio(
    transport: str, workdir: Path
) -> AsyncIterator[tuple[Chain, dict[str, int]]]:
    """Kamailio A and B, alice registered on B at SIPp's UAS: the chain into A, and the
    main pids of "A" and "B"."""
    tls = transport == "tls"
    a_ports, b_ports = free_ports(A_IP), free_ports(B_IP)
    password = secrets.token_urlsafe(12)
    a_tls = b_tls = None
    ca_path = workdir / "ca.pem"
    ca = make_ca("intrafed bench CA")
    if tls:
        ca_path.write_bytes(ca_pem(ca))
        a_cert = issue_host(ca, A_NAME, dns_names=(A_NAME,), ip_addresses=(A_IP,))
        b_cert = issue_host(ca, B_NAME, dns_names=(B_NAME,), ip_addresses=(B_IP,))
        a_tls = (*a_cert.write(workdir / "a-cert"), ca_path)
        b_tls = (*b_cert.write(workdir / "b-cert"), ca_path)
    next_hop = {
        "NEXT_IP": B_IP,
        "NEXT_PORT": str(b_ports.tls if tls else b_ports.tcp),
        "NEXT_TRANSPORT": transport,
    }
    a_config = write_node(workdir, "a", "relay.cfg", A_IP, a_ports, a_tls, next_hop)
    b_config = write_node(
        workdir, "b", "registrar.cfg", B_IP, b_ports, b_tls, {"PASSWORD": password}
    )
    uas_local = (UAS_IP, free_port(UAS_IP))
    async with (
        kamailio(b_config, (B_IP, b_ports.tcp), tls, workdir) as b_pid,
        kamailio(a_config, (A_IP, a_ports.tcp), tls, workdir) as a_pid,
    ):
        pids = {"A": a_pid, "B": b_pid}
        if not tls:
            contact = f"{uas_local[0]}:{uas_local[1]};transport=tcp"
            await register(b_ports, contact, password, workdir)
            yield Chain((A_IP, a_ports.tcp), uas_local, contact), pids
            return
        legs = TlsLegs(
            uac_accept=(UAC_TLS_IP, free_port(UAC_TLS_IP)),
            node=(A_IP, a_ports.tls),
            node_name=A_NAME,
            uas_accept=(UAS_TLS_IP, free_port(UAS_TLS_IP)),
            uas=uas_local,
        )
        alice_pc = issue_host(ca, ALICE_PC, dns_names=(ALICE_PC,), ip_addresses=(UAS_TLS_IP,))
        certificate = alice_pc.write(workdir / "alice-pc")
        async with stunnel(
            legs.config(ca_path, certificate, certificate),
            workdir,
            [legs.uac_accept, legs.uas_accept],
        ):
            contact = f"{UAS_TLS_IP}:{legs.uas_accept[1]};transport=tls"
            await register(b_ports, contact, password, workdir)
            yield Chain(legs.uac_accept, uas_local, contact), pids


async def register(b_ports: Ports, contact: str, password: str, workdir: Path) -> None:
    """alice registers ``contact`` at B over TCP with SIPp (digest, as for intrafed)."""
    result = await run_sipp(
        "uac_register.xml",
        local=(REGISTER_IP, free_port(REGISTER_IP)),
        remote=(B_IP, b_ports.tcp),
        keys={"user": RECIPIENT, "contact": contact},
        extra=["-au", RECIPIENT, "-ap", password],
        timeout=10,
        workdir=workdir,
    )
    if result.returncode != 0:
        raise RuntimeError(f"{RECIPIENT} could not register at Kamailio B: {result.output}")
