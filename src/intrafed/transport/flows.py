"""Plain values the transport layer speaks in: peers, destinations, listeners and limits."""

from __future__ import annotations

from dataclasses import dataclass

FlowId = int
"""A connection's number, unique and increasing within one TransportLayer."""

STREAM_TRANSPORTS = ("TCP", "TLS", "MTLS")
OUTBOUND_TRANSPORTS = ("TCP", "TLS")


@dataclass(frozen=True, slots=True)
class PeerIdentity:
    """Who is at the other end of a flow, as far as the transport can prove it."""

    ip: str
    port: int
    transport: str
    """"TCP", "TLS" or "MTLS" (an inbound connection on an MTLS listener)."""
    fqdns: tuple[str, ...] = ()
    """Names proven by the peer's verified certificate: SAN dNSNames, else the subject CN.

    Set for inbound MTLS flows (the client certificate) and outbound TLS flows (the server
    certificate); empty for TCP and for inbound TLS, where no certificate is asked for.
    """


@dataclass(frozen=True, slots=True)
class Destination:
    """Where to open (or reuse) an outbound connection."""

    transport: str
    """"TCP" or "TLS"."""
    host: str
    """The IP address to connect to, or a name: the system resolver's addresses for it are
    tried in its order (a refusing one skipped at once, a silent one after
    ``TransportLimits.connect_attempt_delay``)."""
    port: int
    server_name: str | None = None
    """TLS only: the name sent as SNI and verified against the server's certificate."""

    def __post_init__(self) -> None:
        if self.transport not in OUTBOUND_TRANSPORTS:
            raise ValueError(f"destination transport must be TCP or TLS, not {self.transport!r}")
        # DESIGN §3: a TLS route names an FQDN, and the peer's certificate is checked against it.
        if self.transport == "TLS" and not self.server_name:
            raise ValueError("a TLS destination needs the server_name to verify")
        if not 0 < self.port < 65536:
            raise ValueError(f"destination port {self.port} is out of range")


@dataclass(frozen=True, slots=True)
class ListenerSpec:
    """One listening socket: the OCS "Connections" entry (IP, transport, port)."""

    ip: str
    """"All" (every address) or one address."""
    transport: str
    """"TCP", "TLS" (server certificate only) or "MTLS" (client certificate required)."""
    port: int
    """0 picks a free port (tests)."""

    def __post_init__(self) -> None:
        if self.transport not in STREAM_TRANSPORTS:
            raise ValueError(f"listener transport must be TCP, TLS or MTLS, not {self.transport!r}")
        if not 0 <= self.port < 65536:
            raise ValueError(f"listener port {self.port} is out of range")

    @property
    def bind_address(self) -> str:
        """The address to bind: "All" means every IPv4 address."""
        return "0.0.0.0" if self.ip == "All" else self.ip  # noqa: S104 - "All" asks for it


@dataclass(frozen=True, slots=True)
class TransportLimits:
    """Per-connection limits (DESIGN §8). Times are in seconds, sizes in bytes."""

    max_header_bytes: int = 64 * 1024
    """Largest header section; a longer one gets 513 and the connection is closed."""
    max_body_bytes: int = 256 * 1024
    """Largest Content-Length accepted; a larger one gets 513 and the connection is closed."""
    message_timeout: float = 10.0
    """A message must arrive whole within this time of its first byte (stops slowloris)."""
    first_data_timeout: float = 10.0
    """A new inbound connection must send its first bytes (after any TLS handshake) within."""
    tls_handshake_timeout: float = 5.0
    """A TLS handshake, inbound or outbound, must complete within this time."""
    idle_timeout: float = 120.0
    """A connection with no traffic either way for this long is closed; CRLF keepalives count."""
    connect_timeout: float = 5.0
    """An outbound TCP connect must succeed within this time (over all the addresses a
    name resolves to)."""
    connect_attempt_delay: float = 0.25
    """Seconds a connect to one of a name's addresses may go unanswered before the next
    address is tried alongside it (RFC 8305 §5 Connection Attempt Delay): a member that
    does not answer costs this, not the whole ``connect_timeout``."""
    max_connections_per_ip: int = 256
    """Inbound connections open at once from one source IP; more are refused."""
    write_buffer_high: int = 256 * 1024
    """Bytes queued for a peer above which we stop reading from it until it catches up."""
    write_buffer_max: int = 4 * 1024 * 1024
    """A flow whose peer lets this much pile up unread is closed: reading from it is already
    paused, but requests from other flows (NOTIFYs, MESSAGEs) would queue without end."""
