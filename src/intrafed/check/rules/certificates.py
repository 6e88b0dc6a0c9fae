"""Rules of the certificate steps: each side's certificate, and whether the other side
trusts its root."""

from __future__ import annotations

import datetime
from collections.abc import Iterator, Sequence

from cryptography import x509

from intrafed.check.facts import NodeFacts
from intrafed.check.findings import Finding, Step
from intrafed.check.rules.catalogue import ERROR, WARNING, rule
from intrafed.check.rules.shared import federates_over_tls, has_tls_listeners
from intrafed.config.model import NodeConfig, Role
from intrafed.pki import Severity, validate
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


CA_PLACEHOLDER = "<CA directory>"
"""What the operator fills in: the directory of the CA that signs the nodes' certificates."""


def renew_fix(node: NodeFacts) -> str:
    """Request, sign, import and select a new certificate for the node."""
    cn = node.config.identity.certificate_name
    home = node.home_arg
    requests = f"{node.home}/pki/requests" if node.home is not None else "<home>/pki/requests"
    return (
        f"intrafed pki csr --role {node.config.role.value} --replace {home} && "
        f"intrafed pki sign --ca {CA_PLACEHOLDER} --csr {requests}/{cn}.csr && "
        f"intrafed pki import --store personal {requests}/{cn}.pem {home} && "
        f"intrafed pki select --file {requests}/{cn}.pem {home}"
    )


def _root_file(certificate: x509.Certificate, nodes: Sequence[NodeFacts]) -> str:
    """A trusted store file holding the root that issued ``certificate``, or a placeholder."""
    issuer = certificate.issuer.rfc4514_string()
    for node in nodes:
        if node.certificates is not None and issuer in node.certificates.root_files:
            return str(node.certificates.root_files[issuer])
    return f"<the root certificate of {issuer}>"


def check_certificate(
    node: NodeFacts, others: Sequence[NodeFacts], now: datetime.datetime
) -> Iterator[Finding]:
    """A problem of the certificate breaks federation when the partitions speak TLS;
    otherwise only the node's TLS listeners for users are lost (a warning)."""
    certificates = node.certificates
    if certificates is None:
        return
    config = node.config
    step = _certificate_step(config)
    federation = federates_over_tls(node, others)
    if not federation and not has_tls_listeners(config):
        return
    effect = (
        "TLS with the other partition fails"
        if federation
        else "the TLS listeners for users do not start (federation is over TCP)"
    )
    at_most = ERROR if federation else WARNING
    certificate = certificates.selected
    if certificate is None:
        yield rule("cert.none").finding(
            node.name,
            f"{certificates.problem or 'no certificate is selected'}: {effect}",
            renew_fix(node),
            step=step,
            severity=at_most,
        )
        return
    subject = subject_text(certificate)
    if not certificates.has_key:
        yield rule("cert.private-key").finding(
            node.name,
            f"the selected certificate ({subject}) has no private key in the personal store: "
            f"{effect}",
            renew_fix(node),
            step=step,
            severity=at_most,
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
        severity = WARNING if finding.severity is ERROR and not federation else finding.severity
        if rule_id == "cert.chain":
            fix = (
                f"intrafed pki import --store trusted {_root_file(certificate, others)} "
                f"{node.home_arg}"
            )
        else:
            fix = renew_fix(node)
        yield rule(rule_id).finding(
            node.name,
            f"certificate {subject}: {finding.message}"
            + (f": {effect}" if severity is not Severity.INFO else ""),
            fix,
            severity=severity,
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
        if peer.certificates is None or not (
            federates_over_tls(node, [peer]) or federates_over_tls(peer, [node])
        ):
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
                f"does not chain to {peer.name}'s trusted store ({finding.message}), so "
                f"{peer.name} refuses the TLS handshake",
                f"intrafed pki import --store trusted {_root_file(certificate, [node])} "
                f"{peer.home_arg}",
                step=_root_step(peer.config),
            )
