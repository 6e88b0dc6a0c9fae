"""A test per checker rule: the seed deployment with exactly that one mistake, made with
intrafed commands, is reported with that rule's id; the correct deployment passes."""

from __future__ import annotations

from pathlib import Path

import pytest

from intrafed.check import RULES, CheckReport, SeedDeployment, check_homes
from intrafed.check.findings import Finding
from intrafed.pki import Severity
from tests.check.mistakes import MISTAKES, OTHER_IP, Checked, intrafed, promote


def problems(report: CheckReport) -> tuple[Finding, ...]:
    """The findings that ask for action (errors and warnings, not info)."""
    return tuple(f for f in report.findings if f.severity is not Severity.INFO)


def both(seed: SeedDeployment) -> Checked:
    return Checked(seed.ocs.home, (seed.imp.home,))


def make(rule: str, seed: SeedDeployment, tmp: Path) -> CheckReport:
    """Apply the mistake for ``rule``, apply staged edits as a restart would (except for
    the restart rule), and check."""
    checked = MISTAKES[rule](seed, tmp) or both(seed)
    if rule != "restart.pending":
        for node in seed.nodes:
            promote(node.home)
    return check_homes(
        checked.home, checked.peers, checked.now, is_running=lambda home: rule == "restart.pending"
    )


def test_every_rule_has_a_mistake() -> None:
    assert set(MISTAKES) == set(RULES)


def test_the_seed_deployment_passes_with_nothing_to_report(pristine: SeedDeployment) -> None:
    for home, peers in (
        (pristine.ocs.home, (pristine.imp.home,)),
        (pristine.imp.home, (pristine.ocs.home,)),
        (pristine.ocs.home, ()),
        (pristine.imp.home, ()),
    ):
        report = check_homes(home, peers)
        assert report.ok
        assert problems(report) == (), [f.to_json() for f in report.findings]


@pytest.mark.parametrize("rule", sorted(RULES))
def test_one_mistake_is_reported_with_its_rule(
    rule: str, seed: SeedDeployment, tmp_path: Path
) -> None:
    report = make(rule, seed, tmp_path)
    findings = [f for f in report.findings if f.rule.id == rule]
    assert findings, [f.to_json() for f in report.findings]
    for finding in findings:
        assert finding.fix.startswith(("intrafed ", "import ", "request ", "set ", "check ",
                                       "renew ")), finding.fix  # fmt: skip
        assert "(seed: " in finding.to_json()["fix"]
    assert {f.severity for f in findings} == {RULES[rule].severity}
    if RULES[rule].severity is Severity.ERROR:
        assert not report.ok


def test_the_directory_is_checked_against_the_ocs_users_it_should_list(
    seed: SeedDeployment, tmp_path: Path
) -> None:
    imp, ocs = seed.imp.home, seed.ocs.home
    intrafed("config", "routing-mode", "advanced", home=imp)
    intrafed("config", "directory", "add", "carol@example.com", home=imp)
    for node in seed.nodes:
        promote(node.home)
    stale = [f for f in check_homes(imp, (ocs,)).findings if f.rule.id.startswith("routing.")]
    refill = f"intrafed config directory import --from-home {ocs} --home {imp}"
    assert [(f.rule.id, f.severity, f.message, f.fix) for f in stale] == [
        (
            "routing.directory-missing",
            Severity.ERROR,
            "the directory misses bob@example.com of ocs1.example.com: requests for them get 404 "
            f"here instead of reaching the OCS side (or refill it: {refill})",
            f"intrafed config directory add bob@example.com --home {imp}",
        ),
        (
            "routing.directory-stale",
            Severity.WARNING,
            "the directory lists carol@example.com, not provisioned on ocs1.example.com: "
            f"requests for them cross to the OCS side and come back 404 (or refill it: {refill})",
            f"intrafed config directory remove carol@example.com --home {imp}",
        ),
    ]
    assert problems(check_homes(imp, ())) == ()
    intrafed("config", "directory", "import", "--from-home", str(ocs), home=imp)
    promote(imp)
    report = check_homes(imp, (ocs,))
    assert problems(report) == (), [f.to_json() for f in report.findings]
    exported = tmp_path / "ocs1.toml"
    exported.write_text(intrafed("config", "export", home=ocs))
    intrafed("config", "directory", "remove", "bob@example.com", home=imp)
    intrafed("config", "directory", "add", "dave@example.com", home=imp)
    promote(imp)
    from_document = check_homes(imp, (exported,))
    assert from_document.rule_ids() - {"tls.fips-tls12"} == {
        "routing.directory-missing",
        "routing.directory-stale",
    }
    assert not from_document.ok
    assert [f.message.rsplit("(or refill it: ", 1)[1] for f in problems(from_document)] == [
        f"intrafed config directory import FILE --home {imp})"
    ] * 2


def test_advanced_mode_with_an_empty_directory_names_the_import(seed: SeedDeployment) -> None:
    intrafed("config", "routing-mode", "advanced", home=seed.imp.home)
    promote(seed.imp.home)
    [finding] = problems(check_homes(seed.imp.home, (seed.ocs.home,)))
    assert finding.rule.id == "routing.advanced"
    assert finding.fix == (
        f"intrafed config directory import --from-home {seed.ocs.home} --home {seed.imp.home}"
    )
    assert finding.message.endswith(
        f"(or go back to basic: intrafed config routing-mode basic --home {seed.imp.home})"
    )


def findings_of(report: CheckReport, rule: str) -> list[Finding]:
    found = [f for f in report.findings if f.rule.id == rule]
    assert found, [f.to_json() for f in report.findings]
    return found


def test_an_advanced_directory_missing_a_user_of_the_peer_side_is_an_error(
    seed: SeedDeployment,
) -> None:
    """A MESSAGE from IM&P to the missing OCS user gets 404 (test_fix_commands lives it)."""
    imp = seed.imp.home
    intrafed("config", "routing-mode", "advanced", home=imp)
    intrafed("config", "directory", "add", "carol@example.com", home=imp)
    promote(imp)
    report = check_homes(imp, (seed.ocs.home,))
    [missing] = findings_of(report, "routing.directory-missing")
    assert missing.severity is Severity.ERROR
    assert not report.ok


def test_the_legacy_tls_profile_with_fips_on_is_an_error_with_a_command_to_fix_it(
    seed: SeedDeployment,
) -> None:
    ocs = seed.ocs.home
    intrafed("config", "tls-profile", "legacy-tls1", home=ocs)
    promote(ocs)
    report = check_homes(ocs, (seed.imp.home,))
    [finding] = findings_of(report, "tls.legacy-fips")
    assert finding.severity is Severity.ERROR
    assert "starts with no TLS or MTLS listener" in finding.message
    assert finding.fix == f"intrafed config tls-profile default --home {ocs}"
    assert "tls.legacy-profile" not in report.rule_ids()


def test_fips_off_is_a_warning_that_says_what_is_really_offered(seed: SeedDeployment) -> None:
    """FIPS off offers TLS 1.2 and 1.3 with OpenSSL's suites (never SSLv3): a FIPS peer and
    this node still agree on TLS 1.2 (test_fix_commands sends a MESSAGE across)."""
    intrafed("config", "fips", "off", home=seed.ocs.home)
    promote(seed.ocs.home)
    report = check_homes(seed.ocs.home, (seed.imp.home,))
    [finding] = findings_of(report, "tls.fips")
    assert finding.severity is Severity.WARNING
    assert "SSLv3" not in finding.message
    assert "TLS 1.3" in finding.message
    assert report.ok


def test_a_missing_route_fix_names_the_peers_real_port_name_and_address(
    seed: SeedDeployment,
) -> None:
    ocs, imp = seed.ocs.home, seed.imp.home
    intrafed("config", "listener", "set", "--peer-auth", "5071", home=imp)
    intrafed("config", "route", "remove", "--domain", "example.com", home=ocs)
    intrafed("config", "hosts", "remove", "imp1.example.com", home=ocs)
    for node in seed.nodes:
        promote(node.home)
    [finding] = findings_of(check_homes(ocs, (imp,)), "route.missing")
    assert finding.fix == (
        f"intrafed config route add --home {ocs} --domain example.com --transport TLS "
        f"--port 5071 --fqdn imp1.example.com && intrafed config hosts add imp1.example.com "
        f"{seed.imp.ip} --home {ocs}"
    )


def test_a_missing_host_authorization_says_407_or_403_as_the_node_answers(
    seed: SeedDeployment,
) -> None:
    """Not "challenged (401)": a peer that is not Treat as Authenticated gets 407, one
    without any entry 403 (test_fix_commands shows both stop a MESSAGE)."""
    ocs = seed.ocs.home
    intrafed("config", "hostauth", "remove", "--ip", seed.imp.ip, home=ocs)
    intrafed("config", "hostauth", "remove", "--fqdn", "imp1.example.com", home=ocs)
    intrafed("config", "hostauth", "add", "--ip", seed.imp.ip, "--no-treat-as-authenticated",
             home=ocs)  # fmt: skip
    promote(ocs)
    report = check_homes(ocs, (seed.imp.home,))
    [challenged] = findings_of(report, "hostauth.treat-as-authenticated")
    assert "challenged (407)" in challenged.message
    assert "401" not in challenged.message
    [no_fqdn] = findings_of(report, "hostauth.fqdn")
    assert no_fqdn.severity is Severity.ERROR
    intrafed("config", "hostauth", "remove", "--ip", seed.imp.ip, home=ocs)
    promote(ocs)
    [refused] = findings_of(check_homes(ocs, (seed.imp.home,)), "hostauth.ip")
    assert "refused (403)" in refused.message


def test_one_missing_host_authorization_entry_is_a_warning_while_the_other_trusts_the_peer(
    seed: SeedDeployment,
) -> None:
    ocs = seed.ocs.home
    intrafed("config", "hostauth", "remove", "--ip", seed.imp.ip, home=ocs)
    promote(ocs)
    report = check_homes(ocs, (seed.imp.home,))
    [finding] = findings_of(report, "hostauth.ip")
    assert finding.severity is Severity.WARNING
    assert finding.fix == f"intrafed config hostauth add --ip {seed.imp.ip} --home {ocs}"
    assert report.ok


def test_a_wrong_hosts_entry_is_reported_and_its_address_never_authorized(
    seed: SeedDeployment,
) -> None:
    ocs = seed.ocs.home
    intrafed("config", "hosts", "remove", "imp1.example.com", home=ocs)
    intrafed("config", "hosts", "add", "imp1.example.com", OTHER_IP, home=ocs)
    promote(ocs)
    report = check_homes(ocs, (seed.imp.home,))
    [wrong] = findings_of(report, "route.address")
    assert wrong.fix == (
        f"intrafed config hosts remove imp1.example.com --home {ocs} && intrafed config hosts "
        f"add imp1.example.com {seed.imp.ip} --home {ocs}"
    )
    assert not [f for f in report.findings if OTHER_IP in f.fix and f is not wrong]
