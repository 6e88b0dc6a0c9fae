"""The seed's OCS and IM&P procedures done with intrafed commands, in real processes,
then a MESSAGE that crosses from the OCS node to the IM&P node over MTLS.

client --TCP--> ocs1 --MTLS (route by FQDN, Peer Auth port)--> imp1 --TCP--> UAS
"""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
from pathlib import Path

from intrafed.sip import StreamFramer, parse_message
from tests.integration.peers import free_port
from tests.integration.uas import answer_200

OCS_IP, IMP_IP, UAS_IP, CLIENT_IP = "127.0.0.21", "127.0.0.22", "127.0.0.23", "127.0.0.24"


def intrafed(*arguments: str, home: Path | None = None) -> str:
    command = [sys.executable, "-m", "intrafed", *arguments]
    if home is not None:
        command += ["--home", str(home)]
    result = subprocess.run(command, capture_output=True, text=True, check=False, timeout=60)
    assert result.returncode == 0, f"{' '.join(arguments)}: {result.stdout}{result.stderr}"
    return result.stdout


def install_certificate(home: Path, role: str, ca: Path) -> None:
    """TLS Encryption Configuration: trust the CA root, request, sign, import, select."""
    intrafed("pki", "import", "--store", "trusted", str(ca / "ca.pem"), home=home)
    intrafed("pki", "csr", "--role", role, home=home)
    [request] = (home / "pki" / "requests").glob("*.csr")
    signed = home / "signed.pem"
    intrafed("pki", "sign", "--ca", str(ca), "--csr", str(request), "--out", str(signed))
    intrafed("pki", "import", "--store", "personal", str(signed), home=home)
    listing = json.loads(intrafed("pki", "list", "--json", home=home))
    [certificate] = [c for c in listing["certificates"] if c["store"] == "personal"]
    intrafed("pki", "select", certificate["thumbprint"], home=home)


def test_ocs_and_imp_configured_as_the_seed_says_carry_a_message_over_mtls(tmp_path: Path) -> None:
    ocs, imp, ca = tmp_path / "ocs1", tmp_path / "imp1", tmp_path / "ca"
    ocs_tcp, ocs_mtls = free_port(OCS_IP), free_port(OCS_IP)
    imp_tcp, imp_peer, imp_server = free_port(IMP_IP), free_port(IMP_IP), free_port(IMP_IP)
    uas_port = free_port(UAS_IP)

    intrafed("pki", "ca-create", "--cn", "Lab Root CA", "--out", str(ca))
    # IM and Presence: domain, application listeners, static route, TLS peer subject.
    intrafed("init", "--role", "imp", "--fqdn", "imp1.example.com", "--ip", IMP_IP, home=imp)
    intrafed("config", "domain", "add", "example.com", home=imp)
    intrafed(
        "config", "listener", "set", "--tcp", str(imp_tcp), "--peer-auth", str(imp_peer),
        "--server-auth", str(imp_server), home=imp,
    )  # fmt: skip
    intrafed(
        "config", "route", "add", "--domain", "example.com", "--transport", "TCP",
        "--port", str(uas_port), "--ip", UAS_IP, home=imp,
    )  # fmt: skip
    intrafed("config", "peer-subject", "add", "ocs1.example.com", home=imp)
    install_certificate(imp, "imp", ca)
    # OCS: domain verification, Enable Port 5060/5061, static route by FQDN to the Peer
    # Auth port, host authorization (FQDN and IP for TLS), FIPS, certificate.
    intrafed("init", "--role", "ocs", "--fqdn", "ocs1.example.com", "--ip", OCS_IP, home=ocs)
    intrafed("config", "domain", "add", "example.com", home=ocs)
    intrafed(
        "config",
        "connection",
        "add",
        "--transport",
        "TCP",
        "--port",
        str(ocs_tcp),
        "--ip",
        OCS_IP,
        home=ocs,
    )
    intrafed(
        "config",
        "connection",
        "add",
        "--transport",
        "MTLS",
        "--port",
        str(ocs_mtls),
        "--ip",
        OCS_IP,
        home=ocs,
    )
    intrafed(
        "config", "route", "add", "--domain", "example.com", "--transport", "TLS",
        "--port", str(imp_peer), "--fqdn", "imp1.example.com", home=ocs,
    )  # fmt: skip
    intrafed("config", "hosts", "add", "imp1.example.com", IMP_IP, home=ocs)
    intrafed("config", "hostauth", "add", "--fqdn", "imp1.example.com", home=ocs)
    intrafed("config", "hostauth", "add", "--ip", IMP_IP, home=ocs)
    intrafed("config", "fips", "on", home=ocs)
    install_certificate(ocs, "ocs", ca)
    assert "restart pending" in intrafed("service", "status", home=ocs)

    async def exchange() -> int:
        uas = await asyncio.start_server(answer_200, UAS_IP, uas_port)
        try:
            for home in (imp, ocs):
                await asyncio.to_thread(intrafed, "service", "start", home=home)
            reader, writer = await asyncio.open_connection(
                OCS_IP, ocs_tcp, local_addr=(CLIENT_IP, 0)
            )
            writer.write(
                b"MESSAGE sip:bob@example.com SIP/2.0\r\n"
                b"Via: SIP/2.0/TCP 127.0.0.24:5070;branch=z9hG4bK-seed-1\r\n"
                b"Max-Forwards: 70\r\nFrom: <sip:alice@example.com>;tag=1\r\n"
                b"To: <sip:bob@example.com>\r\nCall-ID: seed-1@127.0.0.24\r\n"
                b"CSeq: 1 MESSAGE\r\nContent-Length: 2\r\n\r\nhi"
            )
            framer = StreamFramer()
            while (frame := framer.next_frame()) is None:
                framer.receive_data(await asyncio.wait_for(reader.read(65536), 10))
            writer.close()
            return parse_message(frame, stream=True).status  # type: ignore[union-attr]
        finally:
            for home in (ocs, imp):
                await asyncio.to_thread(intrafed, "service", "stop", home=home)
            uas.close()

    assert asyncio.run(exchange()) == 200
    status = intrafed("service", "status", home=ocs)
    assert status.startswith("stopped")
    assert "restart pending" not in status
