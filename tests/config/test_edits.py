"""The pure edits behind ``intrafed config``: each returns a new validated configuration or
refuses with one line naming the setting and the fix."""

from __future__ import annotations

import functools
from collections.abc import Callable

import pytest

from intrafed.config import edits
from intrafed.config.model import (
    AclEntry,
    ConfigError,
    Connection,
    HostAuthorization,
    HostEntry,
    ImpListeners,
    NodeConfig,
    NodeIdentity,
    Role,
    RoutingMode,
    StaticRoute,
)

OCS = NodeConfig(NodeIdentity(Role.OCS, "ocs1.example.com", "127.0.0.3"))
IMP = NodeConfig(NodeIdentity(Role.IMP, "imp1.example.com", "127.0.0.2"))
TLS_ROUTE = StaticRoute("example.com", "TLS", 5061, fqdn="imp1.example.com")
TCP_ROUTE = StaticRoute("example.com", "TCP", 5060, ip="127.0.0.2")

Edit = Callable[[NodeConfig], NodeConfig]


def refused(edit: Edit, config: NodeConfig) -> str:
    with pytest.raises(ConfigError) as error:
        edit(config)
    text = str(error.value)
    assert "\n" not in text
    return text


def test_domains() -> None:
    config = edits.add_domain(OCS, "Example.com")
    assert config.domains == ("example.com",)
    assert OCS.domains == ()
    config = edits.add_domain(config, "example.org")
    assert edits.remove_domain(config, "EXAMPLE.com").domains == ("example.org",)
    assert "example.com is already configured" in refused(
        lambda c: edits.add_domain(c, "example.com"), config
    )
    assert "example.net is not configured" in refused(
        lambda c: edits.remove_domain(c, "example.net"), config
    )
    assert "'example' is not a domain" in refused(lambda c: edits.add_domain(c, "example"), OCS)
    assert "is not a domain" in refused(lambda c: edits.add_domain(c, "10.0.0.1"), OCS)


def test_a_domain_with_users_cannot_be_removed() -> None:
    config = edits.add_user(edits.add_domain(IMP, "example.com"), "alice@example.com", "pw")
    text = refused(lambda c: edits.remove_domain(c, "example.com"), config)
    assert "1 user(s) are homed in example.com" in text
    assert "intrafed config user remove alice@example.com" in text


def test_connections_switch_5061_from_tls_to_mtls() -> None:
    config = edits.add_connection(OCS, Connection("TCP", 5060))
    config = edits.add_connection(config, Connection("TLS", 5061))
    assert "two connections listen on port 5061" in refused(
        lambda c: edits.add_connection(c, Connection("MTLS", 5061)), config
    )
    config = edits.remove_connection(config, Connection("tls", 5061, "all"))
    config = edits.add_connection(config, Connection("MTLS", 5061))
    assert config.connections == (Connection("TCP", 5060), Connection("MTLS", 5061))
    assert "TCP 5060 on All is already configured" in refused(
        lambda c: edits.add_connection(c, Connection("TCP", 5060)), config
    )
    assert "TLS 5061 on All is not configured" in refused(
        lambda c: edits.remove_connection(c, Connection("TLS", 5061)), config
    )
    assert "MTLS 5061 on 127.0.0.3 is not configured" in refused(
        lambda c: edits.remove_connection(c, Connection("MTLS", 5061, "127.0.0.3")), config
    )


def test_ocs_routes_one_per_matching_uri() -> None:
    config = edits.add_route(OCS, TLS_ROUTE)
    text = refused(lambda c: edits.add_route(c, TCP_ROUTE), config)
    assert "a static route with the matching URI example.com already exists" in text
    assert "duplicate matching URIs are refused" in text
    assert "--priority" not in text
    config = edits.add_route(config, StaticRoute("*.example.com", "TCP", 5060, ip="127.0.0.2"))
    config = edits.add_route(
        config, StaticRoute("tel.example.com", "TCP", 5060, ip="127.0.0.2", phone_uri=True)
    )
    assert len(config.routes) == 3
    assert "--priority belongs to role imp" in refused(
        lambda c: edits.add_route(
            c, StaticRoute("b.example.com", "TCP", 5060, ip="1.2.3.4", priority=2)
        ),
        OCS,
    )


def test_imp_routes_have_backups_by_priority() -> None:
    config = edits.add_route(IMP, TLS_ROUTE)
    backup = StaticRoute("example.com", "TCP", 5060, ip="127.0.0.4", priority=2)
    config = edits.add_route(config, backup)
    text = refused(lambda c: edits.add_route(c, backup), config)
    assert "matching URI example.com at priority 2 already exists" in text
    assert "higher --priority" in text
    for flag in ("phone_uri", "replace_host"):
        route = StaticRoute(
            "b.example.com",
            "TCP",
            5060,
            ip="1.2.3.4",
            phone_uri=flag == "phone_uri",
            replace_host=flag == "replace_host",
        )
        option = "--" + flag.replace("_", "-")
        assert f"{option} belongs to role ocs" in refused(
            functools.partial(edits.add_route, route=route), IMP
        )
    config = edits.remove_route(config, "example.com", 2)
    assert config.routes == (TLS_ROUTE,)
    assert "a static route for example.com at priority 2 is not configured" in refused(
        lambda c: edits.remove_route(c, "example.com", 2), config
    )


def test_remove_route_guards_against_the_wrong_route() -> None:
    config = edits.add_route(OCS, TLS_ROUTE)
    for guard in ({"transport": "TCP"}, {"port": 5060}, {"next_hop": "imp2.example.com"}):
        text = refused(functools.partial(edits.remove_route, domain="example.com", **guard), config)
        assert "goes to TLS imp1.example.com:5061" in text
    matching = edits.remove_route(
        config, "Example.com", transport="tls", port=5061, next_hop="IMP1.example.com"
    )
    assert matching.routes == ()
    assert "a static route for example.org is not configured" in refused(
        lambda c: edits.remove_route(c, "example.org"), config
    )


def test_host_authorization() -> None:
    config = edits.add_host_authorization(OCS, HostAuthorization(fqdn="imp1.example.com"))
    config = edits.add_host_authorization(config, HostAuthorization(ip="2001:db8::2"))
    assert "imp1.example.com is already configured" in refused(
        lambda c: edits.add_host_authorization(c, HostAuthorization(fqdn="IMP1.example.com")),
        config,
    )
    config = edits.remove_host_authorization(config, "2001:DB8:0::2")
    config = edits.remove_host_authorization(config, "Imp1.Example.com")
    assert config.host_authorizations == ()
    assert "host authorization for 127.0.0.2 is not configured" in refused(
        lambda c: edits.remove_host_authorization(c, "127.0.0.2"), config
    )


def test_listeners() -> None:
    config = edits.set_listeners(IMP, server_auth=5063)
    assert config.listeners == ImpListeners(5060, 5061, 5063)
    config = edits.set_listeners(config, peer_auth=5062, server_auth=5061)
    assert config.listeners == ImpListeners(5060, 5062, 5061)
    assert "Server Auth and Peer Auth both use port 5062" in refused(
        lambda c: edits.set_listeners(c, server_auth=5062), config
    )
    assert "no port given" in refused(edits.set_listeners, config)
    assert "port 0 is outside 1-65535" in refused(lambda c: edits.set_listeners(c, tcp=0), IMP)


def test_peer_subjects_acl_and_routing_mode() -> None:
    config = edits.add_peer_subject(IMP, "OCS1.example.com")
    assert "ocs1.example.com is already configured" in refused(
        lambda c: edits.add_peer_subject(c, "ocs1.example.com"), config
    )
    assert "not a fully qualified domain name" in refused(
        lambda c: edits.add_peer_subject(c, "ocs1"), config
    )
    assert edits.remove_peer_subject(config, "ocs1.example.com").peer_subjects == ()
    assert "TLS peer subject pool.example.com is not configured" in refused(
        lambda c: edits.remove_peer_subject(c, "pool.example.com"), config
    )
    config = edits.add_acl(config, AclEntry(ip="127.0.0.3"))
    config = edits.add_acl(config, AclEntry(fqdn="ocs1.example.com"))
    assert "127.0.0.3 is already configured" in refused(
        lambda c: edits.add_acl(c, AclEntry(ip="127.0.0.3")), config
    )
    assert edits.remove_acl(config, "127.0.0.3").acl == (AclEntry(fqdn="ocs1.example.com"),)
    assert "incoming ACL entry for 127.0.0.9 is not configured" in refused(
        lambda c: edits.remove_acl(c, "127.0.0.9"), config
    )
    assert edits.set_routing_mode(config, RoutingMode.ADVANCED).routing_mode is RoutingMode.ADVANCED


def test_peer_directory_add_remove_and_replace() -> None:
    config = edits.add_directory_users(IMP, ["bob@example.com", "Carol@Example.com"])
    assert config.peer_directory == ("bob@example.com", "Carol@example.com")
    assert refused(lambda c: edits.add_directory_users(c, ["bob@example.com"]), config) == (
        "directory: bob@example.com is already configured — see intrafed config directory "
        "list; remove it first to change it"
    )
    assert "directory: dave@example.com is listed twice" in refused(
        lambda c: edits.add_directory_users(c, ["dave@example.com"] * 2), config
    )
    assert "directory: 'dave' is not user@domain" in refused(
        lambda c: edits.add_directory_users(c, ["dave"]), config
    )
    assert edits.remove_directory_user(config, "bob@EXAMPLE.com").peer_directory == (
        "Carol@example.com",
    )
    assert refused(lambda c: edits.remove_directory_user(c, "eve@example.com"), config) == (
        "directory: eve@example.com is not configured — see intrafed config directory list"
    )
    replaced = edits.replace_directory(config, ["eve@example.com"])
    assert replaced.peer_directory == ("eve@example.com",)
    assert edits.replace_directory(replaced, []) == IMP


@pytest.mark.parametrize(
    ("edit", "setting"),
    [
        (lambda c: edits.add_connection(c, Connection("TCP", 5060)), "connection"),
        (lambda c: edits.remove_connection(c, Connection("TCP", 5060)), "connection"),
        (lambda c: edits.add_host_authorization(c, HostAuthorization(ip="1.2.3.4")), "hostauth"),
        (lambda c: edits.remove_host_authorization(c, "1.2.3.4"), "hostauth"),
    ],
)
def test_ocs_settings_are_refused_on_imp_naming_role_ocs(edit: Edit, setting: str) -> None:
    assert refused(edit, IMP) == (
        f"{setting}: this is an imp node; {setting} belongs to role ocs "
        "— run it on an ocs node's --home"
    )


@pytest.mark.parametrize(
    ("edit", "setting"),
    [
        (lambda c: edits.set_listeners(c, tcp=5070), "listener"),
        (lambda c: edits.add_peer_subject(c, "ocs1.example.com"), "peer-subject"),
        (lambda c: edits.remove_peer_subject(c, "ocs1.example.com"), "peer-subject"),
        (lambda c: edits.add_acl(c, AclEntry(ip="1.2.3.4")), "acl"),
        (lambda c: edits.remove_acl(c, "1.2.3.4"), "acl"),
        (lambda c: edits.set_routing_mode(c, RoutingMode.BASIC), "routing-mode"),
        (lambda c: edits.add_directory_users(c, ["bob@example.com"]), "directory"),
        (lambda c: edits.remove_directory_user(c, "bob@example.com"), "directory"),
        (lambda c: edits.replace_directory(c, []), "directory"),
    ],
)
def test_imp_settings_are_refused_on_ocs_naming_role_imp(edit: Edit, setting: str) -> None:
    assert f"{setting}: this is an ocs node; {setting} belongs to role imp" in refused(edit, OCS)


def test_block_lists() -> None:
    config = edits.add_user(edits.add_domain(OCS, "example.com"), "bob@example.com", "pw")
    blocked = edits.block_watcher(config, "bob@example.com", "Mallory@Example.COM")
    assert blocked.users[0].blocked == ("Mallory@example.com",)
    assert "bob@example.com already blocks Mallory@example.com" in refused(
        lambda c: edits.block_watcher(c, "bob@example.com", "Mallory@example.com"), blocked
    )
    assert "WATCHER: 'mallory' is not user@domain" in refused(
        lambda c: edits.block_watcher(c, "bob@example.com", "mallory"), config
    )
    assert edits.unblock_watcher(blocked, "bob@example.com", "Mallory@example.com") == config
    assert "bob@example.com does not block eve@example.com" in refused(
        lambda c: edits.unblock_watcher(c, "bob@example.com", "eve@example.com"), blocked
    )
    assert "carol@example.com is not configured" in refused(
        lambda c: edits.block_watcher(c, "carol@example.com", "eve@example.com"), config
    )


def test_users_keep_no_password() -> None:
    config = edits.add_domain(OCS, "example.com")
    config = edits.add_user(config, "Bob@Example.com", "s3cret")
    (bob,) = config.users
    assert (bob.aor, bob.enabled) == ("Bob@example.com", True)
    assert bob.ha1_md5 is not None
    assert bob.ha1_sha256 is not None
    assert "s3cret" not in repr(config)
    disabled = edits.set_user_enabled(config, "Bob@example.com", False)
    assert disabled.users[0].enabled is False
    assert disabled.users[0].ha1_sha256 == bob.ha1_sha256
    assert edits.set_user_enabled(disabled, "Bob@example.com", True) == config
    assert edits.remove_user(config, "Bob@example.com").users == ()
    assert "Bob@example.com is already configured" in refused(
        lambda c: edits.add_user(c, "Bob@example.com", "x"), config
    )
    assert "bob@example.com is not configured" in refused(
        lambda c: edits.remove_user(c, "bob@example.com"), config
    )
    assert "carol@example.com is not configured" in refused(
        lambda c: edits.set_user_enabled(c, "carol@example.com", False), config
    )
    assert "the password is empty" in refused(
        lambda c: edits.add_user(c, "carol@example.com", ""), config
    )
    assert "is not user@domain" in refused(lambda c: edits.add_user(c, "carol", "x"), config)


def test_a_user_in_a_domain_the_node_does_not_serve_is_refused() -> None:
    text = refused(lambda c: edits.add_user(c, "eve@example.net", "pw"), OCS)
    assert text == (
        "user: eve@example.net is in example.net, which this node does not serve "
        "— add the domain first: intrafed config domain add example.net"
    )


def test_hosts() -> None:
    config = edits.add_host(IMP, HostEntry("ocs1.example.com", "127.0.0.3"))
    assert "ocs1.example.com is already configured" in refused(
        lambda c: edits.add_host(c, HostEntry("ocs1.example.com", "127.0.0.4")), config
    )
    assert "ocs1.example.com 127.0.0.4 is not configured" in refused(
        lambda c: edits.remove_host(c, "ocs1.example.com", "127.0.0.4"), config
    )
    assert edits.remove_host(config, "OCS1.example.com", "127.0.0.3").hosts == ()
    assert edits.remove_host(config, "ocs1.example.com").hosts == ()
    assert "ocs2.example.com is not configured" in refused(
        lambda c: edits.remove_host(c, "ocs2.example.com"), config
    )


@pytest.mark.parametrize("base", [OCS, IMP], ids=["ocs", "imp"])
def test_fips_on_both_roles(base: NodeConfig) -> None:
    assert edits.set_fips(base, False).fips is False
    assert edits.set_fips(edits.set_fips(base, False), True) == base
