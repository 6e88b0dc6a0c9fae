"""CSR names follow the seed: SE server FQDN, EE pool FQDN, IM&P node FQDN; SIP domains
in the SAN; Server and Client Authentication requested; contradictions refused."""

from __future__ import annotations

import ipaddress
import stat
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.x509.oid import NameOID

from intrafed.config.model import ConfigError, Edition, NodeIdentity, Role
from intrafed.pki import (
    KeyType,
    PkiError,
    check_request,
    make_csr,
    make_host_csr,
    read_csr,
    write_request,
)
from intrafed.pki.certificates import CLIENT_AUTH, SERVER_AUTH, generate_key
from tests.lab_pki import DOMAINS, IMP, OCS, POOL_FE


def names(csr: x509.CertificateSigningRequest) -> tuple[str, list[str]]:
    cn = csr.subject.get_attributes_for_oid(NameOID.COMMON_NAME)[0].value
    san = csr.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    return str(cn), san.get_values_for_type(x509.DNSName)


@pytest.mark.parametrize(
    ("identity", "cn", "sans"),
    [
        (OCS, "ocs1.example.com", ["ocs1.example.com", "example.com"]),
        (POOL_FE, "pool.example.com", ["pool.example.com", "fe1.example.com", "example.com"]),
        (IMP, "imp1.example.com", ["imp1.example.com", "example.com"]),
    ],
    ids=["standard-edition", "enterprise-pool", "imp"],
)
def test_csr_subject_and_sans_follow_the_seed(
    identity: NodeIdentity, cn: str, sans: list[str]
) -> None:
    csr = make_csr(identity, DOMAINS, generate_key(KeyType.EC_P256))
    assert csr.is_signature_valid
    assert names(csr) == (cn, sans)
    eku = csr.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
    assert list(eku) == [SERVER_AUTH, CLIENT_AUTH]


def test_a_domain_equal_to_the_fqdn_is_listed_once() -> None:
    csr = make_csr(OCS, ("ocs1.example.com", "example.com"), generate_key(KeyType.EC_P256))
    assert names(csr)[1] == ["ocs1.example.com", "example.com"]


def test_host_csr_asks_for_exactly_the_names_given() -> None:
    csr = make_host_csr(
        "alice-gw.example.com",
        generate_key(KeyType.EC_P256),
        dns_names=("alice-gw.example.com", "gw.example.com"),
        ip_addresses=("127.0.0.5", "::1"),
    )
    assert csr.is_signature_valid
    assert names(csr) == ("alice-gw.example.com", ["alice-gw.example.com", "gw.example.com"])
    san = csr.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert san.get_values_for_type(x509.IPAddress) == [
        ipaddress.ip_address("127.0.0.5"),
        ipaddress.ip_address("::1"),
    ]
    eku = csr.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
    assert list(eku) == [SERVER_AUTH, CLIENT_AUTH]


def test_host_csr_without_names_has_no_san() -> None:
    csr = make_host_csr("gw.example.com", generate_key(KeyType.EC_P256))
    with pytest.raises(x509.ExtensionNotFound):
        csr.extensions.get_extension_for_class(x509.SubjectAlternativeName)


def test_host_csr_refuses_an_address_that_is_not_one() -> None:
    with pytest.raises(ValueError, match=r"gw\.example\.com"):
        make_host_csr("gw", generate_key(KeyType.EC_P256), ip_addresses=("gw.example.com",))


@pytest.mark.parametrize(
    ("identity", "role", "edition", "setting", "fix"),
    [
        (OCS, Role.IMP, None, "--role", "use --role ocs"),
        (IMP, Role.OCS, None, "--role", "use --role imp"),
        (OCS, Role.OCS, Edition.ENTERPRISE, "--edition", "use --edition standard"),
        (POOL_FE, Role.OCS, Edition.STANDARD, "--edition", "use --edition enterprise"),
        (IMP, Role.IMP, Edition.STANDARD, "--edition", "leave out --edition"),
    ],
)
def test_requests_that_contradict_the_home_are_refused(
    identity: NodeIdentity, role: Role, edition: Edition | None, setting: str, fix: str
) -> None:
    with pytest.raises(ConfigError) as caught:
        check_request(identity, role, edition)
    assert caught.value.setting == setting
    assert caught.value.fix.startswith(fix)
    assert "\n" not in str(caught.value)


def test_requests_that_agree_with_the_home_pass() -> None:
    check_request(OCS, Role.OCS)
    check_request(OCS, Role.OCS, Edition.STANDARD)
    check_request(POOL_FE, Role.OCS, Edition.ENTERPRISE)
    check_request(IMP, Role.IMP)


def test_write_request_keeps_the_key_private_and_a_pending_request(tmp_path: Path) -> None:
    files = write_request(tmp_path / "requests", OCS, DOMAINS, key_type=KeyType.EC_P256)
    assert files.key == tmp_path / "requests" / "ocs1.example.com.key"
    assert stat.S_IMODE(files.key.stat().st_mode) == 0o600
    assert names(read_csr(files.csr.read_bytes(), str(files.csr)))[0] == "ocs1.example.com"
    key_before = files.key.read_bytes()
    with pytest.raises(PkiError, match=r"a request for ocs1\.example\.com is pending"):
        write_request(tmp_path / "requests", OCS, DOMAINS, key_type=KeyType.EC_P256)
    assert files.key.read_bytes() == key_before
    write_request(tmp_path / "requests", OCS, DOMAINS, key_type=KeyType.EC_P256, replace=True)
    assert files.key.read_bytes() != key_before


def test_read_csr_refuses_something_else() -> None:
    with pytest.raises(PkiError, match="not a certificate request"):
        read_csr(b"-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n", "x.csr")
