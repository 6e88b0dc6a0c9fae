"""The TOML document: round trips, whole-document validation, and what differs."""

from __future__ import annotations

import dataclasses
import tomllib
from typing import Any

import pytest
import tomli_w

from intrafed.config.document import (
    FORMAT_VERSION,
    changes,
    from_document,
    from_toml,
    to_document,
    to_toml,
)
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
    RateClass,
    RateLimits,
    Role,
    RoutingMode,
    StaticRoute,
    User,
)

OCS = NodeConfig(
    NodeIdentity(Role.OCS, "fe1.example.com", "10.0.0.3", Edition.ENTERPRISE, "pool.example.com"),
    domains=("example.com",),
    connections=(Connection("TCP", 5060), Connection("MTLS", 5061)),
    routes=(StaticRoute("example.com", "TLS", 5061, fqdn="imp1.example.com"),),
    host_authorizations=(
        HostAuthorization(fqdn="imp1.example.com"),
        HostAuthorization(ip="10.0.0.2", outbound_only=True),
    ),
    users=(User("bob@example.com").with_password("pw"), User("carol@example.com", False)),
    hosts=(HostEntry("imp1.example.com", "10.0.0.2"),),
    fips=False,
).validate()
IMP = NodeConfig(
    NodeIdentity(Role.IMP, "imp1.example.com", "10.0.0.2"),
    domains=("example.com", "example.org"),
    routes=(
        StaticRoute("example.com", "TLS", 5061, fqdn="fe1.example.com"),
        StaticRoute("example.com", "TCP", 5060, ip="10.0.0.4", priority=2),
    ),
    listeners=ImpListeners(server_auth=5063),
    peer_subjects=("pool.example.com",),
    acl=(AclEntry(ip="10.0.0.3"), AclEntry(fqdn="pool.example.com")),
    routing_mode=RoutingMode.ADVANCED,
    peer_directory=("bob@example.com", "carol@example.com"),
    users=(User("alice@example.com", blocked=("mallory@example.com",)).with_password("pw"),),
).validate()


@pytest.mark.parametrize(
    "config",
    [
        OCS,
        IMP,
        dataclasses.replace(IMP, peer_directory=()),
        dataclasses.replace(
            OCS, rate_limits=RateLimits(client=RateClass(20, 40)), digest_algorithms=("MD5",)
        ),
    ],
    ids=["ocs", "imp", "imp-without-directory", "ocs-with-limits-and-md5"],
)
def test_round_trips(config: NodeConfig) -> None:
    assert from_document(to_document(config)) == config
    text = to_toml(config)
    assert from_toml(text) == config
    assert to_toml(from_toml(text)) == text


def test_documents_hold_only_the_nodes_role() -> None:
    ocs, imp = to_document(OCS), to_document(IMP)
    assert {"connections", "host_authorizations"} <= set(ocs)
    assert not {"listeners", "peer_subjects", "acl", "routing_mode"} & set(ocs)
    assert {"listeners", "peer_subjects", "acl", "routing_mode"} <= set(imp)
    assert not {"connections", "host_authorizations"} & set(imp)
    assert imp["peer_directory"] == ["bob@example.com", "carol@example.com"]
    assert "peer_directory" not in to_document(dataclasses.replace(IMP, peer_directory=()))
    assert "peer_directory" not in ocs
    assert ocs["node"] == {
        "role": "ocs",
        "fqdn": "fe1.example.com",
        "ip": "10.0.0.3",
        "edition": "enterprise",
        "pool_fqdn": "pool.example.com",
    }
    assert "ip" not in ocs["routes"][0]
    assert "password" not in to_toml(OCS)


def _document(**changes: Any) -> dict[str, Any]:
    document = to_document(IMP)
    for key, value in changes.items():
        if value is None:
            del document[key]
        else:
            document[key] = value
    return document


def _route(**changes: Any) -> list[dict[str, Any]]:
    return [
        {"domain": "example.com", "transport": "TCP", "port": 5060, "ip": "10.0.0.4", **changes}
    ]


@pytest.mark.parametrize(
    ("document", "expected"),
    [
        (_document(format=2), "format: unsupported format 2"),
        (_document(format=None), "format: unsupported format None"),
        (_document(node=None), "node: the [node] table is missing"),
        (_document(node="imp1"), "node: is not a table"),
        (_document(node={"role": "imp", "fqdn": "imp1.example.com"}), "node.ip: is missing"),
        (
            _document(node={"role": "cisco", "fqdn": "imp1.example.com", "ip": "10.0.0.2"}),
            "node.role: 'cisco' is not allowed — use ocs, imp",
        ),
        (
            _document(node={"role": "imp", "fqdn": "imp1.example.com", "ip": "10.0.0.2", "x": 1}),
            "node.x: is not a setting",
        ),
        (
            _document(node={"role": "imp", "fqdn": "imp1", "ip": "10.0.0.2"}),
            "node --fqdn: 'imp1' is not a fully qualified domain name",
        ),
        (_document(colour="blue"), "colour: is not a setting"),
        (_document(connections=[]), "connections: belongs to role ocs"),
        (_document(domains="example.com"), 'domains: "example.com" is not a list'),
        (_document(domains=["example.com", 7]), "domains[1]: 7 is not str"),
        (_document(domains=["example"]), "domain: 'example' is not a domain"),
        (_document(fips="yes"), 'fips: "yes" is not bool'),
        (_document(routing_mode="clever"), "routing_mode: 'clever' is not allowed"),
        (_document(peer_directory="bob@example.com"), 'peer_directory: "bob@example.com" is not'),
        (_document(peer_directory=["bob"]), "directory: 'bob' is not user@domain"),
        (_document(peer_directory=["b@x.com", "b@X.com"]), "directory: b@x.com is listed twice"),
        (_document(listeners=[5060]), "listeners: is not a table"),
        (_document(listeners={"tcp": 5060, "peer_auth": 5061, "server_auth": 5061}), "both use"),
        (_document(routes=_route(port="5060")), 'routes[0].port: "5060" is not int'),
        (_document(routes=_route(port=True)), "routes[0].port: true is not int"),
        (_document(routes=_route(phone_uri=1)), "routes[0].phone_uri: 1 is not bool"),
        (_document(routes=_route(nexthop="x")), "routes[0].nexthop: is not a setting"),
        (
            _document(routes=_route(transport="TLS")),
            "routes[0] --ip: TLS static routes must name the next hop by FQDN",
        ),
        (_document(routes=_route() * 2), "route: two static routes have the matching URI"),
        (_document(users=[{"enabled": True}]), "users[0].aor: is missing"),
        (_document(users=[{"aor": "eve@example.net"}]), "which this node does not serve"),
        (
            _document(users=[{"aor": "alice@example.com", "blocked": ["eve"]}]),
            "users[0] WATCHER: 'eve' is not user@domain",
        ),
        (
            _document(users=[{"aor": "alice@example.com", "blocked": ["e@x.com", "e@X.com"]}]),
            "users[0] WATCHER: e@x.com is listed twice",
        ),
        (_document(acl=[{"ip": "10.0.0.1"}, {"ip": "10.0.0.1"}]), "acl: 10.0.0.1 is listed twice"),
    ],
)
def test_whole_document_refusals(document: dict[str, Any], expected: str) -> None:
    with pytest.raises(ConfigError) as error:
        from_document(document)
    assert expected in str(error.value)


def test_toml_syntax_error_is_one_line() -> None:
    with pytest.raises(ConfigError) as error:
        from_toml("format = \n")
    assert str(error.value).startswith("TOML: ")
    assert "\n" not in str(error.value)


def test_every_value_type_of_a_hand_written_document() -> None:
    text = tomli_w.dumps(
        {
            "format": FORMAT_VERSION,
            "node": {"role": "ocs", "fqdn": "SE.example.com", "ip": "10.0.0.3"},
            "domains": ["example.com"],
            "routes": [
                {"domain": "example.com", "transport": "tcp", "port": 5060, "ip": "10.0.0.2"}
            ],
        }
    )
    config = from_toml(text)
    assert config.identity.edition is Edition.STANDARD
    assert config.routes[0].transport == "TCP"
    assert config.fips is True
    assert tomllib.loads(to_toml(config))["node"]["fqdn"] == "se.example.com"


def test_changes_names_what_differs_per_setting() -> None:
    assert changes(IMP, IMP) == []
    users = (dataclasses.replace(IMP.users[0], enabled=False),)
    new = dataclasses.replace(
        IMP,
        fips=False,
        routing_mode=RoutingMode.BASIC,
        listeners=ImpListeners(server_auth=5064),
        users=users,
        routes=IMP.routes[:1],
        acl=(*IMP.acl, AclEntry(ip="10.0.0.9")),
        peer_subjects=(),
        peer_directory=("carol@example.com", "dave@example.com"),
        domains=tuple(reversed(IMP.domains)),
    )
    assert changes(IMP, new) == [
        "domains: reordered",
        "fips: true → false",
        "routes: removed example.com priority 2",
        "users: changed alice@example.com",
        "listeners: server_auth 5063 → 5064",
        "peer_subjects: removed pool.example.com",
        "acl: added 10.0.0.9",
        'routing_mode: "advanced" → "basic"',
        "peer_directory: added dave@example.com, removed bob@example.com",
    ]
    emptied = dataclasses.replace(IMP, peer_directory=())
    assert changes(IMP, emptied) == ["peer_directory: removed bob@example.com, carol@example.com"]
    assert changes(emptied, IMP) == ["peer_directory: added bob@example.com, carol@example.com"]
    hosts = (HostEntry("fe2.example.com", "10.0.0.5"),)
    connections = (Connection("TCP", 5060), Connection("TLS", 5061))
    ocs = dataclasses.replace(OCS, hosts=hosts, connections=connections, host_authorizations=())
    assert changes(OCS, ocs) == [
        "hosts: added fe2.example.com, removed imp1.example.com",
        "connections: added TLS All:5061, removed MTLS All:5061",
        "host_authorizations: removed imp1.example.com, 10.0.0.2",
    ]
