"""``intrafed pki``: the seed's certificate procedures as commands, and the mistakes they
refuse. Most run through CliRunner; a few through real processes."""

from __future__ import annotations

import dataclasses
import json
import stat
import subprocess
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner, Result
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.serialization import pkcs12

from intrafed.cli import main
from intrafed.config.model import NodeIdentity
from intrafed.pki import CertificateAuthority, thumbprint
from intrafed.store import create_store
from tests.lab_pki import IMP, OCS, POOL_FE, issue


def make_home(
    path: Path, identity: NodeIdentity = OCS, domains: tuple[str, ...] = ("example.com",)
) -> Path:
    store = create_store(path, identity)
    store.stage(lambda config: dataclasses.replace(config, domains=domains))
    store.close()
    return path


def pki(*arguments: str | Path) -> Result:
    result = CliRunner().invoke(main, ["pki", *map(str, arguments)])
    assert result.exception is None or isinstance(result.exception, SystemExit), result.exception
    return result


def one_error_line(result: Result, code: int = 2) -> str:
    assert result.exit_code == code, result.output
    lines = result.stderr.splitlines()
    assert len(lines) == 1, lines
    assert "Traceback" not in result.output
    return lines[0]


@pytest.fixture
def home(tmp_path: Path) -> Path:
    return make_home(tmp_path / "home")


def lab_ca(home: Path) -> Path:
    """Where the lab CA of the node at ``home`` is kept: next to the home, not in it."""
    return home.parent / "lab-ca"


def lab(home: Path) -> CertificateAuthority:
    """A lab CA next to HOME, trusted by the node."""
    created = pki(
        "ca-create", "--cn", "Lab Root CA", "--key-type", "ec-p256", "--out", lab_ca(home)
    )
    assert created.exit_code == 0, created.output
    assert (
        pki("import", "--store", "trusted", lab_ca(home) / "ca.pem", "--home", home).exit_code == 0
    )
    return CertificateAuthority.load(lab_ca(home))


def request_and_sign(home: Path, *extra: str) -> Path:
    """csr then sign (``extra`` options go to sign); the signed certificate's path."""
    assert pki("csr", "--role", "ocs", "--key-type", "ec-p256", "--home", home).exit_code == 0
    csr = home / "pki/requests/ocs1.example.com.csr"
    result = pki("sign", "--ca", lab_ca(home), "--csr", csr, *extra)
    assert result.exit_code == 0, result.output
    return csr.with_suffix(".pem")


def thumb_of(path: Path) -> str:
    return thumbprint(x509.load_pem_x509_certificate(path.read_bytes()))


def test_the_seed_procedure_end_to_end(home: Path) -> None:
    created = pki("ca-create", "--cn", "Lab Root CA", "--out", lab_ca(home))
    assert created.exit_code == 0, created.output
    assert created.output.startswith("created CA CN=Lab Root CA, thumbprint ")
    assert stat.S_IMODE((lab_ca(home) / "ca.key").stat().st_mode) == 0o600
    assert (
        pki("import", "--store", "trusted", lab_ca(home) / "ca.pem", "--home", home).exit_code == 0
    )

    request = pki("csr", "--role", "ocs", "--home", home)
    assert request.exit_code == 0, request.output
    assert request.output.splitlines()[:2] == [
        "request for CN=ocs1.example.com",
        "  SAN          DNS:ocs1.example.com, DNS:example.com",
    ]
    key = home / "pki/requests/ocs1.example.com.key"
    assert stat.S_IMODE(key.stat().st_mode) == 0o600

    signed = pki("sign", "--ca", lab_ca(home), "--csr", key.with_suffix(".csr"))
    assert "EKU Server Authentication, Client Authentication" in signed.output
    cert_path = key.with_suffix(".pem")
    thumb = thumb_of(cert_path)

    imported = pki("import", "--store", "personal", cert_path, "--home", home)
    assert imported.exit_code == 0, imported.output
    assert f"imported into personal: {thumb} CN=ocs1.example.com" in imported.output
    assert "private key from the pending request ocs1.example.com.key" in imported.output
    assert f"next: intrafed pki select {thumb}" in imported.output

    listed = json.loads(pki("list", "--json", "--home", home).output)
    assert listed["selected"] is None
    personal = [c for c in listed["certificates"] if c["store"] == "personal"]
    assert [c["thumbprint"] for c in personal] == [thumb]
    assert personal[0]["eku"] == ["Server Authentication", "Client Authentication"]
    assert personal[0]["sans"] == ["DNS:ocs1.example.com", "DNS:example.com"]
    assert personal[0]["key"] == "RSA 2048"
    assert personal[0]["has_private_key"] is True

    selected = pki("select", thumb.lower(), "--home", home)
    assert selected.exit_code == 0, selected.output
    assert selected.output.startswith(f"selected {thumb} (CN=ocs1.example.com) for TLS and MTLS")

    validated = pki("validate", "--home", home)
    assert validated.exit_code == 0
    assert validated.output.startswith(f"certificate {thumb} (CN=ocs1.example.com): valid — ")
    report = json.loads(pki("validate", thumb, "--json", "--home", home).output)
    assert (report["ok"], report["findings"]) == (True, [])

    text = pki("list", "--home", home).output
    assert f"  {thumb}  CN=ocs1.example.com  [selected]" in text
    everything = "".join(
        r.output for r in (created, request, signed, imported, selected, validated)
    )
    assert "PRIVATE KEY" not in everything


@pytest.mark.parametrize(
    ("identity", "arguments", "cn", "san"),
    [
        (
            POOL_FE,
            ("--role", "ocs", "--edition", "enterprise"),
            "pool.example.com",
            "DNS:pool.example.com, DNS:fe1.example.com, DNS:example.com",
        ),
        (IMP, ("--role", "imp"), "imp1.example.com", "DNS:imp1.example.com, DNS:example.com"),
    ],
    ids=["enterprise-pool", "imp"],
)
def test_csr_cn_for_pool_and_imp(
    tmp_path: Path, identity: NodeIdentity, arguments: Sequence[str], cn: str, san: str
) -> None:
    home = make_home(tmp_path / "home", identity)
    result = pki("csr", *arguments, "--key-type", "ec-p256", "--home", home)
    assert result.exit_code == 0, result.output
    assert result.output.splitlines()[:2] == [f"request for CN={cn}", f"  SAN          {san}"]


@pytest.mark.parametrize(
    ("identity", "arguments", "expected"),
    [
        (OCS, ("--role", "imp"), "--role: this home is an ocs node (ocs1.example.com)"),
        (
            OCS,
            ("--role", "ocs", "--edition", "enterprise"),
            "--edition: this home is a Standard Edition server",
        ),
        (
            POOL_FE,
            ("--role", "ocs", "--edition", "standard"),
            "--edition: this home is a front end of the Enterprise pool pool.example.com",
        ),
    ],
)
def test_csr_refuses_a_role_or_edition_the_home_does_not_have(
    tmp_path: Path, identity: NodeIdentity, arguments: Sequence[str], expected: str
) -> None:
    home = make_home(tmp_path / "home", identity)
    line = one_error_line(pki("csr", *arguments, "--home", home))
    assert line.startswith(expected)
    assert not (home / "pki/requests").exists()


def test_csr_without_domains_warns_and_a_pending_request_is_kept(tmp_path: Path) -> None:
    home = make_home(tmp_path / "home", OCS, domains=())
    first = pki("csr", "--role", "ocs", "--key-type", "ec-p256", "--home", home)
    assert "warning: no SIP domains configured" in first.output
    again = one_error_line(pki("csr", "--role", "ocs", "--home", home))
    assert "a request for ocs1.example.com is pending" in again
    assert (
        pki("csr", "--role", "ocs", "--key-type", "ec-p256", "--replace", "--home", home).exit_code
        == 0
    )


def test_server_only_certificate_is_refused_by_select_and_validate(home: Path) -> None:
    lab(home)
    cert_path = request_and_sign(home, "--server-only")
    thumb = thumb_of(cert_path)
    imported = pki("import", "--store", "personal", cert_path, "--home", home)
    assert imported.exit_code == 0
    assert "it cannot be selected until these errors are fixed" in imported.output
    refused = pki("select", thumb, "--home", home)
    assert refused.exit_code == 1
    assert refused.stderr.splitlines() == [
        f"error: certificate {thumb} (CN=ocs1.example.com): Intended Purposes lack Client "
        "Authentication (1.3.6.1.5.5.7.3.2): the node is the TLS client when it opens MTLS "
        "to its peer — request a certificate from a template with Server and Client "
        "Authentication (1.3.6.1.5.5.7.3.1 and 1.3.6.1.5.5.7.3.2)",
        f"{thumb} cannot be selected: it fails validation",
    ]
    assert json.loads(pki("list", "--json", "--home", home).output)["selected"] is None
    validated = pki("validate", thumb, "--json", "--home", home)
    assert validated.exit_code == 1
    assert [f["rule"] for f in json.loads(validated.output)["findings"]] == ["eku"]


def write_pfx(path: Path, ca: CertificateAuthority, password: bytes) -> str:
    issued = issue(ca, OCS)
    path.write_bytes(
        pkcs12.serialize_key_and_certificates(
            b"ocs1",
            issued.key,
            issued.certificate,
            None,
            serialization.BestAvailableEncryption(password),
        )
    )
    return thumbprint(issued.certificate)


def test_pfx_import_with_password_file(home: Path, tmp_path: Path) -> None:
    ca = lab(home)
    thumb = write_pfx(tmp_path / "ocs1.pfx", ca, b"s3cret pass")
    (tmp_path / "password").write_text("s3cret pass\n")
    (tmp_path / "wrong").write_text("guess\n")
    wrong = one_error_line(
        pki(
            "import",
            "--store",
            "personal",
            tmp_path / "ocs1.pfx",
            "--password-file",
            tmp_path / "wrong",
            "--home",
            home,
        )
    )
    assert wrong == (
        f"{tmp_path / 'ocs1.pfx'}: cannot open the PKCS#12 file: wrong password (or a "
        "damaged file) — check the export password in --password-file"
    )
    missing = one_error_line(
        pki("import", "--store", "personal", tmp_path / "ocs1.pfx", "--home", home)
    )
    assert missing.endswith("give the export password with --password-file FILE")
    good = pki(
        "import",
        "--store",
        "personal",
        tmp_path / "ocs1.pfx",
        "--password-file",
        tmp_path / "password",
        "--home",
        home,
    )
    assert good.exit_code == 0, good.output
    assert "s3cret" not in good.output
    key = home / "pki/personal" / f"{thumb}.key"
    assert stat.S_IMODE(key.stat().st_mode) == 0o600
    assert pki("select", thumb, "--home", home).exit_code == 0


def test_personal_import_needs_the_key(home: Path, tmp_path: Path) -> None:
    ca = lab(home)
    issued = issue(ca, OCS)
    cert_path, key_path = issued.write(tmp_path / "loose")
    line = one_error_line(pki("import", "--store", "personal", cert_path, "--home", home))
    assert "a personal certificate needs its private key, and none came with it" in line
    with_key = pki("import", "--store", "personal", cert_path, "--key", key_path, "--home", home)
    assert with_key.exit_code == 0, with_key.output


def test_remove_refuses_the_selected_certificate(home: Path) -> None:
    lab(home)
    cert_path = request_and_sign(home)
    thumb = thumb_of(cert_path)
    assert pki("import", "--store", "personal", cert_path, "--home", home).exit_code == 0
    assert pki("select", thumb, "--home", home).exit_code == 0
    line = one_error_line(pki("remove", "--store", "personal", thumb, "--home", home))
    assert line.startswith(f"THUMBPRINT: {thumb} is the selected certificate")
    root = thumb_of(lab_ca(home) / "ca.pem")
    removed = pki("remove", "--store", "trusted", root, "--home", home)
    assert removed.output == f"removed {root} CN=Lab Root CA from the trusted store\n"
    untrusted = pki("validate", "--home", home)
    assert untrusted.exit_code == 1
    assert "the trusted store is empty" in untrusted.output


def test_select_takes_the_certificate_by_its_file_so_no_thumbprint_is_copied(home: Path) -> None:
    lab(home)
    cert_path = request_and_sign(home)
    line = one_error_line(pki("select", "--file", cert_path, "--home", home))
    assert line == (
        f"--file {cert_path}: it holds no certificate of the personal store; import it first: "
        f"intrafed pki import --store personal {cert_path} --home {home}"
    )
    assert pki("import", "--store", "personal", cert_path, "--home", home).exit_code == 0
    selected = pki("select", "--file", cert_path, "--home", home)
    assert selected.exit_code == 0, selected.output
    thumb = thumb_of(cert_path)
    assert selected.output.startswith(f"selected {thumb} (CN=ocs1.example.com) for TLS and MTLS")
    assert json.loads(pki("list", "--json", "--home", home).output)["selected"] == thumb
    both = one_error_line(pki("select", thumb, "--file", cert_path, "--home", home))
    assert both.startswith("--file: name the certificate by THUMBPRINT or by --file CERT")


@pytest.mark.parametrize(
    ("arguments", "expected"),
    [
        (("validate",), "certificate: no certificate is selected for TLS"),
        (("select",), "THUMBPRINT: name the certificate by THUMBPRINT or by --file CERT"),
        (("select", "ABC"), "THUMBPRINT: 'ABC' is not a certificate thumbprint"),
        (("select", "ABCD"), "THUMBPRINT: no certificate ABCD in the personal store"),
        (
            ("select", "A" * 40),
            f"THUMBPRINT: no certificate {'A' * 40} in the personal store",
        ),
        (("ca-create", "--cn", "X"), "--out: no directory for the CA"),
        (("ca-create", "--cn", "X", "--home", "."), "--out: the CA is not a node's; its private"),
    ],
)
def test_usage_errors_are_one_line_with_exit_2(
    home: Path, arguments: Sequence[str], expected: str
) -> None:
    extra = () if arguments[0] == "ca-create" else ("--home", str(home))
    assert one_error_line(pki(*arguments, *extra)).startswith(expected)


@pytest.mark.parametrize("inside", [".", "pki/ca", "lab-ca"])
def test_ca_create_refuses_to_put_the_ca_key_in_a_nodes_home(home: Path, inside: str) -> None:
    result = pki("ca-create", "--cn", "Lab Root CA", "--out", home / inside)
    line = one_error_line(result)
    assert result.exit_code == 2
    assert line.startswith(f"--out: {home / inside} is inside the home of a node ({home})")
    assert line.endswith("the CA's private key must stay off the nodes — give a directory "
                         "outside it, e.g. --out lab-ca")  # fmt: skip
    assert not list(home.rglob("ca.key"))


def test_a_directory_that_is_not_a_home_is_refused(tmp_path: Path) -> None:
    line = one_error_line(pki("list", "--home", tmp_path))
    assert line.startswith(f"--home: {tmp_path} is not an intrafed home")


def intrafed(*arguments: str | Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "intrafed", "pki", *map(str, arguments)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def test_real_processes(tmp_path: Path) -> None:
    home = make_home(tmp_path / "home")
    created = intrafed(
        "ca-create", "--cn", "Process CA", "--key-type", "ec-p256", "--out", tmp_path / "ca"
    )
    assert created.returncode == 0, created.stderr
    assert stat.S_IMODE((tmp_path / "ca/ca.key").stat().st_mode) == 0o600
    trusted = intrafed("import", "--store", "trusted", tmp_path / "ca/ca.pem", "--home", home)
    assert trusted.returncode == 0, trusted.stderr
    refused = intrafed("csr", "--role", "imp", "--home", home)
    assert refused.returncode == 2
    assert refused.stdout == ""
    assert refused.stderr.startswith("--role: this home is an ocs node")
    assert refused.stderr.count("\n") == 1
    listed = intrafed("list", "--json", "--home", home)
    assert listed.returncode == 0, listed.stderr
    certificates = json.loads(listed.stdout)["certificates"]
    assert [(c["store"], c["subject"]) for c in certificates] == [("trusted", "CN=Process CA")]


def as_json(result: Result) -> Any:
    assert result.exit_code == 0, result.output
    return json.loads(result.stdout)


def test_the_seed_procedure_with_json_gives_scripts_every_path_and_thumbprint(
    home: Path,
) -> None:
    created = as_json(pki("ca-create", "--cn", "Lab Root CA", "--out", lab_ca(home), "--json"))
    assert created["ok"] is True
    assert created["certificate"] == str(lab_ca(home) / "ca.pem")
    trusted = as_json(pki("import", "--store", "trusted", created["certificate"], "--home", home,
                          "--json"))  # fmt: skip
    assert [c["thumbprint"] for c in trusted["certificates"]] == [created["thumbprint"]]
    assert trusted["warnings"] == []
    request = as_json(pki("csr", "--role", "OCS", "--key-type", "EC-P256", "--home", home,
                          "--json"))  # fmt: skip
    assert (request["cn"], request["sans"]) == ("ocs1.example.com", ["ocs1.example.com",
                                                                    "example.com"])  # fmt: skip
    signed = as_json(pki("sign", "--ca", lab_ca(home), "--csr", request["csr"], "--json"))
    imported = as_json(pki("import", "--store", "personal", signed["certificate"], "--home", home,
                           "--json"))  # fmt: skip
    assert imported["thumbprint"] == signed["thumbprint"] == thumb_of(Path(signed["certificate"]))
    assert imported["selectable"] is True
    # A script (or a person) may give the first digits, as git takes a commit's.
    selected = as_json(pki("select", signed["thumbprint"][:8].lower(), "--home", home, "--json"))
    assert selected["thumbprint"] == signed["thumbprint"]
    assert selected["apply"].startswith(f"intrafed service reload --home {home}")
    assert (
        json.loads(pki("list", "--json", "--home", home).output)["selected"]
        == (signed["thumbprint"])
    )


def test_errors_under_json_are_one_json_object(home: Path) -> None:
    result = pki("select", "ABCD", "--home", home, "--json")
    assert result.exit_code == 2
    assert json.loads(result.stdout) == {
        "ok": False,
        "error": "THUMBPRINT: no certificate ABCD in the personal store — see the thumbprints "
        "with: intrafed pki list",
    }
    usage = pki("csr", "--role", "nope", "--home", home, "--json")
    assert usage.exit_code == 2
    error = json.loads(usage.stdout)
    assert error["ok"] is False
    assert "'nope' is not one of 'ocs', 'imp'" in error["error"]


def test_a_certificate_failing_validation_under_json_reports_why(home: Path) -> None:
    lab(home)
    bad = home.parent / "server-only.pem"
    issued = request_and_sign(home, "--server-only")
    bad.write_bytes(issued.read_bytes())
    imported = as_json(pki("import", "--store", "personal", bad, "--home", home, "--json"))
    assert imported["selectable"] is False
    refused = pki("select", imported["thumbprint"], "--home", home, "--json")
    assert refused.exit_code == 1
    answer = json.loads(refused.stdout)
    assert answer["ok"] is False
    assert answer["error"].endswith("cannot be selected: it fails validation")
    assert "eku" in [finding["rule"] for finding in answer["report"]["findings"]]
