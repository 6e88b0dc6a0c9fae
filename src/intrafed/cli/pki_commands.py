"""``intrafed pki …``: certificates for TLS and MTLS, as the seed's procedures need them.

Exit status 0 on success, 1 when a certificate fails validation, 2 on bad usage or
input. Every error is one line; nothing secret is printed.
"""

from __future__ import annotations

import datetime
import json
import sys
from pathlib import Path
from typing import Any, ParamSpec, TypeVar

import click
from cryptography import x509

from intrafed.cli.common import done, fail, home_option, json_option, load_staged
from intrafed.cli.output import echo
from intrafed.config.model import Edition, Role
from intrafed.pki import (
    CertificateAuthority,
    CertificateStores,
    KeyType,
    Report,
    StoreName,
    check_request,
    read_bundle,
    read_csr,
    thumbprint,
    write_request,
)
from intrafed.pki.ca import DEFAULT_CA_DAYS, DEFAULT_DAYS
from intrafed.pki.certificates import (
    certificates_pem,
    describe,
    eku_name,
    extended_key_usages,
    key_description,
    read_private_key,
    subject_text,
)
from intrafed.pki.files import write_public
from intrafed.store import home_containing

P = ParamSpec("P")
R = TypeVar("R")

_KEY_TYPES = click.Choice([key_type.value for key_type in KeyType], case_sensitive=False)
_STORES = click.Choice([store.value for store in StoreName], case_sensitive=False)


def _stores(home: Path) -> CertificateStores:
    load_staged(home)  # refuse a directory that is not a node's home
    return CertificateStores.of_home(home)


def _date(moment: datetime.datetime) -> str:
    return moment.strftime("%Y-%m-%d %H:%M UTC")


def _eku_text(certificate: x509.Certificate) -> str:
    usages = extended_key_usages(certificate)
    if usages is None:
        return "(none: no Extended Key Usage extension)"
    return ", ".join(eku_name(oid) for oid in usages) or "(empty)"


def _password(path: Path | None) -> bytes | None:
    return path.read_bytes().rstrip(b"\r\n") if path is not None else None


def _print_report(report: Report) -> None:
    for line in report.lines():
        click.echo(line)


_JSON = json_option("Print one JSON object instead of text.")


@click.group("pki")
def pki_group() -> None:
    """Certificate authority, CSRs, certificate stores, validation and selection."""


@pki_group.command("ca-create")
@click.option("--cn", required=True, help="The CA's name (its subject CN).")
@click.option(
    "--days",
    type=click.IntRange(1, 36500),
    default=DEFAULT_CA_DAYS,
    show_default=True,
    help="Validity in days.",
)
@click.option(
    "--key-type",
    type=_KEY_TYPES,
    default=KeyType.RSA_2048.value,
    show_default=True,
    help="Key algorithm and size.",
)
@click.option(
    "--out",
    type=click.Path(file_okay=False, path_type=Path),
    help="Directory for ca.pem and ca.key, outside every node's home.",
)
@click.option("--home", "node_home", hidden=True, type=click.Path(path_type=Path))
@_JSON
def ca_create_command(
    cn: str, days: int, key_type: str, out: Path | None, node_home: Path | None, as_json: bool
) -> None:
    """Create a CA (key and self-signed root) for labs and tests.

    Its private key signs every node's certificate: keep it off the nodes (a node's home
    is refused).
    """
    if out is None:
        where = "no directory for the CA" if node_home is None else "the CA is not a node's"
        fail(
            f"--out: {where}; its private key must stay off the nodes — give --out DIR "
            "outside every node's home, e.g. --out lab-ca"
        )
    node_home = home_containing(out)
    if node_home is not None:
        fail(
            f"--out: {out} is inside the home of a node ({node_home}); the CA's private key "
            "must stay off the nodes — give a directory outside it, e.g. --out lab-ca"
        )
    ca = CertificateAuthority.create(cn, days=days, key_type=KeyType(key_type))
    cert_path, key_path = ca.save(out)
    certificate = ca.certificate
    result = {
        "thumbprint": thumbprint(certificate),
        "subject": subject_text(certificate),
        "not_after": certificate.not_valid_after_utc.isoformat(),
        "certificate": str(cert_path),
        "private_key": str(key_path),
    }
    done(as_json, result, [
        f"created CA {subject_text(certificate)}, thumbprint {thumbprint(certificate)}, "
        f"valid until {_date(certificate.not_valid_after_utc)}",
        f"  certificate  {cert_path}",
        f"  private key  {key_path} (mode 0600; keep it off the nodes)",
        f"next: on every node, intrafed pki import --store trusted {cert_path} --home HOME",
    ])  # fmt: skip


@pki_group.command("csr")
@click.option(
    "--role",
    type=click.Choice([role.value for role in Role], case_sensitive=False),
    required=True,
    help="The node's role; it must match the home.",
)
@click.option(
    "--edition",
    type=click.Choice([edition.value for edition in Edition], case_sensitive=False),
    help="OCS only: standard (CN = server FQDN) or enterprise (CN = pool FQDN).  "
    "[default: the home's]",
)
@click.option(
    "--key-type",
    type=_KEY_TYPES,
    default=KeyType.RSA_2048.value,
    show_default=True,
    help="Key algorithm and size.",
)
@click.option("--replace", is_flag=True, help="Replace a pending request (its key is lost).")
@home_option()
@_JSON
def csr_command(
    role: str, edition: str | None, key_type: str, replace: bool, home: Path, as_json: bool
) -> None:
    """Make a key and a CSR named as the seed says, in HOME/pki/requests."""
    config = load_staged(home)
    check_request(config.identity, Role(role), Edition(edition) if edition else None)
    files = write_request(
        CertificateStores.of_home(home).requests_dir,
        config.identity,
        config.domains,
        key_type=KeyType(key_type),
        replace=replace,
    )
    warnings = []
    if not config.domains:
        warnings.append(
            "no SIP domains configured, so the SAN lacks them — "
            "add them (intrafed config domain add DOMAIN) and run csr again with --replace"
        )
    result = {
        "cn": files.cn,
        "sans": list(files.sans),
        "csr": str(files.csr),
        "private_key": str(files.key),
        "warnings": warnings,
    }
    done(as_json, result, [
        f"request for CN={files.cn}",
        f"  SAN          {', '.join(f'DNS:{name}' for name in files.sans)}",
        "  EKU          Server Authentication, Client Authentication (requested)",
        f"  request      {files.csr}",
        f"  private key  {files.key} (mode 0600; it stays here)",
        *(f"warning: {warning}" for warning in warnings),
        "next: have the CA sign it with Server and Client Authentication, then "
        f"intrafed pki import --store personal CERT --home {home}",
    ])  # fmt: skip


@pki_group.command("sign")
@click.option(
    "--ca",
    "ca_dir",
    type=click.Path(exists=True, file_okay=False, path_type=Path),
    required=True,
    help="The CA directory (ca.pem and ca.key).",
)
@click.option(
    "--csr",
    "csr_path",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    required=True,
    help="The request to sign (PEM or DER).",
)
@click.option(
    "--days",
    type=click.IntRange(1, 3650),
    default=DEFAULT_DAYS,
    show_default=True,
    help="Validity in days.",
)
@click.option(
    "--server-only",
    is_flag=True,
    help="Issue Server Authentication only: the classic bad certificate, for tests.",
)
@click.option(
    "--out",
    type=click.Path(dir_okay=False, path_type=Path),
    help="Where to write the certificate.  [default: the CSR's path with .pem]",
)
@_JSON
def sign_command(
    ca_dir: Path, csr_path: Path, days: int, server_only: bool, out: Path | None, as_json: bool
) -> None:
    """Sign a CSR with Server and Client Authentication EKU."""
    ca = CertificateAuthority.load(ca_dir)
    csr = read_csr(csr_path.read_bytes(), str(csr_path))
    certificate = ca.sign(csr, days=days, server_only=server_only)
    out = out if out is not None else csr_path.with_suffix(".pem")
    write_public(out, certificates_pem([certificate]))
    result = {
        "thumbprint": thumbprint(certificate),
        "subject": subject_text(certificate),
        "not_after": certificate.not_valid_after_utc.isoformat(),
        "eku": _eku_text(certificate),
        "certificate": str(out),
    }
    done(as_json, result, [
        f"signed {subject_text(certificate)} until {_date(certificate.not_valid_after_utc)}, "
        f"EKU {_eku_text(certificate)}",
        f"  certificate  {out} (thumbprint {thumbprint(certificate)})",
        "next: intrafed pki import --store personal CERT --home HOME on the node",
    ])  # fmt: skip


@pki_group.command("import")
@click.option("--store", "store_name", type=_STORES, required=True, help="Where to put it.")
@click.argument("file", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option(
    "--key",
    "key_path",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    help="The private key (PEM or DER), when FILE does not hold it.  "
    "[default: FILE's, else the pending request's]",
)
@click.option(
    "--password-file",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    help="A file holding the .pfx export password (or the key's).",
)
@home_option()
@_JSON
def import_command(
    store_name: str,
    file: Path,
    key_path: Path | None,
    password_file: Path | None,
    home: Path,
    as_json: bool,
) -> None:
    """Import a certificate (PEM, DER, PKCS#7 .p7b or PKCS#12 .pfx/.p12).

    A personal certificate needs its private key: in the .pfx, in FILE, given with --key,
    or the key of the pending request (intrafed pki csr) it answers.
    """
    config = load_staged(home)
    stores = CertificateStores.of_home(home)
    password = _password(password_file)
    bundle = read_bundle(file.read_bytes(), str(file), password)
    if StoreName(store_name) is StoreName.TRUSTED:
        lines: list[str] = []
        entries: list[dict[str, str]] = []
        warnings: list[str] = []
        for stored in stores.add_trusted(bundle):
            certificate = stored.certificate
            entries.append({
                "thumbprint": stored.thumbprint,
                "subject": subject_text(certificate),
                "not_after": certificate.not_valid_after_utc.isoformat(),
            })  # fmt: skip
            lines.append(
                f"imported into trusted: {stored.thumbprint} {subject_text(certificate)}, "
                f"valid until {_date(certificate.not_valid_after_utc)}"
            )
            if not _is_ca(certificate):
                warnings.append(
                    f"{stored.thumbprint} is not a CA certificate; it can only "
                    "vouch for itself — import the root CA that signed it"
                )
                lines.append(f"warning: {warnings[-1]}")
        if bundle.key is not None:
            lines.append(f"note: the private key in {file} was not stored (a root needs none)")
        done(as_json, {"store": "trusted", "certificates": entries, "warnings": warnings}, lines)
        return
    key = read_private_key(key_path.read_bytes(), str(key_path), password) if key_path else None
    imported = stores.add_personal(bundle, str(file), key)
    stored = imported.stored
    lines = [
        f"imported into personal: {stored.thumbprint} {subject_text(stored.certificate)}, "
        f"valid until {_date(stored.certificate.not_valid_after_utc)}"
    ]
    if imported.request_key is not None:
        lines.append(f"  private key from the pending request {imported.request_key.name}")
    report = stores.validate(stored.thumbprint, config.identity)
    lines += report.lines()
    if report.ok:
        lines.append(f"next: intrafed pki select {stored.thumbprint} --home {home}")
    else:
        lines.append("it cannot be selected until these errors are fixed")
    result = {
        "store": "personal",
        "thumbprint": stored.thumbprint,
        "subject": subject_text(stored.certificate),
        "not_after": stored.certificate.not_valid_after_utc.isoformat(),
        "request_key": str(imported.request_key) if imported.request_key else None,
        "selectable": report.ok,
        "report": report.to_json(),
    }
    done(as_json, result, lines)


def _is_ca(certificate: x509.Certificate) -> bool:
    try:
        constraints = certificate.extensions.get_extension_for_class(x509.BasicConstraints)
    except x509.ExtensionNotFound:
        return False
    return constraints.value.ca


@pki_group.command("list")
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object instead of text.")
@home_option()
def list_command(as_json: bool, home: Path) -> None:
    """List the personal and trusted certificates and which one is selected."""
    stores = _stores(home)
    selected = stores.selected_thumbprint()
    entries: list[dict[str, Any]] = []
    for store in StoreName:
        for stored in stores.certificates(store):
            entry = describe(stored.certificate)
            entry |= {"store": store.value, "selected": stored.thumbprint == selected}
            if store is StoreName.PERSONAL:
                entry |= {
                    "has_private_key": stored.key_path is not None,
                    "chain": [subject_text(cert) for cert in stored.chain],
                }
            entries.append(entry)
    if as_json:
        click.echo(json.dumps({"selected": selected, "certificates": entries}, indent=2))
        return
    for store in StoreName:
        mine = [entry for entry in entries if entry["store"] == store.value]
        click.echo(f"{store.value} store: {len(mine)} certificate{'s' if len(mine) != 1 else ''}")
        for entry in mine:
            _print_entry(entry)


def _print_entry(entry: dict[str, Any]) -> None:
    mark = ("  [selected]", "bold green") if entry["selected"] else ""
    echo(f"  {entry['thumbprint']}  {entry['subject']}", mark)
    fields = [
        ("SAN", ", ".join(entry["sans"]) or "(none)"),
        ("issuer", entry["issuer"]),
        (
            "EKU",
            "(none: no Extended Key Usage extension)"
            if entry["eku"] is None
            else ", ".join(entry["eku"]),
        ),
        ("valid", f"{entry['not_before']} to {entry['not_after']}"),
        ("key", entry["key"]),
    ]
    for label, value in fields:
        click.echo(f"      {label:<12} {value}")
    if "has_private_key" in entry:
        key = ("present", "") if entry["has_private_key"] else ("MISSING", "bold red")
        echo(f"      {'private key':<12} ", key)


@pki_group.command("remove")
@click.option("--store", "store_name", type=_STORES, required=True, help="Which store.")
@click.argument("thumbprint_text", metavar="THUMBPRINT")
@home_option()
def remove_command(store_name: str, thumbprint_text: str, home: Path) -> None:
    """Remove a certificate (and its private key) from a store."""
    removed = _stores(home).remove(StoreName(store_name), thumbprint_text)
    click.echo(
        f"removed {removed.thumbprint} {subject_text(removed.certificate)} "
        f"from the {store_name} store"
    )


@pki_group.command("validate")
@click.argument("thumbprint_text", metavar="[THUMBPRINT]", required=False)
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object instead of text.")
@home_option()
def validate_command(thumbprint_text: str | None, as_json: bool, home: Path) -> None:
    """Check a personal certificate (default: the selected one) as this node's own.

    Chain to a trusted root, validity (warning within 30 days of the end), EKU Server and
    Client Authentication, key algorithm and size, and CN/SAN against the node's FQDN
    (Standard Edition, IM&P) or pool FQDN (Enterprise Edition).
    """
    config = load_staged(home)
    stores = CertificateStores.of_home(home)
    if thumbprint_text is None:
        thumbprint_text = stores.selected().thumbprint
    report = stores.validate(thumbprint_text, config.identity)
    if as_json:
        click.echo(json.dumps(report.to_json(), indent=2))
    else:
        _print_report(report)
        if report.ok:
            stored = stores.get(StoreName.PERSONAL, report.thumbprint)
            click.echo(
                f"certificate {report.thumbprint} ({report.subject}): "
                f"{'usable' if report.findings else 'valid'} — chains to a trusted root, "
                f"{_eku_text(stored.certificate)}, "
                f"{key_description(stored.certificate.public_key())}, "
                f"names {config.identity.certificate_name}, "
                f"until {_date(report.not_after)}"
            )
    if not report.ok:
        sys.exit(1)


@pki_group.command("select")
@click.argument("thumbprint_text", metavar="[THUMBPRINT]", required=False)
@click.option(
    "--file",
    "certificate_file",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    help="Select the personal certificate this file holds (the one given to pki import).",
)
@home_option()
@_JSON
def select_command(
    thumbprint_text: str | None, certificate_file: Path | None, home: Path, as_json: bool
) -> None:
    """Use a personal certificate for every TLS and MTLS connection ("Select Certificate"):
    the one named by THUMBPRINT, or the one imported from --file.

    THUMBPRINT may be shortened to its first digits when no other certificate's begins
    with them. A certificate that fails validate is refused, with the reasons.
    """
    config = load_staged(home)
    stores = CertificateStores.of_home(home)
    if thumbprint_text is not None and certificate_file is not None:
        fail("--file: name the certificate by THUMBPRINT or by --file CERT, not both")
    if certificate_file is not None:
        thumbprint_text = _personal_thumbprint(stores, certificate_file, home)
    elif thumbprint_text is None:
        fail("THUMBPRINT: name the certificate by THUMBPRINT or by --file CERT")
    report = stores.select(thumbprint_text, config.identity)
    apply = (
        f"intrafed service reload --home {home} (restart when the node runs without TLS "
        "listeners: it started with no certificate)"
    )
    result = {"thumbprint": report.thumbprint, "subject": report.subject, "apply": apply}
    done(as_json, {**result, "report": report.to_json()}, [
        *report.lines(),
        f"selected {report.thumbprint} ({report.subject}) for TLS and MTLS",
        f"apply it with: {apply}",
    ])  # fmt: skip


def _personal_thumbprint(stores: CertificateStores, file: Path, home: Path) -> str:
    """The thumbprint of the personal certificate that ``file`` holds."""
    held = {thumbprint(c) for c in read_bundle(file.read_bytes(), str(file)).certificates}
    found = [s.thumbprint for s in stores.certificates(StoreName.PERSONAL) if s.thumbprint in held]
    if len(found) != 1:
        fail(
            f"--file {file}: it holds no certificate of the personal store; import it first: "
            f"intrafed pki import --store personal {file} --home {home}"
            if not found
            else f"--file {file}: it holds {len(found)} personal certificates; name one by "
            "THUMBPRINT (intrafed pki list)"
        )
    return found[0]
