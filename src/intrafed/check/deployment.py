"""The seed's deployment, built with intrafed's own functions: a lab CA, one IM and
Presence node (``imp1``) and one OCS Standard Edition server (``ocs1``) serving
``example.com``, configured step by step as the seed says, certificates selected and the
configuration promoted to running (as after ``intrafed service restart``).

``intrafed demo`` runs it; the checker's tests start from it and make one mistake.
"""

from __future__ import annotations

import secrets
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from intrafed.config import edits
from intrafed.config.model import (
    Connection,
    Edition,
    HostAuthorization,
    HostEntry,
    NodeConfig,
    NodeIdentity,
    Role,
    StaticRoute,
)
from intrafed.pki import (
    CertificateAuthority,
    CertificateStores,
    KeyType,
    read_bundle,
    read_csr,
    write_request,
)
from intrafed.pki.ca import CA_CERTIFICATE
from intrafed.pki.certificates import certificates_pem
from intrafed.pki.files import write_public
from intrafed.store import StagedEdit, create_store

DOMAIN = "example.com"
IMP_FQDN = "imp1.example.com"
OCS_FQDN = "ocs1.example.com"
CA_NAME = "intrafed Lab Root CA"
SIP_PORT = 5060
"""TCP: the seed's port for unencrypted SIP on both sides."""
TLS_PORT = 5061
"""OCS MTLS connection and IM&P Peer Auth listener: what each side's TLS route uses."""
SERVER_AUTH_PORT = 5063
"""IM&P Server Auth, moved off 5061 as the seed advises."""
CLIENT_TLS_PORT = 5062
"""OCS: a TLS connection for users (the MTLS one on 5061 is for the peer partition)."""
DEFAULT_USERS = (("alice@example.com", Role.IMP), ("bob@example.com", Role.OCS))
"""Who is homed where: alice on IM and Presence, bob on OCS."""


@dataclass(frozen=True, slots=True)
class SeedNode:
    """One node of the seed deployment: where its home is and where it listens."""

    role: Role
    """``imp`` or ``ocs``."""
    home: Path
    """The node's home directory (``--home``)."""
    fqdn: str
    """The node's FQDN (its certificate's CN)."""
    ip: str
    """The node's address; every listener binds it."""
    tcp_port: int
    """Plain TCP SIP."""
    tls_port: int
    """OCS: the MTLS connection; IM&P: the Peer Auth listener."""
    client_tls_port: int
    """Where users connect over TLS: IM&P's Server Auth listener, OCS's TLS connection
    (its MTLS connection asks every client for a certificate)."""


@dataclass(frozen=True, slots=True)
class SeedUser:
    """A provisioned user and the password it registers with."""

    aor: str
    """``user@example.com``."""
    password: str
    """The digest password (the node keeps only its HA1s)."""
    role: Role
    """The side the user is homed on."""


@dataclass(frozen=True, slots=True)
class SeedDeployment:
    """What ``build_seed_deployment`` made."""

    root: Path
    """The directory holding ``ca``, ``imp1`` and ``ocs1``."""
    domain: str
    """The SIP domain both sides serve."""
    ca_dir: Path
    """The lab CA (``ca.pem`` and ``ca.key``), for ``intrafed pki sign --ca``."""
    imp: SeedNode
    """The IM and Presence node."""
    ocs: SeedNode
    """The OCS Standard Edition server."""
    users: tuple[SeedUser, ...]
    """Every provisioned user, with its password."""

    @property
    def ca_certificate(self) -> Path:
        """The CA root certificate both sides trust."""
        return self.ca_dir / CA_CERTIFICATE

    @property
    def nodes(self) -> tuple[SeedNode, SeedNode]:
        """Both nodes, IM&P first."""
        return (self.imp, self.ocs)

    def node(self, role: Role) -> SeedNode:
        """The node of ``role``."""
        return self.imp if role is Role.IMP else self.ocs

    def password(self, aor: str) -> str:
        """The password of the user ``aor``."""
        for user in self.users:
            if user.aor == aor:
                return user.password
        raise KeyError(aor)


def build_seed_deployment(
    root: Path,
    *,
    imp_ip: str = "127.0.0.2",
    ocs_ip: str = "127.0.0.3",
    base_port: int | None = None,
    users: Sequence[tuple[str, Role]] = DEFAULT_USERS,
    key_type: KeyType = KeyType.RSA_2048,
    pool_fqdn: str | None = None,
) -> SeedDeployment:
    """Create ``root/ca``, ``root/imp1`` and ``root/ocs1`` configured as the seed says.

    Ports are the seed's (TCP 5060, MTLS and Peer Auth 5061, OCS client TLS 5062, Server
    Auth 5063), or shifted so that TCP is ``base_port``. With ``pool_fqdn``, ocs1 is a
    front end of that Enterprise Edition pool: its certificate names the pool, and IM and
    Presence routes to, resolves and trusts the pool FQDN. ``ConfigError`` or ``PkiError``
    when a home already exists.
    """
    tcp = SIP_PORT if base_port is None else base_port
    tls, server_auth = tcp + TLS_PORT - SIP_PORT, tcp + SERVER_AUTH_PORT - SIP_PORT
    imp = SeedNode(Role.IMP, root / "imp1", IMP_FQDN, imp_ip, tcp, tls, server_auth)
    ocs = SeedNode(
        Role.OCS, root / "ocs1", OCS_FQDN, ocs_ip, tcp, tls, tcp + CLIENT_TLS_PORT - SIP_PORT
    )
    ca_dir = root / "ca"
    ca = CertificateAuthority.create(CA_NAME, key_type=key_type)
    ca.save(ca_dir)
    seed_users = tuple(SeedUser(aor, secrets.token_urlsafe(12), role) for aor, role in users)
    identities = {
        Role.IMP: NodeIdentity(Role.IMP, imp.fqdn, imp.ip),
        Role.OCS: NodeIdentity(Role.OCS, ocs.fqdn, ocs.ip)
        if pool_fqdn is None
        else NodeIdentity(Role.OCS, ocs.fqdn, ocs.ip, Edition.ENTERPRISE, pool_fqdn),
    }
    steps = (
        (imp, imp_edits(imp, ocs, identities[Role.OCS].certificate_name)),
        (ocs, ocs_edits(ocs, imp)),
    )
    for node, setup in steps:
        own_users = [user for user in seed_users if user.role is node.role]
        staged = [*setup, *user_edits(own_users)]
        build_node(node, identities[node.role], staged, ca, ca_dir, key_type)
    return SeedDeployment(root, DOMAIN, ca_dir, imp, ocs, seed_users)


def imp_edits(imp: SeedNode, ocs: SeedNode, ocs_name: str) -> list[StagedEdit]:
    """IM&P: domain, application listeners (Server Auth off the Peer Auth port), static
    route to OCS (``ocs_name``: the server, or its pool) by FQDN over TLS, that name in the
    hosts table, TLS peer subject."""
    ports = {"tcp": imp.tcp_port, "peer_auth": imp.tls_port, "server_auth": imp.client_tls_port}
    return [
        lambda c: edits.add_domain(c, DOMAIN),
        lambda c: edits.set_listeners(c, **ports),
        lambda c: edits.add_route(c, StaticRoute(DOMAIN, "TLS", ocs.tls_port, fqdn=ocs_name)),
        lambda c: edits.add_host(c, HostEntry(ocs_name, ocs.ip)),
        lambda c: edits.add_peer_subject(c, ocs_name),
        lambda c: edits.set_fips(c, True),
    ]


def ocs_edits(ocs: SeedNode, imp: SeedNode) -> list[StagedEdit]:
    """OCS: domain, connections TCP and MTLS, static route to the Peer Auth port by FQDN
    (phone URI and replace host unchecked), host authorization by FQDN and by IP, FIPS."""
    route = StaticRoute(DOMAIN, "TLS", imp.tls_port, fqdn=imp.fqdn)
    return [
        lambda c: edits.add_domain(c, DOMAIN),
        lambda c: edits.add_connection(c, Connection("TCP", ocs.tcp_port, ocs.ip)),
        lambda c: edits.add_connection(c, Connection("MTLS", ocs.tls_port, ocs.ip)),
        lambda c: edits.add_connection(c, Connection("TLS", ocs.client_tls_port, ocs.ip)),
        lambda c: edits.add_route(c, route),
        lambda c: edits.add_host(c, HostEntry(imp.fqdn, imp.ip)),
        lambda c: edits.add_host_authorization(c, HostAuthorization(fqdn=imp.fqdn)),
        lambda c: edits.add_host_authorization(c, HostAuthorization(ip=imp.ip)),
        lambda c: edits.set_fips(c, True),
    ]


def user_edits(users: Sequence[SeedUser]) -> list[StagedEdit]:
    def add(user: SeedUser) -> StagedEdit:
        return lambda c: edits.add_user(c, user.aor, user.password)

    return [add(user) for user in users]


def build_node(
    node: SeedNode,
    identity: NodeIdentity,
    steps: Sequence[StagedEdit],
    ca: CertificateAuthority,
    ca_dir: Path,
    key_type: KeyType,
    url: str | None = None,
) -> NodeConfig:
    """``intrafed init`` (``--db url``), the ``config`` edits, the TLS Encryption
    Configuration (trust the root, request, sign, import, select), then what a restart
    does: promote."""
    with create_store(node.home, identity, url) as store:
        for step in steps:
            config = store.stage(step)
        stores = CertificateStores.of_home(node.home)
        root = ca_dir / CA_CERTIFICATE
        stores.add_trusted(read_bundle(root.read_bytes(), str(root)))
        request = write_request(
            stores.requests_dir, config.identity, config.domains, key_type=key_type
        )
        signed = request.csr.with_suffix(".pem")
        csr = read_csr(request.csr.read_bytes(), str(request.csr))
        write_public(signed, certificates_pem([ca.sign(csr)]))
        imported = stores.add_personal(read_bundle(signed.read_bytes(), str(signed)), str(signed))
        stores.select(imported.stored.thumbprint, config.identity)
        return store.promote()
