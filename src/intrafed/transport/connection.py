"""One connection: the ``Flow`` the node sees and the asyncio protocol behind it (TLS
upgrade, framing, deadlines, backpressure)."""

from __future__ import annotations

import asyncio
import logging
import ssl
from collections.abc import Callable
from dataclasses import replace
from typing import TYPE_CHECKING, cast

from cryptography import x509

from intrafed.pki.certificates import has_client_auth, proven_names
from intrafed.sip import FramingError, StreamFramer
from intrafed.transport.errors import TransportError
from intrafed.transport.flows import FlowId, PeerIdentity
from intrafed.transport.tls import os_reason, start_tls

if TYPE_CHECKING:
    from intrafed.transport.layer import TransportLayer

# The transport layer's one logger, as before connections had their own module.
_log = logging.getLogger("intrafed.transport.layer")
MISSING_CLIENT_AUTH = "client certificate lacks Client Authentication EKU"

MessageHandler = Callable[["Flow", bytes], None]
BadStreamHandler = Callable[["Flow", FramingError], "bytes | None"]
PoolKey = tuple[str, str, int, str | None]
AliasKey = tuple[str, str, int]
_STILL_READ = (b"SIP/2.0 ", b"ACK ", b"CANCEL ")
"""Frames still handled once the node stops reading new requests (responses, ACK, CANCEL)."""


def address_text(address: tuple[str, int]) -> str:
    """``ip:port`` as logs show it (IPv6 in brackets)."""
    host, port = address
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


class Flow:
    """One TCP or TLS connection as the node sees it.

    ``on_message`` receives it with every frame; a response goes back with ``send``. A
    registered client's connection is found again by ``id`` (``TransportLayer.flow``).
    """

    __slots__ = (
        "_connection",
        "authenticated_as",
        "id",
        "local",
        "outbound",
        "peer",
        "remote",
        "transport",
    )

    def __init__(
        self,
        connection: _Connection,
        flow_id: FlowId,
        peer: PeerIdentity,
        local: tuple[str, int],
        outbound: bool,
    ) -> None:
        self._connection = connection
        self.id = flow_id
        self.peer = peer
        self.local = local
        self.remote = (peer.ip, peer.port)
        self.transport = peer.transport
        self.outbound = outbound
        self.authenticated_as: str | None = None
        """The user this connection proved to be by digest (set by the node): its later
        requests as that user are not challenged again, and it cannot send as anyone else."""

    @property
    def closed(self) -> bool:
        """Whether the flow is closed (or closing): ``send`` no longer delivers."""
        return self._connection.closed

    @property
    def reading_paused(self) -> bool:
        """Whether reading is paused because the peer is not taking what we write."""
        return self._connection.writing_paused

    def send(self, data: bytes) -> bool:
        """Queue ``data`` for the peer; False when the flow is closed."""
        return self._connection.send(data)

    def close(self, reason: str = "closed by the node") -> None:
        """Write what is queued, then close; ``reason`` goes to the log."""
        self._connection.close(reason)

    def __repr__(self) -> str:
        direction = "to" if self.outbound else "from"
        return f"<Flow {self.id} {self.transport} {direction} {address_text(self.remote)}>"


class _Connection(asyncio.Protocol):
    """One socket: TLS upgrade, framing, deadlines and backpressure."""

    def __init__(
        self, layer: TransportLayer, name: str, *, inbound: bool, tls: ssl.SSLContext | None
    ) -> None:
        self._layer = layer
        self._on_message = layer._on_message
        self._loop = asyncio.get_running_loop()
        self._limits = layer.limits
        self._name = name
        self._inbound = inbound
        self._tls = tls
        self._transport: asyncio.Transport | None = None
        self._framer = StreamFramer(layer.limits.max_header_bytes, layer.limits.max_body_bytes)
        self.flow: Flow | None = None
        self.closed = False
        self._ready = False
        self._released = False
        self._counted_ip: str | None = None
        self.writing_paused = False
        self._pending: list[bytes] = []
        self._pending_size = 0
        self._got_data = False
        self._opened_at = 0.0
        self._last_activity = 0.0
        self._message_started: float | None = None
        self._timer: asyncio.TimerHandle | None = None
        self._timer_at = 0.0
        self._unread = 0
        self.pool_keys: set[PoolKey] = set()
        self.alias_keys: set[AliasKey] = set()

    # -- asyncio callbacks ------------------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        raw = cast(asyncio.Transport, transport)
        self._transport = raw
        peername = raw.get_extra_info("peername")
        # Without a peername the peer reset before we could ask who it was.
        if peername is None or self._layer._shut:
            self.closed = self._released = True
            raw.abort()
            return
        remote = (str(peername[0]), int(peername[1]))
        if self._inbound:
            if not self._layer._admit(remote):
                self.closed = self._released = True
                raw.abort()
                return
            self._counted_ip = remote[0]
        sockname = raw.get_extra_info("sockname")
        self.flow = Flow(
            self,
            self._layer._new_id(),
            PeerIdentity(remote[0], remote[1], self._name),
            (str(sockname[0]), int(sockname[1])),
            outbound=not self._inbound,
        )
        self._layer._connections.add(self)
        self._last_activity = self._loop.time()
        if self._tls is None:
            self._become_ready(raw, self.flow.peer)
            return
        # start_tls() resumes reading once the TLS protocol is in place.
        raw.pause_reading()
        if self._inbound:
            self._layer._spawn(self._accept_tls(raw))

    def data_received(self, data: bytes) -> None:
        if self.closed:
            return
        self._last_activity = self._loop.time()
        self._got_data = True
        self._framer.receive_data(data)
        # Before the flow is ready (a TLS client may send its first request together with
        # its Finished), bytes wait in the framer.
        if self._ready:
            self._process()

    def eof_received(self) -> bool | None:
        self._peer_gone(None)
        return None

    def connection_lost(self, exc: Exception | None) -> None:
        self._peer_gone(exc)
        self._release()

    def pause_writing(self) -> None:
        self.writing_paused = True
        if self._transport is not None and not self.closed:
            self._transport.pause_reading()

    def resume_writing(self) -> None:
        self.writing_paused = False
        if self._transport is not None and not self.closed:
            self._transport.resume_reading()

    # -- the flow's verbs -------------------------------------------------------------------

    def send(self, data: bytes) -> bool:
        transport = self._transport
        if self.closed or transport is None:
            return False
        self._last_activity = self._loop.time()
        layer = self._layer
        if layer.batching:
            # Handling a batch of frames: writes wait for its end, one per connection.
            if not self._pending:
                layer.written.append(self)
            self._pending.append(data)
            self._pending_size += len(data)
            queued = self._pending_size + transport.get_write_buffer_size()
        else:
            transport.write(data)
            queued = transport.get_write_buffer_size()
        if queued > self._limits.write_buffer_max:
            # Drop what is queued rather than flush it: the peer is not taking it.
            self._pending, self._pending_size = [], 0
            self.close(f"peer is not reading: {queued} bytes queued for it")
            self.abort()
            return False
        return True

    def close(self, reason: str, level: int = logging.INFO) -> None:
        if self.closed:
            return
        self.closed = True
        _log.log(level, "closing %s: %s", self._describe(), reason)
        self._cancel_timer()
        self._layer._forget(self)
        transport = self._transport
        if transport is None:
            return
        self._flush()
        if self._unread:
            _log.info(
                "%s: %d requests that came after the node stopped reading were not handled",
                self._describe(),
                self._unread,
            )
        if self._layer._shut and transport.can_write_eof():
            # FIN after what is queued, and read (discarding) until the peer closes too:
            # closing with its requests unread would send it a reset instead.
            transport.write_eof()
            transport.resume_reading()
            return
        transport.close()

    def abort(self) -> None:
        self.closed = True
        if self._transport is not None:
            self._transport.abort()

    # -- TLS ----------------------------------------------------------------------------------

    async def handshake(self, raw: asyncio.Transport, server_hostname: str | None) -> None:
        """Upgrade ``raw`` to TLS and make the flow ready; TransportError(detail) on failure.

        On failure the connection is closed and released, and nothing is logged: the caller
        words the reason (the log for an inbound peer, the exception for ``connect``).
        """
        tls = cast(ssl.SSLContext, self._tls)
        timeout = self._limits.tls_handshake_timeout
        try:
            async with asyncio.timeout(timeout):
                upgraded = await start_tls(
                    raw,
                    self,
                    tls,
                    server_side=self._inbound,
                    server_hostname=server_hostname,
                    # asyncio's own handshake timer is only a backstop: ours names the reason.
                    handshake_timeout=2 * timeout,
                    # Bounds how long a closing flow waits for the peer's close_notify.
                    shutdown_timeout=timeout,
                )
        except TimeoutError:
            problem: str | None = f"timed out after {timeout} s"
        except OSError as exc:
            problem = os_reason(exc)
        except asyncio.CancelledError:
            self._abandon()
            raise
        else:
            problem = self._check_peer(upgraded)
        if problem is not None:
            self._abandon()
            raise TransportError(problem)

    def _check_peer(self, upgraded: asyncio.BaseTransport | None) -> str | None:
        """Make the flow ready on the TLS transport, or say why the peer is refused."""
        if upgraded is None or self.closed:
            return "the peer closed the connection"
        transport = cast(asyncio.Transport, upgraded)
        self._transport = transport
        flow = cast(Flow, self.flow)
        names: tuple[str, ...] = ()
        ssl_object = transport.get_extra_info("ssl_object")
        der = ssl_object.getpeercert(binary_form=True) if ssl_object is not None else None
        if der:
            try:
                certificate = x509.load_der_x509_certificate(der)
            except ValueError as exc:
                return f"unreadable peer certificate: {exc}"
            if self._name == "MTLS" and not has_client_auth(certificate):
                return MISSING_CLIENT_AUTH
            names = proven_names(certificate)
        elif self._name == "MTLS":  # CERT_REQUIRED makes this unreachable; stay safe anyway
            return "no client certificate"
        self._become_ready(transport, replace(flow.peer, fqdns=names))
        return None

    def _abandon(self) -> None:
        # start_tls() closed the socket; asyncio does not always tell us (no
        # connection_lost while the handshake runs), so release here.
        self.closed = True
        self._cancel_timer()
        self._layer._forget(self)
        if self._transport is not None:
            self._transport.close()
        self._release()

    async def _accept_tls(self, raw: asyncio.Transport) -> None:
        try:
            await self.handshake(raw, None)
        except TransportError as exc:
            _log.warning("closing %s: TLS handshake failed: %s", self._describe(), exc.reason)

    # -- internals ------------------------------------------------------------------------------

    def _become_ready(self, transport: asyncio.Transport, peer: PeerIdentity) -> None:
        flow = cast(Flow, self.flow)
        flow.peer = peer
        self._transport = transport
        transport.set_write_buffer_limits(high=self._limits.write_buffer_high)
        self._ready = True
        self._opened_at = self._loop.time()
        self._layer._flows[flow.id] = flow
        self._arm(self._next_deadline())
        if self._got_data:
            self._process()

    def _process(self) -> None:
        flow = cast(Flow, self.flow)
        framer = self._framer
        delivered = False
        layer = self._layer
        layer.batching += 1
        try:
            while (frame := framer.next_frame()) is not None:
                delivered = True
                if layer._closing and not frame.startswith(_STILL_READ):
                    # Shutting down: answers to our requests, ACK and CANCEL still come in;
                    # a new request is left unread (no answer), and the FIN that follows
                    # the answers tells the peer.
                    self._unread += 1
                    continue
                self._on_message(flow, frame)
                if self.closed:
                    return
            pong = framer.data_to_send()
            if pong:
                self.send(pong)
        except FramingError as exc:
            self._bad_stream(exc)
            return
        except Exception:
            _log.exception("message handler failed on %s", self._describe())
            self.close("internal error while handling a message")
            return
        finally:
            layer.batching -= 1
            if not layer.batching:
                layer.flush_written()
        if framer.has_partial_message:
            if delivered or self._message_started is None:
                self._message_started = self._last_activity
                self._arm(self._last_activity + self._limits.message_timeout)
        else:
            self._message_started = None

    def _bad_stream(self, error: FramingError) -> None:
        flow = cast(Flow, self.flow)
        try:
            reply = self._layer._on_bad_stream(flow, error)
        except Exception:
            _log.exception("bad-stream handler failed on %s", self._describe())
            reply = None
        answer = "no answer"
        if reply:
            self._pending.append(reply)
            first_line = reply.split(b"\r\n", 1)[0][:80]
            answer = f"answered {first_line.decode('latin-1')!r}"
        self.close(f"cannot frame the stream: {error.reason} ({answer})", logging.WARNING)

    def _peer_gone(self, exc: Exception | None) -> None:
        if self.closed:
            return
        reason = "the peer closed the connection"
        level = logging.DEBUG
        if isinstance(exc, OSError):
            reason = f"connection lost: {os_reason(exc)}"
            level = logging.INFO
        if self._ready and self._framer.has_partial_message:
            reason += " in the middle of a message"
            level = logging.INFO
        self.close(reason, level)

    def _release(self) -> None:
        if not self._released:
            self._released = True
            self._cancel_timer()
            self._layer._release(self)

    def _flush(self) -> None:
        pending = self._pending
        if pending and self._transport is not None:
            self._pending, self._pending_size = [], 0
            self._transport.write(pending[0] if len(pending) == 1 else b"".join(pending))

    def _describe(self) -> str:
        flow = cast(Flow, self.flow)
        direction = "to" if flow.outbound else "from"
        return f"flow {flow.id} {direction} {address_text(flow.remote)}"

    # One timer per connection, re-armed lazily: data only moves deadlines later, except
    # when a message starts, which may bring the message deadline forward.

    def _next_deadline(self) -> float:
        limits = self._limits
        deadline = self._last_activity + limits.idle_timeout
        if self._inbound and not self._got_data:
            deadline = min(deadline, self._opened_at + limits.first_data_timeout)
        if self._message_started is not None:
            deadline = min(deadline, self._message_started + limits.message_timeout)
        return deadline

    def _arm(self, deadline: float) -> None:
        if self._timer is not None:
            if self._timer_at <= deadline:
                return
            self._timer.cancel()
        self._timer_at = deadline
        self._timer = self._loop.call_at(deadline, self._on_timer)

    def _cancel_timer(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None

    def _on_timer(self) -> None:
        self._timer = None
        if self.closed:
            return
        # asyncio may run a timer a hair early; it was set for _timer_at.
        now = max(self._loop.time(), self._timer_at)
        limits = self._limits
        started = self._message_started
        if (
            self._inbound
            and not self._got_data
            and now >= self._opened_at + limits.first_data_timeout
        ):
            self.close(f"no data within {limits.first_data_timeout} s of connecting")
        elif started is not None and now >= started + limits.message_timeout:
            self.close(f"message still incomplete after {limits.message_timeout} s")
        elif now >= self._last_activity + limits.idle_timeout:
            self.close(f"no traffic for {limits.idle_timeout} s")
        else:
            self._arm(self._next_deadline())
