"""The seed's deployment with an Enterprise Edition pool of OCS front ends and an IM&P
cluster, each side on a PostgreSQL database of its own: the first member of each side is
configured as the seed says (``check.deployment``), the others join and add only their own
listeners; every member has its own certificate (a front end's names the pool).

The OCS static route points at the first IM&P node, IM&P's at the pool FQDN (resolving to
the first front end); a request for a user whose client is held by another member is
relayed to it over the intra-pool link. ``intrafed demo --pool`` runs it; so do the pool
tests.
"""

from __future__ import annotations

import secrets
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from intrafed.check.deployment import (
    CA_NAME,
    CLIENT_TLS_PORT,
    DEFAULT_USERS,
    DOMAIN,
    SERVER_AUTH_PORT,
    SIP_PORT,
    TLS_PORT,
    SeedNode,
    SeedUser,
    build_node,
    imp_edits,
    ocs_edits,
    user_edits,
)
from intrafed.config import edits
from intrafed.config.model import (
    ConfigError,
    Connection,
    Edition,
    HostAuthorization,
    HostEntry,
    NodeIdentity,
    Role,
)
from intrafed.pki import CertificateAuthority, KeyType
from intrafed.pki.ca import CA_CERTIFICATE
from intrafed.store import StagedEdit

POOL_FQDN = "pool.example.com"
CLUSTER = "cup.example.com"
"""The IM&P cluster's name: an FQDN, so that OCS may route to it through a load balancer or
DNS (every member's certificate carries it)."""


@dataclass(frozen=True, slots=True)
class PoolDeployment:
    """What ``build_pool_deployment`` made."""

    root: Path
    """The directory holding ``ca`` and one home per member."""
    domain: str
    """The SIP domain both sides serve."""
    ca_dir: Path
    """The lab CA."""
    pool_fqdn: str
    """The Enterprise pool's FQDN (every front end's certificate CN)."""
    front_ends: tuple[SeedNode, ...]
    """The OCS front ends (``fe1``, ``fe2``, …)."""
    imp_nodes: tuple[SeedNode, ...]
    """The IM&P nodes (``imp1``, ``imp2``, …)."""
    users: tuple[SeedUser, ...]
    """Every provisioned user, with its password."""

    @property
    def ca_certificate(self) -> Path:
        """The CA root certificate every member trusts."""
        return self.ca_dir / CA_CERTIFICATE

    @property
    def nodes(self) -> tuple[SeedNode, ...]:
        """Every member, IM&P first."""
        return (*self.imp_nodes, *self.front_ends)

    def password(self, aor: str) -> str:
        """The password of the user ``aor``."""
        return next(user.password for user in self.users if user.aor == aor)


def build_pool_deployment(
    root: Path,
    *,
    ocs_db: str,
    imp_db: str | None,
    front_end_ips: Sequence[str],
    imp_ips: Sequence[str],
    base_port: int | None = None,
    users: Sequence[tuple[str, Role]] = DEFAULT_USERS,
    key_type: KeyType = KeyType.RSA_2048,
) -> PoolDeployment:
    """Create ``root/ca``, ``root/fe1``… (on the PostgreSQL database ``ocs_db``) and
    ``root/imp1``… (on ``imp_db``; empty databases): one member per address given, every
    one listening on the seed's ports (or shifted so that TCP is ``base_port``). Without
    ``imp_db`` there is one IM&P node, on its own SQLite store."""
    if imp_db is None and len(imp_ips) != 1:
        raise ConfigError("--db", "an IM&P cluster needs a database", "give its PostgreSQL URL")
    tcp = SIP_PORT if base_port is None else base_port
    tls = tcp + TLS_PORT - SIP_PORT
    front_ends = tuple(
        SeedNode(Role.OCS, root / f"fe{n}", f"fe{n}.{DOMAIN}", ip, tcp, tls,
                 tcp + CLIENT_TLS_PORT - SIP_PORT)
        for n, ip in enumerate(front_end_ips, 1)
    )  # fmt: skip
    imp_nodes = tuple(
        SeedNode(Role.IMP, root / f"imp{n}", f"imp{n}.{DOMAIN}", ip, tcp, tls,
                 tcp + SERVER_AUTH_PORT - SIP_PORT)
        for n, ip in enumerate(imp_ips, 1)
    )  # fmt: skip
    ca_dir = root / "ca"
    ca = CertificateAuthority.create(CA_NAME, key_type=key_type)
    ca.save(ca_dir)
    seed_users = tuple(SeedUser(aor, secrets.token_urlsafe(12), role) for aor, role in users)
    first_fe, first_imp = front_ends[0], imp_nodes[0]
    pool_setup = [
        *ocs_edits(first_fe, first_imp),
        *(step for imp in imp_nodes[1:] for step in _authorize(imp)),
        *user_edits([user for user in seed_users if user.role is Role.OCS]),
    ]
    cluster_setup = [
        *imp_edits(first_imp, first_fe, POOL_FQDN),
        *(_resolve(front_end) for front_end in front_ends),
        *user_edits([user for user in seed_users if user.role is Role.IMP]),
    ]
    for n, node in enumerate(front_ends):
        identity = NodeIdentity(Role.OCS, node.fqdn, node.ip, Edition.ENTERPRISE, POOL_FQDN)
        steps = pool_setup if n == 0 else _connections(node)
        build_node(node, identity, steps, ca, ca_dir, key_type, ocs_db)
    for n, node in enumerate(imp_nodes):
        cluster = CLUSTER if imp_db is not None else None
        identity = NodeIdentity(Role.IMP, node.fqdn, node.ip, cluster=cluster)
        steps = cluster_setup if n == 0 else [_listeners(node)]
        build_node(node, identity, steps, ca, ca_dir, key_type, imp_db)
    return PoolDeployment(root, DOMAIN, ca_dir, POOL_FQDN, front_ends, imp_nodes, seed_users)


def _authorize(imp: SeedNode) -> list[StagedEdit]:
    """Host authorization of another IM&P member, by FQDN and by IP as the seed does."""
    return [
        lambda c: edits.add_host_authorization(c, HostAuthorization(fqdn=imp.fqdn)),
        lambda c: edits.add_host_authorization(c, HostAuthorization(ip=imp.ip)),
    ]


def _resolve(front_end: SeedNode) -> StagedEdit:
    """The IM&P side resolves a front end's own FQDN (a NOTIFY's Contact once another
    member took a subscription over): what DNS does across machines."""
    return lambda c: edits.add_host(c, HostEntry(front_end.fqdn, front_end.ip))


def _connections(node: SeedNode) -> list[StagedEdit]:
    """A front end's own connections: TCP, MTLS (peers and the other members) and TLS for
    users, as the first front end has them."""
    return [
        lambda c: edits.add_connection(c, Connection("TCP", node.tcp_port, node.ip)),
        lambda c: edits.add_connection(c, Connection("MTLS", node.tls_port, node.ip)),
        lambda c: edits.add_connection(c, Connection("TLS", node.client_tls_port, node.ip)),
    ]


def _listeners(node: SeedNode) -> StagedEdit:
    """An IM&P member's own application listeners."""
    ports = {"tcp": node.tcp_port, "peer_auth": node.tls_port, "server_auth": node.client_tls_port}
    return lambda c: edits.set_listeners(c, **ports)
