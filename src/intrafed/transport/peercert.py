"""What a verified peer certificate proves: its names and its key usage.

OpenSSL has already checked the chain when these run; they read the DER it returns.
"""

from __future__ import annotations

from cryptography import x509
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

MISSING_CLIENT_AUTH = "client certificate lacks Client Authentication EKU"


def load(der: bytes) -> x509.Certificate:
    """Parse a DER certificate from ``SSLObject.getpeercert(binary_form=True)``."""
    return x509.load_der_x509_certificate(der)


def names(certificate: x509.Certificate) -> tuple[str, ...]:
    """SAN dNSNames, else the subject CN (RFC 5922 §7.1), lower-cased."""
    try:
        san = certificate.extensions.get_extension_for_class(x509.SubjectAlternativeName)
    except x509.ExtensionNotFound:
        dns: list[str] = []
    else:
        dns = san.value.get_values_for_type(x509.DNSName)
    if not dns:
        dns = [
            str(attribute.value)
            for attribute in certificate.subject.get_attributes_for_oid(NameOID.COMMON_NAME)
        ]
    return tuple(name.lower() for name in dns)


def has_client_auth(certificate: x509.Certificate) -> bool:
    """Whether the certificate carries an explicit Client Authentication EKU.

    OpenSSL treats a certificate without the EKU extension as good for any purpose;
    DESIGN §8 requires the usage to be stated.
    """
    try:
        eku = certificate.extensions.get_extension_for_class(x509.ExtendedKeyUsage)
    except x509.ExtensionNotFound:
        return False
    return ExtendedKeyUsageOID.CLIENT_AUTH in eku.value
