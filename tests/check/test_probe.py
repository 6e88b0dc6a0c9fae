"""intrafed probe against real nodes on loopback, started from the seed deployment's homes:
everything right passes; each classic mistake is reported in the words administrators
search for."""

from __future__ import annotations

import asyncio
import contextlib
import json
from pathlib import Path

import pytest
from click.testing import CliRunner

from intrafed.check import SeedDeployment, build_seed_deployment
from intrafed.check.probe import ProbeReport, probe_home
from intrafed.cli import main
from intrafed.pki import KeyType
from tests.check.mistakes import force_select, intrafed, other_ca, promote, reissue
from tests.check.running import free_base_port, seed_on_free_ports, serving
from tests.integration.peers import free_port

IMP_IP, OCS_IP = "127.0.0.66", "127.0.0.67"


@pytest.fixture
def seed(tmp_path: Path) -> SeedDeployment:
    return seed_on_free_ports(tmp_path, IMP_IP, OCS_IP)


def probe(home: Path, *running: Path) -> ProbeReport:
    """Probe from ``home`` while the nodes of ``running`` serve."""

    async def scenario() -> ProbeReport:
        async with contextlib.AsyncExitStack() as nodes:
            for served in running:
                await nodes.enter_async_context(serving(served))
            return await probe_home(home, timeout=3.0)

    return asyncio.run(asyncio.wait_for(scenario(), 30))


def failed(report: ProbeReport, check: str) -> str:
    """The message of the failed ``check`` (there must be one)."""
    messages = [r.message for r in report.failures() if r.check == check]
    assert messages, report.to_json()
    return messages[0]


def test_the_seed_deployment_passes_every_probe_from_both_sides(seed: SeedDeployment) -> None:
    for node in seed.nodes:
        report = probe(node.home, seed.imp.home, seed.ocs.home)
        assert report.ok, report.to_json()
        assert {r.check for r in report.results} == {
            "listener", "resolve", "connect", "tls", "options", "trust",
        }  # fmt: skip
        [tls] = [r for r in report.results if r.check == "tls"]
        peer = seed.ocs if node is seed.imp else seed.imp
        assert tls.details["subject"] == f"CN={peer.fqdn}"
        assert tls.details["issuer"] == "CN=intrafed Lab Root CA"
        assert tls.details["eku"] == "Server Authentication, Client Authentication"
        assert tls.details["trusted by us"] == "yes"
        [options] = [r for r in report.results if r.check == "options"]
        assert options.message.startswith("200 OK in ")
        assert "OPTIONS" in options.details["Allow"]


def test_a_peer_certificate_from_another_ca_is_a_root_not_trusted(
    seed: SeedDeployment, tmp_path: Path
) -> None:
    ca = other_ca(tmp_path)
    intrafed("pki", "import", "--store", "trusted", str(ca / "ca.pem"), home=seed.imp.home)
    reissue(seed.imp.home, "imp", ca)
    report = probe(seed.ocs.home, seed.imp.home, seed.ocs.home)
    message = failed(report, "tls")
    assert message.startswith("certificate root not trusted: its issuer CN=Other Root CA")
    [tls] = [r for r in report.results if r.check == "tls"]
    assert tls.details["issuer"] == "CN=Other Root CA"
    assert tls.details["trusted by us"].startswith("no")
    assert "intrafed pki import --store trusted" in (tls.fix or "")


def test_our_server_only_certificate_is_refused_by_the_peer(seed: SeedDeployment) -> None:
    thumbprint = reissue(seed.ocs.home, "ocs", seed.ca_dir, "--server-only", select=False)
    force_select(seed.ocs.home, thumbprint)
    report = probe(seed.ocs.home, seed.imp.home, seed.ocs.home)
    # TLS 1.2 (the FIPS policy): the peer's alert arrives during the handshake.
    message = failed(report, "tls")
    assert message == "the peer refused our certificate (SSLV3_ALERT_UNSUPPORTED_CERTIFICATE)"
    assert "Client Authentication" in (report.failures()[0].fix or "")


def test_a_peer_with_a_server_only_certificate_cannot_open_mtls_to_us(
    seed: SeedDeployment,
) -> None:
    thumbprint = reissue(seed.imp.home, "imp", seed.ca_dir, "--server-only", select=False)
    force_select(seed.imp.home, thumbprint)
    report = probe(seed.ocs.home, seed.imp.home, seed.ocs.home)
    assert failed(report, "tls") == (
        "the peer's certificate (CN=imp1.example.com) lacks Client Authentication EKU: "
        "it cannot open MTLS to us"
    )


def test_a_route_to_a_name_the_certificate_does_not_carry_is_a_wrong_principal(
    seed: SeedDeployment,
) -> None:
    ocs = seed.ocs.home
    intrafed("config", "route", "remove", "--domain", "example.com", home=ocs)
    intrafed("config", "route", "add", "--domain", "example.com", "--transport", "TLS",
             "--port", str(seed.imp.tls_port), "--fqdn", "imp9.example.com", home=ocs)  # fmt: skip
    intrafed("config", "hosts", "add", "imp9.example.com", IMP_IP, home=ocs)
    promote(ocs)
    report = probe(ocs, seed.imp.home, ocs)
    assert failed(report, "tls") == (
        "wrong principal: certificate names imp1.example.com, example.com, "
        "route expects imp9.example.com"
    )


def test_a_peer_that_is_down_is_connection_refused(seed: SeedDeployment) -> None:
    report = probe(seed.ocs.home, seed.ocs.home)
    assert failed(report, "connect") == f"connection refused at {IMP_IP}:{seed.imp.tls_port}"
    assert {r.check for r in report.failures()} == {"connect"}


def test_a_route_to_the_wrong_port_is_connection_refused(seed: SeedDeployment) -> None:
    ocs = seed.ocs.home
    wrong = free_port(IMP_IP)
    intrafed("config", "route", "remove", "--domain", "example.com", home=ocs)
    intrafed("config", "route", "add", "--domain", "example.com", "--transport", "TLS",
             "--port", str(wrong), "--fqdn", "imp1.example.com", home=ocs)  # fmt: skip
    promote(ocs)
    report = probe(ocs, seed.imp.home, ocs)
    assert failed(report, "connect") == f"connection refused at {IMP_IP}:{wrong}"


def test_our_own_listeners_are_probed(seed: SeedDeployment) -> None:
    report = probe(seed.imp.home, seed.ocs.home)
    listeners = [r for r in report.failures() if r.check == "listener"]
    assert [r.message for r in listeners] == ["connection refused"] * 3
    assert "intrafed service start" in (listeners[0].fix or "")


def test_the_probe_command_prints_json_and_exits_1_on_a_failure(seed: SeedDeployment) -> None:
    result = CliRunner().invoke(
        main, ["probe", "--home", str(seed.ocs.home), "--json", "--timeout", "1"]
    )
    assert result.exit_code == 1, result.output
    document = json.loads(result.stdout)
    assert document["ok"] is False
    assert document["node"] == "ocs1.example.com"
    assert {"listener", "resolve", "connect"} <= {r["check"] for r in document["results"]}


def test_the_probe_passes_against_a_correct_enterprise_pool(tmp_path: Path) -> None:
    """IM and Presence routes to the pool FQDN: the front end answers OPTIONS to its pool
    as to itself (it used to refuse it with 403)."""
    pool = build_seed_deployment(
        tmp_path,
        imp_ip=IMP_IP,
        ocs_ip=OCS_IP,
        base_port=free_base_port(IMP_IP, OCS_IP),
        key_type=KeyType.EC_P256,
        pool_fqdn="pool.example.com",
    )
    for node in pool.nodes:
        report = probe(node.home, pool.imp.home, pool.ocs.home)
        assert report.ok, report.to_json()
    [options] = [r for r in probe(pool.imp.home, pool.imp.home, pool.ocs.home).results
                 if r.check == "options"]  # fmt: skip
    assert options.target.startswith("route example.com → TLS pool.example.com:")
    assert options.message.startswith("200 OK in ")


def test_a_node_with_no_route_fails_the_probe_naming_the_missing_route(
    seed: SeedDeployment,
) -> None:
    ocs = seed.ocs.home
    intrafed("config", "route", "remove", "--domain", "example.com", home=ocs)
    promote(ocs)
    report = probe(ocs, seed.imp.home, ocs)
    [missing] = report.failures()
    assert missing.check == "route"
    assert missing.message == (
        "no static route for example.com: users of example.com homed on the other side "
        "cannot be reached"
    )
    assert missing.fix == (
        f"intrafed config route add --home {ocs} --domain example.com --transport TLS "
        "--port 5061 --fqdn <IM and Presence node FQDN>"
    )
