"""The Security tab: the certificate stores (import, validate, select, remove), with the
``intrafed.pki`` functions ``intrafed pki`` uses. No private key is ever shown: only
whether a personal certificate has one."""

from __future__ import annotations

from pathlib import Path

from intrafed.config.model import ConfigError, NodeConfig
from intrafed.console.forms import ConfigPage, Field, Form, FormValues, Row, RowButton
from intrafed.pki import CertificateStores, StoreName, read_bundle
from intrafed.pki.certificates import read_private_key, subject_text
from intrafed.store import load_staged as staged_config


def _rows(home: Path, config: NodeConfig) -> list[Row]:
    stores = CertificateStores.of_home(home)
    selected = stores.selected_thumbprint()
    rows = []
    for store in StoreName:
        for stored in stores.certificates(store):
            certificate = stored.certificate
            key = "—"
            if store is StoreName.PERSONAL:
                key = "present" if stored.key_path is not None else "MISSING"
            buttons = [
                RowButton(
                    "remove", "Remove", {"store": store.value, "thumbprint": stored.thumbprint}
                )
            ]
            if store is StoreName.PERSONAL:
                values = {"thumbprint": stored.thumbprint}
                buttons[:0] = [
                    RowButton("validate", "Validate", values),
                    RowButton("select", "Select", values),
                ]
            rows.append(
                Row(
                    (
                        store.value,
                        stored.thumbprint[:16],
                        subject_text(certificate),
                        certificate.not_valid_after_utc.strftime("%Y-%m-%d"),
                        key,
                        "selected" if stored.thumbprint == selected else "",
                    ),
                    tuple(buttons),
                )
            )
    return rows


def _upload_bytes(values: FormValues, name: str) -> tuple[str, bytes] | None:
    upload = values.upload(name)
    return None if upload is None else (upload.filename, upload.data)


def _import(home: Path, values: FormValues) -> str:
    config = staged_config(home)
    stores = CertificateStores.of_home(home)
    file = _upload_bytes(values, "file")
    if file is None:
        raise ConfigError("FILE", "no file chosen", "choose the certificate file to import")
    password = values.secret("password").encode() or None
    bundle = read_bundle(file[1], file[0], password)
    store = StoreName(values.required("store"))
    if store is StoreName.TRUSTED:
        added = stores.add_trusted(bundle)
        return "\n".join(
            f"imported into trusted: {s.thumbprint} {subject_text(s.certificate)}" for s in added
        )
    key_file = _upload_bytes(values, "key")
    key = read_private_key(key_file[1], key_file[0], password) if key_file else None
    stored = stores.add_personal(bundle, file[0], key).stored
    report = stores.validate(stored.thumbprint, config.identity)
    verdict = (
        "select it to use it" if report.ok else "it cannot be selected until these errors are fixed"
    )
    return "\n".join(
        [
            f"imported into personal: {stored.thumbprint} {subject_text(stored.certificate)}",
            *report.lines(),
            verdict,
        ]
    )


def _validate(home: Path, values: FormValues) -> str:
    config = staged_config(home)
    report = CertificateStores.of_home(home).validate(
        values.required("thumbprint"), config.identity
    )
    verdict = "valid" if report.ok else "fails validation"
    return "\n".join(
        [f"certificate {report.thumbprint} ({report.subject}): {verdict}", *report.lines()]
    )


def _select(home: Path, values: FormValues) -> str:
    config = staged_config(home)
    report = CertificateStores.of_home(home).select(values.required("thumbprint"), config.identity)
    return "\n".join(
        [
            *report.lines(),
            f"selected {report.thumbprint} ({report.subject}) for TLS and MTLS; apply it "
            "with Reload on the Status page (Restart when the node runs without TLS listeners)",
        ]
    )


def _remove(home: Path, values: FormValues) -> str:
    store = StoreName(values.required("store"))
    removed = CertificateStores.of_home(home).remove(store, values.required("thumbprint"))
    subject = subject_text(removed.certificate)
    return f"removed {removed.thumbprint} {subject} from the {store.value} store"


def security_page() -> ConfigPage:
    """Certificates: the personal store (this node's own, with keys) and the trusted roots."""
    thumbprint = Field("thumbprint", "Thumbprint", settings=("THUMBPRINT",))
    return ConfigPage(
        "security",
        "Security",
        "Certificate stores: the node's own certificate (personal, with its private key) and "
        "the trusted root CAs. Select the certificate used for every TLS and MTLS connection.",
        ("STORE", "THUMBPRINT", "SUBJECT", "VALID UNTIL", "PRIVATE KEY", ""),
        _rows,
        (
            Form(
                "import",
                "Import a certificate",
                "Import",
                (
                    Field("store", "Store", "select", tuple(s.value for s in StoreName)),
                    Field("file", "Certificate (PEM, DER, .p7b, .pfx)", "file", settings=("FILE",)),
                    Field("key", "Private key (when not in the file)", "file", settings=("--key",)),
                    Field(
                        "password",
                        ".pfx or key password",
                        "password",
                        settings=("--password-file",),
                    ),
                ),
                _import,
                multipart=True,
            ),
        ),
        (
            Form("validate", "Validate", "Validate", (thumbprint,), _validate),
            Form("select", "Select", "Select", (thumbprint,), _select),
            Form(
                "remove",
                "Remove",
                "Remove",
                (Field("store", "Store"), thumbprint),
                _remove,
            ),
        ),
    )
