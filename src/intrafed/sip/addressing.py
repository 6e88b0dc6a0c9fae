"""SIP addressing, in one place: default ports, the next hop a URI names (RFC 3263 without
DNS SRV: the hosts table, then the address itself), where a response goes (RFC 3261
§18.2.2), and the listener a node advertises toward a flow or a next hop.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from intrafed.sip.header_values import Via
from intrafed.sip.transaction import NextHop
from intrafed.sip.uri import SipUri, Uri


def default_port(transport: str) -> int:
    """RFC 3261 §19.1.2: 5061 for TLS (sips), 5060 for everything else."""
    return 5061 if transport.upper() == "TLS" else 5060


def uri_address(uri: SipUri) -> tuple[str, int]:
    """The (lowercased host, port) a SIP URI names, its default port filled in."""
    transport = "TLS" if uri.scheme == "sips" or uri.transport == "tls" else "TCP"
    return uri.host.strip("[]").lower(), uri.port or default_port(transport)


def via_address(via: Via) -> tuple[str, int]:
    """The (lowercased host, port) of a Via's sent-by, its default port filled in."""
    return via.host.strip("[]").lower(), via.port or default_port(via.transport)


def next_hop_for_uri(uri: Uri) -> NextHop | None:
    """RFC 3263 without DNS: transport, host and port a SIP URI names (None for others)."""
    if not isinstance(uri, SipUri):
        return None
    transport = uri.transport
    if transport is None:
        transport = "tls" if uri.scheme == "sips" else "tcp"
    if transport not in ("tcp", "tls"):
        return None
    host = uri.param("maddr") or uri.host
    return NextHop(transport.upper(), host.strip("[]"), uri.port or default_port(transport))


def response_hop(via: Via) -> NextHop | None:
    """Where a response goes when the request's connection is gone (RFC 3261 §18.2.2).
    Over TLS, the sent-by host: it names the certificate to verify (a ``received`` IP is
    never a TLS server name), and the node resolves it or finds its open connection.
    Over TCP, the ``received`` address and the ``rport`` (RFC 3581). None for a transport
    the node does not speak (UDP, SCTP…)."""
    transport = via.transport.upper()
    if transport not in ("TCP", "TLS"):
        return None
    if transport == "TLS":
        return NextHop(transport, via.host.strip("[]"), via.port or 5061)
    return NextHop(transport, (via.received or via.host).strip("[]"), via.rport or via.port or 5060)


def alias_address(via: Via, hosts: Mapping[str, str]) -> tuple[str, int]:
    """RFC 5923: the (address, port) a Via with ``alias`` offers its connection for, its
    host resolved as ``resolve`` resolves a next hop's, its port the transport's default
    when it names none."""
    host = via.host.strip("[]")
    return hosts.get(host.lower(), host), via.port or default_port(via.transport)


def resolve(hop: NextHop, hosts: Mapping[str, str]) -> tuple[str, str | None]:
    """The address to connect to for ``hop`` (the hosts table, else the host itself: a
    name the transport resolves, to every address it has) and, over TLS, the name its
    certificate must show."""
    return hosts.get(hop.host.lower(), hop.host), hop.host if hop.transport == "TLS" else None


def listener_kind(transport: str, outbound: bool) -> str:
    """The listener a flow belongs to ("TCP", "TLS" or "MTLS"): our own TLS connections
    present our certificate, so they count as MTLS."""
    return "MTLS" if outbound and transport == "TLS" else transport


@dataclass(frozen=True, slots=True)
class Listener:
    """One of our listeners as peers address it: Via sent-by and Record-Route host.
    ``Listeners`` keys them by listener kind: "TCP", "TLS" or "MTLS"."""

    transport: str
    """The wire transport: "TCP" or "TLS" (an MTLS listener speaks TLS)."""
    host: str
    port: int

    @property
    def record_route(self) -> str:
        """The Record-Route value for this listener (loose routing)."""
        return f"<sip:{self.host}:{self.port};transport={self.transport.lower()};lr>"

    def contact(self, user: str | None) -> str:
        """A Contact URI at this listener (for ``user``, when given)."""
        userinfo = f"{user}@" if user else ""
        return f"sip:{userinfo}{self.host}:{self.port};transport={self.transport.lower()}"

    def via(self, branch: str) -> str:
        """Our Via for a request we originate, offering the connection (RFC 5923 alias)."""
        return f"SIP/2.0/{self.transport} {self.host}:{self.port};branch={branch};alias"


def listeners_of(
    bound: Mapping[str, tuple[str, int]], address: str, name: str
) -> dict[str, Listener]:
    """Our listeners as peers address them, from the bound port per listener kind: TCP
    legs by ``address``, TLS legs by ``name`` (MTLS is TLS on the wire)."""
    return {
        kind: Listener("TCP", address, port) if kind == "TCP" else Listener("TLS", name, port)
        for kind, (_, port) in bound.items()
    }


def choose_listener(listeners: Mapping[str, Listener], kind: str) -> Listener:
    """The listener to advertise toward a flow of listener ``kind`` or a next hop (its
    wire transport, TLS taken as MTLS: the peer partition reaches us with our
    certificate); the TLS one when there is no MTLS listener, else any."""
    if kind == "MTLS" and kind not in listeners:
        kind = "TLS"
    return listeners.get(kind) or next(iter(listeners.values()))


def hop_kind(hop: NextHop) -> str:
    """The listener kind to advertise toward a next hop: MTLS over TLS."""
    return "TCP" if hop.transport == "TCP" else "MTLS"
