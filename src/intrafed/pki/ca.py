"""A small certificate authority for labs and tests: a self-signed root that signs CSRs.

It issues what a Microsoft CA's "Web Server" template with Client Authentication added
gives: EKU Server and Client Authentication, the CSR's subject and SANs, nothing else
from the request.
"""

from __future__ import annotations

import datetime
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.x509.oid import NameOID

from intrafed.pki.certificates import (
    CLIENT_AUTH,
    SERVER_AUTH,
    KeyType,
    PrivateKey,
    certificates_pem,
    generate_key,
    keys_match,
    private_key_pem,
    read_bundle,
    read_private_key,
)
from intrafed.pki.errors import PkiError
from intrafed.pki.files import ensure_directory, write_private, write_public

CA_CERTIFICATE = "ca.pem"
CA_KEY = "ca.key"
DEFAULT_CA_DAYS = 3650
DEFAULT_DAYS = 365
# Start validity a little in the past so that a peer whose clock runs slow accepts it.
BACKDATE = datetime.timedelta(minutes=5)


def _utcnow(now: datetime.datetime | None) -> datetime.datetime:
    return now if now is not None else datetime.datetime.now(datetime.UTC)


def _key_usage(*, signing: bool, key_encipherment: bool) -> x509.KeyUsage:
    return x509.KeyUsage(
        digital_signature=True,
        content_commitment=False,
        key_encipherment=key_encipherment,
        data_encipherment=False,
        key_agreement=False,
        key_cert_sign=signing,
        crl_sign=signing,
        encipher_only=False,
        decipher_only=False,
    )


@dataclass(frozen=True, slots=True)
class CertificateAuthority:
    """A CA certificate and its private key."""

    certificate: x509.Certificate
    key: PrivateKey

    @classmethod
    def create(
        cls,
        cn: str,
        *,
        days: int = DEFAULT_CA_DAYS,
        key_type: KeyType = KeyType.RSA_2048,
        now: datetime.datetime | None = None,
    ) -> CertificateAuthority:
        """A new self-signed root named ``CN=cn``, valid for ``days``."""
        if not cn.strip():
            raise PkiError("--cn", "the CA needs a name", "give one, e.g. --cn 'Lab Root CA'")
        key = generate_key(key_type)
        name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn)])
        start = _utcnow(now) - BACKDATE
        certificate = (
            x509.CertificateBuilder()
            .subject_name(name)
            .issuer_name(name)
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(start)
            .not_valid_after(start + datetime.timedelta(days=days))
            .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
            .add_extension(_key_usage(signing=True, key_encipherment=False), critical=True)
            .add_extension(
                x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False
            )
            .sign(key, hashes.SHA256())
        )
        return cls(certificate, key)

    @classmethod
    def load(cls, directory: Path) -> CertificateAuthority:
        """The CA saved in ``directory`` (``ca.pem`` and ``ca.key``)."""
        cert_path, key_path = directory / CA_CERTIFICATE, directory / CA_KEY
        if not cert_path.is_file() or not key_path.is_file():
            raise PkiError(
                "--ca",
                f"{directory} holds no CA ({CA_CERTIFICATE} and {CA_KEY})",
                "create one with: intrafed pki ca-create --cn NAME --out DIR",
            )
        certificate = read_bundle(cert_path.read_bytes(), str(cert_path)).certificates[0]
        key = read_private_key(key_path.read_bytes(), str(key_path), None)
        if not keys_match(certificate, key):
            raise PkiError(
                "--ca",
                f"{key_path} is not the key of {cert_path}",
                "restore the pair that ca-create wrote",
            )
        return cls(certificate, key)

    def save(self, directory: Path) -> tuple[Path, Path]:
        """Write ``ca.pem`` and ``ca.key`` (mode 0600); refuses to replace an existing CA."""
        cert_path, key_path = directory / CA_CERTIFICATE, directory / CA_KEY
        if cert_path.exists() or key_path.exists():
            raise PkiError(
                "--out",
                f"{directory} already holds a CA",
                "choose another --out directory, or keep using that CA",
            )
        ensure_directory(directory)
        write_private(key_path, private_key_pem(self.key))
        write_public(cert_path, certificates_pem([self.certificate]))
        return cert_path, key_path

    def sign(
        self,
        csr: x509.CertificateSigningRequest,
        *,
        days: int = DEFAULT_DAYS,
        server_only: bool = False,
        now: datetime.datetime | None = None,
    ) -> x509.Certificate:
        """Issue a certificate for ``csr``: its subject and SANs, EKU Server and Client
        Authentication (Server only with ``server_only``: the classic bad certificate).

        The validity ends no later than the CA's own.
        """
        if not csr.is_signature_valid:
            raise PkiError(
                "--csr",
                "the request's signature does not verify (damaged or edited)",
                "make a new request with intrafed pki csr",
            )
        start = _utcnow(now) - BACKDATE
        end = min(start + datetime.timedelta(days=days), self.certificate.not_valid_after_utc)
        if end <= start:
            raise PkiError(
                "--ca",
                "the CA certificate has expired",
                "create a new CA and import its root into every trusted store",
            )
        public_key = csr.public_key()
        if not isinstance(public_key, rsa.RSAPublicKey | ec.EllipticCurvePublicKey):
            raise PkiError(
                "--csr",
                f"the request's key type ({type(public_key).__name__}) cannot be certified",
                "make a request with an RSA or EC key (intrafed pki csr)",
            )
        usages = [SERVER_AUTH] if server_only else [SERVER_AUTH, CLIENT_AUTH]
        builder = (
            x509.CertificateBuilder()
            .subject_name(csr.subject)
            .issuer_name(self.certificate.subject)
            .public_key(public_key)
            .serial_number(x509.random_serial_number())
            .not_valid_before(start)
            .not_valid_after(end)
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            # keyEncipherment lets an RSA key do TLS 1.2 RSA key exchange (RSA+AESGCM).
            .add_extension(
                _key_usage(
                    signing=False, key_encipherment=isinstance(public_key, rsa.RSAPublicKey)
                ),
                critical=True,
            )
            .add_extension(x509.ExtendedKeyUsage(usages), critical=False)
            .add_extension(
                x509.AuthorityKeyIdentifier.from_issuer_public_key(self.key.public_key()),
                critical=False,
            )
        )
        try:
            san = csr.extensions.get_extension_for_class(x509.SubjectAlternativeName)
        except x509.ExtensionNotFound:
            pass
        else:
            builder = builder.add_extension(san.value, critical=False)
        builder = builder.add_extension(
            x509.SubjectKeyIdentifier.from_public_key(public_key), critical=False
        )
        return builder.sign(self.key, hashes.SHA256())
