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
import secrets
import ssl
from pathlib import Path

from intrafed.check.facts import NodeFacts, resolve_name
from intrafed.check.probe_results import (
    ProbeContext,
    ProbeReport,
    ProbeResult,
    close,
    connect_failure,
    ssl_reason,
)
from intrafed.check.probe_tls import REFUSED_FIX, client_context, handshake
from intrafed.check.rules.routes import missing_route_fix, unreachable
from intrafed.check.rules.shared import covers_domain
from intrafed.config.model import (
    ImpListeners,
    Role,
    StaticRoute,
)
from intrafed.pki import CertificateStores
from intrafed.policy.peers import trusted_peer
from intrafed.sip import FramingError, RemoteSipError, Response, StreamFramer, parse_message
from intrafed.store import open_store

__all__ = ["ProbeReport", "ProbeResult", "probe_home"]

READ_SIZE = 65536


async def probe_home(home: Path, *, timeout: float = 5.0) -> ProbeReport:
    """Probe the running deployment from the node at ``home`` (its running configuration)."""
    with open_store(home) as store:
        config = store.load("running")
    stores = CertificateStores.of_home(home)
    client, problem = client_context(stores, config)
    context = ProbeContext(home, config, stores, timeout, client, problem)
    results = await _listeners(context)
    results += _missing_routes(context)
    for route in config.routes:
        results += await _route(context, route)
    results += _trust_entries(context)
    return ProbeReport(config.identity.fqdn, tuple(results))


def _missing_routes(context: ProbeContext) -> list[ProbeResult]:
    """A domain we serve with no static route: nothing of it crosses to the other side."""
    config = context.config
    facts = NodeFacts(config, context.home)
    return [
        ProbeResult(
            "route",
            f"domain {domain}",
            False,
            f"no static route for {domain}: {unreachable(domain)}",
            missing_route_fix(facts, domain, ()),
        )
        for domain in config.domains
        if not any(covers_domain(route, domain) for route in config.routes)
    ]


async def _listeners(context: ProbeContext) -> list[ProbeResult]:
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
                    connect_failure(exc, context.timeout),
                    f"intrafed service start {context.home_arg} (or see "
                    f"{context.home / 'intrafed.log'})",
                )
            )
            continue
        await close(writer)
        results.append(ProbeResult("listener", target, True, "accepts connections"))
    return results


async def _route(context: ProbeContext, route: StaticRoute) -> list[ProbeResult]:
    """A route by address, or every address its name resolves to (a cluster's name may
    have one per member: each is probed, its results' target naming the address)."""
    target = f"route {route.domain} → {route.transport} {route.next_hop}:{route.port}"
    if route.fqdn is None:
        return await _route_to(context, route, route.ip or "", target)
    resolution = await asyncio.to_thread(resolve_name, context.config, route.fqdn)
    addresses = resolution.addresses
    if not addresses:
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
    results = [
        ProbeResult(
            "resolve",
            target,
            True,
            f"{route.fqdn} → {', '.join(addresses)} ({resolution.source})",
        )
    ]
    for address in addresses:
        member = f"{target} ({address})" if len(addresses) > 1 else target
        results += await _route_to(context, route, address, member)
    return results


async def _route_to(
    context: ProbeContext, route: StaticRoute, address: str, target: str
) -> list[ProbeResult]:
    """Connect, TLS handshake (a route by name) and OPTIONS against one address."""
    results = []
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
                f"{connect_failure(exc, context.timeout)} at {address}:{route.port}",
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
            tls = await handshake(context, route, address, writer, target)
            results.append(tls)
            if not tls.ok:
                return results
        results.append(await _options(context, route, reader, writer, target))
    finally:
        await close(writer)
    return results


async def _options(
    context: ProbeContext,
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
                f" after the handshake: it refused our certificate ({ssl_reason(exc)})"
                if refused
                else f" ({ssl_reason(exc)})"
            ),
            REFUSED_FIX.format(home=context.home_arg) if refused else "check the peer's log",
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


def _trust_entries(context: ProbeContext) -> list[ProbeResult]:
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
            option = "--ip" if entry.ip is not None else "--fqdn"
            problems = []
            if verdict is None:
                problems.append("it is Outbound Only, so its requests get no trust")
            if not entry.treat_as_authenticated:
                problems.append(
                    "it is not Treat as Authenticated, so its requests are challenged (407)"
                )
            results.append(
                ProbeResult(
                    "trust",
                    f"host authorization {entry.host}",
                    not problems,
                    "; ".join(problems) or f"requests from {entry.host} are trusted",
                    f"intrafed config hostauth remove {option} {entry.host} {context.home_arg} "
                    f"&& intrafed config hostauth add {option} {entry.host} {context.home_arg}"
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
    for (fqdn, address), names in context.seen.items():
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
