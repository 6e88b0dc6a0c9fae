"""The lab CA: what it issues, and how it keeps its key."""

from __future__ import annotations

import datetime
import stat
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import serialization

from intrafed.pki import CertificateAuthority, KeyType, PkiError, make_csr
from intrafed.pki.certificates import (
    CLIENT_AUTH,
    SERVER_AUTH,
    dns_names,
    extended_key_usages,
    generate_key,
    san_texts,
)
from tests.lab_pki import DOMAINS, OCS, issue, issue_host, make_ca, utcnow
from tests.pki.conftest import Cas


def test_ca_is_a_self_signed_root_that_may_sign_certificates() -> None:
    ca = CertificateAuthority.create("Lab Root CA", days=10, key_type=KeyType.EC_P256)
    cert = ca.certificate
    assert cert.subject == cert.issuer
    cert.verify_directly_issued_by(cert)
    assert cert.extensions.get_extension_for_class(x509.BasicConstraints).value.ca
    assert cert.extensions.get_extension_for_class(x509.KeyUsage).value.key_cert_sign
    assert cert.not_valid_after_utc - cert.not_valid_before_utc == datetime.timedelta(days=10)


def test_ca_needs_a_name() -> None:
    with pytest.raises(PkiError, match="--cn: the CA needs a name"):
        CertificateAuthority.create(" ")


def test_signing_gives_server_and_client_authentication_and_copies_the_names(cas: Cas) -> None:
    issued = issue(cas.lab, OCS)
    cert = issued.certificate
    assert extended_key_usages(cert) == (SERVER_AUTH, CLIENT_AUTH)
    assert dns_names(cert) == ("ocs1.example.com", "example.com")
    assert cert.subject.rfc4514_string() == "CN=ocs1.example.com"
    cert.verify_directly_issued_by(cas.lab.certificate)
    assert not cert.extensions.get_extension_for_class(x509.BasicConstraints).value.ca


def test_a_host_certificate_keeps_its_dns_and_ip_names(cas: Cas) -> None:
    issued = issue_host(
        cas.lab,
        "alice-gw.example.com",
        dns_names=("alice-gw.example.com",),
        ip_addresses=("127.0.0.5",),
    )
    cert = issued.certificate
    assert san_texts(cert) == ("DNS:alice-gw.example.com", "IP:127.0.0.5")
    assert extended_key_usages(cert) == (SERVER_AUTH, CLIENT_AUTH)
    cert.verify_directly_issued_by(cas.lab.certificate)


def test_server_only_gives_the_classic_bad_certificate(cas: Cas) -> None:
    cert = issue(cas.lab, OCS, server_only=True).certificate
    assert extended_key_usages(cert) == (SERVER_AUTH,)


def test_rsa_leaves_may_encipher_keys_for_rsa_key_exchange(cas: Cas) -> None:
    cert = issue(cas.lab, OCS, key=generate_key(KeyType.RSA_2048)).certificate
    assert cert.extensions.get_extension_for_class(x509.KeyUsage).value.key_encipherment


def test_validity_ends_no_later_than_the_ca(cas: Cas) -> None:
    short = CertificateAuthority.create("Short CA", days=2, key_type=KeyType.EC_P256)
    cert = issue(short, OCS, days=365).certificate
    assert cert.not_valid_after_utc == short.certificate.not_valid_after_utc


def test_an_expired_ca_signs_nothing() -> None:
    old = CertificateAuthority.create(
        "Old CA", days=1, key_type=KeyType.EC_P256, now=utcnow() - datetime.timedelta(days=3)
    )
    with pytest.raises(PkiError, match="the CA certificate has expired"):
        issue(old, OCS)


def test_a_tampered_request_is_refused(cas: Cas) -> None:
    der = bytearray(
        make_csr(OCS, DOMAINS, generate_key(KeyType.EC_P256)).public_bytes(
            serialization.Encoding.DER
        )
    )
    der[-3] ^= 0x01  # inside the signature
    with pytest.raises(PkiError, match="signature does not verify"):
        cas.lab.sign(x509.load_der_x509_csr(bytes(der)))


def test_save_and_load_keep_the_key_private_and_never_overwrite(tmp_path: Path) -> None:
    ca = make_ca("Saved CA")
    cert_path, key_path = ca.save(tmp_path / "ca")
    assert stat.S_IMODE(key_path.stat().st_mode) == 0o600
    assert stat.S_IMODE(cert_path.stat().st_mode) == 0o644
    loaded = CertificateAuthority.load(tmp_path / "ca")
    assert loaded.certificate == ca.certificate
    with pytest.raises(PkiError, match="already holds a CA"):
        make_ca("Another CA").save(tmp_path / "ca")
    assert CertificateAuthority.load(tmp_path / "ca").certificate == ca.certificate


def test_load_refuses_a_missing_ca_and_a_key_of_another_ca(tmp_path: Path) -> None:
    with pytest.raises(PkiError, match="holds no CA"):
        CertificateAuthority.load(tmp_path)
    make_ca("One").save(tmp_path / "one")
    make_ca("Two").save(tmp_path / "two")
    (tmp_path / "one" / "ca.key").write_bytes((tmp_path / "two" / "ca.key").read_bytes())
    with pytest.raises(PkiError, match="is not the key of"):
        CertificateAuthority.load(tmp_path / "one")
