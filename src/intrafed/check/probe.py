"""``intrafed probe``: live checks from a node's home against the running deployment.

Our listeners accept; for each static route the name resolves (hosts table, then DNS),
TCP connects from our address, the TLS handshake with our selected certificate succeeds
(and what the peer's certificate says), and an OPTIONS crosses to the peer and back; for
each trust entry, whether the peer would be trusted. Failures are worded as
administrators search for them: "connection refused", "certificate root not trusted",
"wrong principal".
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime
import secrets
import ssl
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from cryptography import x509

from intrafed.check.facts import resolve_name
from intrafed.config.model import (
    ConfigError,
    ImpListeners,
    NodeConfig,
    NodeIdentity,
    Role,
    StaticRoute,
)
from intrafed.pki import CertificateStores, PkiError, client_context, validate
from intrafed.pki.certificates import (
    CLIENT_AUTH,
    SERVER_AUTH,
    eku_name,
    extended_key_usages,
    proven_names,
    subject_text,
)
from intrafed.pki.validation import covers
from intrafed.policy.peers import trusted_peer
from intrafed.sip import FramingError, RemoteSipError, Response, StreamFramer, parse_message
from intrafed.store import open_store

READ_SIZE = 65536


@dataclass(frozen=True, slots=True)
class ProbeResult:
    """One live check: what was tried, against what, and how it went."""

    check: str
    """``listener``, ``resolve``, ``connect``, ``tls``, ``options`` or ``trust``."""
    target: str
    """What was probed (a listener, a route, a trust entry)."""
    ok: bool
    message: str
    fix: str | None = None
    details: Mapping[str, str] = field(default_factory=dict)
    """What was seen (the peer certificate's subject, issuer, EKU, expiry; OPTIONS headers)."""

    def to_json(self) -> dict[str, Any]:
        """A JSON-ready description."""
        return {
            "check": self.check,
            "target": self.target,
            "ok": self.ok,
            "message": self.message,
            "fix": self.fix,
            "details": dict(self.details),
        }


@dataclass(frozen=True, slots=True)
class ProbeReport:
    """Every result of one probe."""

    node: str
    results: tuple[ProbeResult, ...]

    @property
    def ok(self) -> bool:
        """Every check passed."""
        return all(result.ok for result in self.results)

    def failures(self) -> tuple[ProbeResult, ...]:
        """The checks that failed."""
        return tuple(result for result in self.results if not result.ok)

    def to_json(self) -> dict[str, Any]:
        """``{"ok": bool, "node": fqdn, "results": [...]}``."""
        return {
            "ok": self.ok,
            "node": self.node,
            "results": [result.to_json() for result in self.results],
        }


@dataclass
class _Context:
    """What every probe of one node needs."""

    home: Path
    config: NodeConfig
    stores: CertificateStores
    timeout: float
    client: ssl.SSLContext | None
    client_problem: str | None
    seen: dict[str, tuple[str, tuple[str, ...]]] = field(default_factory=dict)
    """Peer certificate names seen per route next hop: (address, names)."""

    @property
    def home_arg(self) -> str:
        return f"--home {self.home}"


async def probe_home(home: Path, *, timeout: float = 5.0) -> ProbeReport:
    """Probe the running deployment from the node at ``home`` (its running configuration)."""
    with open_store(home) as store:
        config = store.load("running")
    stores = CertificateStores.of_home(home)
    client, problem = _client_context(stores, config)
    context = _Context(home, config, stores, timeout, client, problem)
    results = await _listeners(context)
    for route in config.routes:
        results += await _route(context, route)
    results += _trust_entries(context)
    return ProbeReport(config.identity.fqdn, tuple(results))


def _client_context(
    stores: CertificateStores, config: NodeConfig
) -> tuple[ssl.SSLContext | None, str | None]:
    """Our outbound TLS context with the selected certificate, as the node builds it (but
    without refusing a certificate that fails validation: the probe shows what happens)."""
    try:
        selected = stores.selected()
        if selected.key_path is None:
            return None, f"the selected certificate {selected.thumbprint} has no private key"
        context = client_context(
            selected.path,
            selected.key_path,
            stores.trusted_roots(),
            fips=config.fips,
            profile=config.tls_profile,
        )
    except (PkiError, ConfigError) as exc:
        return None, str(exc)
    return context, None


async def _listeners(context: _Context) -> list[ProbeResult]:
    config = context.config
    identity = config.identity
    if config.role is Role.OCS:
        wanted = [(c.transport, c.ip, c.port) for c in config.connections]
    else:
        ports = config.listeners or ImpListeners()
        wanted = [
            ("TCP", identity.ip, ports.tcp),
            ("MTLS", identity.ip, ports.peer_auth),
            ("TLS", identity.ip, ports.server_auth),
        ]
    results = []
    for transport, ip, port in wanted:
        address = identity.ip if ip == "All" else ip
        target = f"{transport} {address}:{port}"
        try:
            _, writer = await asyncio.wait_for(
                asyncio.open_connection(address, port), context.timeout
            )
        except (OSError, TimeoutError) as exc:
            results.append(
                ProbeResult(
                    "listener",
                    target,
                    False,
                    _connect_failure(exc, context.timeout),
                    f"intrafed service start {context.home_arg} (or see "
                    f"{context.home / 'intrafed.log'})",
                )
            )
            continue
        await _close(writer)
        results.append(ProbeResult("listener", target, True, "accepts connections"))
    return results


async def _route(context: _Context, route: StaticRoute) -> list[ProbeResult]:
    target = f"route {route.domain} → {route.transport} {route.next_hop}:{route.port}"
    results = []
    address = route.ip or ""
    if route.fqdn is not None:
        resolution = await asyncio.to_thread(resolve_name, context.config, route.fqdn)
        if resolution.address is None:
            return [
                ProbeResult(
                    "resolve",
                    target,
                    False,
                    f"cannot resolve {route.fqdn}: not in the hosts table; {resolution.source}",
                    f"intrafed config hosts add {route.fqdn} <its IP> {context.home_arg}, "
                    "or add it to DNS",
                )
            ]
        address = resolution.address
        results.append(
            ProbeResult("resolve", target, True, f"{route.fqdn} → {address} ({resolution.source})")
        )
    try:
        reader, writer = await asyncio.wait_for(
            asyncio.open_connection(
                address, route.port, local_addr=(context.config.identity.ip, 0)
            ),
            context.timeout,
        )
    except (OSError, TimeoutError) as exc:
        results.append(
            ProbeResult(
                "connect",
                target,
                False,
                f"{_connect_failure(exc, context.timeout)} at {address}:{route.port}",
                "check that the peer runs (intrafed service status on it) and that the "
                "route's port is its "
                + ("Peer Auth / MTLS" if route.transport == "TLS" else "TCP")
                + f" listener: intrafed config route list {context.home_arg}",
            )
        )
        return results
    results.append(ProbeResult("connect", target, True, f"TCP connected to {address}"))
    try:
        if route.fqdn is not None:
            tls = await _handshake(context, route, address, writer, target)
            results.append(tls)
            if not tls.ok:
                return results
        results.append(await _options(context, route, reader, writer, target))
    finally:
        await _close(writer)
    return results


async def _handshake(
    context: _Context,
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
        peer = await _peer_certificate(context, address, route.port, fqdn)
        problems = _certificate_problems(context, peer, fqdn, address) if peer else []
        reason = problems[0] if problems else f"TLS handshake failed: {_ssl_reason(exc)}"
        fix = _tls_fix(reason, context)
        if not problems and _ssl_reason(exc) in _REFUSED_US:
            reason = f"the peer refused our certificate ({_ssl_reason(exc)})"
            fix = _REFUSED_FIX.format(home=context.home_arg)
        return ProbeResult(
            "tls",
            target,
            False,
            reason,
            fix,
            _certificate_details(context, peer, address) if peer else {},
        )
    ssl_object = writer.get_extra_info("ssl_object")
    der = ssl_object.getpeercert(binary_form=True) if ssl_object is not None else None
    certificate = x509.load_der_x509_certificate(der) if der else None
    details = _certificate_details(context, certificate, address) if certificate else {}
    if certificate is not None:
        context.seen[fqdn] = (address, proven_names(certificate))
        problems = _certificate_problems(context, certificate, fqdn, address)
        if problems:
            return ProbeResult(
                "tls", target, False, problems[0], _tls_fix(problems[0], context), details
            )
    version = ssl_object.version() if ssl_object is not None else "TLS"
    return ProbeResult(
        "tls", target, True, f"{version} handshake with {fqdn}, certificate trusted", None, details
    )


async def _peer_certificate(
    context: _Context, address: str, port: int, fqdn: str
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
        await _close(writer)


def _certificate_problems(
    context: _Context, certificate: x509.Certificate, fqdn: str, address: str
) -> list[str]:
    """Why we (or the peer, for its client role) would refuse the peer's certificate."""
    problems = []
    trust = _trust_verdict(context, certificate, fqdn, address)
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


def _trust_verdict(
    context: _Context, certificate: x509.Certificate, fqdn: str, address: str
) -> str | None:
    """Why our trusted store does not accept the peer's certificate, or None."""
    # Judged as if it were the route's node's own certificate: only the chain finding
    # matters here (names and EKU are judged as a peer's by the caller).
    identity = NodeIdentity(Role.IMP, fqdn, address)
    report = validate(certificate, identity=identity, trusted=context.stores.trusted_roots())
    chain = [finding.message for finding in report.findings if finding.rule == "chain"]
    return chain[0] if chain else None


def _certificate_details(
    context: _Context, certificate: x509.Certificate, address: str
) -> dict[str, str]:
    usages = extended_key_usages(certificate)
    trust = _trust_verdict(context, certificate, _first_name(certificate), address)
    return {
        "subject": subject_text(certificate),
        "issuer": certificate.issuer.rfc4514_string(),
        "eku": "(none)" if usages is None else ", ".join(eku_name(oid) for oid in usages),
        "expires": certificate.not_valid_after_utc.isoformat(),
        "trusted by us": "yes" if trust is None else f"no ({trust})",
    }


def _first_name(certificate: x509.Certificate) -> str:
    names = proven_names(certificate)
    return names[0] if names else "unnamed.invalid"


def _tls_fix(reason: str, context: _Context) -> str:
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


async def _options(
    context: _Context,
    route: StaticRoute,
    reader: asyncio.StreamReader,
    writer: asyncio.StreamWriter,
    target: str,
) -> ProbeResult:
    """An OPTIONS to the peer node itself, and its answer with the round-trip time."""
    identity = context.config.identity
    transport = "TLS" if route.transport == "TLS" else "TCP"
    local = writer.get_extra_info("sockname")
    call_id = f"probe-{secrets.token_hex(8)}@{identity.fqdn}"
    request = (
        f"OPTIONS sip:{route.next_hop}:{route.port};transport={transport.lower()} SIP/2.0\r\n"
        f"Via: SIP/2.0/{transport} {local[0]}:{local[1]};branch=z9hG4bK-{secrets.token_hex(8)}"
        ";rport\r\n"
        "Max-Forwards: 70\r\n"
        f"From: <sip:{identity.fqdn}>;tag={secrets.token_hex(4)}\r\n"
        f"To: <sip:{route.next_hop}>\r\n"
        f"Call-ID: {call_id}\r\n"
        "CSeq: 1 OPTIONS\r\n"
        "Accept: application/sdp\r\n"
        "Content-Length: 0\r\n\r\n"
    ).encode()
    loop = asyncio.get_running_loop()
    started = loop.time()
    try:
        writer.write(request)
        response = await asyncio.wait_for(_read_response(reader), context.timeout)
    except TimeoutError:
        return ProbeResult(
            "options",
            target,
            False,
            f"no answer to OPTIONS within {context.timeout:g} s (a 408 in the SIP proxy log)",
            "check the peer's log (intrafed service status / HOME/intrafed.log on the peer)",
        )
    except (OSError, ssl.SSLError, ConnectionError) as exc:
        refused = route.transport == "TLS"
        return ProbeResult(
            "options",
            target,
            False,
            "the peer closed the connection"
            + (
                f" after the handshake: it refused our certificate ({_ssl_reason(exc)})"
                if refused
                else f" ({_ssl_reason(exc)})"
            ),
            _REFUSED_FIX.format(home=context.home_arg) if refused else "check the peer's log",
        )
    except (FramingError, RemoteSipError) as exc:
        return ProbeResult(
            "options", target, False, f"the peer's answer cannot be parsed: {exc}", None
        )
    elapsed = (loop.time() - started) * 1000
    details = {
        name: value
        for name in ("Allow", "Supported", "Server", "Warning")
        if (value := response.headers.get(name.lower())) is not None
    }
    details["round trip"] = f"{elapsed:.1f} ms"
    if response.status == 200:
        return ProbeResult(
            "options", target, True, f"200 {response.reason} in {elapsed:.1f} ms", None, details
        )
    warning = response.headers.get("warning")
    message = f"{response.status} {response.reason}" + (f" ({warning})" if warning else "")
    if response.status == 403:
        message = f"the peer does not trust us: {message}"
    return ProbeResult(
        "options",
        target,
        False,
        message,
        "on the peer, authorize this node: host authorization (OCS) or TLS peer subject / "
        "incoming ACL (IM and Presence) for our FQDN and IP",
        details,
    )


async def _read_response(reader: asyncio.StreamReader) -> Response:
    framer = StreamFramer()
    while True:
        frame = framer.next_frame()
        if frame is not None:
            message = parse_message(frame, stream=True)
            if isinstance(message, Response) and message.status >= 200:
                return message
            continue
        data = await reader.read(READ_SIZE)
        if not data:
            raise ConnectionResetError("the connection was closed")
        framer.receive_data(data)


def _trust_entries(context: _Context) -> list[ProbeResult]:
    """Per host-authorization entry (OCS) or ACL entry and TLS peer subject (IM&P):
    whether requests from that peer would be trusted, and for each peer our routes reached,
    what its certificate proves."""
    config = context.config
    results = []
    if config.role is Role.OCS:
        for entry in config.host_authorizations:
            verdict = (
                trusted_peer(config, entry.ip)
                if entry.ip is not None
                else trusted_peer(config, "", (entry.host,))
            )
            problems = []
            if verdict is None:
                problems.append("it is Outbound Only, so its requests get no trust")
            if not entry.treat_as_authenticated:
                problems.append("it is not Treat as Authenticated, so its requests are challenged")
            results.append(
                ProbeResult(
                    "trust",
                    f"host authorization {entry.host}",
                    not problems,
                    "; ".join(problems) or f"requests from {entry.host} are trusted",
                    f"intrafed config hostauth remove and add {entry.host} {context.home_arg} "
                    "without --outbound-only, with --treat-as-authenticated"
                    if problems
                    else None,
                )
            )
    else:
        for acl in config.acl:
            results.append(
                ProbeResult(
                    "trust",
                    f"incoming ACL {acl.host}",
                    True,
                    f"TCP requests from {acl.host} are trusted",
                )
            )
        for subject in config.peer_subjects:
            results.append(
                ProbeResult(
                    "trust",
                    f"TLS peer subject {subject}",
                    True,
                    f"MTLS peers proving {subject} are trusted",
                )
            )
    for fqdn, (address, names) in context.seen.items():
        verdict = trusted_peer(config, address, names)
        results.append(
            ProbeResult(
                "trust",
                f"peer {fqdn} ({address})",
                verdict is not None,
                f"its requests would be trusted ({verdict})"
                if verdict is not None
                else f"its requests would not be trusted: its certificate names "
                f"{', '.join(names)} and no entry matches them or {address}",
                None
                if verdict is not None
                else (
                    f"intrafed config hostauth add --fqdn {fqdn} {context.home_arg}"
                    if config.role is Role.OCS
                    else f"intrafed config peer-subject add {fqdn} {context.home_arg}"
                ),
            )
        )
    return results


def _connect_failure(exc: BaseException, timeout: float) -> str:
    if isinstance(exc, ConnectionRefusedError):
        return "connection refused"
    if isinstance(exc, TimeoutError):
        return f"connection timed out after {timeout:g} s"
    if isinstance(exc, OSError) and exc.strerror:
        return exc.strerror.lower()
    return str(exc) or type(exc).__name__


# TLS alerts a peer sends when it refuses our certificate during the handshake (TLS 1.2;
# with TLS 1.3 the refusal comes after it, on the first read).
_REFUSED_US = frozenset(
    {
        "SSLV3_ALERT_BAD_CERTIFICATE",
        "SSLV3_ALERT_CERTIFICATE_EXPIRED",
        "SSLV3_ALERT_HANDSHAKE_FAILURE",
        "SSLV3_ALERT_UNSUPPORTED_CERTIFICATE",
        "TLSV13_ALERT_CERTIFICATE_REQUIRED",
        "TLSV1_ALERT_UNKNOWN_CA",
    }
)
_REFUSED_FIX = (
    "on the peer, import our CA root into its trusted store; our certificate needs "
    "Client Authentication EKU: intrafed pki validate {home}"
)


def _ssl_reason(exc: BaseException) -> str:
    if isinstance(exc, ssl.SSLCertVerificationError):
        return exc.verify_message or str(exc)
    if isinstance(exc, ssl.SSLError):
        return exc.reason or str(exc)
    if isinstance(exc, TimeoutError):
        return "timed out"
    return str(exc) or type(exc).__name__


async def _close(writer: asyncio.StreamWriter) -> None:
    writer.close()
    with contextlib.suppress(OSError, ssl.SSLError, TimeoutError):
        await asyncio.wait_for(writer.wait_closed(), 1.0)
