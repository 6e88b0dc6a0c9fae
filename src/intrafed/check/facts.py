"""What the rules look at, read once from a node's home (or an exported TOML document):
the staged configuration, what a restart would change, the selected certificate and the
trusted store, and where each static route's FQDN resolves."""

from __future__ import annotations

import concurrent.futures
import socket
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from cryptography import x509

from intrafed.config.document import apply_command, changes, from_toml
from intrafed.config.model import ConfigError, NodeConfig, NodeIdentity
from intrafed.pki import CertificateStores, PkiError, StoreName
from intrafed.store import open_store

DNS_TIMEOUT = 3.0
"""Seconds a DNS lookup may take before the name counts as unresolvable."""


@dataclass(frozen=True, slots=True)
class Resolution:
    """Where a name resolves, and how: the hosts table first, then DNS."""

    name: str
    addresses: tuple[str, ...]
    """Every IPv4/IPv6 address, in the resolver's order without repeats (a cluster's name
    may have one per member); empty when the name does not resolve."""
    source: str
    """``hosts table``, ``DNS``, or why DNS gave nothing."""

    @property
    def address(self) -> str | None:
        """The first address, or None when the name does not resolve."""
        return self.addresses[0] if self.addresses else None


def resolve_name(config: NodeConfig, name: str, timeout: float = DNS_TIMEOUT) -> Resolution:
    """Resolve ``name`` as the node does: its hosts table, then DNS (every address)."""
    for entry in config.hosts:
        if entry.fqdn == name.lower():
            return Resolution(name, (entry.ip,), "hosts table")
    pool = concurrent.futures.ThreadPoolExecutor(max_workers=1)
    lookup = pool.submit(socket.getaddrinfo, name, None, type=socket.SOCK_STREAM)
    pool.shutdown(wait=False)
    try:
        answers = lookup.result(timeout=timeout)
    except concurrent.futures.TimeoutError:
        return Resolution(name, (), f"DNS did not answer within {timeout:g} s")
    except OSError as exc:
        return Resolution(name, (), f"DNS: {exc.strerror or exc}")
    return Resolution(name, tuple(dict.fromkeys(str(answer[4][0]) for answer in answers)), "DNS")


@dataclass(frozen=True, slots=True)
class CertificateFacts:
    """The node's certificate stores as the checker sees them."""

    selected: x509.Certificate | None
    """The selected certificate, or None (see ``problem``)."""
    chain: tuple[x509.Certificate, ...]
    """Intermediates presented with it."""
    has_key: bool
    """Whether its private key is in the personal store."""
    trusted: tuple[x509.Certificate, ...]
    """The trusted roots."""
    problem: str | None = None
    """Why nothing usable is selected."""
    root_files: Mapping[str, Path] = field(default_factory=dict)
    """The trusted store's files by their certificate's subject (RFC 4514), for fixes
    that import a root elsewhere."""


@dataclass(frozen=True, slots=True)
class NodeFacts:
    """One node, as loaded for the checker."""

    config: NodeConfig
    """The staged configuration (what a restart runs)."""
    home: Path | None
    """The home directory; None for an exported document."""
    pending: tuple[str, ...] = ()
    """What a restart would change (staged against running)."""
    certificates: CertificateFacts | None = None
    """None when the stores are unknown (an exported document)."""
    resolved: Mapping[str, Resolution] | None = None
    """Where each TLS route's FQDN resolves."""
    running: bool = False
    """Whether a node runs on the home (what it runs is the running configuration)."""
    apply_command: str | None = None
    """``reload`` or ``restart``: what makes the running configuration the staged one."""
    members: tuple[NodeIdentity, ...] = ()
    """The other members of the node's Enterprise pool or IM&P cluster (its database
    knows them; the peer partition must trust each)."""

    @property
    def name(self) -> str:
        """The node's FQDN."""
        return self.config.identity.fqdn

    @property
    def home_arg(self) -> str:
        """``--home DIR`` for the fixes this node needs."""
        return f"--home {self.home}" if self.home is not None else f"--home <{self.name}'s home>"

    def resolution(self, name: str) -> Resolution:
        """Where ``name`` resolves from this node."""
        if self.resolved is not None and name in self.resolved:
            return self.resolved[name]
        for entry in self.config.hosts:
            if entry.fqdn == name:
                return Resolution(name, (entry.ip,), "hosts table")
        return Resolution(name, (), "not looked up")


def _certificates(home: Path) -> CertificateFacts:
    stores = CertificateStores.of_home(home)
    stored = stores.certificates(StoreName.TRUSTED)
    trusted = tuple(root.certificate for root in stored)
    files = {root.certificate.subject.rfc4514_string(): root.path for root in stored}
    try:
        selected = stores.selected()
    except PkiError as exc:
        return CertificateFacts(None, (), False, trusted, exc.message, files)
    return CertificateFacts(
        selected.certificate, selected.chain, selected.key_path is not None, trusted, None, files
    )


def _resolutions(config: NodeConfig) -> dict[str, Resolution]:
    names = {route.fqdn for route in config.routes if route.fqdn is not None}
    return {name: resolve_name(config, name) for name in sorted(names)}


def load_home(home: Path, *, running: bool = False) -> NodeFacts:
    """A node's facts from its home directory; ``running`` when a node runs on it."""
    with open_store(home) as store:
        config, current = store.load("staged"), store.load("running")
        members = tuple(store.other_members())
    pending, command = tuple(changes(current, config)), apply_command(current, config)
    return NodeFacts(
        config,
        home,
        pending,
        _certificates(home),
        _resolutions(config),
        running=running,
        apply_command=command,
        members=members,
    )


def load_node(path: Path, *, running: bool = False) -> NodeFacts:
    """A home directory, or a document written by ``intrafed config export``."""
    if path.is_dir():
        return load_home(path, running=running)
    if not path.is_file():
        raise ConfigError(
            str(path),
            "is neither a node's home nor an exported configuration",
            "give a home directory, or a file written by intrafed config export",
        )
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError:
        raise ConfigError(
            str(path), "is not a TOML document", "give a file written by intrafed config export"
        ) from None
    try:
        config = from_toml(text)
    except ConfigError as exc:
        raise ConfigError(f"{path}: {exc.setting}", exc.message, exc.fix) from None
    return NodeFacts(config, None, resolved=_resolutions(config))
