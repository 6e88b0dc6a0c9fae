"""Real TLS on loopback with contexts built by ``intrafed.pki``: MTLS succeeds both ways
with CA-signed certificates and fails, with a reason worth logging, for each mistake of
mission-anchors §3 (E5, E8, E10) and for a route FQDN that is not the server's name.

The server runs in a thread on blocking sockets so that both sides' errors are seen.
With TLS 1.3 a client whose certificate the server refuses completes its own handshake
and learns of the refusal on its first read (ecosystem §3, gotcha 1), so the client always
writes and reads.
"""

from __future__ import annotations

import datetime
import socket
import ssl
import subprocess
import threading
from dataclasses import dataclass
from pathlib import Path

import pytest

from intrafed.config.model import TlsProfile
from intrafed.pki import CertificateAuthority, KeyType, client_context, peer_names, server_context
from intrafed.pki.certificates import certificates_pem
from tests.lab_pki import IMP, OCS, Issued, issue, utcnow
from tests.pki.conftest import Cas

OCS_IP, IMP_IP = OCS.ip, IMP.ip  # 127.0.0.3 and 127.0.0.2, as in the demo
TIMEOUT = 5.0


@dataclass
class Outcome:
    server_error: str | None = None
    client_error: str | None = None
    server_saw: tuple[str, ...] = ()
    """The client certificate's names, as the server read them."""
    client_saw: tuple[str, ...] = ()
    version: str | None = None
    cipher: str | None = None

    @property
    def ok(self) -> bool:
        return self.server_error is None and self.client_error is None


def reason(exc: Exception) -> str:
    if isinstance(exc, ssl.SSLCertVerificationError):
        return f"{exc.reason}: {exc.verify_message}"
    if isinstance(exc, ssl.SSLError):
        return str(exc.reason or exc)
    return f"{type(exc).__name__}: {exc}"


def handshake(
    server: ssl.SSLContext,
    client: ssl.SSLContext,
    server_hostname: str,
    *,
    server_ip: str = OCS_IP,
    client_ip: str = IMP_IP,
) -> Outcome:
    """One connection from ``client_ip`` to ``server_ip``: handshake, ping, pong."""
    outcome = Outcome()
    listener = socket.create_server((server_ip, 0))
    listener.settimeout(TIMEOUT)

    def serve() -> None:
        connection, _ = listener.accept()
        connection.settimeout(TIMEOUT)
        try:
            with server.wrap_socket(connection, server_side=True) as tls:
                der = tls.getpeercert(binary_form=True)
                outcome.server_saw = peer_names(der) if der else ()
                tls.sendall(b"pong:" + tls.recv(16))
        except (ssl.SSLError, OSError) as exc:
            outcome.server_error = reason(exc)
        finally:
            connection.close()

    thread = threading.Thread(target=serve)
    thread.start()
    try:
        raw = socket.create_connection(
            listener.getsockname(), timeout=TIMEOUT, source_address=(client_ip, 0)
        )
        with client.wrap_socket(raw, server_hostname=server_hostname) as tls:
            outcome.client_saw = peer_names(tls.getpeercert(binary_form=True) or b"")
            cipher = tls.cipher()
            outcome.version, outcome.cipher = tls.version(), cipher[0] if cipher else None
            tls.sendall(b"ping")
            reply = tls.recv(16)
            if reply != b"pong:ping":
                outcome.client_error = f"no answer ({reply!r})"
    except (ssl.SSLError, OSError) as exc:
        outcome.client_error = reason(exc)
    finally:
        thread.join(2 * TIMEOUT)
        listener.close()
    return outcome


@dataclass(frozen=True)
class Node:
    """One side's certificate files and trust, ready to make contexts."""

    cert: Path
    key: Path
    cas: tuple[CertificateAuthority, ...]

    def server(
        self, *, mtls: bool = True, fips: bool = True, profile: TlsProfile = TlsProfile.DEFAULT
    ) -> ssl.SSLContext:
        roots = [ca.certificate for ca in self.cas]
        return server_context(
            self.cert, self.key, roots, require_client_cert=mtls, fips=fips, profile=profile
        )

    def client(self) -> ssl.SSLContext:
        return client_context(self.cert, self.key, [ca.certificate for ca in self.cas])


def node(tmp_path: Path, name: str, issued: Issued, *cas: CertificateAuthority) -> Node:
    cert, key = issued.write(tmp_path / name)
    return Node(cert, key, cas)


@pytest.fixture
def ocs(tmp_path: Path, cas: Cas) -> Node:
    return node(tmp_path, "ocs", issue(cas.lab, OCS), cas.lab)


@pytest.fixture
def imp(tmp_path: Path, cas: Cas) -> Node:
    return node(tmp_path, "imp", issue(cas.lab, IMP), cas.lab)


def test_mtls_succeeds_both_ways_with_ca_signed_certificates(ocs: Node, imp: Node) -> None:
    inbound = handshake(ocs.server(), imp.client(), "ocs1.example.com")
    assert inbound.ok, inbound
    assert inbound.server_saw == ("imp1.example.com", "example.com")
    assert inbound.client_saw == ("ocs1.example.com", "example.com")
    assert inbound.version == "TLSv1.2"  # the FIPS policy caps TLS at 1.2 (tls_context)
    outbound = handshake(
        imp.server(), ocs.client(), "imp1.example.com", server_ip=IMP_IP, client_ip=OCS_IP
    )
    assert outbound.ok, outbound
    assert outbound.server_saw == ("ocs1.example.com", "example.com")


def test_fips_server_and_a_tls12_only_peer_agree_on_aes_gcm(ocs: Node, imp: Node) -> None:
    client = imp.client()
    client.maximum_version = ssl.TLSVersion.TLSv1_2
    outcome = handshake(ocs.server(), client, "ocs1.example.com")
    assert outcome.ok, outcome
    assert (outcome.version, outcome.cipher) == ("TLSv1.2", "ECDHE-ECDSA-AES256-GCM-SHA384")


def test_mtls_refuses_a_client_without_certificate(ocs: Node, cas: Cas) -> None:
    anonymous = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    anonymous.load_verify_locations(cadata=certificates_pem([cas.lab.certificate]).decode())
    outcome = handshake(ocs.server(), anonymous, "ocs1.example.com")
    assert outcome.server_error == "PEER_DID_NOT_RETURN_A_CERTIFICATE"
    assert outcome.client_error is not None
    assert outcome.server_saw == ()


def test_tls_listener_asks_for_no_client_certificate(ocs: Node, cas: Cas) -> None:
    anonymous = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    anonymous.load_verify_locations(cadata=certificates_pem([cas.lab.certificate]).decode())
    outcome = handshake(ocs.server(mtls=False), anonymous, "ocs1.example.com")
    assert outcome.ok, outcome
    assert outcome.server_saw == ()


def test_mtls_refuses_a_client_from_an_untrusted_ca(tmp_path: Path, ocs: Node, cas: Cas) -> None:
    rogue = node(tmp_path, "rogue", issue(cas.rogue, IMP), cas.lab)
    outcome = handshake(ocs.server(), rogue.client(), "ocs1.example.com")
    assert outcome.server_error == (
        "CERTIFICATE_VERIFY_FAILED: unable to get local issuer certificate"
    )
    assert outcome.client_error is not None


def test_client_refuses_a_server_from_an_untrusted_ca(tmp_path: Path, imp: Node, cas: Cas) -> None:
    rogue = node(tmp_path, "rogue", issue(cas.rogue, OCS), cas.lab)
    outcome = handshake(rogue.server(), imp.client(), "ocs1.example.com")
    assert outcome.client_error == (
        "CERTIFICATE_VERIFY_FAILED: unable to get local issuer certificate"
    )


def test_expired_certificates_are_refused_on_either_side(
    tmp_path: Path, ocs: Node, imp: Node, cas: Cas
) -> None:
    long_ago = utcnow() - datetime.timedelta(days=400)
    old_ca = CertificateAuthority.create("Old CA", key_type=KeyType.EC_P256, now=long_ago)
    trust_both = (cas.lab, old_ca)
    ocs_trusting_both = Node(ocs.cert, ocs.key, trust_both)
    expired_imp = node(tmp_path, "old-imp", issue(old_ca, IMP, now=long_ago, days=30), *trust_both)
    as_client = handshake(ocs_trusting_both.server(), expired_imp.client(), "ocs1.example.com")
    assert as_client.server_error == "CERTIFICATE_VERIFY_FAILED: certificate has expired"
    expired_ocs = node(tmp_path, "old-ocs", issue(old_ca, OCS, now=long_ago, days=30), old_ca)
    imp_trusting_both = Node(imp.cert, imp.key, trust_both)
    as_server = handshake(expired_ocs.server(), imp_trusting_both.client(), "ocs1.example.com")
    assert as_server.client_error == "CERTIFICATE_VERIFY_FAILED: certificate has expired"


def test_a_server_only_certificate_cannot_be_a_client(tmp_path: Path, imp: Node, cas: Cas) -> None:
    server_only = node(tmp_path, "sonly", issue(cas.lab, OCS, server_only=True), cas.lab)
    outcome = handshake(
        imp.server(), server_only.client(), "imp1.example.com", server_ip=IMP_IP, client_ip=OCS_IP
    )
    assert outcome.server_error == "CERTIFICATE_VERIFY_FAILED: unsuitable certificate purpose"
    assert outcome.client_error is not None


def test_route_fqdn_that_is_not_the_servers_name_is_refused(ocs: Node, imp: Node) -> None:
    outcome = handshake(ocs.server(), imp.client(), "ocs2.example.com")
    assert outcome.client_error == (
        "CERTIFICATE_VERIFY_FAILED: Hostname mismatch, certificate is not valid for "
        "'ocs2.example.com'."
    )
    ip_route = handshake(ocs.server(), imp.client(), OCS_IP)
    assert ip_route.client_error is not None
    assert "IP address mismatch" in ip_route.client_error


def old_client(cas: Cas, newest: ssl.TLSVersion) -> ssl.SSLContext:
    """A peer that speaks at most ``newest``; OpenSSL 3 offers TLS < 1.2 only at level 0."""
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    with pytest.warns(DeprecationWarning, match="TLSv1 is deprecated"):
        context.minimum_version = ssl.TLSVersion.TLSv1
    with pytest.warns(DeprecationWarning, match="is deprecated"):
        context.maximum_version = newest
    context.set_ciphers("DEFAULT:@SECLEVEL=0")
    context.load_verify_locations(cadata=certificates_pem([cas.lab.certificate]).decode())
    return context


@pytest.mark.parametrize("newest", [ssl.TLSVersion.TLSv1, ssl.TLSVersion.TLSv1_1])
def test_fips_policy_refuses_tls10_and_tls11_clients(
    ocs: Node, cas: Cas, newest: ssl.TLSVersion
) -> None:
    outcome = handshake(ocs.server(mtls=False), old_client(cas, newest), "ocs1.example.com")
    assert outcome.server_error == "UNSUPPORTED_PROTOCOL"
    assert outcome.client_error == "TLSV1_ALERT_PROTOCOL_VERSION"


def tls12_client(cas: Cas, ciphers: str) -> ssl.SSLContext:
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    context.maximum_version = ssl.TLSVersion.TLSv1_2
    context.set_ciphers(ciphers)
    context.load_verify_locations(cadata=certificates_pem([cas.lab.certificate]).decode())
    return context


def test_fips_policy_refuses_tls12_suites_that_are_not_aes_gcm(ocs: Node, cas: Cas) -> None:
    cbc_sha1 = tls12_client(cas, "ECDHE+AES+SHA1:RSA+AES+SHA1:@SECLEVEL=0")
    assert handshake(ocs.server(mtls=False), cbc_sha1, "ocs1.example.com").server_error == (
        "NO_SHARED_CIPHER"
    )
    chacha = tls12_client(cas, "ECDHE+CHACHA20")
    refused = handshake(ocs.server(mtls=False), chacha, "ocs1.example.com")
    assert refused.server_error == "NO_SHARED_CIPHER"
    allowed = handshake(ocs.server(mtls=False, fips=False), chacha, "ocs1.example.com")
    assert allowed.ok, allowed
    assert allowed.cipher == "ECDHE-ECDSA-CHACHA20-POLY1305"


def test_legacy_tls1_profile_admits_an_old_peer_when_fips_is_off(ocs: Node, cas: Cas) -> None:
    server = ocs.server(mtls=False, fips=False, profile=TlsProfile.LEGACY_TLS1)
    outcome = handshake(server, old_client(cas, ssl.TLSVersion.TLSv1_1), "ocs1.example.com")
    assert outcome.ok, outcome
    assert outcome.version == "TLSv1.1"


def openssl_client(server: ssl.SSLContext, *options: str) -> tuple[str | None, str]:
    """``openssl s_client`` with ``options`` against ``server``: (server error, client output)."""
    listener = socket.create_server((OCS_IP, 0))
    listener.settimeout(TIMEOUT)
    errors: list[str] = []

    def serve() -> None:
        connection, _ = listener.accept()
        connection.settimeout(TIMEOUT)
        try:
            with server.wrap_socket(connection, server_side=True) as tls:
                tls.sendall(b"pong")
        except (ssl.SSLError, OSError) as exc:
            errors.append(reason(exc))
        finally:
            connection.close()

    thread = threading.Thread(target=serve)
    thread.start()
    try:
        host, port = listener.getsockname()
        command = ["openssl", "s_client", "-connect", f"{host}:{port}", "-bind", f"{IMP_IP}:0"]
        done = subprocess.run(
            [*command, "-servername", "ocs1.example.com", *options],
            stdin=subprocess.DEVNULL,
            capture_output=True,
            timeout=TIMEOUT,
            check=False,
        )
    finally:
        thread.join(2 * TIMEOUT)
        listener.close()
    return (errors[0] if errors else None), done.stdout.decode() + done.stderr.decode()


def test_fips_policy_refuses_a_tls13_client_offering_only_chacha20(ocs: Node) -> None:
    chacha_only = ("-tls1_3", "-ciphersuites", "TLS_CHACHA20_POLY1305_SHA256")
    server_error, output = openssl_client(ocs.server(mtls=False), *chacha_only)
    assert server_error == "UNSUPPORTED_PROTOCOL"
    assert "alert protocol version" in output
    server_error, output = openssl_client(ocs.server(mtls=False, fips=False), *chacha_only)
    assert server_error is None, output
    assert "TLS_CHACHA20_POLY1305_SHA256" in output
