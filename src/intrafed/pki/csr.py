"""Certificate signing requests whose names follow the seed.

"For Standard Edition servers, use the FQDN of the Standard Edition server as the Subject
CN. For Enterprise Edition front-end servers, use the FQDN of the pool to which the
front-end server belongs." IM&P nodes use their own FQDN. The SIP domains go into the SAN.
A host that is not a node (a gateway, a lab peer) asks for the names it is given.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.serialization import Encoding
from cryptography.x509.oid import NameOID

from intrafed.config.model import ConfigError, Edition, NodeIdentity, Role
from intrafed.config.values import is_fqdn
from intrafed.pki.certificates import (
    CLIENT_AUTH,
    SERVER_AUTH,
    KeyType,
    PrivateKey,
    generate_key,
    private_key_pem,
)
from intrafed.pki.errors import PkiError
from intrafed.pki.files import write_private, write_public


def pool_names(identity: NodeIdentity) -> tuple[str, ...]:
    """The name every member of the node's pool or cluster answers to as itself, and its
    certificate carries: an EE pool FQDN, an IM&P cluster's name when it is an FQDN."""
    pool = identity.pool
    return (pool,) if pool is not None and is_fqdn(pool) else ()


def certificate_names(
    identity: NodeIdentity, domains: Sequence[str]
) -> tuple[str, tuple[str, ...]]:
    """The subject CN and the SAN dNSNames of the node's certificate.

    The SANs hold the CN, the node's own FQDN (an EE front end is reached by name when
    IM&P routes to it directly), an IM&P cluster's name when it is an FQDN (OCS routes to
    the cluster by that name, through a load balancer or DNS, and any member answers) and
    the SIP domains, each once.
    """
    cn = identity.certificate_name
    sans = tuple(dict.fromkeys([cn, identity.fqdn, *pool_names(identity), *domains]))
    return cn, sans


def _edition_text(identity: NodeIdentity) -> str:
    if identity.edition is Edition.ENTERPRISE:
        return f"a front end of the Enterprise pool {identity.pool_fqdn}"
    return "a Standard Edition server"


def check_request(identity: NodeIdentity, role: Role, edition: Edition | None = None) -> None:
    """Refuse a request whose role or edition contradicts the node's identity."""
    if role is not identity.role:
        raise ConfigError(
            "--role",
            f"this home is an {identity.role.value} node ({identity.fqdn}); "
            f"an {role.value} request would carry a CN this node cannot use",
            f"use --role {identity.role.value}",
        )
    if edition is None:
        return
    if identity.role is Role.IMP:
        raise ConfigError(
            "--edition",
            "IM and Presence nodes have no edition",
            "leave out --edition (it belongs to role ocs)",
        )
    if edition is not identity.edition:
        raise ConfigError(
            "--edition",
            f"this home is {_edition_text(identity)} ({identity.fqdn}), not {edition.value}",
            f"use --edition {identity.edition.value if identity.edition else 'standard'}, "
            "or initialize the home with the right --edition and --pool-fqdn",
        )


def make_csr(
    identity: NodeIdentity, domains: Sequence[str], key: PrivateKey
) -> x509.CertificateSigningRequest:
    """A CSR signed by ``key`` asking for the node's names and Server+Client Authentication."""
    cn, sans = certificate_names(identity, domains)
    return make_host_csr(cn, key, dns_names=sans)


def make_host_csr(
    cn: str,
    key: PrivateKey,
    *,
    dns_names: Sequence[str] = (),
    ip_addresses: Sequence[str] = (),
) -> x509.CertificateSigningRequest:
    """A CSR signed by ``key`` for exactly the names given, as a gateway or a lab peer
    needs: subject ``CN=cn``, SAN ``dns_names`` then ``ip_addresses`` (no SAN when both
    are empty), and Server+Client Authentication. A malformed address is a ``ValueError``."""
    names: list[x509.GeneralName] = [x509.DNSName(name) for name in dns_names]
    names += [x509.IPAddress(ipaddress.ip_address(address)) for address in ip_addresses]
    builder = x509.CertificateSigningRequestBuilder().subject_name(
        x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn)])
    )
    if names:
        builder = builder.add_extension(x509.SubjectAlternativeName(names), critical=False)
    return builder.add_extension(
        x509.ExtendedKeyUsage([SERVER_AUTH, CLIENT_AUTH]), critical=False
    ).sign(key, hashes.SHA256())


@dataclass(frozen=True, slots=True)
class RequestFiles:
    """Where a request and its key were written, and the names it asks for."""

    key: Path
    csr: Path
    cn: str
    sans: tuple[str, ...]


def write_request(
    directory: Path,
    identity: NodeIdentity,
    domains: Sequence[str],
    *,
    key_type: KeyType = KeyType.RSA_2048,
    replace: bool = False,
) -> RequestFiles:
    """Write ``<cn>.key`` (mode 0600) and ``<cn>.csr`` into ``directory``.

    A pending request is not replaced unless ``replace``: its key is the only one that
    fits the certificate the CA will issue for it.
    """
    cn, sans = certificate_names(identity, domains)
    key_path, csr_path = directory / f"{cn}.key", directory / f"{cn}.csr"
    if key_path.exists() and not replace:
        raise PkiError(
            "csr",
            f"a request for {cn} is pending ({key_path})",
            "import its signed certificate first, or add --replace to start over",
        )
    key = generate_key(key_type)
    write_private(key_path, private_key_pem(key))
    write_public(csr_path, make_csr(identity, domains, key).public_bytes(Encoding.PEM))
    return RequestFiles(key_path, csr_path, cn, sans)


def read_csr(data: bytes, name: str) -> x509.CertificateSigningRequest:
    """A CSR from PEM or DER bytes; ``name`` is for messages."""
    try:
        if b"-----BEGIN" in data:
            return x509.load_pem_x509_csr(data)
        return x509.load_der_x509_csr(data)
    except ValueError:
        raise PkiError(
            name,
            "not a certificate request (PEM or DER)",
            "give the .csr file that intrafed pki csr wrote",
        ) from None
