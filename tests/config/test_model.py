"""The typed model: every value is checked when it is made, cross-setting rules in
``NodeConfig.validate``."""

from __future__ import annotations

import dataclasses
import hashlib

import pytest

from intrafed.config.model import (
    AclEntry,
    ConfigError,
    Connection,
    Edition,
    HostAuthorization,
    HostEntry,
    ImpListeners,
    NodeConfig,
    NodeIdentity,
    Role,
    RoutingMode,
    StaticRoute,
    User,
)

IMP = NodeIdentity(Role.IMP, "imp1.example.com", "127.0.0.2")
OCS = NodeIdentity(Role.OCS, "ocs1.example.com", "127.0.0.3")


def refusal(error: pytest.ExceptionInfo[ConfigError]) -> str:
    """The one line an administrator sees."""
    text = str(error.value)
    assert "\n" not in text
    assert text.startswith(f"{error.value.setting}: ")
    return text


def test_config_error_is_one_line_naming_setting_message_and_fix() -> None:
    error = ConfigError("--port", "port 0 is outside 1-65535", "choose a port")
    assert str(error) == "--port: port 0 is outside 1-65535 — choose a port"
    assert (error.setting, error.message, error.fix) == (
        "--port",
        "port 0 is outside 1-65535",
        "choose a port",
    )


def test_identity_normalizes_and_defaults_ocs_to_standard_edition() -> None:
    identity = NodeIdentity(Role.OCS, "OCS1.Example.COM", "2001:DB8::3")
    assert (identity.fqdn, identity.ip) == ("ocs1.example.com", "2001:db8::3")
    assert identity.edition is Edition.STANDARD
    assert identity.certificate_name == "ocs1.example.com"


def test_enterprise_front_end_names_its_pool_for_the_certificate() -> None:
    identity = NodeIdentity(
        Role.OCS, "fe1.example.com", "10.0.0.1", Edition.ENTERPRISE, "Pool.example.com"
    )
    assert identity.certificate_name == "pool.example.com"


@pytest.mark.parametrize(
    ("arguments", "fragment"),
    [
        ((Role.IMP, "imp1.example.com", "10.0.0.1", Edition.STANDARD), "belong to role ocs"),
        ((Role.IMP, "imp1.example.com", "10.0.0.1", None, "p.example.com"), "role ocs"),
        ((Role.OCS, "fe.example.com", "10.0.0.1", Edition.ENTERPRISE), "--pool-fqdn"),
        ((Role.OCS, "se.example.com", "10.0.0.1", None, "p.example.com"), "no pool"),
        ((Role.OCS, "not a name", "10.0.0.1"), "not a fully qualified domain name"),
        ((Role.OCS, "10.0.0.1", "10.0.0.1"), "not a fully qualified domain name"),
        ((Role.OCS, "se.example.com", "10.0.0.256"), "not an IP address"),
    ],
)
def test_identity_refusals(arguments: tuple[object, ...], fragment: str) -> None:
    with pytest.raises(ConfigError) as error:
        NodeIdentity(*arguments)  # type: ignore[arg-type]
    assert fragment in refusal(error)


def test_connection_normalizes_transport_and_all() -> None:
    assert Connection("mtls", 5061, "all") == Connection("MTLS", 5061, "All")
    assert Connection("TCP", 5060, "10.0.0.1").ip == "10.0.0.1"


@pytest.mark.parametrize(
    ("arguments", "fragment"),
    [
        (("UDP", 5060), "use TCP, TLS or MTLS"),
        (("TCP", 0), "port 0 is outside 1-65535"),
        (("TCP", 65536), "port 65536 is outside 1-65535"),
        (("TCP", 5060, "everywhere"), "not an IP address"),
    ],
)
def test_connection_refusals(arguments: tuple[object, ...], fragment: str) -> None:
    with pytest.raises(ConfigError) as error:
        Connection(*arguments)  # type: ignore[arg-type]
    assert fragment in refusal(error)


def test_routes_tcp_by_ip_and_tls_by_fqdn() -> None:
    tcp = StaticRoute("Example.com", "tcp", 5060, ip="10.0.0.2")
    tls = StaticRoute("*.example.com", "TLS", 5061, fqdn="IMP1.example.com")
    assert (tcp.domain, tcp.transport, tcp.next_hop) == ("example.com", "TCP", "10.0.0.2")
    assert (tls.domain, tls.next_hop) == ("*.example.com", "imp1.example.com")
    assert (tls.phone_uri, tls.replace_host, tls.priority) == (False, False, 1)
    assert tls.key == ("*.example.com", 1)


def test_tls_route_with_an_ip_cites_the_seeds_important_note() -> None:
    with pytest.raises(ConfigError) as error:
        StaticRoute("example.com", "TLS", 5061, ip="10.0.0.2")
    text = refusal(error)
    assert "TLS static routes must name the next hop by FQDN" in text
    assert "use --fqdn" in text
    assert error.value.setting == "--ip"


@pytest.mark.parametrize(
    ("arguments", "fragment"),
    [
        ({"transport": "TCP", "port": 5060, "fqdn": "imp1.example.com"}, "use --ip"),
        ({"transport": "TCP", "port": 5060}, "exactly one next hop"),
        (
            {"transport": "TCP", "port": 5060, "ip": "10.0.0.2", "fqdn": "imp1.example.com"},
            "exactly one next hop",
        ),
        ({"transport": "UDP", "port": 5060, "ip": "10.0.0.2"}, "use TCP or TLS"),
        ({"transport": "TCP", "port": 99999, "ip": "10.0.0.2"}, "outside 1-65535"),
        ({"transport": "TCP", "port": 5060, "ip": "10.0.0.2", "priority": 0}, "below 1"),
        ({"transport": "TCP", "port": 5060, "ip": "10.0.0.2", "domain": "nodots"}, "not a domain"),
    ],
)
def test_route_refusals(arguments: dict[str, object], fragment: str) -> None:
    fields = {"domain": "example.com", **arguments}
    with pytest.raises(ConfigError) as error:
        StaticRoute(**fields)  # type: ignore[arg-type]
    assert fragment in refusal(error)


def test_host_authorization_defaults_are_the_seeds() -> None:
    entry = HostAuthorization(fqdn="IMP1.example.com")
    assert entry.host == "imp1.example.com"
    assert (entry.outbound_only, entry.throttle_as_server, entry.treat_as_authenticated) == (
        False,
        True,
        True,
    )


@pytest.mark.parametrize("address", ["0.0.0.0", "224.0.0.1", "239.255.255.255", "::", "ff02::1"])  # noqa: S104
def test_host_authorization_refuses_unspecified_and_multicast(address: str) -> None:
    with pytest.raises(ConfigError) as error:
        HostAuthorization(ip=address)
    assert "0.0.0.0 and multicast are refused" in refusal(error)


@pytest.mark.parametrize("kind", [HostAuthorization, AclEntry])
def test_host_entries_name_exactly_one_host(kind: type[HostAuthorization | AclEntry]) -> None:
    for arguments in ({}, {"fqdn": "a.example.com", "ip": "10.0.0.1"}):
        with pytest.raises(ConfigError) as error:
            kind(**arguments)  # type: ignore[arg-type]
        assert "--ip/--fqdn" in refusal(error)
    assert AclEntry(ip="2001:DB8::1").host == "2001:db8::1"


@pytest.mark.parametrize(
    ("ports", "fragment"),
    [
        ({"server_auth": 5061}, "Server Auth and Peer Auth both use port 5061"),
        ({"tcp": 5062}, "already a TLS listener"),
        ({"peer_auth": 0}, "outside 1-65535"),
        ({"tcp": 70000}, "outside 1-65535"),
    ],
)
def test_listener_refusals(ports: dict[str, int], fragment: str) -> None:
    with pytest.raises(ConfigError) as error:
        ImpListeners(**ports)
    assert fragment in refusal(error)


def test_listener_defaults_already_follow_the_seed() -> None:
    assert ImpListeners() == ImpListeners(tcp=5060, peer_auth=5061, server_auth=5062)


def test_user_keeps_only_ha1_hashes_of_the_password() -> None:
    user = User("alice@Example.com").with_password("s3cret")
    assert user.aor == "alice@example.com"
    assert (user.user, user.domain, user.enabled) == ("alice", "example.com", True)
    digest = b"alice:example.com:s3cret"
    assert user.ha1_md5 == hashlib.md5(digest).hexdigest()  # noqa: S324 (RFC 2617 HA1)
    assert user.ha1_sha256 == hashlib.sha256(digest).hexdigest()
    assert "s3cret" not in repr(user)
    assert all("s3cret" not in str(value) for value in dataclasses.astuple(user))


@pytest.mark.parametrize(
    ("arguments", "fragment"),
    [
        ({"aor": "alice"}, "is not user@domain"),
        ({"aor": "@example.com"}, "is not user@domain"),
        ({"aor": "alice@nodots"}, "not a domain"),
        ({"aor": "alice@example.com", "ha1_md5": "xyz"}, "32 lower-case hex digits"),
        ({"aor": "alice@example.com", "ha1_sha256": "ab" * 16}, "64 lower-case hex digits"),
    ],
)
def test_user_refusals(arguments: dict[str, str], fragment: str) -> None:
    with pytest.raises(ConfigError) as error:
        User(**arguments)  # type: ignore[arg-type]
    assert fragment in refusal(error)


def test_host_entry_checks_name_and_address() -> None:
    assert HostEntry("IMP1.example.com", "127.0.0.2").fqdn == "imp1.example.com"
    with pytest.raises(ConfigError):
        HostEntry("imp1", "127.0.0.2")
    with pytest.raises(ConfigError):
        HostEntry("imp1.example.com", "imp1")


def test_node_config_normalizes_domains_and_gives_imp_default_listeners() -> None:
    config = NodeConfig(IMP, domains=("Example.COM",), peer_subjects=("OCS1.example.com",))
    assert config.domains == ("example.com",)
    assert config.peer_subjects == ("ocs1.example.com",)
    assert config.listeners == ImpListeners()
    assert NodeConfig(OCS).listeners is None
    with pytest.raises(ConfigError) as error:
        NodeConfig(IMP, domains=("example",))
    assert "'example' is not a domain" in refusal(error)


def test_require_role_names_the_role_that_has_the_setting() -> None:
    with pytest.raises(ConfigError) as error:
        NodeConfig(IMP).require_role("hostauth", Role.OCS)
    assert refusal(error) == (
        "hostauth: this is an imp node; hostauth belongs to role ocs "
        "— run it on an ocs node's --home"
    )
    NodeConfig(OCS).require_role("hostauth", Role.OCS)


ROUTE = StaticRoute("example.com", "TCP", 5060, ip="10.0.0.2")


@pytest.mark.parametrize(
    ("config", "fragment"),
    [
        (
            NodeConfig(OCS, users=(User("bob@example.com"),)),
            "bob@example.com is in example.com, which this node does not serve",
        ),
        (NodeConfig(OCS, domains=("example.com", "Example.com")), "listed twice"),
        (
            NodeConfig(OCS, routes=(ROUTE, dataclasses.replace(ROUTE, ip="10.0.0.9"))),
            "matching URI",
        ),
        (NodeConfig(IMP, routes=(ROUTE, ROUTE)), "give the backup a higher --priority"),
        (
            NodeConfig(OCS, connections=(Connection("TCP", 5060), Connection("TLS", 5060))),
            "two connections listen on port 5060",
        ),
        (
            NodeConfig(
                OCS, connections=(Connection("TCP", 5060), Connection("TLS", 5060, "10.0.0.3"))
            ),
            "two connections listen on port 5060",
        ),
        (
            NodeConfig(OCS, host_authorizations=(HostAuthorization(ip="10.0.0.2"),) * 2),
            "10.0.0.2 is listed twice",
        ),
        (NodeConfig(IMP, acl=(AclEntry(fqdn="a.example.com"),) * 2), "listed twice"),
        (NodeConfig(IMP, hosts=(HostEntry("a.example.com", "10.0.0.1"),) * 2), "listed twice"),
        (NodeConfig(IMP, peer_subjects=("a.example.com",) * 2), "listed twice"),
        (
            NodeConfig(OCS, domains=("example.com",), users=(User("b@example.com"),) * 2),
            "listed twice",
        ),
        (NodeConfig(OCS, peer_subjects=("a.example.com",)), "peer-subject belongs to role imp"),
        (NodeConfig(OCS, acl=(AclEntry(ip="10.0.0.1"),)), "acl belongs to role imp"),
        (NodeConfig(OCS, listeners=ImpListeners()), "listener belongs to role imp"),
        (
            NodeConfig(OCS, routing_mode=RoutingMode.ADVANCED),
            "routing-mode belongs to role imp",
        ),
        (NodeConfig(IMP, peer_directory=("b@example.com",) * 2), "b@example.com is listed twice"),
        (NodeConfig(OCS, peer_directory=("b@example.com",)), "directory belongs to role imp"),
        (
            NodeConfig(OCS, routes=(dataclasses.replace(ROUTE, priority=2),)),
            "--priority belongs to role imp",
        ),
        (NodeConfig(IMP, connections=(Connection("TCP", 5060),)), "connection belongs to role ocs"),
        (
            NodeConfig(IMP, host_authorizations=(HostAuthorization(ip="10.0.0.2"),)),
            "hostauth belongs to role ocs",
        ),
        (
            NodeConfig(IMP, routes=(dataclasses.replace(ROUTE, phone_uri=True),)),
            "--phone-uri belongs to role ocs",
        ),
        (
            NodeConfig(IMP, routes=(dataclasses.replace(ROUTE, replace_host=True),)),
            "--replace-host belongs to role ocs",
        ),
    ],
)
def test_validate_refusals(config: NodeConfig, fragment: str) -> None:
    with pytest.raises(ConfigError) as error:
        config.validate()
    assert fragment in refusal(error)


def test_validate_accepts_one_port_on_two_addresses_and_imp_backup_routes() -> None:
    connections = (Connection("TCP", 5060, "10.0.0.3"), Connection("TCP", 5060, "10.0.0.4"))
    assert NodeConfig(OCS, connections=connections).validate().connections == connections
    routes = (ROUTE, dataclasses.replace(ROUTE, priority=2))
    assert NodeConfig(IMP, routes=routes).validate().routes == routes


def test_peer_directory_holds_checked_addresses_in_canonical_form() -> None:
    config = NodeConfig(IMP, peer_directory=("Bob@Example.COM",))
    assert config.peer_directory == ("Bob@example.com",)
    with pytest.raises(ConfigError, match="directory: 'bob' is not user@domain"):
        NodeConfig(IMP, peer_directory=("bob",))
