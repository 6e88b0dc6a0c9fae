"""The seed deployment builder: two homes configured as the seed says, ready to run."""

from __future__ import annotations

import tomllib
from pathlib import Path

import pytest
from click.testing import CliRunner

from intrafed.check import SeedDeployment, build_seed_deployment
from intrafed.cli import main
from intrafed.config.model import ConfigError, HostAuthorization, ImpListeners, Role, StaticRoute
from intrafed.store import open_store


def run(*arguments: str) -> str:
    result = CliRunner().invoke(main, list(arguments))
    assert result.exit_code == 0, result.output
    return result.stdout


def test_both_certificates_validate_as_pki_validate_sees_them(pristine: SeedDeployment) -> None:
    for node in pristine.nodes:
        report = run("pki", "validate", "--home", str(node.home))
        assert f"names {node.fqdn}" in report
        assert "Server Authentication, Client Authentication" in report


def test_the_imp_node_is_configured_as_the_seed_says(pristine: SeedDeployment) -> None:
    with open_store(pristine.imp.home) as store:
        config = store.load("running")
        assert not store.restart_pending()
    assert config.role is Role.IMP
    assert config.domains == ("example.com",)
    assert config.listeners == ImpListeners(5060, 5061, 5063)
    assert config.routes == (StaticRoute("example.com", "TLS", 5061, fqdn="ocs1.example.com"),)
    assert config.peer_subjects == ("ocs1.example.com",)
    assert {(h.fqdn, h.ip) for h in config.hosts} == {("ocs1.example.com", pristine.ocs.ip)}
    assert config.fips
    assert [user.aor for user in config.users] == ["alice@example.com"]


def test_the_ocs_server_is_configured_as_the_seed_says(pristine: SeedDeployment) -> None:
    document = tomllib.loads(run("config", "export", "--home", str(pristine.ocs.home)))
    assert document["node"] == {
        "role": "ocs",
        "fqdn": "ocs1.example.com",
        "ip": pristine.ocs.ip,
        "edition": "standard",
    }
    assert [(c["transport"], c["port"]) for c in document["connections"]] == [
        ("TCP", 5060),
        ("MTLS", 5061),
        ("TLS", 5062),
    ]
    [route] = document["routes"]
    assert route["fqdn"] == "imp1.example.com"
    assert (route["transport"], route["port"]) == ("TLS", 5061)
    assert not route["phone_uri"]
    assert not route["replace_host"]
    with open_store(pristine.ocs.home) as store:
        config = store.load("running")
    assert config.host_authorizations == (
        HostAuthorization(fqdn="imp1.example.com"),
        HostAuthorization(ip=pristine.imp.ip),
    )
    assert [user.aor for user in config.users] == ["bob@example.com"]
    assert config.fips


def test_users_get_their_own_passwords(pristine: SeedDeployment) -> None:
    alice, bob = pristine.password("alice@example.com"), pristine.password("bob@example.com")
    assert len(alice) >= 12
    assert alice != bob
    with pytest.raises(KeyError):
        pristine.password("carol@example.com")


def test_base_port_shifts_every_port(tmp_path: Path) -> None:
    seed = build_seed_deployment(
        tmp_path, imp_ip="127.0.0.62", ocs_ip="127.0.0.63", base_port=15060, users=()
    )
    assert (seed.imp.tcp_port, seed.imp.tls_port, seed.imp.client_tls_port) == (
        15060,
        15061,
        15063,
    )
    assert seed.ocs.client_tls_port == 15062
    with open_store(seed.ocs.home) as store:
        config = store.load("running")
    assert [c.port for c in config.connections] == [15060, 15061, 15062]
    assert config.routes[0].port == 15061
    assert config.users == ()
    assert seed.ca_certificate.is_file()


def test_an_existing_home_is_not_overwritten(tmp_path: Path) -> None:
    (tmp_path / "imp1").mkdir()
    run("init", "--home", str(tmp_path / "imp1"), "--role", "imp", "--fqdn", "x.example.com",
        "--ip", "127.0.0.64")  # fmt: skip
    with pytest.raises(ConfigError, match="already holds a node"):
        build_seed_deployment(tmp_path, imp_ip="127.0.0.64", ocs_ip="127.0.0.65")
