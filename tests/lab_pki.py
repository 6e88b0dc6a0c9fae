"""Certificates and TLS contexts for the tests, made with ``intrafed.pki`` itself (EC
P-256 keys keep it fast): node certificates, certificates for any host's names, and the
contexts our node uses. A test client's context is a plain ``ssl`` one."""

from __future__ import annotations

import datetime
import ssl
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes

from intrafed.config.model import Edition, NodeIdentity, Role
from intrafed.pki import (
    CertificateAuthority,
    KeyType,
    PrivateKey,
    client_context,
    make_csr,
    make_host_csr,
    server_context,
)
from intrafed.pki.certificates import certificates_pem, generate_key, private_key_pem

OCS = NodeIdentity(Role.OCS, "ocs1.example.com", "127.0.0.3")
IMP = NodeIdentity(Role.IMP, "imp1.example.com", "127.0.0.2")
POOL_FE = NodeIdentity(
    Role.OCS, "fe1.example.com", "127.0.0.4", Edition.ENTERPRISE, "pool.example.com"
)
DOMAINS = ("example.com",)


def utcnow() -> datetime.datetime:
    return datetime.datetime.now(datetime.UTC)


@dataclass(frozen=True)
class Issued:
    """A certificate, its key, and the chain it is presented with."""

    certificate: x509.Certificate
    key: PrivateKey
    chain: tuple[x509.Certificate, ...] = ()

    def write(self, directory: Path) -> tuple[Path, Path]:
        """``cert.pem`` (leaf then chain) and ``key.pem`` in ``directory``."""
        directory.mkdir(parents=True, exist_ok=True)
        cert_path, key_path = directory / "cert.pem", directory / "key.pem"
        cert_path.write_bytes(certificates_pem([self.certificate, *self.chain]))
        key_path.write_bytes(private_key_pem(self.key))
        return cert_path, key_path


def make_ca(cn: str) -> CertificateAuthority:
    return CertificateAuthority.create(cn, key_type=KeyType.EC_P256)


def issue(
    ca: CertificateAuthority,
    identity: NodeIdentity,
    domains: Sequence[str] = DOMAINS,
    *,
    server_only: bool = False,
    days: int = 365,
    now: datetime.datetime | None = None,
    key: PrivateKey | None = None,
) -> Issued:
    """What ``intrafed pki csr`` then ``sign`` give for ``identity``."""
    key = key if key is not None else generate_key(KeyType.EC_P256)
    csr = make_csr(identity, domains, key)
    return Issued(ca.sign(csr, days=days, server_only=server_only, now=now), key)


def issue_host(
    ca: CertificateAuthority,
    cn: str,
    *,
    dns_names: Sequence[str] = (),
    ip_addresses: Sequence[str] = (),
    server_only: bool = False,
    days: int = 365,
    now: datetime.datetime | None = None,
) -> Issued:
    """A certificate for ``CN=cn`` and exactly the SANs given (none by default)."""
    key = generate_key(KeyType.EC_P256)
    csr = make_host_csr(cn, key, dns_names=dns_names, ip_addresses=ip_addresses)
    return Issued(ca.sign(csr, days=days, server_only=server_only, now=now), key)


def issue_expired(ca: CertificateAuthority, cn: str, *, dns_names: Sequence[str]) -> Issued:
    """A certificate for ``cn`` whose 30 days of validity ended yesterday."""
    started = utcnow() - datetime.timedelta(days=31)
    return issue_host(ca, cn, dns_names=dns_names, now=started, days=30)


def issue_without_eku(
    ca: CertificateAuthority, cn: str, *, dns_names: Sequence[str] = ()
) -> Issued:
    """``issue_host``'s certificate without its EKU extension (OpenSSL takes it as good for
    anything)."""
    issued = issue_host(ca, cn, dns_names=dns_names)
    # Built with cryptography: our CA always states the EKU, as DESIGN §8 wants.
    certificate = issued.certificate
    builder = (
        x509.CertificateBuilder()
        .subject_name(certificate.subject)
        .issuer_name(certificate.issuer)
        .public_key(certificate.public_key())
        .serial_number(certificate.serial_number)
        .not_valid_before(certificate.not_valid_before_utc)
        .not_valid_after(certificate.not_valid_after_utc)
    )
    for extension in certificate.extensions:
        if not isinstance(extension.value, x509.ExtendedKeyUsage):
            builder = builder.add_extension(extension.value, critical=extension.critical)
    return Issued(builder.sign(ca.key, hashes.SHA256()), issued.key)


def ca_pem(ca: CertificateAuthority) -> bytes:
    """The CA certificate as PEM, what a peer's CA file holds."""
    return certificates_pem([ca.certificate])


def read_csr(path: Path) -> x509.CertificateSigningRequest:
    return x509.load_pem_x509_csr(path.read_bytes())


def node_server_context(
    issued: Issued, ca: CertificateAuthority, *, require_client_cert: bool = False
) -> ssl.SSLContext:
    """Our node's listener context presenting ``issued``; with ``require_client_cert``
    (MTLS) it accepts client certificates issued by ``ca``."""
    with tempfile.TemporaryDirectory() as directory:
        cert, key = issued.write(Path(directory))
        return server_context(cert, key, [ca.certificate], require_client_cert=require_client_cert)


def node_client_context(issued: Issued, ca: CertificateAuthority) -> ssl.SSLContext:
    """Our node's outbound context: presents ``issued``, verifies servers against ``ca``."""
    with tempfile.TemporaryDirectory() as directory:
        cert, key = issued.write(Path(directory))
        return client_context(cert, key, [ca.certificate])


def peer_client_context(ca: CertificateAuthority, issued: Issued | None = None) -> ssl.SSLContext:
    """A test client's TLS 1.2+ context trusting ``ca`` (hostname checked), presenting
    ``issued`` if given."""
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    context.load_verify_locations(cadata=ca_pem(ca).decode())
    if issued is not None:
        with tempfile.TemporaryDirectory() as directory:
            context.load_cert_chain(*issued.write(Path(directory)))
    return context
