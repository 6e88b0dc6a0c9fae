"""The TLS policy as the contexts carry it, peer names, and the reloadable snapshot."""

from __future__ import annotations

import dataclasses
import logging
import ssl
from collections.abc import Mapping
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.serialization import Encoding

from intrafed.config.model import ConfigError, NodeConfig, TlsProfile
from intrafed.pki import (
    CertificateStores,
    PkiError,
    StoreName,
    TlsContexts,
    client_context,
    peer_names,
    read_bundle,
    server_context,
)
from intrafed.pki.certificates import certificates_pem, private_key_pem
from intrafed.pki.tls_context import FIPS_CIPHERS
from tests.lab_pki import IMP, OCS, Issued, issue, issue_host
from tests.pki.conftest import Cas


@pytest.fixture
def files(tmp_path: Path, cas: Cas) -> tuple[Path, Path]:
    return issue(cas.lab, OCS).write(tmp_path / "ocs")


def tls12_suites(context: ssl.SSLContext) -> list[Mapping[str, object]]:
    return [c for c in context.get_ciphers() if c["protocol"] == "TLSv1.2"]


def test_fips_policy_leaves_only_aes_gcm_sha2_suites_for_tls12(
    files: tuple[Path, Path], cas: Cas
) -> None:
    context = server_context(*files, [cas.lab.certificate], require_client_cert=True, fips=True)
    assert context.minimum_version is ssl.TLSVersion.TLSv1_2
    suites = tls12_suites(context)
    names = {str(c["name"]) for c in suites}
    assert {"ECDHE-RSA-AES256-GCM-SHA384", "ECDHE-ECDSA-AES128-GCM-SHA256"} <= names
    assert {"AES128-GCM-SHA256", "DHE-RSA-AES256-GCM-SHA384"} <= names
    for suite in suites:
        assert suite["aead"] is True, suite["name"]
        assert str(suite["symmetric"]) in ("aes-128-gcm", "aes-256-gcm"), suite["name"]
        assert str(suite["name"]).endswith(("SHA256", "SHA384")), suite["name"]
        assert str(suite["auth"]) in ("auth-rsa", "auth-ecdsa"), suite["name"]
    # TLS 1.3 suites cannot be restricted from Python 3.11 (see tls_context's docstring).
    assert context.maximum_version is ssl.TLSVersion.TLSv1_2


def test_fips_cipher_string_is_what_the_policy_says() -> None:
    assert "!SHA1" in FIPS_CIPHERS
    assert "!3DES" in FIPS_CIPHERS
    assert "!RC4" in FIPS_CIPHERS


def test_fips_off_keeps_tls12_minimum_with_default_suites(
    files: tuple[Path, Path], cas: Cas
) -> None:
    context = server_context(*files, [cas.lab.certificate], require_client_cert=False, fips=False)
    assert context.minimum_version is ssl.TLSVersion.TLSv1_2
    names = {str(c["name"]) for c in tls12_suites(context)}
    assert "ECDHE-ECDSA-CHACHA20-POLY1305" in names  # Python's default secure list
    assert not any(name.endswith("-SHA") for name in names)  # no SHA-1 MAC suites


def test_legacy_tls1_profile_allows_tls1_only_without_fips(
    files: tuple[Path, Path], cas: Cas
) -> None:
    context = client_context(
        *files, [cas.lab.certificate], fips=False, profile=TlsProfile.LEGACY_TLS1
    )
    assert context.minimum_version is ssl.TLSVersion.TLSv1
    assert "ECDHE-ECDSA-AES128-SHA" in {str(c["name"]) for c in context.get_ciphers()}
    with pytest.raises(ConfigError) as caught:
        client_context(*files, [cas.lab.certificate], fips=True, profile=TlsProfile.LEGACY_TLS1)
    assert caught.value.setting == "tls-profile"


@pytest.mark.parametrize("fips", [True, False])
def test_every_context_refuses_renegotiation(
    files: tuple[Path, Path], cas: Cas, fips: bool
) -> None:
    roots = [cas.lab.certificate]
    for context in (
        server_context(*files, roots, require_client_cert=True, fips=fips),
        server_context(*files, roots, require_client_cert=False, fips=fips),
        client_context(*files, roots, fips=fips),
    ):
        assert context.options & ssl.OP_NO_RENEGOTIATION


def test_mtls_requires_a_client_certificate_and_tls_asks_for_none(
    files: tuple[Path, Path], cas: Cas
) -> None:
    roots = [cas.lab.certificate]
    assert server_context(*files, roots, require_client_cert=True).verify_mode is ssl.CERT_REQUIRED
    assert server_context(*files, roots, require_client_cert=False).verify_mode is ssl.CERT_NONE
    client = client_context(*files, roots)
    assert client.check_hostname
    assert client.verify_mode is ssl.CERT_REQUIRED


def test_contexts_refuse_an_empty_trusted_store_and_a_foreign_key(
    tmp_path: Path, files: tuple[Path, Path], cas: Cas
) -> None:
    with pytest.raises(PkiError, match="it is empty"):
        server_context(*files, [], require_client_cert=True)
    with pytest.raises(PkiError, match="it is empty"):
        client_context(*files, [])
    cert, _key = files
    _other_cert, other_key = issue(cas.lab, OCS).write(tmp_path / "other")
    with pytest.raises(PkiError, match="cannot load the certificate and key"):
        server_context(cert, other_key, [cas.lab.certificate], require_client_cert=False)


def test_peer_names_are_the_san_dns_names_else_the_cn(cas: Cas) -> None:
    der = issue(cas.lab, IMP).certificate.public_bytes(Encoding.DER)
    assert peer_names(der) == ("imp1.example.com", "example.com")
    bare = issue_host(cas.lab, "IMP2.example.com").certificate
    assert peer_names(bare.public_bytes(Encoding.DER)) == ("imp2.example.com",)


# The snapshot holder


def add(stores: CertificateStores, issued: Issued) -> str:
    """Import ``issued`` (certificate and key in one PEM) into the personal store."""
    data = certificates_pem([issued.certificate]) + private_key_pem(issued.key)
    return stores.add_personal(read_bundle(data, "ocs1.pem"), "ocs1.pem").stored.thumbprint


@pytest.fixture
def stores(tmp_path: Path, cas: Cas) -> CertificateStores:
    stores = CertificateStores(tmp_path / "pki")
    stores.add_trusted(read_bundle(certificates_pem([cas.lab.certificate]), "ca.pem"))
    stores.select(add(stores, issue(cas.lab, OCS)), OCS)
    return stores


def test_contexts_need_a_selected_certificate(tmp_path: Path) -> None:
    with pytest.raises(PkiError, match="no certificate is selected"):
        TlsContexts(CertificateStores(tmp_path / "pki"), NodeConfig(OCS))


def test_reload_swaps_in_a_new_snapshot(stores: CertificateStores, cas: Cas) -> None:
    contexts = TlsContexts(stores, NodeConfig(OCS))
    first = contexts.current
    assert first.report.thumbprint == stores.selected_thumbprint()
    assert first.mtls.verify_mode is ssl.CERT_REQUIRED
    renewed = add(stores, issue(cas.lab, OCS))
    stores.select(renewed, OCS)
    assert contexts.reload() is None
    assert contexts.current is not first
    assert contexts.current.report.thumbprint == renewed


def test_a_failed_reload_keeps_the_old_snapshot_and_says_why(
    stores: CertificateStores, caplog: pytest.LogCaptureFixture
) -> None:
    contexts = TlsContexts(stores, NodeConfig(OCS))
    first = contexts.current
    root = stores.certificates(StoreName.TRUSTED)[0]
    stores.remove(StoreName.TRUSTED, root.thumbprint)
    with caplog.at_level(logging.WARNING, logger="intrafed.pki.tls_context"):
        reason = contexts.reload()
    assert reason is not None
    assert "the trusted store is empty" in reason
    assert contexts.current is first
    assert f"TLS reload failed, keeping certificate {first.report.thumbprint}" in caplog.text
    legacy_with_fips = dataclasses.replace(
        NodeConfig(OCS), fips=True, tls_profile=TlsProfile.LEGACY_TLS1
    )
    stores.add_trusted(read_bundle(certificates_pem([root.certificate]), "ca.pem"))
    reason = contexts.reload(legacy_with_fips)
    assert reason is not None
    assert reason.startswith("tls-profile: legacy-tls1 admits TLS 1.0")
    assert contexts.current is first
    assert contexts.reload(dataclasses.replace(legacy_with_fips, fips=False)) is None
    assert contexts.current.profile is TlsProfile.LEGACY_TLS1
    assert contexts.current.client.minimum_version is ssl.TLSVersion.TLSv1


def test_a_reload_without_the_private_key_keeps_the_old_snapshot(
    stores: CertificateStores,
) -> None:
    contexts = TlsContexts(stores, NodeConfig(OCS))
    first = contexts.current
    key_path = stores.selected().key_path
    assert key_path is not None
    key_path.unlink()
    reason = contexts.reload()
    assert reason == (
        f"certificate {first.report.thumbprint}: its private key is missing from the personal "
        "store — import it again with its key (.pfx, or --key FILE), and select it"
    )
    assert contexts.current is first
