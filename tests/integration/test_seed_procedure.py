"""The seed's OCS and IM&P procedures done with intrafed commands, in real processes,
then MESSAGEs that cross from the OCS partition to the IM&P partition over MTLS.

alice's application server --TCP--> ocs1 --MTLS (route by FQDN, Peer Auth port)--> imp1
--bob's flow--> bob
A user provisioned on neither side gets 404 from imp1, which never sends it back.
"""

from __future__ import annotations

import asyncio
import json
import re
import subprocess
import sys
from pathlib import Path

from intrafed.config.model import ha1
from intrafed.sip import Request
from intrafed.sip.digest import DigestCredentials, expected_response
from intrafed.sip.responses import make_response
from tests.integration.clients import connect, message
from tests.integration.peers import free_port

OCS_IP, IMP_IP, BOB_IP, CLIENT_IP = "127.0.0.21", "127.0.0.22", "127.0.0.23", "127.0.0.24"


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

    intrafed("pki", "ca-create", "--cn", "Lab Root CA", "--out", str(ca))
    # IM and Presence: domain, application listeners, static route, TLS peer subject.
    intrafed("init", "--role", "imp", "--fqdn", "imp1.example.com", "--ip", IMP_IP, home=imp)
    intrafed("config", "domain", "add", "example.com", home=imp)
    intrafed(
        "config", "listener", "set", "--tcp", str(imp_tcp), "--peer-auth", str(imp_peer),
        "--server-auth", str(imp_server), home=imp,
    )  # fmt: skip
    intrafed(
        "config", "route", "add", "--domain", "example.com", "--transport", "TLS",
        "--port", str(ocs_mtls), "--fqdn", "ocs1.example.com", home=imp,
    )  # fmt: skip
    intrafed("config", "hosts", "add", "ocs1.example.com", OCS_IP, home=imp)
    intrafed("config", "peer-subject", "add", "ocs1.example.com", home=imp)
    users = tmp_path / "password"
    users.write_text("bob's secret\n")
    intrafed("config", "user", "add", "bob@example.com", "--password-file", str(users), home=imp)
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
    # Alice's messages come through an application server that ocs1 trusts.
    intrafed("config", "hostauth", "add", "--ip", CLIENT_IP, home=ocs)
    intrafed("config", "fips", "on", home=ocs)
    install_certificate(ocs, "ocs", ca)
    assert "restart pending" in intrafed("service", "status", home=ocs)

    async def exchange() -> tuple[int, int, int]:
        for home in (imp, ocs):
            await asyncio.to_thread(intrafed, "service", "start", home=home)
        connections: list[asyncio.StreamWriter] = []
        try:
            bob = await connect((IMP_IP, imp_tcp), BOB_IP, connections)
            bob.writer.write(register(1))
            challenged = await bob.next()
            assert challenged.status == 401  # type: ignore[union-attr]
            nonce = NONCE_RE.search(challenged.headers.get("www-authenticate") or "")
            assert nonce is not None
            bob.writer.write(register(2, authorization(nonce.group(1))))
            registered = await bob.next()
            alice = await connect((OCS_IP, ocs_tcp), CLIENT_IP, connections)
            alice.writer.write(message("bob@example.com", 1, CLIENT_IP, "alice@example.com"))
            delivered = await bob.next()
            assert isinstance(delivered, Request)
            bob.writer.write(make_response(delivered, 200, to_tag="bob").to_bytes())
            answered = await alice.next()
            alice.writer.write(message("nobody@example.com", 2, CLIENT_IP, "alice@example.com"))
            unknown = await alice.next()
            return registered.status, answered.status, unknown.status  # type: ignore[union-attr]
        finally:
            for writer in connections:
                writer.close()
            for home in (ocs, imp):
                await asyncio.to_thread(intrafed, "service", "stop", home=home)

    assert asyncio.run(exchange()) == (200, 200, 404)
    status = intrafed("service", "status", home=ocs)
    assert status.startswith("stopped")
    assert "restart pending" not in status


NONCE_RE = re.compile(r'nonce="([^"]+)"')


def authorization(nonce: str) -> str:
    """What bob's client answers to the SHA-256 challenge (RFC 8760, qop=auth)."""
    secret = ha1("bob", "example.com", "bob's secret", "SHA-256")
    response = expected_response(
        DigestCredentials("bob", "example.com", nonce, "sip:example.com", "", "SHA-256", "auth",
                          "00000001", "c0ffee"),
        secret,
        "REGISTER",
    )  # fmt: skip
    return (
        f'Authorization: Digest username="bob", realm="example.com", nonce="{nonce}", '
        f'uri="sip:example.com", response="{response}", algorithm=SHA-256, qop=auth, '
        f'nc=00000001, cnonce="c0ffee"\r\n'
    )


def register(cseq: int, authorization: str = "") -> bytes:
    return (
        "REGISTER sip:example.com SIP/2.0\r\n"
        f"Via: SIP/2.0/TCP 127.0.0.23:5099;branch=z9hG4bK-bob-{cseq}\r\nMax-Forwards: 70\r\n"
        "From: <sip:bob@example.com>;tag=b\r\nTo: <sip:bob@example.com>\r\n"
        f"Call-ID: bob-1@127.0.0.23\r\nCSeq: {cseq} REGISTER\r\n{authorization}"
        "Contact: <sip:bob@127.0.0.23:5099;transport=tcp>\r\nContent-Length: 0\r\n\r\n"
    ).encode()
