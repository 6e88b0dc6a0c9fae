"""The asyncio adapter: listeners, outbound connects and graceful close (DESIGN §5, §8).

Bytes in: each connection feeds a ``StreamFramer`` and hands every whole frame to
``on_message`` with the ``Flow`` it came on. Bytes out: ``Flow.send``. Nothing here looks
inside a message or decides where it goes. The open connections live in a
``ConnectionPool``.
"""

from __future__ import annotations

import asyncio
import functools
import ipaddress
import logging
import socket
import ssl
from asyncio.staggered import staggered_race
from collections.abc import Callable

from intrafed.transport.connection import MISSING_CLIENT_AUTH, Connection, Flow
from intrafed.transport.errors import TransportError
from intrafed.transport.flows import Destination, FlowId, ListenerSpec, TransportLimits
from intrafed.transport.pool import (
    BadStreamHandler,
    ConnectionPool,
    MessageHandler,
    PoolKey,
    address_text,
)
from intrafed.transport.tls import os_reason

__all__ = ["DRAIN_IDLE_WAIT", "MISSING_CLIENT_AUTH", "Flow", "TransportLayer"]

_log = logging.getLogger(__name__)
DEFAULT_LIMITS = TransportLimits()

DRAIN_IDLE_WAIT = 1.0
"""Seconds a drained layer waits for an instant with no transaction pending to close the
connections clients keep open (then it closes them all the same)."""
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
        self._pool = ConnectionPool(limits, on_message, on_bad_stream, on_closed)
        self._server_contexts = {"TLS": server_ssl, "MTLS": mtls_ssl}
        self._client_ssl = client_ssl
        self._connecting: dict[PoolKey, asyncio.Task[Flow]] = {}
        self._handed_over = False
        """Whether a process that took over the listeners serves all the flows now."""
        self._servers: list[tuple[ListenerSpec, tuple[str, int], asyncio.Server]] = []

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
        return self._pool.flow(flow_id)

    def on_tls_failure(self, handler: Callable[[str, str, str], None] | None) -> None:
        """Call ``handler(transport, "inbound" | "outbound", kind)`` on each failed TLS
        handshake (``transport.tls.failure_kind`` words the kind)."""
        self._pool.on_tls_failure = handler

    def open_flows(self) -> list[Flow]:
        """Every open flow (a connection once its handshake is done)."""
        return self._pool.open_flows

    @property
    def connection_count(self) -> int:
        """Sockets open, those still in their TLS handshake included."""
        return len(self._pool.connections)

    async def listen(
        self, spec: ListenerSpec, inherited: socket.socket | None = None
    ) -> tuple[str, int]:
        """Start a listener and return the (ip, port) it is bound to; with ``inherited``,
        accept on that listening socket (handed over by the process this one replaces)
        instead of binding a new one.

        TLS and MTLS listeners accept TCP and then run the handshake themselves, so every
        failed handshake is logged with the peer and the reason.
        """
        if self._pool.stopping:
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

        def accept() -> Connection:
            # The context is looked up per connection, so use_contexts() applies to the
            # next one while live flows keep theirs.
            return Connection(
                self._pool,
                spec.transport,
                inbound=True,
                tls=self._server_contexts.get(spec.transport),
            )

        try:
            if inherited is not None:
                server = await loop.create_server(accept, sock=inherited, backlog=1024)
            else:
                server = await loop.create_server(
                    accept, spec.bind_address, spec.port, backlog=1024
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

    def listening_fds(self) -> list[tuple[ListenerSpec, int]]:
        """Every listener's socket descriptor, to hand to a process that takes over (it
        accepts from the same queue: no connection waiting there is lost)."""
        return [
            (spec, sock.fileno())
            for spec, _bound, server in self._servers
            for sock in server.sockets
        ]

    async def drain(self, grace: float, idle: Callable[[], bool]) -> None:
        """Another process accepts from now on: close the listeners, then close each
        connection at an instant when ``idle`` (no transaction pending), as soon as it has
        carried a message (each peer connects again, to the new process: a client, and a
        peer that sends over a connection we opened); a connection whose peer has not
        spoken yet is served until it does or closes, for up to ``grace`` s. Then close
        what is left at an idle instant, waiting for one up to ``DRAIN_IDLE_WAIT`` s.

        A close at an idle instant is clean (``Flow.close``): every request read has its
        answer written before the close_notify, and nothing read after is handled, so an
        intrafed peer sends what it has no answer to again, to the new process."""
        for _spec, _bound, server in self._servers:
            server.close()
        loop = asyncio.get_running_loop()
        deadline = loop.time() + grace
        while loop.time() < deadline and self.open_flows():
            if idle():
                for flow in self.open_flows():
                    if flow.outbound or flow.read_at > 0:
                        flow.close("handed over to the new process", clean=True)
                        # A NOTIFY or probe of this process now would open a connection
                        # its peer sends requests back over, soon closed in turn.
                        self._handed_over = True
            await asyncio.sleep(_IDLE_POLL)
        deadline = loop.time() + DRAIN_IDLE_WAIT
        while loop.time() < deadline and not idle():
            await asyncio.sleep(_IDLE_POLL)
        clean = idle()
        for flow in self.open_flows():
            flow.close("handed over to the new process", clean=clean)

    def pooled(self, destination: Destination) -> Flow | None:
        """An open flow to ``destination`` (pooled, or an alias), without connecting."""
        return self._pool.pooled(destination)

    async def connect(self, destination: Destination) -> Flow:
        """A flow to ``destination``: an open pooled or aliased one, else a new connection.

        Concurrent calls for one destination share one attempt. TLS verifies the server's
        certificate against ``destination.server_name``. Raises TransportError.
        """
        flow = self.pooled(destination)
        if flow is not None:
            return flow
        if self._pool.shut:
            raise TransportError("the transport layer is shut down")
        if self._handed_over:
            raise TransportError("handed over to the new process: no new connection")
        key = (destination.transport, destination.host, destination.port, destination.server_name)
        task = self._connecting.get(key)
        if task is None:
            task = asyncio.get_running_loop().create_task(self._open(destination, key))
            self._connecting[key] = task
            task.add_done_callback(functools.partial(self._connect_done, key))
        try:
            return await asyncio.shield(task)
        except asyncio.CancelledError:
            if task.cancelled() and self._pool.shut:
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
        self._pool.add_alias(("TCP" if flow.transport == "TCP" else "TLS", host, port), flow)

    async def close(self, grace: float = 5.0, idle: Callable[[], bool] | None = None) -> None:
        """Shut down gracefully: stop accepting and reading new requests, wait for ``idle``,
        then close every flow.

        ``idle`` returns True when no transaction is pending; it is polled until it does or
        ``grace`` seconds have passed. Meanwhile flows still send, and deliver responses,
        ACK and CANCEL; a new request is not handed on. Flows closed at an idle instant
        close cleanly (``Flow.close``), the others as if the process had died. Then each
        TCP flow writes what is queued and a FIN, and waits (reading and discarding) for
        the peer to close, so no peer gets a reset. Connections still open when the grace
        period (at least ``_LINGER`` s after the FINs) ends are aborted.
        """
        loop = asyncio.get_running_loop()
        deadline = loop.time() + grace
        pool = self._pool
        pool.stopping = True
        for _spec, _bound, server in self._servers:
            server.close()
        if idle is not None:
            while loop.time() < deadline and not self._idle(idle):
                await asyncio.sleep(_IDLE_POLL)
        clean = idle is None or self._idle(idle)
        pool.shut = True
        pool.cancel_tasks()
        for task in list(self._connecting.values()):
            task.cancel()
        for connection in pool.connections:
            connection.close("the node is shutting down", logging.DEBUG, clean=clean)
        if not await pool.wait_released(max(deadline, loop.time() + _LINGER)):
            for connection in pool.connections:
                connection.abort()
            if not await pool.wait_released(loop.time() + _ABORT_WAIT):
                _log.warning("%d connections did not close", len(pool.connections))
        for _spec, _bound, server in self._servers:
            await server.wait_closed()
        self._servers.clear()

    # -- internals -----------------------------------------------------------------------------

    async def _open(self, destination: Destination, key: PoolKey) -> Flow:
        where = address_text((destination.host, destination.port))
        tls: ssl.SSLContext | None = None
        if destination.transport == "TLS":
            tls = self._client_ssl
            if tls is None:
                raise TransportError(f"cannot open TLS to {where}: no TLS client context")
        loop = asyncio.get_running_loop()
        connection = Connection(self._pool, destination.transport, inbound=False, tls=tls)
        timeout = self.limits.connect_timeout
        try:
            async with asyncio.timeout(timeout):
                sock = await self._connected_socket(destination.host, destination.port)
                raw, _protocol = await loop.create_connection(lambda: connection, sock=sock)
        except TimeoutError:
            raise TransportError(f"timed out after {timeout} s connecting to {where}") from None
        except socket.gaierror as exc:
            raise TransportError(f"cannot resolve {destination.host}: {exc.strerror}") from None
        except ConnectionRefusedError:
            raise TransportError(f"connection refused by {where}") from None
        except OSError as exc:
            raise TransportError(f"cannot connect to {where}: {os_reason(exc)}") from None
        if self._pool.shut:
            connection.abort()
            raise TransportError("the transport layer is shut down")
        if tls is not None and not connection.closed:
            try:
                await connection.handshake(raw, destination.server_name)
            except TransportError as exc:
                self._pool.tls_failed("TLS", "outbound", exc.kind)
                raise TransportError(
                    f"TLS handshake with {destination.server_name} ({where}) failed: {exc.reason}",
                    exc.kind,
                ) from None
        flow = connection.flow
        if flow is None or flow.closed:
            raise TransportError(f"{where} closed the connection at once")
        self._pool.add_outbound(key, flow)
        _log.debug("opened %r", flow)
        return flow

    async def _connected_socket(self, host: str, port: int) -> socket.socket:
        """A socket connected to ``host`` (an IP address, or a name with one address per
        member): its addresses in the resolver's order, the next one started as soon as the
        previous refuses or after ``connect_attempt_delay`` without an answer (RFC 8305
        §5); the first to connect wins. Raises the refusal when every address refused,
        else the first other error."""
        try:
            literal = ipaddress.ip_address(host)
        except ValueError:
            loop = asyncio.get_running_loop()
            resolved: list[tuple[int, tuple[object, ...]]] = [
                (family, address)
                for family, _type, _proto, _name, address in await loop.getaddrinfo(
                    host, port, type=socket.SOCK_STREAM
                )
            ]
        else:  # no resolver round trip (a thread hop) for an address
            family = socket.AF_INET6 if literal.version == 6 else socket.AF_INET
            resolved = [(family, (host, port))]
        attempts = [
            functools.partial(self._connect_address, family, address)
            for family, address in resolved
        ]
        sock, _index, errors = await staggered_race(attempts, self.limits.connect_attempt_delay)
        if isinstance(sock, socket.socket):
            return sock
        failures = [error for error in errors if error is not None]
        other = [error for error in failures if not isinstance(error, ConnectionRefusedError)]
        raise (other or failures)[0]

    async def _connect_address(self, family: int, address: tuple[object, ...]) -> socket.socket:
        # IPPROTO_TCP named: asyncio sets TCP_NODELAY only on sockets that say they are TCP.
        sock = socket.socket(family, socket.SOCK_STREAM, socket.IPPROTO_TCP)
        try:
            sock.setblocking(False)
            if self._local_addr is not None:
                sock.bind(self._local_addr)
            await asyncio.get_running_loop().sock_connect(sock, address)
        except BaseException:
            sock.close()
            raise
        return sock

    def _connect_done(self, key: PoolKey, task: asyncio.Task[Flow]) -> None:
        if self._connecting.get(key) is task:
            del self._connecting[key]
        if not task.cancelled():
            task.exception()  # retrieved here: every waiter gets it through shield()

    @staticmethod
    def _idle(idle: Callable[[], bool]) -> bool:
        try:
            return idle()
        except Exception:
            _log.exception("idle() failed during shutdown; closing flows now")
            return True
