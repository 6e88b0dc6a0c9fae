"""What the seed's "Validate Existing OCS Signed Certificate" checks, and the rest of what
makes peers refuse a certificate: chain, dates, EKU, key and names.

Each problem is a ``Finding`` that renders as one line naming the certificate, the
problem and the fix.
"""

from __future__ import annotations

import datetime
import enum
import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.x509 import verification

from intrafed.config.model import Edition, NodeIdentity
from intrafed.pki.certificates import (
    CLIENT_AUTH,
    SERVER_AUTH,
    common_names,
    dns_names,
    extended_key_usages,
    key_description,
    subject_text,
    thumbprint,
)

EXPIRY_WARNING = datetime.timedelta(days=30)
"""Warn when a certificate ends within this time (renewal takes a CA round trip)."""
RSA_MINIMUM_BITS = 2048
EC_CURVES = ("secp256r1", "secp384r1")

_RENEW = "request a new one (intrafed pki csr), have the CA sign it, import and select it"
_TRUST_ROOT = "import that CA's root certificate: intrafed pki import --store trusted ROOT.pem"
_VERIFIER_DETAIL = re.compile(r"\s*\(encountered processing .*\)\s*$", re.DOTALL)


class Severity(enum.StrEnum):
    """An error makes the certificate unusable; a warning asks for action soon; info is
    a fact an administrator should know, with nothing to fix (``intrafed check`` only)."""

    ERROR = "error"
    WARNING = "warning"
    INFO = "info"


@dataclass(frozen=True, slots=True)
class Finding:
    """One problem: the rule that found it, how bad it is, what is wrong and the fix."""

    rule: str
    severity: Severity
    message: str
    fix: str


@dataclass(frozen=True, slots=True)
class Report:
    """The findings for one certificate."""

    thumbprint: str
    subject: str
    not_after: datetime.datetime
    findings: tuple[Finding, ...]

    @property
    def ok(self) -> bool:
        """No errors (warnings allowed)."""
        return not self.errors

    @property
    def errors(self) -> tuple[Finding, ...]:
        """The findings of severity error."""
        return tuple(f for f in self.findings if f.severity is Severity.ERROR)

    def line(self, finding: Finding) -> str:
        """``certificate <thumbprint> (<subject>): <problem> — <fix>``."""
        return f"certificate {self.thumbprint} ({self.subject}): {finding.message} — {finding.fix}"

    def lines(self) -> list[str]:
        """Every finding as a line prefixed by its severity."""
        return [f"{finding.severity.value}: {self.line(finding)}" for finding in self.findings]

    def to_json(self) -> dict[str, Any]:
        """A JSON-ready description, shaped like ``intrafed check --json``."""
        return {
            "ok": self.ok,
            "thumbprint": self.thumbprint,
            "subject": self.subject,
            "not_after": self.not_after.isoformat(),
            "findings": [
                {
                    "rule": f.rule,
                    "severity": f.severity.value,
                    "message": f.message,
                    "fix": f.fix,
                }
                for f in self.findings
            ],
        }


def _date(moment: datetime.datetime) -> str:
    return moment.strftime("%Y-%m-%d %H:%M UTC")


def _validity(certificate: x509.Certificate, now: datetime.datetime) -> list[Finding]:
    start, end = certificate.not_valid_before_utc, certificate.not_valid_after_utc
    if now < start:
        return [
            Finding(
                "validity",
                Severity.ERROR,
                f"not valid before {_date(start)}",
                "check this machine's clock and the CA's, or wait until then",
            )
        ]
    if now > end:
        return [Finding("validity", Severity.ERROR, f"expired on {_date(end)}", _RENEW)]
    if end - now < EXPIRY_WARNING:
        days = (end - now).days
        return [
            Finding(
                "validity",
                Severity.WARNING,
                f"expires in {days} day{'s' if days != 1 else ''} ({_date(end)})",
                f"renew it before then: {_RENEW}",
            )
        ]
    return []


def _find_issuer(
    certificate: x509.Certificate, candidates: Sequence[x509.Certificate]
) -> x509.Certificate | None:
    for candidate in candidates:
        if candidate.subject == certificate.issuer and candidate != certificate:
            return candidate
    return None


def _untrusted(
    certificate: x509.Certificate,
    chain: Sequence[x509.Certificate],
    trusted: Sequence[x509.Certificate],
) -> str | None:
    """Why no path reaches the trusted store, when the reason is a missing root."""
    current = certificate
    for _ in range(len(chain) + 1):
        if _find_issuer(current, trusted) is not None:
            return None
        parent = _find_issuer(current, chain)
        if parent is None:
            if current.issuer != current.subject:
                return f"its issuer {current.issuer.rfc4514_string()} is not in the trusted store"
            if current is certificate:
                return "it is self-signed and not in the trusted store"
            return f"it chains to {subject_text(current)}, which is not in the trusted store"
        current = parent
    return None


def _chain(
    certificate: x509.Certificate,
    chain: Sequence[x509.Certificate],
    trusted: Sequence[x509.Certificate],
    now: datetime.datetime,
) -> list[Finding]:
    if not trusted:
        return [
            Finding(
                "chain",
                Severity.ERROR,
                "the trusted store is empty, nothing can chain",
                _TRUST_ROOT,
            )
        ]
    if certificate in trusted:  # a self-signed certificate trusted as it is
        return []
    missing = _untrusted(certificate, chain, trusted)
    if missing is not None:
        return [Finding("chain", Severity.ERROR, missing, _TRUST_ROOT)]
    # Judge the chain at a moment inside the leaf's validity, so that an expired leaf is
    # reported once (by _validity), not also as a broken chain. Extension rules are
    # OpenSSL's, not the Web PKI's (enterprise CAs often omit AKI); EKU is checked apart.
    moment = min(max(now, certificate.not_valid_before_utc), certificate.not_valid_after_utc)
    ca_policy = verification.ExtensionPolicy.permit_all().require_present(
        x509.BasicConstraints, verification.Criticality.AGNOSTIC, None
    )
    verifier = (
        verification.PolicyBuilder()
        .store(verification.Store(list(trusted)))
        .time(moment)
        .extension_policies(
            ca_policy=ca_policy, ee_policy=verification.ExtensionPolicy.permit_all()
        )
        .build_client_verifier()
    )
    try:
        verifier.verify(certificate, list(chain))
    except verification.VerificationError as exc:
        reason = _VERIFIER_DETAIL.sub("", str(exc)).removeprefix("validation failed: ")
        return [
            Finding(
                "chain",
                Severity.ERROR,
                f"the chain to the trusted root does not verify ({reason})",
                "check that the issuing CA certificates are valid and the trusted root is the "
                "one that signed them",
            )
        ]
    return []


def _eku(certificate: x509.Certificate) -> list[Finding]:
    usages = extended_key_usages(certificate)
    fix = (
        "request a certificate from a template with Server and Client Authentication "
        "(1.3.6.1.5.5.7.3.1 and 1.3.6.1.5.5.7.3.2)"
    )
    if usages is None:
        return [
            Finding(
                "eku",
                Severity.ERROR,
                "has no Extended Key Usage; peers require Server and Client Authentication "
                "to be stated",
                fix,
            )
        ]
    missing = [
        name
        for oid, name in ((SERVER_AUTH, "Server"), (CLIENT_AUTH, "Client"))
        if oid not in usages
    ]
    if not missing:
        return []
    if missing == ["Client"]:
        message = (
            "Intended Purposes lack Client Authentication (1.3.6.1.5.5.7.3.2): the node is "
            "the TLS client when it opens MTLS to its peer"
        )
    elif missing == ["Server"]:
        message = "Intended Purposes lack Server Authentication (1.3.6.1.5.5.7.3.1)"
    else:
        message = "Intended Purposes lack both Server and Client Authentication"
    return [Finding("eku", Severity.ERROR, message, fix)]


def _key(certificate: x509.Certificate) -> list[Finding]:
    public_key = certificate.public_key()
    fix = "request a new certificate with an RSA 2048-bit (or larger) or EC P-256/P-384 key"
    if isinstance(public_key, rsa.RSAPublicKey):
        if public_key.key_size >= RSA_MINIMUM_BITS:
            return []
        problem = f"RSA {public_key.key_size}-bit key is too weak (minimum {RSA_MINIMUM_BITS})"
    elif isinstance(public_key, ec.EllipticCurvePublicKey):
        if public_key.curve.name in EC_CURVES:
            return []
        problem = f"{key_description(public_key)} key is not one of P-256 or P-384"
    else:
        problem = f"{key_description(public_key)} keys are not accepted by OCS and IM&P peers"
    return [Finding("key", Severity.ERROR, problem, fix)]


def covers(pattern: str, name: str) -> bool:
    """Whether a certificate name (maybe ``*.domain``) covers the host ``name``."""
    pattern, name = pattern.lower(), name.lower()
    if pattern.startswith("*."):
        head, _, rest = name.partition(".")
        return bool(head) and rest == pattern[2:]
    return pattern == name


def _names(certificate: x509.Certificate, identity: NodeIdentity) -> list[Finding]:
    wanted = identity.certificate_name
    which = (
        f"the pool FQDN {wanted}"
        if identity.edition is Edition.ENTERPRISE
        else f"the node's FQDN {wanted}"
    )
    findings: list[Finding] = []
    cns = common_names(certificate)
    if [cn.lower() for cn in cns] != [wanted]:
        shown = ", ".join(cns) if cns else "missing"
        findings.append(
            Finding(
                "name",
                Severity.ERROR,
                f"subject CN is {shown}; it must be {which}",
                f"request a certificate for {wanted}: {_RENEW}",
            )
        )
    sans = dns_names(certificate)
    if sans and not any(covers(san, wanted) for san in sans):
        findings.append(
            Finding(
                "name",
                Severity.ERROR,
                f"the SAN does not list {wanted}, so peers checking the name refuse it",
                f"request a certificate whose SAN includes {wanted}: {_RENEW}",
            )
        )
    fqdn = identity.fqdn
    if fqdn != wanted and not any(covers(name, fqdn) for name in sans):
        findings.append(
            Finding(
                "name",
                Severity.WARNING,
                f"the SAN does not list this front end's FQDN {fqdn}; an IM&P route that "
                "names this front end fails its name check",
                f"add {fqdn} to the SAN at the next renewal (intrafed pki csr does)",
            )
        )
    return findings


def validate(
    certificate: x509.Certificate,
    *,
    identity: NodeIdentity,
    chain: Sequence[x509.Certificate] = (),
    trusted: Sequence[x509.Certificate] = (),
    now: datetime.datetime | None = None,
) -> Report:
    """Check ``certificate`` (with its ``chain`` of intermediates) as this node's own."""
    moment = now if now is not None else datetime.datetime.now(datetime.UTC)
    findings = [
        *_chain(certificate, chain, trusted, moment),
        *_validity(certificate, moment),
        *_eku(certificate),
        *_key(certificate),
        *_names(certificate, identity),
    ]
    return Report(
        thumbprint(certificate),
        subject_text(certificate),
        certificate.not_valid_after_utc,
        tuple(findings),
    )
