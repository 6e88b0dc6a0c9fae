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
import ssl
from collections.abc import Callable, Coroutine

from intrafed.transport.connection import (
    MISSING_CLIENT_AUTH,
    AliasKey,
    BadStreamHandler,
    Flow,
    MessageHandler,
    PoolKey,
    _Connection,
    address_text,
)
from intrafed.transport.errors import TransportError
from intrafed.transport.flows import Destination, FlowId, ListenerSpec, TransportLimits
from intrafed.transport.tls import os_reason

__all__ = ["MISSING_CLIENT_AUTH", "Flow", "TransportLayer"]

_log = logging.getLogger(__name__)
DEFAULT_LIMITS = TransportLimits()

_IDLE_POLL = 0.05
"""Seconds between two calls of the ``idle`` callable during a graceful close."""
_LINGER = 1.0
"""Seconds a half-closed flow at least waits for the peer to close its side too."""
_ABORT_WAIT = 1.0
"""Seconds to wait for aborted connections to report they are gone."""


class TransportLayer:
    """The listeners, connections and outbound pool of one node.

    ``on_message(flow, frame)`` gets every whole frame, synchronously from the read
    callback. ``on_bad_stream(flow, error)`` is called when framing is lost and returns the
    bytes to write before the connection is closed (e.g. a 400 or 513), or None. An
    exception from either is logged and closes that flow only. ``on_closed(flow)`` is
    called once when a flow that was handed out closes (by either side, or on error).
    """

    def __init__(
        self,
        *,
        on_message: MessageHandler,
        on_bad_stream: BadStreamHandler,
        on_closed: Callable[[Flow], None] = lambda flow: None,
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
        self._on_closed = on_closed
        self._server_contexts = {"TLS": server_ssl, "MTLS": mtls_ssl}
        self._client_ssl = client_ssl
        self._ids = itertools.count(1)
        self._flows: dict[FlowId, Flow] = {}
        self._pool: dict[PoolKey, Flow] = {}
        self._aliases: dict[AliasKey, Flow] = {}
        self._connecting: dict[PoolKey, asyncio.Task[Flow]] = {}
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
            where = address_text((spec.bind_address, spec.port))
            raise TransportError(
                f"cannot listen on {where} ({spec.transport}): {os_reason(exc)}"
            ) from exc
        sockname = server.sockets[0].getsockname()
        bound = (str(sockname[0]), int(sockname[1]))
        self._servers.append((spec, bound, server))
        _log.info("listening on %s (%s)", address_text(bound), spec.transport)
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
        """Shut down gracefully: stop accepting and reading new requests, wait for ``idle``,
        then close every flow.

        ``idle`` returns True when no transaction is pending; it is polled until it does or
        ``grace`` seconds have passed. Meanwhile flows still send, and deliver responses,
        ACK and CANCEL; a new request is not handed on. Then each TCP flow writes what is
        queued and a FIN, and waits (reading and discarding) for the peer to close, so no
        peer gets a reset. Connections still open when the grace period (at least
        ``_LINGER`` s after the FINs) ends are aborted.
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
        if not await self._wait_released(max(deadline, loop.time() + _LINGER)):
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
                address_text(remote),
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
            try:
                self._on_closed(flow)
            except Exception:
                _log.exception("closed-flow handler failed on %r", flow)
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

    async def _open(self, destination: Destination, key: PoolKey) -> Flow:
        where = address_text((destination.host, destination.port))
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
            raise TransportError(f"cannot connect to {where}: {os_reason(exc)}") from None
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

    def _connect_done(self, key: PoolKey, task: asyncio.Task[Flow]) -> None:
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
