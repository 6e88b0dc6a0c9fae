"""Pure edits of a node's configuration, one per ``intrafed config`` command.

Each takes a ``NodeConfig`` and returns a new, validated one, or raises ``ConfigError``
naming the setting and the fix. A setting of the other role is refused naming the role
that has it; removing something that is not there is an error, and so is adding it twice.
The ``set_…`` edits change an entry in place (it keeps its place in its list), checked by
the same rules, with the same messages, as adding it.
"""

from __future__ import annotations

import dataclasses
import ipaddress
from collections.abc import Sequence
from typing import Any

from intrafed.config.model import (
    AclEntry,
    ConfigError,
    Connection,
    HostAuthorization,
    HostEntry,
    ImpListeners,
    MetricsListener,
    NodeConfig,
    RateClass,
    RateLimits,
    Role,
    RoutingMode,
    StaticRoute,
    TlsProfile,
    User,
)
from intrafed.config.values import check_aor, check_domain, check_fqdn


def _replace(config: NodeConfig, **changes: Any) -> NodeConfig:
    return dataclasses.replace(config, **changes).validate()


def _host(value: str) -> str:
    """An FQDN or IP address as the model stores it (lower case, canonical address)."""
    try:
        return str(ipaddress.ip_address(value))
    except ValueError:
        return value.lower()


def _absent(setting: str, what: str) -> ConfigError:
    return ConfigError(setting, f"{what} is not configured", f"see intrafed config {setting} list")


_SETTABLE = ("connection", "route", "hostauth", "peer-subject", "acl", "user", "hosts")
"""The settings whose entries ``intrafed config SETTING set`` changes in place."""


def _present(setting: str, what: str) -> ConfigError:
    change = f"change it with intrafed config {setting} set"
    return ConfigError(
        setting,
        f"{what} is already configured",
        f"see intrafed config {setting} list; "
        + (change if setting in _SETTABLE else "remove it first to change it"),
    )


def _nothing(setting: str, options: str) -> ConfigError:
    return ConfigError(setting, "nothing to change", f"give {options}")


def _swap(entries: tuple[Any, ...], old: Any, new: Any) -> tuple[Any, ...]:
    """``entries`` with ``old`` replaced by ``new`` in its place."""
    return tuple(new if entry is old else entry for entry in entries)


# Domains (both roles): the seed's "Domain Verification".


def add_domain(config: NodeConfig, domain: str) -> NodeConfig:
    """Serve ``domain`` here."""
    domain = check_domain("domain", domain)
    if domain in config.domains:
        raise _present("domain", domain)
    return _replace(config, domains=(*config.domains, domain))


def remove_domain(config: NodeConfig, domain: str) -> NodeConfig:
    """Stop serving ``domain``; refused while users are homed in it."""
    domain = domain.lower()
    if domain not in config.domains:
        raise _absent("domain", domain)
    homed = [user.aor for user in config.users if user.domain == domain]
    if homed:
        raise ConfigError(
            "domain",
            f"{len(homed)} user(s) are homed in {domain}, e.g. {homed[0]}",
            f"remove them first: intrafed config user remove {homed[0]}",
        )
    return _replace(config, domains=tuple(d for d in config.domains if d != domain))


# Connections (ocs): "Enable Port 5060/5061 on OCS Server", "Configure Mutual TLS".


def add_connection(config: NodeConfig, connection: Connection) -> NodeConfig:
    """Listen on one more (IP, transport, port); a port already in use is refused."""
    config.require_role("connection", Role.OCS)
    if connection in config.connections:
        raise _present("connection", _connection_text(connection))
    return _replace(config, connections=(*config.connections, connection))


def remove_connection(config: NodeConfig, connection: Connection) -> NodeConfig:
    """Stop listening on exactly this (IP, transport, port)."""
    config.require_role("connection", Role.OCS)
    if connection not in config.connections:
        raise _absent("connection", _connection_text(connection))
    return _replace(config, connections=tuple(c for c in config.connections if c != connection))


def set_connection(config: NodeConfig, connection: Connection, changed: Connection) -> NodeConfig:
    """Listen on ``changed`` instead of exactly ``connection``, in its place."""
    config.require_role("connection", Role.OCS)
    if connection not in config.connections:
        raise _absent("connection", _connection_text(connection))
    if changed == connection:
        raise _nothing("connection", "--new-transport, --new-port and/or --new-ip")
    if changed in config.connections:
        raise _present("connection", _connection_text(changed))
    connections = tuple(changed if c == connection else c for c in config.connections)
    return _replace(config, connections=connections)


def _connection_text(connection: Connection) -> str:
    return f"{connection.transport} {connection.port} on {connection.ip}"


# Static routes (both roles; priority is imp's, phone URI and replace host are ocs's).


def add_route(config: NodeConfig, route: StaticRoute) -> NodeConfig:
    """Add a static route; a second route with the same matching URI (and, on IM&P, the
    same priority) is refused."""
    _check_route(config, route, config.routes)
    return _replace(config, routes=(*config.routes, route))


def _check_route(config: NodeConfig, route: StaticRoute, others: Sequence[StaticRoute]) -> None:
    """Refuse a route of the other role's kind, or one whose matching URI (and priority)
    one of ``others`` has."""
    if route.priority != 1:
        config.require_role("--priority", Role.IMP)
    if route.phone_uri:
        config.require_role("--phone-uri", Role.OCS)
    if route.replace_host:
        config.require_role("--replace-host", Role.OCS)
    for existing in others:
        if existing.key == route.key:
            at = f" at priority {route.priority}" if config.role is Role.IMP else ""
            raise ConfigError(
                "--domain",
                f"a static route with the matching URI {route.domain}{at} already exists "
                f"(next hop {existing.transport} {existing.next_hop}:{existing.port}); "
                "duplicate matching URIs are refused",
                f"change it instead: intrafed config route set --domain {route.domain}"
                + (" (or give a backup route a higher --priority)" if at else ""),
            )


def set_route(
    config: NodeConfig,
    domain: str,
    priority: int = 1,
    *,
    transport: str | None = None,
    port: int | None = None,
    ip: str | None = None,
    fqdn: str | None = None,
    phone_uri: bool | None = None,
    replace_host: bool | None = None,
    new_priority: int | None = None,
) -> NodeConfig:
    """Change the route for ``domain`` (at ``priority``): the values given replace the
    route's, a next hop given by ``ip`` or ``fqdn`` replaces the other."""
    route = _route(config, domain, priority)
    given = {
        "transport": transport,
        "port": port,
        "ip": ip,
        "fqdn": fqdn,
        "phone_uri": phone_uri,
        "replace_host": replace_host,
        "priority": new_priority,
    }
    changes: dict[str, Any] = {name: value for name, value in given.items() if value is not None}
    if not changes:
        raise _nothing(
            "route",
            "--transport, --port, --ip or --fqdn, --phone-uri, --replace-host "
            "and/or --new-priority",
        )
    if (ip is None) != (fqdn is None):  # a new next hop replaces the other kind
        changes.setdefault("ip", None)
        changes.setdefault("fqdn", None)
    changed = StaticRoute(**{**_fields(route), **changes})
    _check_route(config, changed, [r for r in config.routes if r is not route])
    return _replace(config, routes=_swap(config.routes, route, changed))


def _route(config: NodeConfig, domain: str, priority: int) -> StaticRoute:
    key = (domain.lower(), priority)
    for route in config.routes:
        if route.key == key:
            return route
    at = f" at priority {priority}" if config.role is Role.IMP else ""
    raise _absent("route", f"a static route for {key[0]}{at}")


def _fields(entry: Any) -> dict[str, Any]:
    return {item.name: getattr(entry, item.name) for item in dataclasses.fields(entry)}


def remove_route(
    config: NodeConfig,
    domain: str,
    priority: int = 1,
    *,
    transport: str | None = None,
    port: int | None = None,
    next_hop: str | None = None,
) -> NodeConfig:
    """Remove the route for ``domain`` (at ``priority``). The other arguments, when
    given, must describe that route: a guard against removing the wrong one."""
    route = _route(config, domain, priority)
    expected = (transport, port, next_hop)
    actual = (route.transport, route.port, route.next_hop)
    for given, value in zip(expected, actual, strict=True):
        if given is not None and _host(str(given)) != _host(str(value)):
            raise ConfigError(
                "route",
                f"the static route for {route.domain} goes to "
                f"{route.transport} {route.next_hop}:{route.port}, not {given}",
                "check intrafed config route list, or give only --domain",
            )
    return _replace(config, routes=tuple(r for r in config.routes if r is not route))


# Host authorization (ocs): "Add Host Authorization on OCS".


def add_host_authorization(config: NodeConfig, entry: HostAuthorization) -> NodeConfig:
    """Authorize one more host (by FQDN or by IP)."""
    config.require_role("hostauth", Role.OCS)
    if any(existing.host == entry.host for existing in config.host_authorizations):
        raise _present("hostauth", entry.host)
    return _replace(config, host_authorizations=(*config.host_authorizations, entry))


def remove_host_authorization(config: NodeConfig, host: str) -> NodeConfig:
    """Remove the entry that names ``host`` (an FQDN or an IP)."""
    config.require_role("hostauth", Role.OCS)
    host = _host(host)
    kept = tuple(entry for entry in config.host_authorizations if entry.host != host)
    if len(kept) == len(config.host_authorizations):
        raise _absent("hostauth", f"host authorization for {host}")
    return _replace(config, host_authorizations=kept)


def set_host_authorization(
    config: NodeConfig,
    host: str,
    *,
    fqdn: str | None = None,
    ip: str | None = None,
    outbound_only: bool | None = None,
    throttle_as_server: bool | None = None,
    treat_as_authenticated: bool | None = None,
) -> NodeConfig:
    """Change the entry that names ``host``: its flags, or the host it names (``fqdn`` or
    ``ip``)."""
    config.require_role("hostauth", Role.OCS)
    entry = _entry("hostauth", config.host_authorizations, host, "host authorization")
    flags = {
        "outbound_only": outbound_only,
        "throttle_as_server": throttle_as_server,
        "treat_as_authenticated": treat_as_authenticated,
    }
    changes: dict[str, Any] = {name: value for name, value in flags.items() if value is not None}
    if fqdn is not None or ip is not None:
        changes |= {"fqdn": fqdn, "ip": ip}
    if not changes:
        raise _nothing(
            "hostauth",
            "--new-fqdn or --new-ip, --outbound-only, --throttle-as-server "
            "and/or --treat-as-authenticated",
        )
    changed = HostAuthorization(**{**_fields(entry), **changes})
    entries = config.host_authorizations
    if changed.host != entry.host and any(e.host == changed.host for e in entries):
        raise _present("hostauth", changed.host)
    return _replace(config, host_authorizations=_swap(entries, entry, changed))


def _entry(setting: str, entries: Sequence[Any], host: str, what: str) -> Any:
    """The entry of ``entries`` that names ``host`` (an FQDN or an IP)."""
    host = _host(host)
    for entry in entries:
        if entry.host == host:
            return entry
    raise _absent(setting, f"{what} for {host}")


# IM&P: application listeners, TLS peer subjects, incoming ACL, routing mode.


def set_listeners(
    config: NodeConfig,
    tcp: int | None = None,
    peer_auth: int | None = None,
    server_auth: int | None = None,
) -> NodeConfig:
    """Move application listeners; the ports left out keep their values."""
    config.require_role("listener", Role.IMP)
    given = {"tcp": tcp, "peer_auth": peer_auth, "server_auth": server_auth}
    changes = {name: port for name, port in given.items() if port is not None}
    if not changes:
        raise ConfigError(
            "listener", "no port given", "give --tcp, --peer-auth and/or --server-auth"
        )
    current = config.listeners or ImpListeners()
    return _replace(config, listeners=dataclasses.replace(current, **changes))


def add_peer_subject(config: NodeConfig, name: str) -> NodeConfig:
    """Accept one more certificate subject (an FQDN) on the Peer Auth listener."""
    config.require_role("peer-subject", Role.IMP)
    name = check_fqdn("peer-subject", name)
    if name in config.peer_subjects:
        raise _present("peer-subject", name)
    return _replace(config, peer_subjects=(*config.peer_subjects, name))


def remove_peer_subject(config: NodeConfig, name: str) -> NodeConfig:
    """Stop accepting ``name`` on the Peer Auth listener."""
    config.require_role("peer-subject", Role.IMP)
    name = name.lower()
    if name not in config.peer_subjects:
        raise _absent("peer-subject", f"TLS peer subject {name}")
    return _replace(config, peer_subjects=tuple(s for s in config.peer_subjects if s != name))


def set_peer_subject(config: NodeConfig, name: str, new_name: str) -> NodeConfig:
    """Accept ``new_name`` instead of ``name``, in its place."""
    config.require_role("peer-subject", Role.IMP)
    name, new_name = name.lower(), check_fqdn("peer-subject", new_name)
    if name not in config.peer_subjects:
        raise _absent("peer-subject", f"TLS peer subject {name}")
    if new_name != name and new_name in config.peer_subjects:
        raise _present("peer-subject", new_name)
    subjects = tuple(new_name if s == name else s for s in config.peer_subjects)
    return _replace(config, peer_subjects=subjects)


def add_acl(config: NodeConfig, entry: AclEntry) -> NodeConfig:
    """Trust one more host's TCP requests without digest."""
    config.require_role("acl", Role.IMP)
    if any(existing.host == entry.host for existing in config.acl):
        raise _present("acl", entry.host)
    return _replace(config, acl=(*config.acl, entry))


def remove_acl(config: NodeConfig, host: str) -> NodeConfig:
    """Remove the ACL entry that names ``host`` (an FQDN or an IP)."""
    config.require_role("acl", Role.IMP)
    host = _host(host)
    kept = tuple(entry for entry in config.acl if entry.host != host)
    if len(kept) == len(config.acl):
        raise _absent("acl", f"incoming ACL entry for {host}")
    return _replace(config, acl=kept)


def set_acl(config: NodeConfig, host: str, replacement: AclEntry) -> NodeConfig:
    """Trust ``replacement`` instead of the entry that names ``host``, in its place."""
    config.require_role("acl", Role.IMP)
    entry = _entry("acl", config.acl, host, "incoming ACL entry")
    if replacement.host != entry.host and any(e.host == replacement.host for e in config.acl):
        raise _present("acl", replacement.host)
    return _replace(config, acl=_swap(config.acl, entry, replacement))


def set_routing_mode(config: NodeConfig, mode: RoutingMode) -> NodeConfig:
    """Basic: forward every same-domain user not homed here; advanced: only listed ones."""
    config.require_role("routing-mode", Role.IMP)
    return _replace(config, routing_mode=mode)


# Peer directory (imp): the OCS side's users, for advanced routing mode.


def add_directory_users(config: NodeConfig, aors: Sequence[str]) -> NodeConfig:
    """List more of the OCS side's users in the directory."""
    config.require_role("directory", Role.IMP)
    added = tuple(check_aor("directory", aor) for aor in aors)
    for aor in added:
        if aor in config.peer_directory:
            raise _present("directory", aor)
    return _replace(config, peer_directory=(*config.peer_directory, *added))


def remove_directory_user(config: NodeConfig, aor: str) -> NodeConfig:
    """Take one user off the directory."""
    config.require_role("directory", Role.IMP)
    aor = check_aor("directory", aor)
    if aor not in config.peer_directory:
        raise _absent("directory", aor)
    return _replace(config, peer_directory=tuple(a for a in config.peer_directory if a != aor))


def replace_directory(config: NodeConfig, aors: Sequence[str]) -> NodeConfig:
    """Make ``aors`` the whole directory (an empty list clears it)."""
    config.require_role("directory", Role.IMP)
    return _replace(config, peer_directory=tuple(aors))


# Users (both roles): homed here, credentials kept as HA1 only.


def add_user(config: NodeConfig, aor: str, password: str) -> NodeConfig:
    """Home ``user@domain`` here (enabled) with the digest HA1s of ``password``."""
    user = User(aor)
    if not password:
        raise ConfigError("--password-file", "the password is empty", "write it in the file")
    if user.domain not in config.domains:
        raise ConfigError(
            "user",
            f"{user.aor} is in {user.domain}, which this node does not serve",
            f"add the domain first: intrafed config domain add {user.domain}",
        )
    if any(existing.aor == user.aor for existing in config.users):
        raise _present("user", user.aor)
    return _replace(config, users=(*config.users, user.with_password(password)))


def set_user_password(config: NodeConfig, aor: str, password: str) -> NodeConfig:
    """Replace the user's credentials with the HA1s of ``password``."""
    user = _user(config, aor)
    if not password:
        raise ConfigError("--password-file", "the password is empty", "write it in the file")
    return _replace(config, users=_swap(config.users, user, user.with_password(password)))


def remove_user(config: NodeConfig, aor: str) -> NodeConfig:
    """Delete the user (requests for it may then cross to the other partition)."""
    aor = _user(config, aor).aor
    return _replace(config, users=tuple(u for u in config.users if u.aor != aor))


def set_user_enabled(config: NodeConfig, aor: str, enabled: bool) -> NodeConfig:
    """Enable or disable a user; a disabled user stays homed here."""
    return _with_user(config, _user(config, aor), enabled=enabled)


_SEE_BLOCKED = "see the user's blocked list in intrafed config export"


def block_watcher(config: NodeConfig, aor: str, watcher: str) -> NodeConfig:
    """Add ``watcher`` to the user's block list: it will only ever see the user Offline."""
    user = _user(config, aor)
    watcher = check_aor("WATCHER", watcher)
    if watcher in user.blocked:
        raise ConfigError("user", f"{user.aor} already blocks {watcher}", _SEE_BLOCKED)
    return _with_user(config, user, blocked=(*user.blocked, watcher))


def unblock_watcher(config: NodeConfig, aor: str, watcher: str) -> NodeConfig:
    """Take ``watcher`` off the user's block list."""
    user = _user(config, aor)
    watcher = check_aor("WATCHER", watcher)
    if watcher not in user.blocked:
        raise ConfigError("user", f"{user.aor} does not block {watcher}", _SEE_BLOCKED)
    return _with_user(config, user, blocked=tuple(w for w in user.blocked if w != watcher))


def _with_user(config: NodeConfig, user: User, **changes: Any) -> NodeConfig:
    return _replace(config, users=_swap(config.users, user, dataclasses.replace(user, **changes)))


def _user(config: NodeConfig, aor: str) -> User:
    wanted = User(aor).aor
    for user in config.users:
        if user.aor == wanted:
            return user
    raise _absent("user", wanted)


# Static name resolution (both roles).


def add_host(config: NodeConfig, entry: HostEntry) -> NodeConfig:
    """Resolve ``entry.fqdn`` to ``entry.ip``; one address per name."""
    if any(existing.fqdn == entry.fqdn for existing in config.hosts):
        raise _present("hosts", entry.fqdn)
    return _replace(config, hosts=(*config.hosts, entry))


def set_host(config: NodeConfig, entry: HostEntry) -> NodeConfig:
    """Resolve the listed ``entry.fqdn`` to a new address, ``entry.ip``."""
    for existing in config.hosts:
        if existing.fqdn == entry.fqdn:
            return _replace(config, hosts=_swap(config.hosts, existing, entry))
    raise _absent("hosts", entry.fqdn)


def remove_host(config: NodeConfig, fqdn: str, ip: str | None = None) -> NodeConfig:
    """Forget ``fqdn``; when ``ip`` is given it must be the address it resolves to."""
    fqdn = fqdn.lower()
    found = [entry for entry in config.hosts if entry.fqdn == fqdn]
    if not found or (ip is not None and found[0].ip != _host(ip)):
        raise _absent("hosts", f"{fqdn} {ip}" if ip is not None else fqdn)
    return _replace(config, hosts=tuple(e for e in config.hosts if e.fqdn != fqdn))


# FIPS policy (both roles).


def set_rate_limits(
    config: NodeConfig,
    client_rate: int | None = None,
    client_burst: int | None = None,
    server_rate: int | None = None,
    server_burst: int | None = None,
) -> NodeConfig:
    """Change the client and server rate classes; the values left out keep theirs."""
    limits = config.rate_limits
    client = RateClass(
        client_rate if client_rate is not None else limits.client.rate,
        client_burst if client_burst is not None else limits.client.burst,
    )
    server = RateClass(
        server_rate if server_rate is not None else limits.server.rate,
        server_burst if server_burst is not None else limits.server.burst,
    )
    return _replace(config, rate_limits=RateLimits(client, server))


def set_digest_algorithms(config: NodeConfig, algorithms: Sequence[str]) -> NodeConfig:
    """Offer (and accept) these digest algorithms, most preferred first."""
    return _replace(config, digest_algorithms=tuple(algorithms))


def set_metrics(config: NodeConfig, listener: MetricsListener | None) -> NodeConfig:
    """Serve Prometheus metrics on ``listener`` (IP and port), or not at all (None)."""
    return _replace(config, metrics=listener)


def set_fips(config: NodeConfig, on: bool) -> NodeConfig:
    """Turn the FIPS-approved-algorithms policy on (TLS 1.2+, approved suites) or off."""
    return _replace(config, fips=on)


def set_tls_profile(config: NodeConfig, profile: TlsProfile) -> NodeConfig:
    """The TLS versions allowed: ``default`` (TLS 1.2+) or ``legacy-tls1`` (TLS 1.0+, for
    old peers, never with the FIPS policy)."""
    return _replace(config, tls_profile=profile)
