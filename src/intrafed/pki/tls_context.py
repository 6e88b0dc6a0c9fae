"""Every ``ssl.SSLContext`` of the node, built by pure functions under the TLS policy,
and the snapshot holder that reloads them.

Policy (DESIGN §3, §8):
- always TLS 1.2 or later and no renegotiation (``OP_NO_RENEGOTIATION``);
- FIPS policy on: TLS 1.2 only, with suites restricted to FIPS-approved AEAD ones (ECDHE,
  DHE or RSA key exchange with AES-GCM and SHA-2); off: TLS 1.2 and 1.3 with OpenSSL's and
  Python's default secure suites;
- profile ``legacy-tls1``: TLS 1.0 and 1.1 allowed for old peers, only when configured,
  and never together with the FIPS policy.

Why the FIPS policy caps TLS at 1.2: Python 3.11's ``ssl`` cannot restrict TLS 1.3 suites
(there is no ``set_ciphersuites``, and ``set_ciphers`` covers TLS 1.2 and below only), and
of OpenSSL's three TLS 1.3 suites CHACHA20_POLY1305 is not FIPS-approved: a TLS 1.3 peer
offering only it would be accepted. ``OPENSSL_CONF`` could restrict them, but only for the
whole process and before ``ssl`` is loaded, which a node cannot promise. TLS 1.2 with
AES-GCM is what both partitions and common SIP clients speak; ``intrafed check`` says so
(rule ``tls.fips-tls12``). With the FIPS policy off, TLS 1.3 is offered.
"""

from __future__ import annotations

import datetime
import logging
import ssl
import warnings
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509

from intrafed.config.model import ConfigError, NodeConfig, TlsProfile
from intrafed.pki.certificates import certificates_pem, proven_names
from intrafed.pki.errors import PkiError
from intrafed.pki.stores import CertificateStores, CertificateValidationError
from intrafed.pki.validation import Report

logger = logging.getLogger(__name__)

FIPS_CIPHERS = "ECDHE+AESGCM:DHE+AESGCM:RSA+AESGCM:!aNULL:!eNULL:!aDSS:!MD5:!RC4:!3DES:!SHA1"
"""TLS 1.2 suites under the FIPS policy: AES-GCM with SHA-2 only; no CBC, SHA-1, RC4, 3DES."""

# TLS 1.0/1.1 have no AEAD suites, so the legacy profile adds AES-CBC with SHA-1.
# OpenSSL 3 refuses TLS < 1.2 at security level 1 and up (their handshake signs with
# MD5+SHA-1), hence level 0: the price of the profile, which the checker warns about.
LEGACY_CIPHERS = (
    "ECDHE+AESGCM:ECDHE+CHACHA20:DHE+AESGCM:ECDHE+AES:DHE+AES:RSA+AES"
    ":!aNULL:!eNULL:!aDSS:!MD5:!RC4:!3DES:@SECLEVEL=0"
)


def _apply_policy(context: ssl.SSLContext, *, fips: bool, profile: TlsProfile) -> None:
    if profile is TlsProfile.LEGACY_TLS1:
        if fips:
            raise ConfigError(
                "tls-profile",
                "legacy-tls1 admits TLS 1.0, which the FIPS policy (fips = on) refuses",
                "intrafed config tls-profile default (or intrafed config fips off), then "
                "intrafed service restart",
            )
        with warnings.catch_warnings():
            # Python deprecates TLS 1.0; this profile exists to allow it on request.
            warnings.simplefilter("ignore", DeprecationWarning)
            context.minimum_version = ssl.TLSVersion.TLSv1
        context.set_ciphers(LEGACY_CIPHERS)
    else:
        context.minimum_version = ssl.TLSVersion.TLSv1_2
        if fips:
            context.maximum_version = ssl.TLSVersion.TLSv1_2
            context.set_ciphers(FIPS_CIPHERS)
    context.options |= ssl.OP_NO_RENEGOTIATION


def _load_identity(context: ssl.SSLContext, cert: Path, key: Path) -> None:
    try:
        context.load_cert_chain(cert, key)
    except (OSError, ssl.SSLError) as exc:
        raise PkiError(
            str(cert),
            f"cannot load the certificate and key {key} ({getattr(exc, 'reason', None) or exc})",
            "import the certificate again with its private key, and select it",
        ) from None


def _load_roots(context: ssl.SSLContext, trusted_roots: Sequence[x509.Certificate]) -> None:
    if not trusted_roots:
        raise PkiError(
            "trusted store",
            "it is empty, so no peer certificate can be verified",
            "import the CA root that signs the peers: intrafed pki import --store trusted ROOT.pem",
        )
    context.load_verify_locations(cadata=certificates_pem(trusted_roots).decode())


def server_context(
    cert: Path,
    key: Path,
    trusted_roots: Sequence[x509.Certificate],
    *,
    require_client_cert: bool,
    fips: bool = True,
    profile: TlsProfile = TlsProfile.DEFAULT,
) -> ssl.SSLContext:
    """A listener context presenting ``cert`` (leaf then intermediates, PEM) and ``key``.

    With ``require_client_cert`` (MTLS) the client must present a certificate that chains
    to ``trusted_roots`` and is good for client authentication; without it (TLS) none is
    asked for.
    """
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    _apply_policy(context, fips=fips, profile=profile)
    _load_identity(context, cert, key)
    if require_client_cert:
        _load_roots(context, trusted_roots)
        context.verify_mode = ssl.CERT_REQUIRED
    return context


def client_context(
    cert: Path,
    key: Path,
    trusted_roots: Sequence[x509.Certificate],
    *,
    fips: bool = True,
    profile: TlsProfile = TlsProfile.DEFAULT,
) -> ssl.SSLContext:
    """An outbound context: verifies the server against ``trusted_roots`` and the route's
    FQDN (pass it as ``server_hostname``, which also sends SNI), and presents ``cert``."""
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    context.check_hostname = True
    context.verify_mode = ssl.CERT_REQUIRED
    _apply_policy(context, fips=fips, profile=profile)
    _load_identity(context, cert, key)
    _load_roots(context, trusted_roots)
    return context


def peer_names(der: bytes) -> tuple[str, ...]:
    """The names a verified peer certificate proves: SAN dNSNames, else the subject CN
    (RFC 5922 §7.1), lower case. ``der`` is ``getpeercert(binary_form=True)``."""
    return proven_names(x509.load_der_x509_certificate(der))


@dataclass(frozen=True, slots=True)
class TlsSnapshot:
    """The three contexts built together from one selected certificate and one policy."""

    server: ssl.SSLContext
    """TLS listeners (no client certificate)."""
    mtls: ssl.SSLContext
    """MTLS listeners (client certificate required)."""
    client: ssl.SSLContext
    """Outbound connections."""
    report: Report
    """The selected certificate's validation (thumbprint, subject, warnings)."""
    fips: bool
    profile: TlsProfile


def build_snapshot(
    stores: CertificateStores, config: NodeConfig, now: datetime.datetime | None = None
) -> TlsSnapshot:
    """Contexts for the selected certificate, which must still validate, under the policy
    of ``config``; ``PkiError`` or ``ConfigError`` when that is not possible."""
    selected = stores.selected()
    if selected.key_path is None:
        raise PkiError(
            f"certificate {selected.thumbprint}",
            "its private key is missing from the personal store",
            "import it again with its key (.pfx, or --key FILE), and select it",
        )
    report = stores.validate(selected.thumbprint, config.identity, now)
    if not report.ok:
        raise CertificateValidationError(report)
    roots = stores.trusted_roots()
    cert, key, fips, profile = selected.path, selected.key_path, config.fips, config.tls_profile
    return TlsSnapshot(
        server=server_context(
            cert, key, roots, require_client_cert=False, fips=fips, profile=profile
        ),
        mtls=server_context(cert, key, roots, require_client_cert=True, fips=fips, profile=profile),
        client=client_context(cert, key, roots, fips=fips, profile=profile),
        report=report,
        fips=fips,
        profile=profile,
    )


class TlsContexts:
    """The node's current ``TlsSnapshot``. ``reload`` builds a new one and swaps it in;
    when that fails the old one stays. Connections keep the context they started with."""

    def __init__(self, stores: CertificateStores, config: NodeConfig) -> None:
        self._stores = stores
        self._config = config
        self._current = build_snapshot(stores, config)
        self._log_built()

    @property
    def current(self) -> TlsSnapshot:
        """The snapshot new connections use."""
        return self._current

    def reload(self, config: NodeConfig | None = None) -> str | None:
        """Rebuild from the stores (and ``config``, if given). None when the new snapshot
        is in place; otherwise the reason, logged, and the old snapshot stays."""
        config = config if config is not None else self._config
        try:
            snapshot = build_snapshot(self._stores, config)
        except (PkiError, ConfigError) as exc:
            logger.warning(
                "TLS reload failed, keeping certificate %s: %s",
                self._current.report.thumbprint,
                exc,
            )
            return str(exc)
        self._current, self._config = snapshot, config
        self._log_built()
        return None

    def _log_built(self) -> None:
        report = self._current.report
        logger.info(
            "TLS certificate %s (%s), FIPS policy %s, profile %s",
            report.thumbprint,
            report.subject,
            "on" if self._current.fips else "off",
            self._current.profile.value,
        )
        for line in report.lines():
            logger.warning("%s", line)
