"""The asyncio adapter: listeners, connections and the outbound pool (DESIGN §5, §8).

Bytes in: each connection feeds a ``StreamFramer`` and hands every whole frame to
``on_message`` with the ``Flow`` it came on. Bytes out: ``Flow.send``. Nothing here looks
inside a message or decides where it goes.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import itertools
import logging
import os
import re
import ssl
from collections.abc import Callable, Coroutine
from dataclasses import replace
from typing import cast

from cryptography import x509

from intrafed.pki.certificates import has_client_auth, proven_names
from intrafed.sip import FramingError, StreamFramer
from intrafed.transport.errors import TransportError
from intrafed.transport.flows import (
    Destination,
    FlowId,
    ListenerSpec,
    PeerIdentity,
    TransportLimits,
)

_log = logging.getLogger(__name__)
MISSING_CLIENT_AUTH = "client certificate lacks Client Authentication EKU"

MessageHandler = Callable[["Flow", bytes], None]
BadStreamHandler = Callable[["Flow", FramingError], "bytes | None"]

DEFAULT_LIMITS = TransportLimits()
_PoolKey = tuple[str, str, int, str | None]
_AliasKey = tuple[str, str, int]

_IDLE_POLL = 0.05
"""Seconds between two calls of the ``idle`` callable during a graceful close."""
_ABORT_WAIT = 1.0
"""Seconds to wait for aborted connections to report they are gone."""
_SSL_DETAIL_RE = re.compile(r"^\[[^\]]*\]\s*(.*?)\s*\(_ssl\.c:\d+\)$")


def _address(address: tuple[str, int]) -> str:
    host, port = address
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


def _ssl_reason(exc: ssl.SSLError) -> str:
    """OpenSSL's words without the C source location."""
    if isinstance(exc, ssl.SSLCertVerificationError):
        return f"certificate verify failed: {exc.verify_message}"
    text = str(exc.args[1]) if len(exc.args) > 1 else str(exc)
    match = _SSL_DETAIL_RE.match(text)
    if match is None:
        return text
    return f"{match.group(1)} ({exc.reason})" if exc.reason else match.group(1)


def _os_reason(exc: OSError) -> str:
    if isinstance(exc, ssl.SSLError):
        return _ssl_reason(exc)
    # errno first: asyncio rewords some errors (bind) around the system's message.
    if exc.errno:
        return os.strerror(exc.errno)
    if isinstance(exc, ConnectionResetError | BrokenPipeError):
        return "the peer closed the connection"
    return str(exc) or type(exc).__name__


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
        return f"<Flow {self.id} {self.transport} {direction} {_address(self.remote)}>"


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
        self.pool_keys: set[_PoolKey] = set()
        self.alias_keys: set[_AliasKey] = set()

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
        if self._transport is not None:
            self._flush()
            self._transport.close()

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
                upgraded = await self._loop.start_tls(
                    raw,
                    self,
                    tls,
                    server_side=self._inbound,
                    server_hostname=server_hostname,
                    # asyncio's own handshake timer is only a backstop: ours names the reason.
                    ssl_handshake_timeout=2 * timeout,
                    # Bounds how long a closing flow waits for the peer's close_notify.
                    ssl_shutdown_timeout=timeout,
                )
        except TimeoutError:
            problem: str | None = f"timed out after {timeout} s"
        except OSError as exc:
            problem = _os_reason(exc)
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
            reason = f"connection lost: {_os_reason(exc)}"
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
        return f"flow {flow.id} {direction} {_address(flow.remote)}"

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


class TransportLayer:
    """The listeners, connections and outbound pool of one node.

    ``on_message(flow, frame)`` gets every whole frame, synchronously from the read
    callback. ``on_bad_stream(flow, error)`` is called when framing is lost and returns the
    bytes to write before the connection is closed (e.g. a 400 or 513), or None. An
    exception from either is logged and closes that flow only.
    """

    def __init__(
        self,
        *,
        on_message: MessageHandler,
        on_bad_stream: BadStreamHandler,
        server_ssl: ssl.SSLContext | None = None,
        mtls_ssl: ssl.SSLContext | None = None,
        client_ssl: ssl.SSLContext | None = None,
        limits: TransportLimits = DEFAULT_LIMITS,
        source_ip: str | None = None,
    ) -> None:
        self.limits = limits
        # Outbound connections leave from the node's own address, so that peers that
        # authorize hosts by IP (OCS host authorization) see the node, not 127.0.0.1.
        self._local_addr = (source_ip, 0) if source_ip else None
        self._on_message = on_message
        self._on_bad_stream = on_bad_stream
        self._server_contexts = {"TLS": server_ssl, "MTLS": mtls_ssl}
        self._client_ssl = client_ssl
        self._ids = itertools.count(1)
        self._flows: dict[FlowId, Flow] = {}
        self._pool: dict[_PoolKey, Flow] = {}
        self._aliases: dict[_AliasKey, Flow] = {}
        self._connecting: dict[_PoolKey, asyncio.Task[Flow]] = {}
        self._connections: set[_Connection] = set()
        self._per_ip: dict[str, int] = {}
        self._servers: list[tuple[ListenerSpec, tuple[str, int], asyncio.Server]] = []
        self._tasks: set[asyncio.Task[None]] = set()
        self._closing = False
        self._shut = False
        self._all_released: asyncio.Future[None] | None = None
        self.batching = 0
        """Nonzero while frames are being handled: writes are gathered meanwhile."""
        self.written: list[_Connection] = []
        """Connections with gathered writes, flushed when the batch ends."""

    def flush_written(self) -> None:
        """Write what the batch gathered: one write per connection (DESIGN §9)."""
        written, self.written = self.written, []
        for connection in written:
            connection._flush()

    @property
    def listeners(self) -> list[tuple[ListenerSpec, tuple[str, int]]]:
        """Every started listener with the address it is bound to."""
        return [(spec, bound) for spec, bound, _server in self._servers]

    def use_contexts(
        self,
        *,
        server_ssl: ssl.SSLContext | None,
        mtls_ssl: ssl.SSLContext | None,
        client_ssl: ssl.SSLContext | None,
    ) -> None:
        """New connections (inbound and outbound) use these contexts from now on; flows
        already open keep the ones they were made with."""
        for transport, context in (("TLS", server_ssl), ("MTLS", mtls_ssl)):
            if context is not None:
                self._server_contexts[transport] = context
        if client_ssl is not None:
            self._client_ssl = client_ssl

    def flow(self, flow_id: FlowId) -> Flow | None:
        """The open flow with this id, or None."""
        return self._flows.get(flow_id)

    async def listen(self, spec: ListenerSpec) -> tuple[str, int]:
        """Start a listener and return the (ip, port) it is bound to.

        TLS and MTLS listeners accept TCP and then run the handshake themselves, so every
        failed handshake is logged with the peer and the reason.
        """
        if self._closing:
            raise TransportError("the transport layer is shutting down")
        tls: ssl.SSLContext | None = None
        if spec.transport != "TCP":
            tls = self._server_contexts[spec.transport]
            if tls is None:
                argument = "server_ssl" if spec.transport == "TLS" else "mtls_ssl"
                raise ValueError(f"a {spec.transport} listener needs {argument}")
            if spec.transport == "MTLS" and tls.verify_mode != ssl.CERT_REQUIRED:
                raise ValueError("the MTLS context must require client certificates")
        loop = asyncio.get_running_loop()
        try:
            server = await loop.create_server(
                # The context is looked up per connection, so use_contexts() applies to
                # the next one while live flows keep theirs.
                lambda: _Connection(
                    self,
                    spec.transport,
                    inbound=True,
                    tls=self._server_contexts.get(spec.transport),
                ),
                spec.bind_address,
                spec.port,
                backlog=1024,
            )
        except OSError as exc:
            where = _address((spec.bind_address, spec.port))
            raise TransportError(
                f"cannot listen on {where} ({spec.transport}): {_os_reason(exc)}"
            ) from exc
        sockname = server.sockets[0].getsockname()
        bound = (str(sockname[0]), int(sockname[1]))
        self._servers.append((spec, bound, server))
        _log.info("listening on %s (%s)", _address(bound), spec.transport)
        return bound

    def pooled(self, destination: Destination) -> Flow | None:
        """An open flow to ``destination`` (pooled, or an alias), without connecting."""
        transport, host, port = destination.transport, destination.host, destination.port
        flow = self._pool.get((transport, host, port, destination.server_name))
        if flow is not None and not flow.closed:
            return flow
        flow = self._aliases.get((transport, host, port))
        if flow is None or flow.closed:
            return None
        if transport == "TLS" and (destination.server_name or "").lower() not in flow.peer.fqdns:
            return None
        return flow

    async def connect(self, destination: Destination) -> Flow:
        """A flow to ``destination``: an open pooled or aliased one, else a new connection.

        Concurrent calls for one destination share one attempt. TLS verifies the server's
        certificate against ``destination.server_name``. Raises TransportError.
        """
        flow = self.pooled(destination)
        if flow is not None:
            return flow
        if self._shut:
            raise TransportError("the transport layer is shut down")
        key = (destination.transport, destination.host, destination.port, destination.server_name)
        task = self._connecting.get(key)
        if task is None:
            task = asyncio.get_running_loop().create_task(self._open(destination, key))
            self._connecting[key] = task
            task.add_done_callback(functools.partial(self._connect_done, key))
        try:
            return await asyncio.shield(task)
        except asyncio.CancelledError:
            if task.cancelled() and self._shut:
                raise TransportError("the transport layer is shut down") from None
            raise

    def register_alias(self, flow: Flow, host: str, port: int) -> None:
        """RFC 5923: send to (transport, host, port) over this inbound flow from now on.

        Over TLS the alias serves only destinations whose server_name the flow's verified
        certificate names (RFC 5923 §10), so in practice only MTLS flows; over TCP only the
        address the connection comes from (a peer cannot claim another host's).
        """
        if flow.closed or (flow.transport == "TCP" and host != flow.peer.ip):
            return
        key = ("TCP" if flow.transport == "TCP" else "TLS", host, port)
        self._aliases[key] = flow
        flow._connection.alias_keys.add(key)

    async def close(self, grace: float = 5.0, idle: Callable[[], bool] | None = None) -> None:
        """Shut down gracefully: stop accepting, wait for ``idle``, then close every flow.

        ``idle`` returns True when no transaction is pending; it is polled until it does or
        ``grace`` seconds have passed. Flows keep working meanwhile. Connections that have
        not finished closing when the grace period ends are aborted.
        """
        loop = asyncio.get_running_loop()
        deadline = loop.time() + grace
        self._closing = True
        for _spec, _bound, server in self._servers:
            server.close()
        if idle is not None:
            while loop.time() < deadline and not self._idle(idle):
                await asyncio.sleep(_IDLE_POLL)
        self._shut = True
        for task in [*self._tasks, *self._connecting.values()]:
            task.cancel()
        for connection in list(self._connections):
            connection.close("the node is shutting down", logging.DEBUG)
        if not await self._wait_released(deadline):
            for connection in list(self._connections):
                connection.abort()
            if not await self._wait_released(loop.time() + _ABORT_WAIT):
                _log.warning("%d connections did not close", len(self._connections))
        for _spec, _bound, server in self._servers:
            await server.wait_closed()
        self._servers.clear()

    # -- internals used by _Connection -------------------------------------------------------

    def _new_id(self) -> FlowId:
        return next(self._ids)

    def _spawn(self, coroutine: Coroutine[object, object, None]) -> None:
        task = asyncio.get_running_loop().create_task(coroutine)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    def _admit(self, remote: tuple[str, int]) -> bool:
        ip = remote[0]
        count = self._per_ip.get(ip, 0)
        limit = self.limits.max_connections_per_ip
        if count >= limit:
            _log.warning(
                "refusing connection from %s: %d connections from %s already open (limit %d)",
                _address(remote),
                count,
                ip,
                limit,
            )
            return False
        self._per_ip[ip] = count + 1
        return True

    def _forget(self, connection: _Connection) -> None:
        """Stop handing out a closing flow (by id, from the pool, by alias)."""
        flow = connection.flow
        if flow is None:
            return
        if self._flows.get(flow.id) is flow:
            del self._flows[flow.id]
        for pool_key in connection.pool_keys:
            if self._pool.get(pool_key) is flow:
                del self._pool[pool_key]
        for alias_key in connection.alias_keys:
            if self._aliases.get(alias_key) is flow:
                del self._aliases[alias_key]

    def _release(self, connection: _Connection) -> None:
        """The socket is gone: stop counting it."""
        self._connections.discard(connection)
        ip = connection._counted_ip
        if ip is not None:
            left = self._per_ip[ip] - 1
            if left:
                self._per_ip[ip] = left
            else:
                del self._per_ip[ip]
        waiter = self._all_released
        if waiter is not None and not self._connections and not waiter.done():
            waiter.set_result(None)

    # -- internals -----------------------------------------------------------------------------

    async def _open(self, destination: Destination, key: _PoolKey) -> Flow:
        where = _address((destination.host, destination.port))
        tls: ssl.SSLContext | None = None
        if destination.transport == "TLS":
            tls = self._client_ssl
            if tls is None:
                raise TransportError(f"cannot open TLS to {where}: no TLS client context")
        loop = asyncio.get_running_loop()
        connection = _Connection(self, destination.transport, inbound=False, tls=tls)
        timeout = self.limits.connect_timeout
        try:
            async with asyncio.timeout(timeout):
                raw, _protocol = await loop.create_connection(
                    lambda: connection,
                    destination.host,
                    destination.port,
                    local_addr=self._local_addr,
                )
        except TimeoutError:
            raise TransportError(f"timed out after {timeout} s connecting to {where}") from None
        except ConnectionRefusedError:
            raise TransportError(f"connection refused by {where}") from None
        except OSError as exc:
            raise TransportError(f"cannot connect to {where}: {_os_reason(exc)}") from None
        if self._shut:
            connection.abort()
            raise TransportError("the transport layer is shut down")
        if tls is not None and not connection.closed:
            try:
                await connection.handshake(raw, destination.server_name)
            except TransportError as exc:
                raise TransportError(
                    f"TLS handshake with {destination.server_name} ({where}) failed: {exc.reason}"
                ) from None
        flow = connection.flow
        if flow is None or flow.closed:
            raise TransportError(f"{where} closed the connection at once")
        self._pool[key] = flow
        connection.pool_keys.add(key)
        _log.debug("opened %r", flow)
        return flow

    def _connect_done(self, key: _PoolKey, task: asyncio.Task[Flow]) -> None:
        if self._connecting.get(key) is task:
            del self._connecting[key]
        if not task.cancelled():
            task.exception()  # retrieved here: every waiter gets it through shield()

    async def _wait_released(self, deadline: float) -> bool:
        if not self._connections:
            return True
        loop = asyncio.get_running_loop()
        self._all_released = loop.create_future()
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout_at(deadline):
                await self._all_released
        return not self._connections

    @staticmethod
    def _idle(idle: Callable[[], bool]) -> bool:
        try:
            return idle()
        except Exception:
            _log.exception("idle() failed during shutdown; closing flows now")
            return True
