"""Every open connection of one ``TransportLayer``: flows by id, the outbound pool, RFC 5923
aliases, per-IP counts and write batching (DESIGN §5, §8, §9).

Connections report here through the public methods (opened, ready, forget, released …);
the pool never touches a connection's state, and a connection never touches the pool's.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import logging
from collections.abc import Callable, Coroutine
from typing import TYPE_CHECKING

from intrafed.sip import FramingError
from intrafed.transport.flows import Destination, FlowId, TransportLimits

if TYPE_CHECKING:
    from intrafed.transport.connection import Connection, Flow

_log = logging.getLogger("intrafed.transport.layer")

MessageHandler = Callable[["Flow", bytes], None]
BadStreamHandler = Callable[["Flow", FramingError], "bytes | None"]
PoolKey = tuple[str, str, int, str | None]
AliasKey = tuple[str, str, int]


def address_text(address: tuple[str, int]) -> str:
    """``ip:port`` as logs show it (IPv6 in brackets)."""
    host, port = address
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


class ConnectionPool:
    """The connections of one node and the indexes the node finds flows by.

    ``on_message`` and ``on_bad_stream`` are the node's handlers (see ``TransportLayer``);
    ``on_closed`` is called once when a flow that was handed out closes.
    """

    def __init__(
        self,
        limits: TransportLimits,
        on_message: MessageHandler,
        on_bad_stream: BadStreamHandler,
        on_closed: Callable[[Flow], None],
    ) -> None:
        self.limits = limits
        self.on_message = on_message
        self.on_bad_stream = on_bad_stream
        self._on_closed = on_closed
        self.stopping = False
        """The node stopped reading new requests (a graceful close has begun)."""
        self.shut = False
        """Flows are being closed: no new connection is made or accepted."""
        self.batching = 0
        """Nonzero while frames are being handled: writes are gathered meanwhile."""
        self.written: list[Connection] = []
        """Connections with gathered writes, flushed when the batch ends."""
        self.on_tls_failure: Callable[[str, str, str], None] | None = None
        """Told (transport, "inbound" | "outbound", ``failure_kind``) of each failed TLS
        handshake."""
        self._ids = itertools.count(1)
        self._flows: dict[FlowId, Flow] = {}
        self._outbound: dict[PoolKey, Flow] = {}
        self._aliases: dict[AliasKey, Flow] = {}
        self._pool_keys: dict[FlowId, set[PoolKey]] = {}
        self._alias_keys: dict[FlowId, set[AliasKey]] = {}
        self._connections: set[Connection] = set()
        self._per_ip: dict[str, int] = {}
        self._tasks: set[asyncio.Task[None]] = set()
        self._all_released: asyncio.Future[None] | None = None

    def flush_written(self) -> None:
        """Write what the batch gathered: one write per connection (DESIGN §9)."""
        written, self.written = self.written, []
        for connection in written:
            connection.flush()

    # -- what the layer asks ---------------------------------------------------------------

    def flow(self, flow_id: FlowId) -> Flow | None:
        """The open flow with this id, or None."""
        return self._flows.get(flow_id)

    def pooled(self, destination: Destination) -> Flow | None:
        """An open flow to ``destination`` (pooled, or an alias)."""
        transport, host, port = destination.transport, destination.host, destination.port
        flow = self._outbound.get((transport, host, port, destination.server_name))
        if flow is not None and not flow.closed:
            return flow
        flow = self._aliases.get((transport, host, port))
        if flow is None or flow.closed:
            return None
        if transport == "TLS" and (destination.server_name or "").lower() not in flow.peer.fqdns:
            return None
        return flow

    def add_outbound(self, key: PoolKey, flow: Flow) -> None:
        """``flow`` serves ``key`` from now on."""
        self._outbound[key] = flow
        self._pool_keys.setdefault(flow.id, set()).add(key)

    def add_alias(self, key: AliasKey, flow: Flow) -> None:
        """``flow`` serves the alias ``key`` from now on (RFC 5923)."""
        self._aliases[key] = flow
        self._alias_keys.setdefault(flow.id, set()).add(key)

    @property
    def connections(self) -> list[Connection]:
        """The connections whose socket is not yet released."""
        return list(self._connections)

    @property
    def open_flows(self) -> list[Flow]:
        """The flows handed out and not yet closed."""
        return list(self._flows.values())

    def cancel_tasks(self) -> None:
        """Cancel the handshakes still running for inbound connections."""
        for task in self._tasks:
            task.cancel()

    async def wait_released(self, deadline: float) -> bool:
        """Wait until every connection is released or the loop time ``deadline``; whether
        all are."""
        if not self._connections:
            return True
        loop = asyncio.get_running_loop()
        self._all_released = loop.create_future()
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout_at(deadline):
                await self._all_released
        return not self._connections

    # -- what a connection reports ---------------------------------------------------------

    def admit(self, remote: tuple[str, int]) -> bool:
        """Count an inbound connection from ``remote``; False (logged) over the per-IP limit."""
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

    def opened(self, connection: Connection) -> FlowId:
        """A socket is open: the id of its flow."""
        self._connections.add(connection)
        return next(self._ids)

    def ready(self, flow: Flow) -> None:
        """The flow is ready (after any handshake): hand it out by id."""
        self._flows[flow.id] = flow

    def tls_failed(self, transport: str, direction: str, kind: str) -> None:
        """A TLS handshake failed (``on_tls_failure`` counts it)."""
        if self.on_tls_failure is not None:
            self.on_tls_failure(transport, direction, kind)

    def spawn(self, coroutine: Coroutine[object, object, None]) -> None:
        """Run a connection's task, cancelled by ``cancel_tasks``."""
        task = asyncio.get_running_loop().create_task(coroutine)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    def forget(self, flow: Flow) -> None:
        """Stop handing out a closing flow (by id, from the pool, by alias)."""
        if self._flows.get(flow.id) is flow:
            del self._flows[flow.id]
            try:
                self._on_closed(flow)
            except Exception:
                _log.exception("closed-flow handler failed on %r", flow)
        for pool_key in self._pool_keys.pop(flow.id, ()):
            if self._outbound.get(pool_key) is flow:
                del self._outbound[pool_key]
        for alias_key in self._alias_keys.pop(flow.id, ()):
            if self._aliases.get(alias_key) is flow:
                del self._aliases[alias_key]

    def released(self, connection: Connection, counted_ip: str | None) -> None:
        """The socket is gone: stop counting it (and its IP, when ``admit`` counted it)."""
        self._connections.discard(connection)
        if counted_ip is not None:
            left = self._per_ip[counted_ip] - 1
            if left:
                self._per_ip[counted_ip] = left
            else:
                del self._per_ip[counted_ip]
        waiter = self._all_released
        if waiter is not None and not self._connections and not waiter.done():
            waiter.set_result(None)
