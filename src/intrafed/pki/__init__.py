"""Certificates and TLS policy (DESIGN §3, §5): a lab CA, CSRs named as the seed says,
the personal and trusted stores, validation, selection, and every ``ssl.SSLContext``."""

from intrafed.pki.ca import CertificateAuthority
from intrafed.pki.certificates import Bundle, KeyType, PrivateKey, read_bundle, thumbprint
from intrafed.pki.csr import (
    RequestFiles,
    certificate_names,
    check_request,
    make_csr,
    make_host_csr,
    pool_names,
    read_csr,
    write_request,
)
from intrafed.pki.errors import PkiError
from intrafed.pki.stores import (
    CertificateStores,
    CertificateValidationError,
    Imported,
    StoredCertificate,
    StoreName,
)
from intrafed.pki.tls_context import (
    TlsContexts,
    TlsSnapshot,
    build_snapshot,
    client_context,
    peer_names,
    server_context,
)
from intrafed.pki.validation import Finding, Report, Severity, validate

__all__ = [
    "Bundle",
    "CertificateAuthority",
    "CertificateStores",
    "CertificateValidationError",
    "Finding",
    "Imported",
    "KeyType",
    "PkiError",
    "PrivateKey",
    "Report",
    "RequestFiles",
    "Severity",
    "StoreName",
    "StoredCertificate",
    "TlsContexts",
    "TlsSnapshot",
    "build_snapshot",
    "certificate_names",
    "check_request",
    "client_context",
    "make_csr",
    "make_host_csr",
    "peer_names",
    "pool_names",
    "read_bundle",
    "read_csr",
    "server_context",
    "thumbprint",
    "validate",
    "write_request",
]
