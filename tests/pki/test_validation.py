"""``validate`` catches each classic mistake with one line naming the certificate, the
problem and the fix (mission-anchors §3: E5 server-only EKU, E8 untrusted or expired, and
the seed's CN rule)."""

from __future__ import annotations

import datetime

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa
from cryptography.x509.oid import NameOID

from intrafed.config.model import Edition, NodeIdentity, Role
from intrafed.pki import CertificateAuthority, KeyType, Report, Severity, validate
from intrafed.pki.certificates import thumbprint
from tests.lab_pki import (
    IMP,
    OCS,
    POOL_FE,
    issue,
    issue_host,
    issue_without_eku,
    make_ca,
    utcnow,
)
from tests.pki.conftest import Cas


def check(
    cert: x509.Certificate,
    cas: Cas,
    identity: NodeIdentity = OCS,
    trusted: tuple[x509.Certificate, ...] | None = None,
    chain: tuple[x509.Certificate, ...] = (),
) -> Report:
    roots = trusted if trusted is not None else (cas.lab.certificate,)
    return validate(cert, identity=identity, chain=chain, trusted=roots)


def only(report: Report, rule: str, severity: Severity = Severity.ERROR) -> str:
    """The one finding of ``report``; it must be of ``rule`` and ``severity``."""
    assert len(report.findings) == 1, report.lines()
    finding = report.findings[0]
    assert (finding.rule, finding.severity) == (rule, severity), report.lines()
    return finding.message


def test_a_good_certificate_has_no_findings(cas: Cas) -> None:
    report = check(issue(cas.lab, OCS).certificate, cas)
    assert report.ok
    assert report.findings == ()
    assert report.to_json()["ok"] is True


def test_enterprise_pool_certificate_names_the_pool(cas: Cas) -> None:
    assert check(issue(cas.lab, POOL_FE).certificate, cas, POOL_FE).findings == ()


def test_server_only_eku_is_the_classic_mistake(cas: Cas) -> None:
    report = check(issue(cas.lab, OCS, server_only=True).certificate, cas)
    assert not report.ok
    assert "lack Client Authentication (1.3.6.1.5.5.7.3.2)" in only(report, "eku")
    line = report.lines()[0]
    cert_id = f"certificate {report.thumbprint} (CN=ocs1.example.com): "
    assert line.startswith(f"error: {cert_id}Intended Purposes lack Client Authentication")
    assert " — request a certificate from a template with Server and Client Authentication" in line


def test_a_certificate_without_eku_is_refused_although_openssl_takes_it(cas: Cas) -> None:
    issued = issue_without_eku(cas.lab, "ocs1.example.com", dns_names=("ocs1.example.com",))
    report = check(issued.certificate, cas)
    assert "has no Extended Key Usage" in only(report, "eku")


def test_wrong_cn_names_what_the_node_needs(cas: Cas) -> None:
    report = check(issue(cas.lab, IMP).certificate, cas, OCS)
    messages = [f.message for f in report.errors]
    assert "subject CN is imp1.example.com; it must be the node's FQDN ocs1.example.com" in messages
    assert any("the SAN does not list ocs1.example.com" in m for m in messages)


def test_a_front_end_certificate_on_a_pool_is_the_wrong_cn(cas: Cas) -> None:
    front_end_as_standard = NodeIdentity(Role.OCS, "fe1.example.com", "127.0.0.4")
    report = check(issue(cas.lab, front_end_as_standard).certificate, cas, POOL_FE)
    assert "it must be the pool FQDN pool.example.com" in report.errors[0].message


def test_a_pool_certificate_without_this_front_end_warns(cas: Cas) -> None:
    other_front_end = NodeIdentity(
        Role.OCS, "fe2.example.com", "127.0.0.5", Edition.ENTERPRISE, "pool.example.com"
    )
    report = check(issue(cas.lab, POOL_FE).certificate, cas, other_front_end)
    assert report.ok
    assert "fe2.example.com" in only(report, "name", Severity.WARNING)


def test_san_without_the_node_name_is_refused(cas: Cas) -> None:
    cert = issue_host(cas.lab, "ocs1.example.com", dns_names=("example.com",)).certificate
    assert "the SAN does not list ocs1.example.com" in only(check(cert, cas), "name")


def test_expired() -> None:
    long_ago = utcnow() - datetime.timedelta(days=400)
    old_ca = CertificateAuthority.create("Old CA", key_type=KeyType.EC_P256, now=long_ago)
    cert = issue(old_ca, OCS, now=long_ago, days=30).certificate
    report = validate(cert, identity=OCS, trusted=(old_ca.certificate,))
    assert only(report, "validity").startswith("expired on ")


def test_not_yet_valid(cas: Cas) -> None:
    cert = issue(cas.lab, OCS, now=utcnow() + datetime.timedelta(days=2)).certificate
    message = only(check(cert, cas), "validity")
    assert message.startswith("not valid before ")


def test_expiring_within_30_days_is_a_warning(cas: Cas) -> None:
    report = check(issue(cas.lab, OCS, days=10).certificate, cas)
    assert report.ok
    assert only(report, "validity", Severity.WARNING).startswith("expires in 9 days")
    assert report.lines()[0].startswith(f"warning: certificate {report.thumbprint} ")


def test_untrusted_issuer(cas: Cas) -> None:
    report = check(issue(cas.rogue, OCS).certificate, cas)
    assert only(report, "chain") == "its issuer CN=Rogue CA is not in the trusted store"
    assert "intrafed pki import --store trusted" in report.findings[0].fix


def test_empty_trusted_store(cas: Cas) -> None:
    report = check(issue(cas.lab, OCS).certificate, cas, trusted=())
    assert "the trusted store is empty" in only(report, "chain")


def test_an_impostor_ca_with_the_trusted_name_does_not_verify(cas: Cas) -> None:
    impostor = make_ca("Lab Root CA")
    report = check(issue(impostor, OCS).certificate, cas)
    assert "the chain to the trusted root does not verify" in only(report, "chain")


def test_weak_rsa_key(cas: Cas) -> None:
    weak = rsa.generate_private_key(public_exponent=65537, key_size=1024)  # noqa: S505 (the point)
    report = check(issue(cas.lab, OCS, key=weak).certificate, cas)
    assert only(report, "key") == "RSA 1024-bit key is too weak (minimum 2048)"


def test_curve_outside_p256_p384(cas: Cas) -> None:
    key = ec.generate_private_key(ec.SECP521R1())
    report = check(issue(cas.lab, OCS, key=key).certificate, cas)
    assert only(report, "key") == "EC P-521 key is not one of P-256 or P-384"


def _build(
    subject: str,
    issuer: CertificateAuthority | None,
    key: ec.EllipticCurvePrivateKey,
    *,
    ca: bool,
) -> x509.Certificate:
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, subject)])
    now = utcnow()
    builder = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(issuer.certificate.subject if issuer else name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=1))
        .not_valid_after(now + datetime.timedelta(days=90))
        .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True)
    )
    if not ca:
        builder = builder.add_extension(
            x509.SubjectAlternativeName([x509.DNSName(subject)]), critical=False
        ).add_extension(
            x509.ExtendedKeyUsage(
                [x509.oid.ExtendedKeyUsageOID.SERVER_AUTH, x509.oid.ExtendedKeyUsageOID.CLIENT_AUTH]
            ),
            critical=False,
        )
    return builder.sign(issuer.key if issuer else key, hashes.SHA256())


def test_intermediates_from_the_personal_file_complete_the_chain() -> None:
    root_key = ec.generate_private_key(ec.SECP256R1())
    root = CertificateAuthority(_build("Root", None, root_key, ca=True), root_key)
    middle_key = ec.generate_private_key(ec.SECP256R1())
    middle = CertificateAuthority(_build("Issuing CA", root, middle_key, ca=True), middle_key)
    leaf = _build("ocs1.example.com", middle, ec.generate_private_key(ec.SECP256R1()), ca=False)
    with_chain = validate(
        leaf, identity=OCS, chain=(middle.certificate,), trusted=(root.certificate,)
    )
    assert with_chain.findings == ()
    without = validate(leaf, identity=OCS, trusted=(root.certificate,))
    assert only(without, "chain") == "its issuer CN=Issuing CA is not in the trusted store"
    assert thumbprint(leaf) == without.thumbprint


@pytest.mark.parametrize(
    ("pattern", "name", "expected"),
    [
        ("ocs1.example.com", "OCS1.example.com", True),
        ("*.example.com", "ocs1.example.com", True),
        ("*.example.com", "a.b.example.com", False),
        ("*.example.com", "example.com", False),
        ("ocs2.example.com", "ocs1.example.com", False),
    ],
)
def test_name_coverage(pattern: str, name: str, expected: bool) -> None:
    from intrafed.pki.validation import covers

    assert covers(pattern, name) is expected


def test_key_types_outside_rsa_and_ec(cas: Cas) -> None:
    now = utcnow()
    cert = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "ocs1.example.com")]))
        .issuer_name(cas.lab.certificate.subject)
        .public_key(ed25519.Ed25519PrivateKey.generate().public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=1))
        .not_valid_after(now + datetime.timedelta(days=90))
        .add_extension(
            x509.ExtendedKeyUsage(
                [x509.oid.ExtendedKeyUsageOID.SERVER_AUTH, x509.oid.ExtendedKeyUsageOID.CLIENT_AUTH]
            ),
            critical=False,
        )
        .sign(cas.lab.key, hashes.SHA256())
    )
    assert only(check(cert, cas), "key") == "Ed25519 keys are not accepted by OCS and IM&P peers"


def test_self_signed_and_untrusted_roots_in_the_chain(cas: Cas) -> None:
    self_signed = make_ca("ocs1.example.com").certificate
    untrusted = check(self_signed, cas)
    assert [f.message for f in untrusted.findings if f.rule == "chain"] == [
        "it is self-signed and not in the trusted store"
    ]
    trusted = check(self_signed, cas, trusted=(self_signed,))
    assert [f.rule for f in trusted.findings] == ["eku"]  # a CA certificate states no EKU
    leaf = issue(cas.rogue, OCS).certificate
    with_root = check(leaf, cas, chain=(cas.rogue.certificate,))
    assert only(with_root, "chain") == "it chains to CN=Rogue CA, which is not in the trusted store"
