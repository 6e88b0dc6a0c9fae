"""Rules of the certificate steps: each side's certificate, and whether the other side
trusts its root."""

from __future__ import annotations

import datetime
from collections.abc import Iterator, Sequence

from cryptography import x509

from intrafed.check.facts import NodeFacts
from intrafed.check.findings import Finding, Step
from intrafed.check.rules.catalogue import ERROR, rule
from intrafed.check.rules.shared import uses_tls
from intrafed.config.model import NodeConfig, Role
from intrafed.pki import validate
from intrafed.pki.certificates import subject_text

# pki validation findings → checker rules (``validity`` splits by severity).
_PKI_RULES = {
    "eku": "cert.eku",
    "name": "cert.name",
    "key": "cert.key",
    "chain": "cert.chain",
}


def _certificate_step(config: NodeConfig) -> Step:
    return Step.OCS_CERTIFICATE if config.role is Role.OCS else Step.IMP_CERTIFICATE


def _root_step(config: NodeConfig) -> Step:
    """Where the seed imports the CA root on this side."""
    return Step.FIPS if config.role is Role.OCS else Step.IMP_CERTIFICATE


def check_certificate(
    node: NodeFacts, others: Sequence[NodeFacts], now: datetime.datetime
) -> Iterator[Finding]:
    certificates = node.certificates
    if certificates is None:
        return
    config = node.config
    step = _certificate_step(config)
    certificate = certificates.selected
    if certificate is None:
        if uses_tls(node, others):
            yield rule("cert.none").finding(
                node.name,
                f"TLS is used but {certificates.problem or 'no certificate is selected'}",
                f"intrafed pki csr --role {config.role.value} {node.home_arg}, have the CA sign "
                f"it, intrafed pki import --store personal CERT {node.home_arg}, intrafed pki "
                f"select THUMBPRINT {node.home_arg}",
                step=step,
            )
        return
    subject = subject_text(certificate)
    if not certificates.has_key:
        yield rule("cert.private-key").finding(
            node.name,
            f"the selected certificate ({subject}) has no private key in the personal store",
            f"intrafed pki import --store personal CERT.pfx {node.home_arg}, then intrafed pki "
            f"select THUMBPRINT {node.home_arg}",
            step=step,
        )
    report = validate(
        certificate,
        identity=config.identity,
        chain=certificates.chain,
        trusted=certificates.trusted,
        now=now,
    )
    for finding in report.findings:
        if finding.rule == "validity":
            rule_id = "cert.expired" if finding.severity is ERROR else "cert.expiring"
        else:
            rule_id = _PKI_RULES[finding.rule]
        yield rule(rule_id).finding(
            node.name,
            f"certificate {subject}: {finding.message}",
            f"{finding.fix} ({node.home_arg})",
            severity=finding.severity,
            step=_root_step(config) if rule_id == "cert.chain" else step,
        )
    yield from _trusted_by_peers(node, certificate, certificates.chain, others, now)


def _trusted_by_peers(
    node: NodeFacts,
    certificate: x509.Certificate,
    chain: tuple[x509.Certificate, ...],
    others: Sequence[NodeFacts],
    now: datetime.datetime,
) -> Iterator[Finding]:
    """The other side must trust the root of our certificate (the seed: "import the CA
    root certificate" on each side)."""
    for peer in others:
        if peer.certificates is None or not (uses_tls(node, [peer]) or uses_tls(peer, [node])):
            continue
        report = validate(
            certificate,
            identity=node.config.identity,
            chain=chain,
            trusted=peer.certificates.trusted,
            now=now,
        )
        for finding in report.findings:
            if finding.rule != "chain":
                continue
            yield rule("cert.peer-untrusted").finding(
                peer.name,
                f"certificate root not trusted: {node.name}'s certificate "
                f"({subject_text(certificate)}, issued by {certificate.issuer.rfc4514_string()}) "
                f"does not chain to {peer.name}'s trusted store ({finding.message})",
                f"intrafed pki import --store trusted <the root of "
                f"{certificate.issuer.rfc4514_string()}> {peer.home_arg}",
                step=_root_step(peer.config),
            )
