"""The TLS part of ``intrafed probe``: our client context, the handshake with a route's
next hop, and why a certificate is refused, in the words administrators search for."""

from __future__ import annotations

import asyncio
import contextlib
import datetime
import ssl

from cryptography import x509

from intrafed.check.probe_results import ProbeContext, ProbeResult, close, ssl_reason
from intrafed.config.model import ConfigError, NodeConfig, NodeIdentity, Role, StaticRoute
from intrafed.pki import CertificateStores, PkiError, validate
from intrafed.pki import client_context as tls_client_context
from intrafed.pki.certificates import (
    CLIENT_AUTH,
    SERVER_AUTH,
    eku_name,
    extended_key_usages,
    proven_names,
    subject_text,
)
from intrafed.pki.validation import covers

# TLS alerts a peer sends when it refuses our certificate during the handshake (TLS 1.2;
# with TLS 1.3 the refusal comes after it, on the first read).
REFUSED_US = frozenset(
    {
        "SSLV3_ALERT_BAD_CERTIFICATE",
        "SSLV3_ALERT_CERTIFICATE_EXPIRED",
        "SSLV3_ALERT_HANDSHAKE_FAILURE",
        "SSLV3_ALERT_UNSUPPORTED_CERTIFICATE",
        "TLSV13_ALERT_CERTIFICATE_REQUIRED",
        "TLSV1_ALERT_UNKNOWN_CA",
    }
)
REFUSED_FIX = (
    "on the peer, import our CA root into its trusted store; our certificate needs "
    "Client Authentication EKU: intrafed pki validate {home}"
)


def client_context(
    stores: CertificateStores, config: NodeConfig
) -> tuple[ssl.SSLContext | None, str | None]:
    """Our outbound TLS context with the selected certificate, as the node builds it (but
    without refusing a certificate that fails validation: the probe shows what happens)."""
    try:
        selected = stores.selected()
        if selected.key_path is None:
            return None, f"the selected certificate {selected.thumbprint} has no private key"
        context = tls_client_context(
            selected.path,
            selected.key_path,
            stores.trusted_roots(),
            fips=config.fips,
            profile=config.tls_profile,
        )
    except (PkiError, ConfigError) as exc:
        return None, str(exc)
    return context, None


async def handshake(
    context: ProbeContext,
    route: StaticRoute,
    address: str,
    writer: asyncio.StreamWriter,
    target: str,
) -> ProbeResult:
    """TLS with our certificate, verifying the peer's against our trusted store and the
    route's FQDN; when it fails, a second look at the peer's certificate says why."""
    fqdn = route.fqdn or ""
    if context.client is None:
        return ProbeResult(
            "tls",
            target,
            False,
            f"no usable certificate for TLS: {context.client_problem}",
            f"intrafed pki validate {context.home_arg}; select a valid certificate: "
            f"intrafed pki select THUMBPRINT {context.home_arg}",
        )
    try:
        await writer.start_tls(
            context.client, server_hostname=fqdn, ssl_handshake_timeout=context.timeout
        )
    except (ssl.SSLError, OSError, TimeoutError) as exc:
        peer = await peer_certificate(context, address, route.port, fqdn)
        problems = certificate_problems(context, peer, fqdn, address) if peer else []
        reason = problems[0] if problems else f"TLS handshake failed: {ssl_reason(exc)}"
        fix = tls_fix(reason, context)
        if not problems and ssl_reason(exc) in REFUSED_US:
            reason = f"the peer refused our certificate ({ssl_reason(exc)})"
            fix = REFUSED_FIX.format(home=context.home_arg)
        return ProbeResult(
            "tls",
            target,
            False,
            reason,
            fix,
            certificate_details(context, peer, address) if peer else {},
        )
    ssl_object = writer.get_extra_info("ssl_object")
    der = ssl_object.getpeercert(binary_form=True) if ssl_object is not None else None
    certificate = x509.load_der_x509_certificate(der) if der else None
    details = certificate_details(context, certificate, address) if certificate else {}
    if certificate is not None:
        context.seen[fqdn, address] = proven_names(certificate)
        problems = certificate_problems(context, certificate, fqdn, address)
        if problems:
            return ProbeResult(
                "tls", target, False, problems[0], tls_fix(problems[0], context), details
            )
    version = ssl_object.version() if ssl_object is not None else "TLS"
    return ProbeResult(
        "tls", target, True, f"{version} handshake with {fqdn}, certificate trusted", None, details
    )


async def peer_certificate(
    context: ProbeContext, address: str, port: int, fqdn: str
) -> x509.Certificate | None:
    """The certificate the peer presents, read over a handshake that verifies nothing."""
    inspect = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    inspect.check_hostname = False
    inspect.verify_mode = ssl.CERT_NONE
    # Present our certificate when it loads, so that an MTLS listener lets us that far.
    with contextlib.suppress(PkiError, ssl.SSLError, OSError):
        selected = context.stores.selected()
        if selected.key_path is not None:
            inspect.load_cert_chain(selected.path, selected.key_path)
    try:
        _, writer = await asyncio.wait_for(
            asyncio.open_connection(
                address,
                port,
                ssl=inspect,
                server_hostname=fqdn,
                ssl_handshake_timeout=context.timeout,
            ),
            context.timeout,
        )
    except (OSError, ssl.SSLError, TimeoutError):
        return None
    try:
        ssl_object = writer.get_extra_info("ssl_object")
        der = ssl_object.getpeercert(binary_form=True) if ssl_object is not None else None
        return x509.load_der_x509_certificate(der) if der else None
    finally:
        await close(writer)


def certificate_problems(
    context: ProbeContext, certificate: x509.Certificate, fqdn: str, address: str
) -> list[str]:
    """Why we (or the peer, for its client role) would refuse the peer's certificate."""
    problems = []
    trust = trust_verdict(context, certificate, fqdn, address)
    if trust is not None:
        problems.append(f"certificate root not trusted: {trust}")
    names = proven_names(certificate)
    if not any(covers(name, fqdn) for name in names):
        problems.append(
            f"wrong principal: certificate names {', '.join(names)}, route expects {fqdn}"
        )
    usages = extended_key_usages(certificate) or ()
    for oid, what in ((SERVER_AUTH, "Server"), (CLIENT_AUTH, "Client")):
        if oid not in usages:
            problems.append(
                f"the peer's certificate ({subject_text(certificate)}) lacks {what} "
                f"Authentication EKU"
                + (": it cannot open MTLS to us" if oid == CLIENT_AUTH else "")
            )
    now = datetime.datetime.now(datetime.UTC)
    if certificate.not_valid_after_utc < now:
        problems.append(f"the peer's certificate expired on {certificate.not_valid_after_utc}")
    return problems


def trust_verdict(
    context: ProbeContext, certificate: x509.Certificate, fqdn: str, address: str
) -> str | None:
    """Why our trusted store does not accept the peer's certificate, or None."""
    # Judged as if it were the route's node's own certificate: only the chain finding
    # matters here (names and EKU are judged as a peer's by the caller).
    identity = NodeIdentity(Role.IMP, fqdn, address)
    report = validate(certificate, identity=identity, trusted=context.stores.trusted_roots())
    chain = [finding.message for finding in report.findings if finding.rule == "chain"]
    return chain[0] if chain else None


def certificate_details(
    context: ProbeContext, certificate: x509.Certificate, address: str
) -> dict[str, str]:
    usages = extended_key_usages(certificate)
    trust = trust_verdict(context, certificate, first_name(certificate), address)
    return {
        "subject": subject_text(certificate),
        "issuer": certificate.issuer.rfc4514_string(),
        "eku": "(none)" if usages is None else ", ".join(eku_name(oid) for oid in usages),
        "expires": certificate.not_valid_after_utc.isoformat(),
        "trusted by us": "yes" if trust is None else f"no ({trust})",
    }


def first_name(certificate: x509.Certificate) -> str:
    names = proven_names(certificate)
    return names[0] if names else "unnamed.invalid"


def tls_fix(reason: str, context: ProbeContext) -> str:
    if reason.startswith("certificate root not trusted"):
        return (
            f"import the root of the CA that signed the peer: intrafed pki import --store "
            f"trusted ROOT.pem {context.home_arg} (and ours into the peer's trusted store)"
        )
    if reason.startswith("wrong principal"):
        return (
            "name the peer by the FQDN on its certificate: intrafed config route remove/add "
            f"{context.home_arg} --fqdn NAME, or give the peer a certificate for the route's FQDN"
        )
    if "EKU" in reason:
        return (
            "the peer needs a certificate with Server and Client Authentication: intrafed pki "
            "csr, sign without --server-only, import and select it on the peer"
        )
    return f"intrafed pki validate {context.home_arg}, and the same on the peer"
