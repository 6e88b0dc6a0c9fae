"""The settings of DESIGN §3 as one typed, validated tree per node (or pool).

Every value is a frozen dataclass checked when it is made; a bad value raises
``ConfigError(setting, message, fix)`` whose text is the one line an administrator sees.
Edits are pure functions that return a new ``NodeConfig`` (or raise).
"""

from __future__ import annotations

import dataclasses
import enum
import hashlib
import ipaddress
import re
from dataclasses import dataclass

from intrafed.config.values import (
    CONNECTION_TRANSPORTS,
    ROUTE_TRANSPORTS,
    check_aor,
    check_cluster,
    check_domain,
    check_fqdn,
    check_ip,
    check_port,
)

# ConfigError is part of this module's interface: every setting's error is raised from here.
from intrafed.config.values import ConfigError as ConfigError


class Role(enum.StrEnum):
    """Which product a node plays."""

    OCS = "ocs"
    IMP = "imp"


class Edition(enum.StrEnum):
    """OCS Standard Edition server, or Enterprise Edition pool of front ends."""

    STANDARD = "standard"
    ENTERPRISE = "enterprise"


class RoutingMode(enum.StrEnum):
    """IM&P partitioned routing: forward every non-local user, or only known ones."""

    BASIC = "basic"
    ADVANCED = "advanced"


class TlsProfile(enum.StrEnum):
    """TLS versions allowed; ``legacy-tls1`` admits TLS 1.0 for old peers (the checker warns)."""

    DEFAULT = "default"
    LEGACY_TLS1 = "legacy-tls1"


@dataclass(frozen=True, slots=True)
class NodeIdentity:
    """Who the node is: role, name, address, and its pool (OCS) or cluster (IM&P)."""

    role: Role
    """``ocs`` or ``imp``."""
    fqdn: str
    """The server's FQDN (SE server, EE front end, or IM&P node)."""
    ip: str
    """The address the node listens and connects from."""
    edition: Edition | None = None
    """OCS only: Standard Edition server or Enterprise Edition pool front end."""
    pool_fqdn: str | None = None
    """OCS Enterprise Edition only: the pool FQDN (the certificate's subject CN)."""
    cluster: str | None = None
    """IM&P only: the name of the cluster whose nodes share one database."""

    def __post_init__(self) -> None:
        object.__setattr__(self, "fqdn", check_fqdn("--fqdn", self.fqdn))
        object.__setattr__(self, "ip", check_ip("--ip", self.ip))
        if self.role is Role.IMP:
            if self.edition is not None or self.pool_fqdn is not None:
                raise ConfigError(
                    "--edition",
                    "IM and Presence nodes have no edition or pool",
                    "leave out --edition and --pool-fqdn (they belong to role ocs)",
                )
            object.__setattr__(self, "cluster", check_cluster("--cluster", self.cluster))
            return
        if self.cluster is not None:
            raise ConfigError(
                "--cluster", "OCS servers form pools, not clusters", "use --pool-fqdn"
            )
        if self.edition is None:
            object.__setattr__(self, "edition", Edition.STANDARD)
        if self.edition is Edition.ENTERPRISE:
            if self.pool_fqdn is None:
                raise ConfigError(
                    "--pool-fqdn",
                    "an Enterprise Edition front end needs its pool FQDN",
                    "add --pool-fqdn pool.example.com",
                )
            object.__setattr__(self, "pool_fqdn", check_fqdn("--pool-fqdn", self.pool_fqdn))
        elif self.pool_fqdn is not None:
            raise ConfigError(
                "--pool-fqdn",
                "a Standard Edition server has no pool",
                "use --edition enterprise, or leave out --pool-fqdn",
            )

    @property
    def pool(self) -> str | None:
        """The EE pool's FQDN or the IM&P cluster's name (None for a node on its own)."""
        return self.pool_fqdn if self.pool_fqdn is not None else self.cluster

    @property
    def certificate_name(self) -> str:
        """The subject CN the seed requires: the pool FQDN for an EE pool, else the FQDN."""
        return self.pool_fqdn if self.pool_fqdn is not None else self.fqdn


@dataclass(frozen=True, slots=True)
class Connection:
    """An OCS "Connection" (General tab): where the front end listens."""

    transport: str
    """TCP, TLS (no client certificate asked) or MTLS (client certificate required)."""
    port: int
    """The listening port (the seed: 5060 for TCP, 5061 for TLS/MTLS)."""
    ip: str = "All"
    """``All`` or one of the server's addresses."""

    def __post_init__(self) -> None:
        transport = self.transport.upper()
        if transport not in CONNECTION_TRANSPORTS:
            raise ConfigError(
                "--transport",
                f"{self.transport!r} is not a connection transport",
                "use TCP, TLS or MTLS",
            )
        object.__setattr__(self, "transport", transport)
        check_port("--port", self.port)
        if self.ip.lower() == "all":
            object.__setattr__(self, "ip", "All")
        else:
            object.__setattr__(self, "ip", check_ip("--ip", self.ip))


@dataclass(frozen=True, slots=True)
class StaticRoute:
    """A static route: requests whose Request-URI matches ``domain`` go to the next hop."""

    domain: str
    """The Matching URI: a domain, or ``*.domain`` for its child domains."""
    transport: str
    """Next hop transport: TCP or TLS."""
    port: int
    """Next hop port; for TLS, the peer's Peer Auth listener port."""
    ip: str | None = None
    """Next hop by address: TCP routes only."""
    fqdn: str | None = None
    """Next hop by name: TLS routes only (the seed's "Important" note)."""
    phone_uri: bool = False
    """Match only phone URIs (``;user=phone``, ``tel:``); the seed leaves it unchecked."""
    replace_host: bool = False
    """Rewrite the Request-URI host to the next hop; the seed leaves it unchecked."""
    priority: int = 1
    """IM&P: lower first; a higher one is used only while the lower ones are unreachable."""

    def __post_init__(self) -> None:
        pattern = self.domain.lower()
        check_domain("--domain", pattern.removeprefix("*."))
        object.__setattr__(self, "domain", pattern)
        transport = self.transport.upper()
        if transport not in ROUTE_TRANSPORTS:
            raise ConfigError(
                "--transport", f"{self.transport!r} is not a route transport", "use TCP or TLS"
            )
        object.__setattr__(self, "transport", transport)
        check_port("--port", self.port)
        if (self.ip is None) == (self.fqdn is None):
            raise ConfigError(
                "--ip/--fqdn",
                "a static route needs exactly one next hop",
                "give either --ip (TCP) or --fqdn (TLS)",
            )
        if transport == "TLS" and self.ip is not None:
            raise ConfigError(
                "--ip",
                "TLS static routes must name the next hop by FQDN — the seed's 'Important' note",
                "use --fqdn",
            )
        if transport == "TCP" and self.fqdn is not None:
            raise ConfigError(
                "--fqdn", "TCP static routes name the next hop by IP address", "use --ip"
            )
        if self.ip is not None:
            object.__setattr__(self, "ip", check_ip("--ip", self.ip))
        if self.fqdn is not None:
            object.__setattr__(self, "fqdn", check_fqdn("--fqdn", self.fqdn))
        if self.priority < 1:
            raise ConfigError(
                "--priority",
                f"priority {self.priority} is below 1",
                "use 1 for the primary route, 2 and up for backups",
            )

    @property
    def next_hop(self) -> str:
        """The next hop as configured (FQDN or IP)."""
        return self.fqdn or self.ip or ""

    @property
    def key(self) -> tuple[str, int]:
        """What makes two routes the same route: the matching URI and the priority (OCS
        routes all have priority 1, so OCS allows one route per matching URI)."""
        return (self.domain, self.priority)


@dataclass(frozen=True, slots=True)
class HostAuthorization:
    """An OCS Host Authorization entry: a peer whose requests are trusted as a server's."""

    fqdn: str | None = None
    """Matches the name proven by the peer's verified certificate (MTLS)."""
    ip: str | None = None
    """Matches the connection's source address."""
    outbound_only: bool = False
    """We may send to it, but connections it opens get no trust. The seed: unchecked."""
    throttle_as_server: bool = True
    """Server rate limits instead of client ones. The seed: checked."""
    treat_as_authenticated: bool = True
    """Never challenged; its From identities are trusted. The seed: checked."""

    def __post_init__(self) -> None:
        if (self.ip is None) == (self.fqdn is None):
            raise ConfigError(
                "--ip/--fqdn",
                "a host authorization entry names one host",
                "give either --fqdn or --ip (TLS peers need one entry of each)",
            )
        if self.fqdn is not None:
            object.__setattr__(self, "fqdn", check_fqdn("--fqdn", self.fqdn))
        if self.ip is not None:
            address = ipaddress.ip_address(check_ip("--ip", self.ip))
            if address.is_unspecified or address.is_multicast:
                raise ConfigError(
                    "--ip",
                    f"{address} cannot be an authorized host (0.0.0.0 and multicast are refused)",
                    "give the peer node's own address",
                )
            object.__setattr__(self, "ip", str(address))

    @property
    def host(self) -> str:
        """The FQDN or IP this entry names."""
        return self.fqdn or self.ip or ""


@dataclass(frozen=True, slots=True)
class AclEntry:
    """An IM&P incoming ACL entry: a host whose TCP requests are trusted without digest."""

    fqdn: str | None = None
    """A host name (an OCS server or pool FQDN)."""
    ip: str | None = None
    """A source address."""

    def __post_init__(self) -> None:
        if (self.ip is None) == (self.fqdn is None):
            raise ConfigError(
                "--ip/--fqdn", "an ACL entry names one host", "give either --fqdn or --ip"
            )
        if self.fqdn is not None:
            object.__setattr__(self, "fqdn", check_fqdn("--fqdn", self.fqdn))
        if self.ip is not None:
            object.__setattr__(self, "ip", check_ip("--ip", self.ip))

    @property
    def host(self) -> str:
        """The FQDN or IP this entry names."""
        return self.fqdn or self.ip or ""


DIGEST_ALGORITHMS = ("SHA-256", "MD5")
"""The digest algorithms intrafed knows, in RFC 8760's order of preference."""


@dataclass(frozen=True, slots=True)
class RateClass:
    """Requests per second a sender of one class may sustain, and the burst above it."""

    rate: int
    burst: int

    def __post_init__(self) -> None:
        if self.rate < 1:
            raise ConfigError(
                "rate", f"{self.rate} is below 1 request per second", "give 1 or more"
            )
        if self.burst < self.rate:
            raise ConfigError(
                "burst",
                f"{self.burst} is below the rate ({self.rate}/s)",
                f"give a burst of at least {self.rate}",
            )


@dataclass(frozen=True, slots=True)
class RateLimits:
    """The two rate classes of host authorization's "Throttle As Server": clients are
    limited per source address, peers throttled as servers per trust entry."""

    client: RateClass = RateClass(200, 400)
    """Lenient for a busy user, tight enough that one address cannot starve the link."""
    server: RateClass = RateClass(50_000, 100_000)
    """Above what one node can carry: the federation link is never throttled first."""


@dataclass(frozen=True, slots=True)
class MetricsListener:
    """Where the node serves Prometheus metrics (``GET /metrics``, plain HTTP)."""

    ip: str
    port: int = 9464

    def __post_init__(self) -> None:
        object.__setattr__(self, "ip", check_ip("--listen", self.ip))
        check_port("--listen", self.port)

    def __str__(self) -> str:
        return f"[{self.ip}]:{self.port}" if ":" in self.ip else f"{self.ip}:{self.port}"

    @classmethod
    def parse(cls, text: str) -> MetricsListener:
        """``IP:PORT``, ``[IPv6]:PORT`` or a bare IP (port 9464)."""
        host, port = text, "9464"
        if text.startswith("["):
            host, _, rest = text[1:].partition("]")
            if rest:
                port = rest.removeprefix(":")
        elif text.count(":") == 1:
            host, _, port = text.partition(":")
        if not port.isdigit():
            raise ConfigError(
                "--listen", f"{text!r} has no valid port", "give IP:PORT, e.g. 127.0.0.1:9464"
            )
        return cls(host, int(port))


@dataclass(frozen=True, slots=True)
class ImpListeners:
    """IM&P application listeners. Server Auth must differ from Peer Auth (the seed moves it)."""

    tcp: int = 5060
    """Plain TCP SIP."""
    peer_auth: int = 5061
    """MTLS for peer servers (OCS): its port is the one OCS's TLS static route uses."""
    server_auth: int = 5062
    """TLS for clients (no client certificate)."""

    def _free_port(self) -> int:
        """A port for Server Auth that no other listener uses: the seed's 5063 if it can."""
        taken = {self.tcp, self.peer_auth}
        candidates: list[int] = [5063, 5062, *range(5064, 5070)]
        return next(port for port in candidates if port not in taken)

    def __post_init__(self) -> None:
        check_port("--tcp", self.tcp)
        check_port("--peer-auth", self.peer_auth)
        check_port("--server-auth", self.server_auth)
        if self.server_auth == self.peer_auth:
            raise ConfigError(
                "--server-auth",
                f"Server Auth and Peer Auth both use port {self.peer_auth}",
                f"move Server Auth to another port, e.g. --server-auth {self._free_port()}",
            )
        if self.tcp in (self.peer_auth, self.server_auth):
            raise ConfigError(
                "--tcp",
                f"port {self.tcp} is already a TLS listener",
                "give the TCP listener its own port",
            )


def ha1(username: str, realm: str, password: str, algorithm: str) -> str:
    """HA1 = H(username ":" realm ":" password) for RFC 8760 digest (MD5 or SHA-256)."""
    digest = hashlib.md5 if algorithm == "MD5" else hashlib.sha256
    return digest(f"{username}:{realm}:{password}".encode(), usedforsecurity=False).hexdigest()


@dataclass(frozen=True, slots=True)
class User:
    """A user homed on this side: provisioned (enabled or disabled), digest HA1s only."""

    aor: str
    """``user@domain``."""
    enabled: bool = True
    """A disabled user stays homed here (requests for it are not forwarded) but cannot
    register."""
    ha1_md5: str | None = None
    """MD5(user:realm:password) in hex, for RFC 2617 clients; the realm is the domain."""
    ha1_sha256: str | None = None
    """SHA-256(user:realm:password) in hex, for RFC 8760 clients."""
    blocked: tuple[str, ...] = ()
    """Watchers (``user@domain``) refused this user's presence politely: their
    subscriptions are accepted and always show Offline."""

    def __post_init__(self) -> None:
        object.__setattr__(self, "aor", check_aor("USER@DOMAIN", self.aor))
        blocked = tuple(check_aor("WATCHER", watcher) for watcher in self.blocked)
        _unique("WATCHER", blocked, "remove the duplicate")
        object.__setattr__(self, "blocked", blocked)
        for name, length in (("ha1_md5", 32), ("ha1_sha256", 64)):
            value = getattr(self, name)
            if value is not None and not re.fullmatch(f"[0-9a-f]{{{length}}}", value):
                raise ConfigError(
                    name,
                    f"is not {length} lower-case hex digits",
                    "set the password again: intrafed config user add … --password-file F",
                )

    @property
    def user(self) -> str:
        """The user part."""
        return self.aor.rpartition("@")[0]

    @property
    def domain(self) -> str:
        """The domain part (the digest realm)."""
        return self.aor.rpartition("@")[2]

    def with_password(self, password: str) -> User:
        """A copy whose credentials are the HA1s of ``password`` (the password is not kept)."""
        return dataclasses.replace(
            self,
            ha1_md5=ha1(self.user, self.domain, password, "MD5"),
            ha1_sha256=ha1(self.user, self.domain, password, "SHA-256"),
        )


@dataclass(frozen=True, slots=True)
class HostEntry:
    """Static name resolution: FQDN -> IP (the seed's lab has no DNS)."""

    fqdn: str
    """The name to resolve."""
    ip: str
    """Its address."""

    def __post_init__(self) -> None:
        object.__setattr__(self, "fqdn", check_fqdn("FQDN", self.fqdn))
        object.__setattr__(self, "ip", check_ip("ADDR", self.ip))


@dataclass(frozen=True, slots=True)
class NodeConfig:
    """Everything one node runs with. Role-specific parts are empty for the other role."""

    identity: NodeIdentity
    """Role, FQDN and address (fixed at ``intrafed init``)."""
    domains: tuple[str, ...] = ()
    """The SIP domains served here (the seed's shared domain, e.g. ``example.com``)."""
    connections: tuple[Connection, ...] = ()
    """OCS: where the front end listens (General tab)."""
    routes: tuple[StaticRoute, ...] = ()
    """Static routes to the other partition (OCS Routing tab; IM&P Static Routes)."""
    host_authorizations: tuple[HostAuthorization, ...] = ()
    """OCS: the Host Authorization tab."""
    listeners: ImpListeners | None = None
    """IM&P: the application listeners (defaults filled in for role ``imp``)."""
    peer_subjects: tuple[str, ...] = ()
    """IM&P: TLS peer subjects accepted on the Peer Auth listener."""
    acl: tuple[AclEntry, ...] = ()
    """IM&P: the incoming ACL."""
    routing_mode: RoutingMode = RoutingMode.BASIC
    """IM&P: partitioned intradomain routing mode."""
    peer_directory: tuple[str, ...] = ()
    """IM&P: addresses of record of the OCS side's users; in advanced routing mode only
    they are forwarded to the peer partition."""
    users: tuple[User, ...] = ()
    """Users homed on this node."""
    hosts: tuple[HostEntry, ...] = ()
    """Static name resolution used before DNS."""
    fips: bool = True
    """The seed's "System Cryptography: Use FIPS compliant algorithms" policy."""
    tls_profile: TlsProfile = TlsProfile.DEFAULT
    """TLS versions allowed."""
    rate_limits: RateLimits = RateLimits()
    """Requests per second of the client and server classes (503 with Retry-After above)."""
    digest_algorithms: tuple[str, ...] = DIGEST_ALGORITHMS
    """Digest algorithms offered in challenges, in this order, and the only ones accepted
    (RFC 8760: SHA-256 first; MD5 for clients that know nothing else)."""
    metrics: MetricsListener | None = None
    """Where Prometheus metrics are served; None: they are off (nothing is counted)."""

    def __post_init__(self) -> None:
        domains = tuple(check_domain("domain", domain) for domain in self.domains)
        object.__setattr__(self, "domains", domains)
        subjects = tuple(check_fqdn("peer-subject", name) for name in self.peer_subjects)
        object.__setattr__(self, "peer_subjects", subjects)
        directory = tuple(check_aor("directory", aor) for aor in self.peer_directory)
        object.__setattr__(self, "peer_directory", directory)
        algorithms = tuple(name.upper() for name in self.digest_algorithms)
        unknown = [name for name in algorithms if name not in DIGEST_ALGORITHMS]
        if unknown or not algorithms or len(set(algorithms)) != len(algorithms):
            raise ConfigError(
                "digest",
                f"{', '.join(self.digest_algorithms) or 'nothing'} is not a list of "
                "distinct digest algorithms",
                "give SHA-256 and/or MD5, most preferred first",
            )
        object.__setattr__(self, "digest_algorithms", algorithms)
        if self.role is Role.IMP and self.listeners is None:
            object.__setattr__(self, "listeners", ImpListeners())

    @property
    def role(self) -> Role:
        """The node's role."""
        return self.identity.role

    def require_role(self, setting: str, role: Role) -> None:
        """Refuse a setting that belongs to the other role, naming the role that has it."""
        if self.role is not role:
            raise ConfigError(
                setting,
                f"this is an {self.role.value} node; {setting} belongs to role {role.value}",
                f"run it on an {role.value} node's --home",
            )

    def validate(self) -> NodeConfig:
        """Check the rules that span settings; return self."""
        self._validate_roles()
        _unique("domain", self.domains, "remove the duplicate")
        _unique("peer-subject", self.peer_subjects, "remove the duplicate")
        _unique("directory", self.peer_directory, "remove the duplicate")
        _unique("user", [user.aor for user in self.users], "remove the duplicate")
        _unique("hosts", [entry.fqdn for entry in self.hosts], "remove one of the two entries")
        _unique("hostauth", [entry.host for entry in self.host_authorizations], "remove one")
        _unique("acl", [entry.host for entry in self.acl], "remove one")
        served = set(self.domains)
        for user in self.users:
            if user.domain not in served:
                raise ConfigError(
                    "user",
                    f"{user.aor} is in {user.domain}, which this node does not serve",
                    f"add the domain first: intrafed config domain add {user.domain}",
                )
        keys = [route.key for route in self.routes]
        for domain, priority in keys:
            if keys.count((domain, priority)) > 1:
                at = f" at priority {priority}" if self.role is Role.IMP else ""
                raise ConfigError(
                    "route",
                    f"two static routes have the matching URI {domain}{at}",
                    "remove one (a matching URI may appear once)"
                    if self.role is Role.OCS
                    else "remove one, or give the backup a higher --priority",
                )
        ports = [(c.ip, c.port) for c in self.connections]
        for ip, port in ports:
            clash = [p for i, p in ports if p == port and (i == ip or "All" in (i, ip))]
            if len(clash) > 1:
                raise ConfigError(
                    "connection",
                    f"two connections listen on port {port}",
                    "remove one of them, or use another --port",
                )
        return self

    def _validate_roles(self) -> None:
        """Refuse parts of the other role that reached the tree (e.g. by import)."""
        foreign = {
            Role.OCS: {
                "listener": self.listeners is not None,
                "peer-subject": bool(self.peer_subjects),
                "acl": bool(self.acl),
                "routing-mode": self.routing_mode is not RoutingMode.BASIC,
                "directory": bool(self.peer_directory),
                "--priority": any(route.priority != 1 for route in self.routes),
            },
            Role.IMP: {
                "connection": bool(self.connections),
                "hostauth": bool(self.host_authorizations),
                "--phone-uri": any(route.phone_uri for route in self.routes),
                "--replace-host": any(route.replace_host for route in self.routes),
            },
        }[self.role]
        owner = Role.IMP if self.role is Role.OCS else Role.OCS
        for setting, present in foreign.items():
            if present:
                self.require_role(setting, owner)


def _unique(setting: str, values: list[str] | tuple[str, ...], fix: str) -> None:
    seen: set[str] = set()
    for value in values:
        if value in seen:
            raise ConfigError(setting, f"{value} is listed twice", fix)
        seen.add(value)
