"""A test per checker rule: the seed deployment with exactly that one mistake, made with
intrafed commands, is reported with that rule's id; the correct deployment passes."""

from __future__ import annotations

import datetime
import json
import tomllib
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pytest
import tomli_w
from cryptography.hazmat.primitives.asymmetric import rsa

from intrafed.check import RULES, CheckReport, SeedDeployment, check_homes
from intrafed.check.findings import Finding
from intrafed.config.model import NodeIdentity, Role
from intrafed.pki import CertificateAuthority, Severity, make_csr
from intrafed.pki.certificates import certificates_pem, private_key_pem
from tests.check.conftest import IMP_IP, OCS_IP
from tests.check.mistakes import force_select, intrafed, other_ca, promote, reissue

OTHER_IP = "127.0.0.79"


@dataclass(frozen=True)
class Checked:
    """What a mistake asks to check: the home, its peers, and the moment."""

    home: Path
    peers: tuple[Path, ...]
    now: datetime.datetime | None = None


Mistake = Callable[[SeedDeployment, Path], Checked | None]
MISTAKES: dict[str, Mistake] = {}


def mistake(rule: str) -> Callable[[Mistake], Mistake]:
    def register(function: Mistake) -> Mistake:
        MISTAKES[rule] = function
        return function

    return register


def problems(report: CheckReport) -> tuple[Finding, ...]:
    """The findings that ask for action (errors and warnings, not info)."""
    return tuple(f for f in report.findings if f.severity is not Severity.INFO)


def both(seed: SeedDeployment) -> Checked:
    return Checked(seed.ocs.home, (seed.imp.home,))


def replace_ocs_route(seed: SeedDeployment, *options: str) -> None:
    ocs = seed.ocs.home
    intrafed("config", "route", "remove", "--domain", "example.com", home=ocs)
    intrafed("config", "route", "add", "--domain", "example.com", "--transport", "TLS", *options,
             home=ocs)  # fmt: skip


def replace_hostauth(seed: SeedDeployment, *flags: str) -> None:
    ocs = seed.ocs.home
    intrafed("config", "hostauth", "remove", "--ip", IMP_IP, home=ocs)
    intrafed("config", "hostauth", "add", "--ip", IMP_IP, *flags, home=ocs)


@mistake("domain.none")
def _(seed: SeedDeployment, tmp: Path) -> Checked:
    intrafed("config", "user", "remove", "alice@example.com", home=seed.imp.home)
    intrafed("config", "domain", "remove", "example.com", home=seed.imp.home)
    return Checked(seed.imp.home, ())


@mistake("domain.mismatch")
def _(seed: SeedDeployment, tmp: Path) -> None:
    intrafed("config", "domain", "add", "sales.example.com", home=seed.imp.home)


@mistake("listener.ocs-none")
def _(seed: SeedDeployment, tmp: Path) -> None:
    for transport, port in (("TCP", "5060"), ("MTLS", "5061")):
        intrafed("config", "connection", "remove", "--transport", transport, "--port", port,
                 "--ip", OCS_IP, home=seed.ocs.home)  # fmt: skip


@mistake("listener.ocs-mtls")
def _(seed: SeedDeployment, tmp: Path) -> None:
    ocs = seed.ocs.home
    intrafed("config", "connection", "remove", "--transport", "MTLS", "--port", "5061", "--ip",
             OCS_IP, home=ocs)  # fmt: skip
    intrafed("config", "connection", "add", "--transport", "TLS", "--port", "5061", "--ip",
             OCS_IP, home=ocs)  # fmt: skip


@mistake("listener.imp-server-auth")
def _(seed: SeedDeployment, tmp: Path) -> None:
    intrafed("config", "listener", "set", "--peer-auth", "5062", "--server-auth", "5061",
             home=seed.imp.home)  # fmt: skip


@mistake("listener.clash")
def _(seed: SeedDeployment, tmp: Path) -> None:
    ocs = seed.ocs.home
    intrafed("config", "connection", "remove", "--transport", "TCP", "--port", "5060", "--ip",
             OCS_IP, home=ocs)  # fmt: skip
    intrafed("config", "connection", "add", "--transport", "TCP", "--port", "5060", "--ip", "All",
             home=ocs)  # fmt: skip


@mistake("route.missing")
def _(seed: SeedDeployment, tmp: Path) -> None:
    intrafed("config", "route", "remove", "--domain", "example.com", home=seed.ocs.home)


@mistake("route.phone-uri")
def _(seed: SeedDeployment, tmp: Path) -> None:
    replace_ocs_route(seed, "--port", "5061", "--fqdn", "imp1.example.com", "--phone-uri")


@mistake("route.replace-host")
def _(seed: SeedDeployment, tmp: Path) -> None:
    replace_ocs_route(seed, "--port", "5061", "--fqdn", "imp1.example.com", "--replace-host")


@mistake("route.unresolved")
def _(seed: SeedDeployment, tmp: Path) -> None:
    intrafed("config", "hosts", "remove", "imp1.example.com", home=seed.ocs.home)


@mistake("route.address")
def _(seed: SeedDeployment, tmp: Path) -> None:
    intrafed("config", "hosts", "remove", "imp1.example.com", home=seed.ocs.home)
    intrafed("config", "hosts", "add", "imp1.example.com", OTHER_IP, home=seed.ocs.home)


@mistake("route.principal")
def _(seed: SeedDeployment, tmp: Path) -> None:
    replace_ocs_route(seed, "--port", "5061", "--fqdn", "imp9.example.com")
    intrafed("config", "hosts", "add", "imp9.example.com", IMP_IP, home=seed.ocs.home)


@mistake("route.port")
def _(seed: SeedDeployment, tmp: Path) -> None:
    replace_ocs_route(seed, "--port", "5063", "--fqdn", "imp1.example.com")


@mistake("hostauth.fqdn")
def _(seed: SeedDeployment, tmp: Path) -> None:
    intrafed("config", "hostauth", "remove", "--fqdn", "imp1.example.com", home=seed.ocs.home)


@mistake("hostauth.ip")
def _(seed: SeedDeployment, tmp: Path) -> None:
    intrafed("config", "hostauth", "remove", "--ip", IMP_IP, home=seed.ocs.home)


@mistake("hostauth.peer-node")
def _(seed: SeedDeployment, tmp: Path) -> Checked:
    imp2 = tmp / "imp2"
    intrafed("init", "--role", "imp", "--fqdn", "imp2.example.com", "--ip", OTHER_IP, home=imp2)
    intrafed("config", "domain", "add", "example.com", home=imp2)
    intrafed("config", "route", "add", "--domain", "example.com", "--transport", "TLS",
             "--port", "5061", "--fqdn", "ocs1.example.com", home=imp2)  # fmt: skip
    intrafed("config", "hosts", "add", "ocs1.example.com", OCS_IP, home=imp2)
    intrafed("config", "peer-subject", "add", "ocs1.example.com", home=imp2)
    promote(imp2)
    return Checked(seed.ocs.home, (seed.imp.home, imp2))


@mistake("hostauth.outbound-only")
def _(seed: SeedDeployment, tmp: Path) -> None:
    replace_hostauth(seed, "--outbound-only")


@mistake("hostauth.treat-as-authenticated")
def _(seed: SeedDeployment, tmp: Path) -> None:
    replace_hostauth(seed, "--no-treat-as-authenticated")


@mistake("hostauth.throttle-as-server")
def _(seed: SeedDeployment, tmp: Path) -> None:
    replace_hostauth(seed, "--no-throttle-as-server")


@mistake("trust.peer-subject")
def _(seed: SeedDeployment, tmp: Path) -> None:
    intrafed("config", "peer-subject", "remove", "ocs1.example.com", home=seed.imp.home)


@mistake("trust.acl")
def _(seed: SeedDeployment, tmp: Path) -> Checked:
    imp = seed.imp.home
    intrafed("config", "route", "remove", "--domain", "example.com", home=imp)
    intrafed("config", "route", "add", "--domain", "example.com", "--transport", "TCP",
             "--port", "5060", "--ip", OCS_IP, home=imp)  # fmt: skip
    return Checked(imp, (seed.ocs.home,))


@mistake("cert.none")
def _(seed: SeedDeployment, tmp: Path) -> None:
    (seed.ocs.home / "pki" / "selected").unlink()


@mistake("cert.private-key")
def _(seed: SeedDeployment, tmp: Path) -> None:
    [key] = (seed.ocs.home / "pki" / "personal").glob("*.key")
    key.unlink()


@mistake("cert.expired")
def _(seed: SeedDeployment, tmp: Path) -> Checked:
    later = datetime.datetime.now(datetime.UTC) + datetime.timedelta(days=400)
    return Checked(seed.ocs.home, (seed.imp.home,), later)


@mistake("cert.expiring")
def _(seed: SeedDeployment, tmp: Path) -> None:
    reissue(seed.ocs.home, "ocs", seed.ca_dir, "--days", "10")


@mistake("cert.eku")
def _(seed: SeedDeployment, tmp: Path) -> None:
    force_select(seed.ocs.home, reissue(seed.ocs.home, "ocs", seed.ca_dir, "--server-only",
                                        select=False))  # fmt: skip


@mistake("cert.name")
def _(seed: SeedDeployment, tmp: Path) -> None:
    """OCS given the certificate requested on the IM&P node."""
    imp = seed.imp.home
    intrafed("pki", "csr", "--role", "imp", "--replace", home=imp)
    requests = imp / "pki" / "requests"
    [request], [key] = requests.glob("*.csr"), requests.glob("*.key")
    signed = tmp / "imp1-for-ocs.pem"
    intrafed("pki", "sign", "--ca", str(seed.ca_dir), "--csr", str(request), "--out", str(signed))
    import_and_force_select(seed.ocs.home, signed, key)


@mistake("cert.key")
def _(seed: SeedDeployment, tmp: Path) -> None:
    weak = rsa.generate_private_key(public_exponent=65537, key_size=1024)  # noqa: S505
    csr = make_csr(NodeIdentity(Role.OCS, "ocs1.example.com", OCS_IP), ["example.com"], weak)
    signed, key = tmp / "weak.pem", tmp / "weak.key"
    signed.write_bytes(certificates_pem([CertificateAuthority.load(seed.ca_dir).sign(csr)]))
    key.write_bytes(private_key_pem(weak))
    import_and_force_select(seed.ocs.home, signed, key)


def import_and_force_select(home: Path, certificate: Path, key: Path) -> None:
    intrafed("pki", "import", "--store", "personal", str(certificate), "--key", str(key),
             home=home)  # fmt: skip
    listing = json.loads(intrafed("pki", "list", "--json", home=home))
    [new] = [c for c in listing["certificates"] if c["store"] == "personal" and not c["selected"]]
    force_select(home, new["thumbprint"])


@mistake("cert.chain")
def _(seed: SeedDeployment, tmp: Path) -> None:
    listing = json.loads(intrafed("pki", "list", "--json", home=seed.ocs.home))
    [root] = [c for c in listing["certificates"] if c["store"] == "trusted"]
    intrafed("pki", "remove", "--store", "trusted", root["thumbprint"], home=seed.ocs.home)


@mistake("cert.peer-untrusted")
def _(seed: SeedDeployment, tmp: Path) -> None:
    ca = other_ca(tmp)
    intrafed("pki", "import", "--store", "trusted", str(ca / "ca.pem"), home=seed.ocs.home)
    reissue(seed.ocs.home, "ocs", ca)


@mistake("tls.fips")
def _(seed: SeedDeployment, tmp: Path) -> None:
    intrafed("config", "fips", "off", home=seed.ocs.home)


@mistake("tls.fips-tls12")
def _(seed: SeedDeployment, tmp: Path) -> None:
    """Not a mistake: the seed's FIPS policy, noted for what it leaves out (TLS 1.3)."""


@mistake("tls.legacy-profile")
def _(seed: SeedDeployment, tmp: Path) -> None:
    document = tomllib.loads(intrafed("config", "export", home=seed.ocs.home))
    document |= {"fips": False, "tls_profile": "legacy-tls1"}
    edited = tmp / "legacy.toml"
    edited.write_text(tomli_w.dumps(document))
    intrafed("config", "import", str(edited), home=seed.ocs.home)


@mistake("user.both-sides")
def _(seed: SeedDeployment, tmp: Path) -> None:
    password = tmp / "password"
    password.write_text("another secret\n")
    intrafed("config", "user", "add", "bob@example.com", "--password-file", str(password),
             home=seed.imp.home)  # fmt: skip


@mistake("routing.advanced")
def _(seed: SeedDeployment, tmp: Path) -> None:
    intrafed("config", "routing-mode", "advanced", home=seed.imp.home)


@mistake("routing.directory-stale")
def _(seed: SeedDeployment, tmp: Path) -> None:
    intrafed("config", "routing-mode", "advanced", home=seed.imp.home)
    intrafed("config", "directory", "add", "carol@example.com", home=seed.imp.home)


@mistake("restart.pending")
def _(seed: SeedDeployment, tmp: Path) -> None:
    intrafed("config", "hosts", "add", "extra.example.com", OTHER_IP, home=seed.ocs.home)


def make(rule: str, seed: SeedDeployment, tmp: Path) -> CheckReport:
    """Apply the mistake for ``rule``, apply staged edits as a restart would (except for
    the restart rule), and check."""
    checked = MISTAKES[rule](seed, tmp) or both(seed)
    if rule != "restart.pending":
        for node in seed.nodes:
            promote(node.home)
    return check_homes(checked.home, checked.peers, checked.now)


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
    assert [(f.rule.id, f.message, f.fix) for f in stale] == [
        (
            "routing.directory-stale",
            "the directory lists carol@example.com, not provisioned on ocs1.example.com: "
            "requests for them cross to the OCS side and come back 404",
            f"intrafed config directory remove carol@example.com --home {imp} for each, or "
            f"intrafed config directory import --from-home {ocs} --home {imp}",
        ),
        (
            "routing.directory-stale",
            "the directory misses bob@example.com of ocs1.example.com: requests for them get "
            "404 here instead of reaching the OCS side",
            f"intrafed config directory add bob@example.com --home {imp}, or intrafed config "
            f"directory import --from-home {ocs} --home {imp}",
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
    assert from_document.rule_ids() - {"tls.fips-tls12"} == {"routing.directory-stale"}
    assert from_document.ok
    assert [f.fix.rsplit(", or ", 1)[1] for f in problems(from_document)] == [
        f"intrafed config directory import FILE --home {imp}"
    ] * 2


def test_advanced_mode_with_an_empty_directory_names_the_import(seed: SeedDeployment) -> None:
    intrafed("config", "routing-mode", "advanced", home=seed.imp.home)
    promote(seed.imp.home)
    [finding] = problems(check_homes(seed.imp.home, (seed.ocs.home,)))
    assert finding.rule.id == "routing.advanced"
    assert finding.fix == (
        f"intrafed config directory import --from-home {seed.ocs.home} --home {seed.imp.home} "
        f"(or intrafed config routing-mode basic --home {seed.imp.home})"
    )
