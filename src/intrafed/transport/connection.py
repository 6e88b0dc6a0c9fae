"""One connection: the ``Flow`` the node sees and the asyncio protocol behind it (TLS
upgrade, framing, deadlines, backpressure). It reports to its ``ConnectionPool`` through
the pool's public methods only."""

from __future__ import annotations

import asyncio
import fcntl
import logging
import ssl
import termios
from dataclasses import replace
from typing import cast

from cryptography import x509

from intrafed.pki.certificates import has_client_auth, proven_names
from intrafed.sip import FramingError, StreamFramer
from intrafed.transport.backlog import ReadBacklog
from intrafed.transport.deadlines import Deadlines
from intrafed.transport.errors import TransportError
from intrafed.transport.flows import FlowId, PeerIdentity
from intrafed.transport.pool import ConnectionPool, address_text
from intrafed.transport.tls import TlsUpgrade, failure_kind, os_reason

# The transport layer's one logger, as before connections had their own module.
_log = logging.getLogger("intrafed.transport.layer")
MISSING_CLIENT_AUTH = "client certificate lacks Client Authentication EKU"

_PEER_CHECK_KINDS = {
    MISSING_CLIENT_AUTH: "missing_client_auth",
    "no client certificate": "no_certificate",
    "the peer closed the connection": "connection_lost",
}
"""``failure_kind`` of the refusals of ``Connection._check_peer`` (else bad_certificate)."""

FRAMES_PER_TURN = 64
"""Frames one connection hands the node per loop turn: the rest of a large read waits its
turn (reading paused, so the queue stays in the kernel where ``ReadBacklog`` sees it),
and other connections' frames, answers to our requests among them, go in between."""

_STILL_READ = (b"SIP/2.0 ", b"ACK ", b"CANCEL ")
"""Frames still handled once the node stops reading new requests (responses, ACK, CANCEL)."""


class Flow:
    """One TCP or TLS connection as the node sees it.

    ``on_message`` receives it with every frame; a response goes back with ``send``. A
    registered client's connection is found again by ``id`` (``TransportLayer.flow``).
    """

    __slots__ = (
        "_connection",
        "id",
        "local",
        "outbound",
        "peer",
        "remote",
        "transport",
    )

    def __init__(
        self,
        connection: Connection,
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

    @property
    def closed(self) -> bool:
        """Whether the flow is closed (or closing): ``send`` no longer delivers."""
        return self._connection.closed

    @property
    def read_at(self) -> float:
        """The loop time by which the bytes being handled now had reached the node: when
        they were read, or earlier when they waited unread in the socket
        (``ReadBacklog``)."""
        return self._connection.read_at

    @property
    def closed_cleanly(self) -> bool:
        """Whether the peer ended the flow on purpose with nothing of ours unread but what
        it will never act on: TLS close_notify (an intrafed node sends it only when it has
        answered every request it read, ``TransportLayer.drain``). False for TCP, where a
        FIN is also what a killed process's kernel sends, and when this side closed."""
        return self._connection.closed_cleanly

    @property
    def reading_paused(self) -> bool:
        """Whether reading is paused because the peer is not taking what we write."""
        return self._connection.writing_paused

    def send(self, data: bytes) -> bool:
        """Queue ``data`` for the peer; False when the flow is closed."""
        return self._connection.send(data)

    def close(self, reason: str = "closed by the node", *, clean: bool = False) -> None:
        """Write what is queued, then close; ``reason`` goes to the log. ``clean``: every
        request read on the flow is answered and nothing more will be read (the peer may
        send its unanswered requests again, ``closed_cleanly``); else, over TLS, the
        stream ends without close_notify, as when a process dies."""
        self._connection.close(reason, clean=clean)

    def __repr__(self) -> str:
        direction = "to" if self.outbound else "from"
        return f"<Flow {self.id} {self.transport} {direction} {address_text(self.remote)}>"


class Connection(asyncio.Protocol):
    """One socket: TLS upgrade, framing, deadlines and backpressure."""

    def __init__(
        self, pool: ConnectionPool, name: str, *, inbound: bool, tls: ssl.SSLContext | None
    ) -> None:
        self._pool = pool
        self._on_message = pool.on_message
        self._loop = asyncio.get_running_loop()
        self._limits = pool.limits
        self._name = name
        self._inbound = inbound
        self._tls = tls
        self._transport: asyncio.Transport | None = None
        self._framer = StreamFramer(pool.limits.max_header_bytes, pool.limits.max_body_bytes)
        self.flow: Flow | None = None
        self.closed = False
        self._ready = False
        self._released = False
        self._counted_ip: str | None = None
        self.writing_paused = False
        self._pending: list[bytes] = []
        self._pending_size = 0
        self._deadlines: Deadlines  # from connection_made on
        self._handshake_expired: str | None = None
        self._timer: asyncio.TimerHandle | None = None
        self._timer_at = 0.0
        self._unread = 0
        self._upgrade: TlsUpgrade | None = None
        self.closed_cleanly = False
        self.read_at = 0.0
        self._backlog = ReadBacklog()
        self._next_turn: asyncio.Handle | None = None
        self._fd = -1
        self._fionread = bytearray(4)

    # -- asyncio callbacks ------------------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        raw = cast(asyncio.Transport, transport)
        self._transport = raw
        peername = raw.get_extra_info("peername")
        # Without a peername the peer reset before we could ask who it was.
        if peername is None or self._pool.shut:
            self.closed = self._released = True
            raw.abort()
            return
        remote = (str(peername[0]), int(peername[1]))
        if self._inbound:
            if not self._pool.admit(remote):
                self.closed = self._released = True
                raw.abort()
                return
            self._counted_ip = remote[0]
        sockname = raw.get_extra_info("sockname")
        self.flow = Flow(
            self,
            self._pool.opened(self),
            PeerIdentity(remote[0], remote[1], self._name),
            (str(sockname[0]), int(sockname[1])),
            outbound=not self._inbound,
        )
        self._deadlines = Deadlines(
            self._limits,
            inbound=self._inbound,
            handshake=self._tls is not None,
            now=self._loop.time(),
        )
        if self._tls is None:
            self._become_ready(raw, self.flow.peer)
            return
        self._arm(self._deadlines.next_deadline())
        if self._inbound:
            self._pool.spawn(self._accept_tls(self._begin_tls(raw, None)))
        else:
            # The TLS upgrade (``handshake``) resumes reading once it is in place.
            raw.pause_reading()

    def data_received(self, data: bytes) -> None:
        if self.closed:
            if self.flow is not None:
                _log.debug(
                    "%s: discarding %d bytes read after the close", self._describe(), len(data)
                )
            return
        now = self._loop.time()
        self._deadlines.received(now)
        self.read_at = self._backlog.read(len(data), self._kernel_unread(), now)
        self._framer.receive_data(data)
        # Before the flow is ready (a TLS client may send its first request together with
        # its Finished), bytes wait in the framer; so do they behind frames left for the
        # next turn.
        if self._ready and self._next_turn is None:
            self._process()

    def eof_received(self) -> bool | None:
        if not self.closed and self._upgrade is not None:
            self.closed_cleanly = self._upgrade.close_notify_received
        self._peer_gone(None)
        return None

    def connection_lost(self, exc: Exception | None) -> None:
        if self.closed and exc is not None and self.flow is not None:
            _log.debug("%s: lost after the close: %s", self._describe(), exc)
        self._peer_gone(exc)
        self._release()

    def pause_writing(self) -> None:
        self.writing_paused = True
        if self._transport is not None and not self.closed:
            self._transport.pause_reading()

    def resume_writing(self) -> None:
        self.writing_paused = False
        if self._transport is not None and not self.closed and self._next_turn is None:
            self._transport.resume_reading()

    # -- the flow's verbs -------------------------------------------------------------------

    def send(self, data: bytes) -> bool:
        transport = self._transport
        if self.closed or transport is None:
            return False
        self._deadlines.sent(self._loop.time())
        pool = self._pool
        if pool.batching:
            # Handling a batch of frames: writes wait for its end, one per connection.
            if not self._pending:
                pool.written.append(self)
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

    def close(self, reason: str, level: int = logging.INFO, *, clean: bool = False) -> None:
        if self.closed:
            return
        self.closed = True
        _log.log(level, "closing %s: %s", self._describe(), reason)
        self._cancel_timer()
        if self._next_turn is not None:
            self._next_turn.cancel()
            self._next_turn = None
        if self.flow is not None:
            self._pool.forget(self.flow)
        transport = self._transport
        if transport is None:
            return
        self.flush()
        if self._unread:
            _log.info(
                "%s: %d requests that came after the node stopped reading were not handled",
                self._describe(),
                self._unread,
            )
        if self._pool.shut and transport.can_write_eof():
            # FIN after what is queued, and read (discarding) until the peer closes too:
            # closing with its requests unread would send it a reset instead.
            transport.write_eof()
            transport.resume_reading()
            return
        if self._upgrade is not None and self._ready:
            if not clean:
                self._upgrade.close_without_notify()
                return
            # Read what came before the close_notify goes out (and is discarded): OpenSSL
            # would fail the shutdown on records left unread.
            transport.resume_reading()
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
        await self._finish_handshake(self._begin_tls(raw, server_hostname))

    def _begin_tls(self, raw: asyncio.Transport, server_hostname: str | None) -> TlsUpgrade:
        timeout = self._limits.tls_handshake_timeout
        self._upgrade = TlsUpgrade(
            raw,
            self,
            cast(ssl.SSLContext, self._tls),
            server_side=self._inbound,
            server_hostname=server_hostname,
            # asyncio's own handshake timer is only a backstop: ours names the reason.
            handshake_timeout=2 * timeout,
            # Bounds how long a closing flow waits for the peer's FIN.
            shutdown_timeout=timeout,
        )
        return self._upgrade

    async def _finish_handshake(self, upgrade: TlsUpgrade) -> None:
        problem: str | None
        kind = "timeout"
        # When our timer aborted the socket, that is the reason, whatever the upgrade saw.
        try:
            upgraded = await upgrade.transport()
        except OSError as exc:
            problem = self._handshake_expired or os_reason(exc)
            if self._handshake_expired is None:
                kind = failure_kind(exc)
        except asyncio.CancelledError:
            self._abandon()
            raise
        else:
            problem = self._handshake_expired or self._check_peer(upgraded)
            if self._handshake_expired is None:
                kind = _PEER_CHECK_KINDS.get(problem or "", "bad_certificate")
        if problem is not None:
            self._abandon()
            raise TransportError(problem, kind)

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
        if self.flow is not None:
            self._pool.forget(self.flow)
        if self._transport is not None:
            self._transport.close()
        self._release()

    async def _accept_tls(self, upgrade: TlsUpgrade) -> None:
        try:
            await self._finish_handshake(upgrade)
        except TransportError as exc:
            _log.warning("closing %s: TLS handshake failed: %s", self._describe(), exc.reason)
            self._pool.tls_failed(self._name, "inbound", exc.kind)

    # -- internals ------------------------------------------------------------------------------

    def _become_ready(self, transport: asyncio.Transport, peer: PeerIdentity) -> None:
        flow = cast(Flow, self.flow)
        flow.peer = peer
        self._transport = transport
        transport.set_write_buffer_limits(high=self._limits.write_buffer_high)
        sock = transport.get_extra_info("socket")
        self._fd = sock.fileno() if sock is not None else -1
        self._ready = True
        deadlines = self._deadlines
        deadlines.handshake_done(self._loop.time())
        self._pool.ready(flow)
        # The handshake's deadline (if any) is gone: arm for the next one.
        self._cancel_timer()
        self._arm(deadlines.next_deadline())
        if deadlines.got_data:
            self._process()

    def _process(self) -> None:
        flow = cast(Flow, self.flow)
        framer = self._framer
        delivered = False
        pool = self._pool
        pool.batching += 1
        turn = FRAMES_PER_TURN
        try:
            while (frame := framer.next_frame()) is not None:
                delivered = True
                if pool.stopping and not frame.startswith(_STILL_READ):
                    # Shutting down: answers to our requests, ACK and CANCEL still come in;
                    # a new request is left unread (no answer), and the FIN that follows
                    # the answers tells the peer.
                    self._unread += 1
                    continue
                self._on_message(flow, frame)
                if self.closed:
                    return
                turn -= 1
                if not turn:
                    self._wait_turn()
                    break
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
            pool.batching -= 1
            if not pool.batching:
                pool.flush_written()
        deadline = self._deadlines.after_read(delivered, framer.has_partial_message)
        if deadline is not None:
            self._arm(deadline)

    def _wait_turn(self) -> None:
        """Leave the frames still in the framer for a later loop turn."""
        if self._next_turn is None:
            cast(asyncio.Transport, self._transport).pause_reading()
        self._next_turn = self._loop.call_soon(self._take_turn)

    def _take_turn(self) -> None:
        self._next_turn = None
        if self.closed:
            return
        self._process()
        if self._next_turn is None and not self.writing_paused and not self.closed:
            cast(asyncio.Transport, self._transport).resume_reading()

    def _bad_stream(self, error: FramingError) -> None:
        flow = cast(Flow, self.flow)
        try:
            reply = self._pool.on_bad_stream(flow, error)
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
        # What the peer sent before it went (its last answers among them) is handled now,
        # not dropped with the turns it waited for: an answered request must not look
        # unanswered (after a clean close it would be sent again).
        while self._next_turn is not None and not self.closed:
            self._next_turn.cancel()
            self._next_turn = None
            self._process()
        if self.closed:
            return
        reason = "the peer closed the connection"
        if self.closed_cleanly:
            reason += " (close_notify)"
        level = logging.DEBUG
        if isinstance(exc, OSError):
            reason = f"connection lost: {os_reason(exc)}"
            level = logging.INFO
        if self._ready and self._framer.has_partial_message:
            reason += " in the middle of a message"
            level = logging.INFO
        # The peer ended the flow: asyncio already answered a close_notify with ours.
        self.close(reason, level, clean=True)

    def _release(self) -> None:
        if not self._released:
            self._released = True
            self._cancel_timer()
            self._pool.released(self, self._counted_ip)

    def flush(self) -> None:
        """Write what a batch gathered for this connection."""
        pending = self._pending
        if pending and self._transport is not None:
            self._pending, self._pending_size = [], 0
            self._transport.write(pending[0] if len(pending) == 1 else b"".join(pending))

    def _kernel_unread(self) -> int:
        """Bytes the kernel holds for this socket, not read yet (0 when unknown)."""
        if self._fd < 0:
            return 0
        try:
            fcntl.ioctl(self._fd, termios.FIONREAD, self._fionread)
        except OSError:
            return 0
        return int.from_bytes(self._fionread, "little")

    def _describe(self) -> str:
        flow = cast(Flow, self.flow)
        direction = "to" if flow.outbound else "from"
        return f"flow {flow.id} {direction} {address_text(flow.remote)}"

    # One timer per connection at the earliest deadline, re-armed lazily: data only moves
    # deadlines later, except when a message starts, which may bring one forward.

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
        deadlines = self._deadlines
        reason = deadlines.expired(now)
        if reason is None:
            self._arm(deadlines.next_deadline())
        elif deadlines.handshaking:
            # handshake() wakes up as the socket goes and reports this reason.
            self._handshake_expired = reason
            if self._transport is not None:
                self._transport.abort()
        else:
            # Silent for the idle timeout, or before its first byte: whatever was read on
            # it was answered or has timed out, so the close may be clean (the peer can
            # tell it from a crash). Not in the middle of a message: a request read just
            # before the partial one may still wait for its answer.
            self.close(reason, clean=not deadlines.within_message)
