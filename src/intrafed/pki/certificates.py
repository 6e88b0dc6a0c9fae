"""X.509 helpers: key types, thumbprints, readable descriptions and certificate files.

Files come as administrators have them: PEM (one or more certificates, maybe a key), DER,
PKCS#7 chains (``.p7b``, what a Microsoft CA's "Download CA certificate chain" gives) and
PKCS#12 (``.pfx``/``.p12``, what Windows exports with the private key).
"""

from __future__ import annotations

import enum
import hashlib
import re
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.hazmat.primitives.asymmetric.types import PrivateKeyTypes, PublicKeyTypes
from cryptography.hazmat.primitives.serialization import pkcs7, pkcs12
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from intrafed.pki.errors import PkiError

PrivateKey = rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey
"""The key types a node can use for TLS with OCS and IM&P peers."""

SERVER_AUTH = ExtendedKeyUsageOID.SERVER_AUTH
CLIENT_AUTH = ExtendedKeyUsageOID.CLIENT_AUTH

# The names Windows shows under "Intended Purposes".
_EKU_NAMES = {
    SERVER_AUTH: "Server Authentication",
    CLIENT_AUTH: "Client Authentication",
    ExtendedKeyUsageOID.CODE_SIGNING: "Code Signing",
    ExtendedKeyUsageOID.EMAIL_PROTECTION: "Secure Email",
    ExtendedKeyUsageOID.TIME_STAMPING: "Time Stamping",
    ExtendedKeyUsageOID.OCSP_SIGNING: "OCSP Signing",
    ExtendedKeyUsageOID.ANY_EXTENDED_KEY_USAGE: "Any Purpose",
}
_PRIVATE_KEY_PEM = re.compile(rb"-----BEGIN (?:[A-Z0-9 ]+ )?PRIVATE KEY-----")
_THUMBPRINT = re.compile(r"[0-9A-F]{4,40}")
"""A thumbprint, or (as git takes commits) its first digits, at least four."""


class KeyType(enum.StrEnum):
    """Key algorithm and size for new keys. RSA 2048 is what OCS-era peers all accept."""

    RSA_2048 = "rsa-2048"
    RSA_3072 = "rsa-3072"
    EC_P256 = "ec-p256"
    EC_P384 = "ec-p384"


def generate_key(key_type: KeyType) -> PrivateKey:
    """A new private key of ``key_type``."""
    if key_type is KeyType.RSA_2048:
        return rsa.generate_private_key(public_exponent=65537, key_size=2048)
    if key_type is KeyType.RSA_3072:
        return rsa.generate_private_key(public_exponent=65537, key_size=3072)
    if key_type is KeyType.EC_P256:
        return ec.generate_private_key(ec.SECP256R1())
    return ec.generate_private_key(ec.SECP384R1())


def private_key_pem(key: PrivateKey) -> bytes:
    """Unencrypted PKCS#8 PEM: the node starts unattended, the file's mode protects it."""
    return key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )


def certificates_pem(certificates: Iterable[x509.Certificate]) -> bytes:
    """Certificates as concatenated PEM blocks, in the order given."""
    return b"".join(cert.public_bytes(serialization.Encoding.PEM) for cert in certificates)


def thumbprint(certificate: x509.Certificate) -> str:
    """SHA-1 of the DER certificate in upper-case hex, as Windows shows it."""
    der = certificate.public_bytes(serialization.Encoding.DER)
    return hashlib.sha1(der, usedforsecurity=False).hexdigest().upper()


def normalize_thumbprint(text: str) -> str:
    """A thumbprint typed by hand (any case, spaces or colons; its first four or more
    digits will do) in canonical form."""
    canonical = re.sub(r"[\s:]", "", text).upper()
    if not _THUMBPRINT.fullmatch(canonical):
        raise PkiError(
            "THUMBPRINT",
            f"{text!r} is not a certificate thumbprint",
            "give the 40 hex digits that intrafed pki list shows (or the first 4 or more)",
        )
    return canonical


def subject_text(certificate: x509.Certificate) -> str:
    """The subject as an RFC 4514 string, e.g. ``CN=ocs1.example.com``."""
    return certificate.subject.rfc4514_string()


def common_names(certificate: x509.Certificate) -> tuple[str, ...]:
    """The subject CN values."""
    return tuple(
        str(attribute.value)
        for attribute in certificate.subject.get_attributes_for_oid(NameOID.COMMON_NAME)
    )


def _san(certificate: x509.Certificate) -> x509.SubjectAlternativeName | None:
    try:
        return certificate.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    except x509.ExtensionNotFound:
        return None


def dns_names(certificate: x509.Certificate) -> tuple[str, ...]:
    """The SAN dNSName entries."""
    san = _san(certificate)
    return tuple(san.get_values_for_type(x509.DNSName)) if san is not None else ()


def san_texts(certificate: x509.Certificate) -> tuple[str, ...]:
    """Every SAN entry as ``DNS:name``, ``IP:address``, ``URI:…`` or ``email:…``."""
    san = _san(certificate)
    if san is None:
        return ()
    texts: list[str] = []
    for name in san:
        if isinstance(name, x509.DNSName):
            texts.append(f"DNS:{name.value}")
        elif isinstance(name, x509.IPAddress):
            texts.append(f"IP:{name.value}")
        elif isinstance(name, x509.UniformResourceIdentifier):
            texts.append(f"URI:{name.value}")
        elif isinstance(name, x509.RFC822Name):
            texts.append(f"email:{name.value}")
        else:
            texts.append(f"other:{name.value!r}")
    return tuple(texts)


def proven_names(certificate: x509.Certificate) -> tuple[str, ...]:
    """The names a verified certificate proves: SAN dNSNames, else the subject CN
    (RFC 5922 §7.1), lower case."""
    return tuple(name.lower() for name in dns_names(certificate) or common_names(certificate))


def has_client_auth(certificate: x509.Certificate) -> bool:
    """Whether the certificate states the Client Authentication EKU. OpenSSL takes a
    certificate with no EKU extension as good for any purpose; DESIGN §8 wants it stated."""
    usages = extended_key_usages(certificate)
    return usages is not None and x509.oid.ExtendedKeyUsageOID.CLIENT_AUTH in usages


def extended_key_usages(certificate: x509.Certificate) -> tuple[x509.ObjectIdentifier, ...] | None:
    """The EKU OIDs, or None when the certificate has no EKU extension at all."""
    try:
        usages = certificate.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
    except x509.ExtensionNotFound:
        return None
    return tuple(usages)


def eku_name(oid: x509.ObjectIdentifier) -> str:
    """``Server Authentication`` and friends; the dotted OID for the rest."""
    return _EKU_NAMES.get(oid, oid.dotted_string)


def key_description(public_key: PublicKeyTypes) -> str:
    """``RSA 2048``, ``EC P-256`` (``secp256r1``), ``Ed25519`` …"""
    if isinstance(public_key, rsa.RSAPublicKey):
        return f"RSA {public_key.key_size}"
    if isinstance(public_key, ec.EllipticCurvePublicKey):
        curve = {"secp256r1": "P-256", "secp384r1": "P-384", "secp521r1": "P-521"}
        return f"EC {curve.get(public_key.curve.name, public_key.curve.name)}"
    return type(public_key).__name__.removesuffix("PublicKey").lstrip("_")


def keys_match(certificate: x509.Certificate, key: PrivateKey) -> bool:
    """Whether ``key`` is the private half of the certificate's public key."""
    spki = serialization.PublicFormat.SubjectPublicKeyInfo
    der = serialization.Encoding.DER
    return key.public_key().public_bytes(der, spki) == certificate.public_key().public_bytes(
        der, spki
    )


@dataclass(frozen=True, slots=True)
class Bundle:
    """What one file held: certificates (file order) and perhaps a private key."""

    certificates: tuple[x509.Certificate, ...]
    key: PrivateKey | None = None


def _usable_key(key: object, name: str) -> PrivateKey:
    if isinstance(key, rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey):
        return key
    raise PkiError(
        name,
        f"the private key is {type(key).__name__.removesuffix('PrivateKey').lstrip('_')}, "
        "which OCS and IM&P peers cannot use",
        "use an RSA (2048 bits or more) or EC P-256/P-384 key",
    )


def read_private_key(data: bytes, name: str, password: bytes | None) -> PrivateKey:
    """The first private key of a PEM or DER file, decrypted with ``password`` if needed."""
    try:
        if b"-----BEGIN" in data:
            key = serialization.load_pem_private_key(data, password)
        else:
            key = serialization.load_der_private_key(data, password)
    except TypeError:
        # cryptography's way of saying "encrypted, but no password" (or the reverse).
        if password is None:
            raise PkiError(
                name, "the private key is encrypted", "give its password with --password-file FILE"
            ) from None
        key = _load_without_password(data, name)
    except ValueError:
        raise PkiError(
            name,
            "cannot read the private key (wrong password, or not a PEM/DER key)",
            "check the file and the password in --password-file",
        ) from None
    return _usable_key(key, name)


def _load_without_password(data: bytes, name: str) -> PrivateKeyTypes:
    try:
        if b"-----BEGIN" in data:
            return serialization.load_pem_private_key(data, None)
        return serialization.load_der_private_key(data, None)
    except (TypeError, ValueError):
        raise PkiError(
            name, "cannot read the private key", "check the file and the password"
        ) from None


def _pkcs12(data: bytes, name: str, password: bytes | None, *, by_name: bool) -> Bundle:
    try:
        loaded = pkcs12.load_pkcs12(data, password)
    except ValueError as exc:
        if "password" in str(exc).lower():
            fix = (
                "give the export password with --password-file FILE"
                if password is None
                else "check the export password in --password-file"
            )
            raise PkiError(
                name, "cannot open the PKCS#12 file: wrong password (or a damaged file)", fix
            ) from None
        if by_name:
            raise PkiError(
                name,
                "not a PKCS#12 (.pfx/.p12) file",
                "export the certificate again, or give a PEM or DER file",
            ) from None
        raise PkiError(
            name,
            "not a certificate file",
            "give a certificate in PEM, DER, PKCS#7 (.p7b) or PKCS#12 (.pfx) form",
        ) from None
    certificates = [loaded.cert.certificate] if loaded.cert is not None else []
    certificates += [extra.certificate for extra in loaded.additional_certs]
    key = _usable_key(loaded.key, name) if loaded.key is not None else None
    return Bundle(tuple(certificates), key)


def _pkcs7(data: bytes, name: str) -> Bundle:
    try:
        if b"-----BEGIN" in data:
            return Bundle(tuple(pkcs7.load_pem_pkcs7_certificates(data)))
        return Bundle(tuple(pkcs7.load_der_pkcs7_certificates(data)))
    except ValueError:
        raise PkiError(
            name, "not a PKCS#7 (.p7b) certificate chain", "download the chain again"
        ) from None


def _pem(data: bytes, name: str, password: bytes | None) -> Bundle:
    try:
        certificates = (
            tuple(x509.load_pem_x509_certificates(data))
            if b"-----BEGIN CERTIFICATE-----" in data
            else ()
        )
    except ValueError:
        raise PkiError(
            name, "a PEM certificate block in it cannot be read", "export the certificate again"
        ) from None
    key = read_private_key(data, name, password) if _PRIVATE_KEY_PEM.search(data) else None
    return Bundle(certificates, key)


def read_bundle(data: bytes, name: str, password: bytes | None = None) -> Bundle:
    """The certificates (and private key, if any) in a file; ``name`` is for messages.

    ``.pfx``/``.p12`` are PKCS#12 and ``.p7b``/``.p7c`` PKCS#7; otherwise PEM when the
    file has PEM armour, else DER, else PKCS#12 under another name.
    """
    suffix = Path(name).suffix.lower()
    if suffix in (".pfx", ".p12"):
        bundle = _pkcs12(data, name, password, by_name=True)
    elif suffix in (".p7b", ".p7c") or b"-----BEGIN PKCS7-----" in data:
        bundle = _pkcs7(data, name)
    elif b"-----BEGIN" in data:
        bundle = _pem(data, name, password)
    else:
        try:
            bundle = Bundle((x509.load_der_x509_certificate(data),))
        except ValueError:
            bundle = _pkcs12(data, name, password, by_name=False)
    if not bundle.certificates:
        raise PkiError(
            name,
            "holds no certificate",
            "give a certificate file (PEM, DER, PKCS#7 .p7b or PKCS#12 .pfx)",
        )
    return bundle


def describe(certificate: x509.Certificate) -> dict[str, Any]:
    """A JSON-ready description: what the Windows certificate dialog shows."""
    usages = extended_key_usages(certificate)
    return {
        "thumbprint": thumbprint(certificate),
        "subject": subject_text(certificate),
        "sans": list(san_texts(certificate)),
        "issuer": certificate.issuer.rfc4514_string(),
        "eku": None if usages is None else [eku_name(oid) for oid in usages],
        "not_before": certificate.not_valid_before_utc.isoformat(),
        "not_after": certificate.not_valid_after_utc.isoformat(),
        "key": key_description(certificate.public_key()),
        "serial": format(certificate.serial_number, "X"),
    }
