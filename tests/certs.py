"""A test certificate factory: CAs and leaves with chosen names, usages and validity.

EC P-256 keys keep it fast. The contexts built here are test helpers; the real TLS policy
is ``intrafed.pki``'s.
"""

from __future__ import annotations

import datetime
import ipaddress
import ssl
import tempfile
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

_EKU = {"server": ExtendedKeyUsageOID.SERVER_AUTH, "client": ExtendedKeyUsageOID.CLIENT_AUTH}


def _key_pem(key: ec.EllipticCurvePrivateKey) -> bytes:
    return key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )


def _name(cn: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn)])


@dataclass(frozen=True)
class Leaf:
    """An end-entity certificate and its key, both PEM."""

    cert_pem: bytes
    key_pem: bytes

    def write(self, directory: Path) -> tuple[Path, Path]:
        """Write ``cert.pem`` and ``key.pem`` into ``directory``; return both paths."""
        directory.mkdir(parents=True, exist_ok=True)
        cert_path, key_path = directory / "cert.pem", directory / "key.pem"
        cert_path.write_bytes(self.cert_pem)
        key_path.write_bytes(self.key_pem)
        return cert_path, key_path


@dataclass(frozen=True)
class CA:
    """A self-signed certificate authority that issues leaves."""

    key: ec.EllipticCurvePrivateKey
    cert: x509.Certificate

    @property
    def cert_pem(self) -> bytes:
        return self.cert.public_bytes(serialization.Encoding.PEM)

    def issue(
        self,
        cn: str,
        *,
        dns: tuple[str, ...] = (),
        ips: tuple[str, ...] = (),
        eku: tuple[str, ...] = ("server", "client"),
        days: int = 30,
        not_before_offset: float = 0,
        expired: bool = False,
    ) -> Leaf:
        """A leaf for ``cn`` with SANs ``dns``/``ips`` and EKUs from "server"/"client".

        ``eku=()`` leaves the EKU extension out. ``not_before_offset`` (seconds) moves the
        start of validity; ``expired`` makes a certificate that ended yesterday.
        """
        key = ec.generate_private_key(ec.SECP256R1())
        now = datetime.datetime.now(datetime.UTC)
        start = now + datetime.timedelta(seconds=not_before_offset) - datetime.timedelta(minutes=1)
        end = start + datetime.timedelta(days=days)
        if expired:
            end = now - datetime.timedelta(days=1)
            start = end - datetime.timedelta(days=days)
        builder = (
            x509.CertificateBuilder()
            .subject_name(_name(cn))
            .issuer_name(self.cert.subject)
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(start)
            .not_valid_after(end)
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .add_extension(
                x509.KeyUsage(
                    digital_signature=True,
                    content_commitment=False,
                    key_encipherment=False,
                    data_encipherment=False,
                    key_agreement=True,
                    key_cert_sign=False,
                    crl_sign=False,
                    encipher_only=False,
                    decipher_only=False,
                ),
                critical=True,
            )
        )
        names: list[x509.GeneralName] = [x509.DNSName(name) for name in dns]
        names += [x509.IPAddress(ipaddress.ip_address(ip)) for ip in ips]
        if names:
            builder = builder.add_extension(x509.SubjectAlternativeName(names), critical=False)
        if eku:
            usages = [_EKU[usage] for usage in eku]
            builder = builder.add_extension(x509.ExtendedKeyUsage(usages), critical=False)
        cert = builder.sign(self.key, hashes.SHA256())
        return Leaf(cert.public_bytes(serialization.Encoding.PEM), _key_pem(key))


def make_ca(cn: str) -> CA:
    """A fresh CA named ``cn``, valid for a year."""
    key = ec.generate_private_key(ec.SECP256R1())
    now = datetime.datetime.now(datetime.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(_name(cn))
        .issuer_name(_name(cn))
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=1))
        .not_valid_after(now + datetime.timedelta(days=365))
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=True,
                crl_sign=True,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
        .sign(key, hashes.SHA256())
    )
    return CA(key, cert)


def _load_leaf(context: ssl.SSLContext, leaf: Leaf) -> None:
    with tempfile.TemporaryDirectory() as directory:
        cert_path, key_path = leaf.write(Path(directory))
        context.load_cert_chain(cert_path, key_path)


def server_context(leaf: Leaf, ca: CA, *, require_client: bool = False) -> ssl.SSLContext:
    """A TLS 1.2+ server context presenting ``leaf``; with ``require_client``, mutual TLS
    that accepts client certificates issued by ``ca``."""
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    context.options |= ssl.OP_NO_RENEGOTIATION
    _load_leaf(context, leaf)
    if require_client:
        context.load_verify_locations(cadata=ca.cert_pem.decode())
        context.verify_mode = ssl.CERT_REQUIRED
    return context


def client_context(ca: CA, leaf: Leaf | None = None) -> ssl.SSLContext:
    """A TLS 1.2+ client context trusting ``ca`` (hostname checked), presenting ``leaf``."""
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    context.load_verify_locations(cadata=ca.cert_pem.decode())
    if leaf is not None:
        _load_leaf(context, leaf)
    return context
