"""Certificates for the pki tests, made with ``intrafed.pki`` itself (EC P-256 for speed)."""

from __future__ import annotations

import datetime
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509

from intrafed.config.model import Edition, NodeIdentity, Role
from intrafed.pki import CertificateAuthority, KeyType, PrivateKey, make_csr
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


def make_ca(cn: str) -> CertificateAuthority:
    return CertificateAuthority.create(cn, key_type=KeyType.EC_P256)


def read_csr(path: Path) -> x509.CertificateSigningRequest:
    return x509.load_pem_x509_csr(path.read_bytes())
