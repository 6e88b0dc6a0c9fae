"""The node's certificate stores under ``HOME/pki``, after the Windows ones the seed uses.

``personal/<THUMBPRINT>.pem`` holds a certificate (then its intermediates) and
``personal/<THUMBPRINT>.key`` its private key (mode 0600); ``trusted/<THUMBPRINT>.pem``
the CA roots we accept ("Trusted Root Certification Authorities"); ``selected`` the
thumbprint chosen for every TLS and MTLS connection (the Security tab's "Select
Certificate"); ``requests/`` pending CSRs and their keys.
"""

from __future__ import annotations

import dataclasses
import datetime
import enum
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509

from intrafed.config.model import NodeIdentity
from intrafed.pki.certificates import (
    Bundle,
    PrivateKey,
    certificates_pem,
    keys_match,
    normalize_thumbprint,
    private_key_pem,
    read_bundle,
    read_private_key,
    thumbprint,
)
from intrafed.pki.errors import PkiError
from intrafed.pki.files import write_private, write_public
from intrafed.pki.validation import Finding, Report, Severity, validate

SELECTED = "selected"


class StoreName(enum.StrEnum):
    """Personal (our certificates, with keys) or Trusted (CA roots we accept)."""

    PERSONAL = "personal"
    TRUSTED = "trusted"


@dataclass(frozen=True, slots=True)
class StoredCertificate:
    """A certificate in a store, with its intermediates and (personal) key file."""

    store: StoreName
    certificate: x509.Certificate
    chain: tuple[x509.Certificate, ...]
    path: Path
    key_path: Path | None

    @property
    def thumbprint(self) -> str:
        """The SHA-1 thumbprint (upper-case hex)."""
        return thumbprint(self.certificate)


@dataclass(frozen=True, slots=True)
class Imported:
    """A personal import: what was stored, and the pending request whose key it used."""

    stored: StoredCertificate
    request_key: Path | None


class CertificateValidationError(PkiError):
    """``select`` refused a certificate; ``report`` says why."""

    def __init__(self, report: Report) -> None:
        errors = report.errors
        super().__init__(
            f"certificate {report.thumbprint} ({report.subject})",
            "; ".join(error.message for error in errors),
            errors[0].fix if len(errors) == 1 else "fix these problems, or select another one",
        )
        self.report = report


class CertificateStores:
    """The personal and trusted stores, pending requests and the selection of one node."""

    def __init__(self, root: Path) -> None:
        self.root = root

    @classmethod
    def of_home(cls, home: Path) -> CertificateStores:
        """The stores of the node whose home directory is ``home`` (``HOME/pki``)."""
        return cls(home / "pki")

    @property
    def requests_dir(self) -> Path:
        """Pending CSRs and their keys."""
        return self.root / "requests"

    def _dir(self, store: StoreName) -> Path:
        return self.root / store.value

    def _load(self, store: StoreName, path: Path) -> StoredCertificate:
        certificates = read_bundle(path.read_bytes(), str(path)).certificates
        key_path = path.with_suffix(".key")
        return StoredCertificate(
            store,
            certificates[0],
            certificates[1:],
            path,
            key_path if store is StoreName.PERSONAL and key_path.is_file() else None,
        )

    def certificates(self, store: StoreName) -> tuple[StoredCertificate, ...]:
        """Every certificate in ``store``, ordered by subject then expiry."""
        directory = self._dir(store)
        if not directory.is_dir():
            return ()
        loaded = [self._load(store, path) for path in sorted(directory.glob("*.pem"))]
        return tuple(
            sorted(
                loaded,
                key=lambda s: (
                    s.certificate.subject.rfc4514_string(),
                    s.certificate.not_valid_after_utc,
                ),
            )
        )

    def trusted_roots(self) -> tuple[x509.Certificate, ...]:
        """The certificates of the trusted store."""
        return tuple(stored.certificate for stored in self.certificates(StoreName.TRUSTED))

    def get(self, store: StoreName, thumbprint_text: str) -> StoredCertificate:
        """The certificate of ``store`` with this thumbprint, or the only one whose
        thumbprint begins with these digits."""
        wanted = normalize_thumbprint(thumbprint_text)
        directory = self._dir(store)
        found = sorted(p.stem for p in directory.glob("*.pem") if p.stem.startswith(wanted))
        if not found:
            raise PkiError(
                "THUMBPRINT",
                f"no certificate {wanted} in the {store.value} store",
                "see the thumbprints with: intrafed pki list",
            )
        if len(found) > 1:
            raise PkiError(
                "THUMBPRINT",
                f"{wanted} is the start of {len(found)} thumbprints in the {store.value} "
                f"store: {', '.join(found)}",
                "give more digits",
            )
        return self._load(store, directory / f"{found[0]}.pem")

    def _pending_key(self, certificates: tuple[x509.Certificate, ...]) -> Path | None:
        if not self.requests_dir.is_dir():
            return None
        for key_path in sorted(self.requests_dir.glob("*.key")):
            key = read_private_key(key_path.read_bytes(), str(key_path), None)
            if any(keys_match(cert, key) for cert in certificates):
                return key_path
        return None

    def add_personal(self, bundle: Bundle, source: str, key: PrivateKey | None = None) -> Imported:
        """Store a certificate with its private key: ``key``, else the one in ``bundle``,
        else the key of the pending request it answers (that request is then removed).
        """
        key = key if key is not None else bundle.key
        request_key = None
        if key is None:
            request_key = self._pending_key(bundle.certificates)
            if request_key is None:
                raise PkiError(
                    source,
                    "a personal certificate needs its private key, and none came with it",
                    "export it as .pfx with the private key, or give --key FILE",
                )
            key = read_private_key(request_key.read_bytes(), str(request_key), None)
        leaves = [cert for cert in bundle.certificates if keys_match(cert, key)]
        if not leaves:
            raise PkiError(
                "--key",
                f"the private key belongs to no certificate in {source}",
                "give the key made with this certificate's request",
            )
        leaf = leaves[0]
        chain = tuple(cert for cert in bundle.certificates if cert is not leaf)
        path = self._dir(StoreName.PERSONAL) / f"{thumbprint(leaf)}.pem"
        write_private(path.with_suffix(".key"), private_key_pem(key))
        write_public(path, certificates_pem([leaf, *chain]))
        if request_key is not None:
            request_key.with_suffix(".csr").unlink(missing_ok=True)
            request_key.unlink()
        return Imported(
            StoredCertificate(StoreName.PERSONAL, leaf, chain, path, path.with_suffix(".key")),
            request_key,
        )

    def add_trusted(self, bundle: Bundle) -> tuple[StoredCertificate, ...]:
        """Store every certificate of ``bundle`` as a trusted root."""
        stored = []
        for cert in bundle.certificates:
            path = self._dir(StoreName.TRUSTED) / f"{thumbprint(cert)}.pem"
            write_public(path, certificates_pem([cert]))
            stored.append(StoredCertificate(StoreName.TRUSTED, cert, (), path, None))
        return tuple(stored)

    def remove(self, store: StoreName, thumbprint_text: str) -> StoredCertificate:
        """Delete a certificate (and its key); the selected certificate cannot be removed."""
        stored = self.get(store, thumbprint_text)
        if store is StoreName.PERSONAL and stored.thumbprint == self.selected_thumbprint():
            raise PkiError(
                "THUMBPRINT",
                f"{stored.thumbprint} is the selected certificate",
                "select another one first: intrafed pki select THUMBPRINT",
            )
        stored.path.unlink()
        if stored.key_path is not None:
            stored.key_path.unlink()
        return stored

    def selected_thumbprint(self) -> str | None:
        """The selected thumbprint, or None when nothing was selected."""
        path = self.root / SELECTED
        if not path.is_file():
            return None
        return path.read_text().strip() or None

    def selected(self) -> StoredCertificate:
        """The selected personal certificate."""
        chosen = self.selected_thumbprint()
        if chosen is None:
            raise PkiError(
                "certificate",
                "no certificate is selected for TLS",
                "import one and select it: intrafed pki select THUMBPRINT",
            )
        path = self._dir(StoreName.PERSONAL) / f"{chosen}.pem"
        if not path.is_file():
            raise PkiError(
                "certificate",
                f"the selected certificate {chosen} is no longer in the personal store",
                "select another one: intrafed pki select THUMBPRINT",
            )
        return self._load(StoreName.PERSONAL, path)

    def validate(
        self,
        thumbprint_text: str,
        identity: NodeIdentity,
        now: datetime.datetime | None = None,
    ) -> Report:
        """Validate a personal certificate as this node's own, against the trusted store."""
        stored = self.get(StoreName.PERSONAL, thumbprint_text)
        report = validate(
            stored.certificate,
            identity=identity,
            chain=stored.chain,
            trusted=self.trusted_roots(),
            now=now,
        )
        if stored.key_path is None:
            missing = Finding(
                "private-key",
                Severity.ERROR,
                "its private key is missing from the personal store",
                "import it again with its key (.pfx, or --key FILE)",
            )
            report = dataclasses.replace(report, findings=(*report.findings, missing))
        return report

    def select(
        self,
        thumbprint_text: str,
        identity: NodeIdentity,
        now: datetime.datetime | None = None,
    ) -> Report:
        """Make a personal certificate the node's TLS certificate, if it validates.

        Raises ``CertificateValidationError`` (with the report) when it has errors.
        """
        report = self.validate(thumbprint_text, identity, now)
        if not report.ok:
            raise CertificateValidationError(report)
        write_public(self.root / SELECTED, f"{report.thumbprint}\n".encode())
        return report
