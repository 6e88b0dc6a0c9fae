"""The personal and trusted stores: imports in every format administrators have, keys kept
private, removal, and a selection that refuses certificates that fail validation."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ed25519
from cryptography.hazmat.primitives.serialization import pkcs7, pkcs12

from intrafed.pki import (
    CertificateStores,
    CertificateValidationError,
    KeyType,
    PkiError,
    StoreName,
    make_host_csr,
    read_bundle,
    thumbprint,
    write_request,
)
from intrafed.pki.certificates import (
    certificates_pem,
    normalize_thumbprint,
    private_key_pem,
    read_private_key,
)
from intrafed.pki.files import write_private
from tests.lab_pki import DOMAINS, IMP, OCS, Issued, issue, read_csr
from tests.pki.conftest import Cas

PASSWORD = b"correct horse"


def pfx(issued: Issued, cas: Cas, password: bytes | None = PASSWORD) -> bytes:
    encryption = (
        serialization.BestAvailableEncryption(password)
        if password
        else serialization.NoEncryption()
    )
    return pkcs12.serialize_key_and_certificates(
        b"ocs1", issued.key, issued.certificate, [cas.lab.certificate], encryption
    )


@pytest.fixture
def stores(tmp_path: Path, cas: Cas) -> CertificateStores:
    stores = CertificateStores(tmp_path / "pki")
    stores.add_trusted(read_bundle(certificates_pem([cas.lab.certificate]), "ca.pem"))
    return stores


def test_pkcs12_round_trip_with_password(stores: CertificateStores, cas: Cas) -> None:
    issued = issue(cas.lab, OCS)
    bundle = read_bundle(pfx(issued, cas), "ocs1.pfx", PASSWORD)
    assert bundle.certificates == (issued.certificate, cas.lab.certificate)
    stored = stores.add_personal(bundle, "ocs1.pfx").stored
    assert stored.thumbprint == thumbprint(issued.certificate)
    assert stored.chain == (cas.lab.certificate,)
    assert stored.key_path is not None
    assert stat.S_IMODE(stored.key_path.stat().st_mode) == 0o600
    key = read_private_key(stored.key_path.read_bytes(), "key", None)
    assert private_key_pem(key) == private_key_pem(issued.key)
    again = stores.get(StoreName.PERSONAL, stored.thumbprint.lower())
    assert (again.certificate, again.chain) == (issued.certificate, (cas.lab.certificate,))


@pytest.mark.parametrize(
    ("password", "message"),
    [
        (b"wrong", "wrong password"),
        (None, "give the export password with --password-file"),
    ],
)
def test_pkcs12_without_the_right_password_is_a_clear_error(
    cas: Cas, password: bytes | None, message: str
) -> None:
    with pytest.raises(PkiError) as caught:
        read_bundle(pfx(issue(cas.lab, OCS), cas), "ocs1.pfx", password)
    assert str(caught.value).startswith("ocs1.pfx: cannot open the PKCS#12 file: wrong password")
    assert message in str(caught.value)


def test_pkcs12_under_another_name_and_garbage(cas: Cas) -> None:
    data = pfx(issue(cas.lab, OCS), cas, password=None)
    assert len(read_bundle(data, "exported.bin").certificates) == 2
    with pytest.raises(PkiError, match="not a certificate file"):
        read_bundle(b"\x00garbage", "x.cer")
    with pytest.raises(PkiError, match="not a PKCS#12"):
        read_bundle(b"\x00garbage", "x.pfx")


def test_der_pem_and_p7b_chains_import_as_trusted(tmp_path: Path, cas: Cas) -> None:
    stores = CertificateStores(tmp_path / "pki")
    root, rogue = cas.lab.certificate, cas.rogue.certificate
    der = root.public_bytes(serialization.Encoding.DER)
    assert read_bundle(der, "root.cer").certificates == (root,)
    p7b = pkcs7.serialize_certificates([root, rogue], serialization.Encoding.DER)
    stored = stores.add_trusted(read_bundle(p7b, "certnew.p7b"))
    assert {s.certificate for s in stored} == {root, rogue}
    assert set(stores.trusted_roots()) == {root, rogue}
    assert stat.S_IMODE(stored[0].path.stat().st_mode) == 0o644


def test_a_personal_certificate_needs_its_key(stores: CertificateStores, cas: Cas) -> None:
    issued = issue(cas.lab, OCS)
    bundle = read_bundle(certificates_pem([issued.certificate]), "ocs1.pem")
    with pytest.raises(PkiError, match="needs its private key"):
        stores.add_personal(bundle, "ocs1.pem")
    other_key = issue(cas.lab, OCS).key
    with pytest.raises(PkiError, match=r"the private key belongs to no certificate in ocs1\.pem"):
        stores.add_personal(bundle, "ocs1.pem", other_key)
    assert stores.certificates(StoreName.PERSONAL) == ()
    stored = stores.add_personal(bundle, "ocs1.pem", issued.key).stored
    assert stored.thumbprint == thumbprint(issued.certificate)


def test_pem_with_certificate_and_encrypted_key(stores: CertificateStores, cas: Cas) -> None:
    issued = issue(cas.lab, OCS)
    key_pem = issued.key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.BestAvailableEncryption(PASSWORD),
    )
    data = certificates_pem([issued.certificate]) + key_pem
    with pytest.raises(PkiError, match="the private key is encrypted"):
        read_bundle(data, "both.pem")
    with pytest.raises(PkiError, match="wrong password"):
        read_bundle(data, "both.pem", b"nope")
    bundle = read_bundle(data, "both.pem", PASSWORD)
    assert stores.add_personal(bundle, "both.pem").stored.key_path is not None


def test_the_pending_request_key_completes_the_import(stores: CertificateStores, cas: Cas) -> None:
    files = write_request(stores.requests_dir, OCS, DOMAINS, key_type=KeyType.EC_P256)
    certificate = cas.lab.sign(read_csr(files.csr))
    imported = stores.add_personal(read_bundle(certificates_pem([certificate]), "c.pem"), "c.pem")
    assert imported.request_key == files.key
    assert not files.key.exists()
    assert not files.csr.exists()
    assert imported.stored.key_path is not None
    assert stores.validate(imported.stored.thumbprint, OCS).findings == ()


def test_private_keys_are_0600_whatever_the_umask(tmp_path: Path) -> None:
    previous = os.umask(0)
    try:
        write_private(tmp_path / "k.key", b"secret")
    finally:
        os.umask(previous)
    assert stat.S_IMODE((tmp_path / "k.key").stat().st_mode) == 0o600
    assert [p.name for p in tmp_path.iterdir()] == ["k.key"]  # no temporary left behind


def test_select_refuses_a_certificate_that_fails_validation(
    stores: CertificateStores, cas: Cas
) -> None:
    bad = issue(cas.lab, OCS, server_only=True)
    stored = stores.add_personal(read_bundle(pfx(bad, cas), "bad.pfx", PASSWORD), "bad.pfx").stored
    with pytest.raises(CertificateValidationError) as caught:
        stores.select(stored.thumbprint, OCS)
    assert "lack Client Authentication" in str(caught.value)
    assert [f.rule for f in caught.value.report.errors] == ["eku"]
    assert stores.selected_thumbprint() is None


def test_select_remove_and_the_selected_certificate(stores: CertificateStores, cas: Cas) -> None:
    with pytest.raises(PkiError, match="no certificate is selected"):
        stores.selected()
    good = issue(cas.lab, OCS)
    stored = stores.add_personal(read_bundle(pfx(good, cas), "g.pfx", PASSWORD), "g.pfx").stored
    report = stores.select(stored.thumbprint, OCS)
    assert report.ok
    assert stores.selected().certificate == good.certificate
    with pytest.raises(PkiError, match="is the selected certificate"):
        stores.remove(StoreName.PERSONAL, stored.thumbprint)
    other = issue(cas.lab, IMP)
    spare = stores.add_personal(read_bundle(pfx(other, cas), "o.pfx", PASSWORD), "o.pfx").stored
    stores.remove(StoreName.PERSONAL, spare.thumbprint)
    assert spare.key_path is not None
    assert not spare.key_path.exists()
    assert [s.thumbprint for s in stores.certificates(StoreName.PERSONAL)] == [stored.thumbprint]
    with pytest.raises(PkiError, match="no certificate"):
        stores.get(StoreName.PERSONAL, spare.thumbprint)


def test_a_missing_key_file_fails_validation(stores: CertificateStores, cas: Cas) -> None:
    issued = issue(cas.lab, OCS)
    stored = stores.add_personal(read_bundle(pfx(issued, cas), "g.pfx", PASSWORD), "g.pfx").stored
    assert stored.key_path is not None
    stored.key_path.unlink()
    report = stores.validate(stored.thumbprint, OCS)
    assert [f.rule for f in report.errors] == ["private-key"]


@pytest.mark.parametrize(
    "typed",
    [
        "a1b2c3d4e5f60718293a4b5c6d7e8f9012345678",
        "A1 B2 C3 D4 E5 F6 07 18 29 3A 4B 5C 6D 7E 8F 90 12 34 56 78",
    ],
)
def test_thumbprints_typed_by_hand(typed: str) -> None:
    assert normalize_thumbprint(typed) == "A1B2C3D4E5F60718293A4B5C6D7E8F9012345678"


@pytest.mark.parametrize("typed", ["A1B", "A1B2G", "A" * 41])
def test_a_thumbprint_is_4_to_40_hex_digits(typed: str) -> None:
    with pytest.raises(PkiError, match="is not a certificate thumbprint"):
        normalize_thumbprint(typed)


def same_start(cas: Cas, digits: int = 4, attempts: int = 20_000) -> tuple[str, Issued, Issued]:
    """Two certificates whose thumbprints begin with the same ``digits`` (signing one
    request again and again: each has its own serial number, so its own thumbprint)."""
    first = issue(cas.lab, OCS)
    csr = make_host_csr("ocs1.example.com", first.key, dns_names=["ocs1.example.com"])
    seen: dict[str, Issued] = {}
    for _ in range(attempts):
        issued = Issued(cas.lab.sign(csr), first.key)
        start = thumbprint(issued.certificate)[:digits]
        if start in seen:
            return start, seen[start], issued
        seen[start] = issued
    raise AssertionError(f"no two of {attempts} thumbprints share {digits} digits")


def test_a_thumbprint_may_be_shortened_to_a_unique_start(
    stores: CertificateStores, cas: Cas
) -> None:
    start, one, other = same_start(cas)
    for issued in (one, other):
        bundle = read_bundle(pfx(issued, cas), "p.pfx", PASSWORD)
        stores.add_personal(bundle, "p.pfx")
    whole = [thumbprint(one.certificate), thumbprint(other.certificate)]
    with pytest.raises(PkiError) as ambiguous:
        stores.get(StoreName.PERSONAL, start.lower())
    assert str(ambiguous.value) == (
        f"THUMBPRINT: {start} is the start of 2 thumbprints in the personal store: "
        f"{', '.join(sorted(whole))} — give more digits"
    )
    for full in whole:
        unique = next(full[:n] for n in range(5, 41) if not any(
            other_full.startswith(full[:n]) for other_full in whole if other_full != full
        ))  # fmt: skip
        assert stores.get(StoreName.PERSONAL, unique).thumbprint == full


def test_a_password_for_a_plain_key_is_ignored(cas: Cas) -> None:
    issued = issue(cas.lab, OCS)
    key = read_private_key(private_key_pem(issued.key), "key.pem", PASSWORD)
    assert private_key_pem(key) == private_key_pem(issued.key)


def test_keys_tls_peers_cannot_use_are_refused(cas: Cas) -> None:
    data = pkcs12.serialize_key_and_certificates(
        b"ed", ed25519.Ed25519PrivateKey.generate(), None, None, serialization.NoEncryption()
    )
    with pytest.raises(PkiError, match="the private key is Ed25519, which OCS and IM&P"):
        read_bundle(data, "ed.pfx")
