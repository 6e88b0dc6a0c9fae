"""Prometheus metrics of a running node: a collector that reads the node's ``Meter`` and
its live state when scraped (nothing is updated per change), and a small HTTP listener on
the event loop that serves ``GET /metrics`` on the configured address only.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Iterator

from prometheus_client import CollectorRegistry, ProcessCollector
from prometheus_client.core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
    Metric,
)
from prometheus_client.exposition import choose_encoder
from prometheus_client.registry import Collector

from intrafed import __version__
from intrafed.config.model import MetricsListener
from intrafed.core.meter import LATENCY_BUCKETS, Meter
from intrafed.node import Node
from intrafed.routing.probe import hop_of
from intrafed.sip.transaction import NextHop, Target

logger = logging.getLogger(__name__)

MAX_REQUEST_HEAD = 8192
"""An HTTP request head longer than this is refused unread."""
READ_TIMEOUT = 5.0
"""Seconds a scraper has to send its request head."""
MAX_CLIENTS = 16
"""Scrapes served at once; more connections are closed at once."""


def _hop_label(target: Target) -> str:
    if isinstance(target, NextHop):
        return f"{target.transport} {target.host}:{target.port}"
    return f"flow {target}"


class NodeCollector(Collector):
    """The metrics of ``node``, read at scrape time (its ``meter`` holds the counters)."""

    def __init__(self, node: Node, meter: Meter) -> None:
        self._node = node
        self._meter = meter

    def collect(self) -> Iterator[Metric]:
        yield from self._counters()
        yield from self._live()

    def _counters(self) -> Iterator[Metric]:
        meter, node = self._meter, self._node
        requests = CounterMetricFamily(
            "intrafed_sip_requests",
            "SIP requests received (in) or sent (out), by method and by whom they come "
            "from or go to (peer_partition, client, other).",
            labels=("direction", "method", "party"),
        )
        for labels, count in meter.requests.copy().items():
            requests.add_metric(labels, count)
        yield requests
        responses = CounterMetricFamily(
            "intrafed_sip_responses",
            "SIP responses received (in) or sent (out), by CSeq method, status class and party.",
            labels=("direction", "method", "status_class", "party"),
        )
        for labels4, count in meter.responses.copy().items():
            responses.add_metric(labels4, count)
        yield responses
        latency = HistogramMetricFamily(
            "intrafed_sip_transaction_duration_seconds",
            "Seconds from a request the node sent to its final response, by method and party.",
            labels=("method", "party"),
        )
        for (method, party), histogram in list(meter.latency.items()):
            cumulative, buckets = 0, []
            for bound, count in zip(
                (*LATENCY_BUCKETS, float("inf")), histogram.counts, strict=True
            ):
                cumulative += count
                buckets.append(("+Inf" if bound == float("inf") else repr(bound), cumulative))
            latency.add_metric((method, party), buckets, histogram.total)
        yield latency
        decisions = CounterMetricFamily(
            "intrafed_authorization_decisions",
            "Authorization decisions on requests: accept, challenge or reject, by rule.",
            labels=("decision", "rule"),
        )
        for labels2, count in meter.authorization.copy().items():
            decisions.add_metric(labels2, count)
        yield decisions
        limited = CounterMetricFamily(
            "intrafed_rate_limit_rejections",
            "Requests refused with 503 by the rate limit of their class.",
            labels=("rate_class",),
        )
        for rate_class, count in meter.rate_limited.copy().items():
            limited.add_metric((rate_class,), count)
        yield limited
        tls = CounterMetricFamily(
            "intrafed_tls_handshake_failures",
            "Failed TLS handshakes by listener transport, direction and reason.",
            labels=("transport", "direction", "reason"),
        )
        for labels3, count in meter.tls_failures.copy().items():
            tls.add_metric(labels3, count)
        yield tls
        failovers = CounterMetricFamily(
            "intrafed_route_failovers",
            "Requests sent to the next static route because this next hop failed.",
            labels=("next_hop",),
        )
        proxy = node.core.proxy
        for target, count in (proxy.failovers.copy() if proxy is not None else {}).items():
            failovers.add_metric((_hop_label(target),), count)
        yield failovers
        writer = node.state_writer
        yield CounterMetricFamily(
            "intrafed_store_errors",
            "Failed writes to the state store (bindings, subscriptions, publications).",
            value=writer.faults.failures if writer is not None else 0,
        )

    def _live(self) -> Iterator[Metric]:
        node, wall = self._node, time.time()
        info = GaugeMetricFamily(
            "intrafed_node_info", "The node's name and version.", labels=("node", "version")
        )
        info.add_metric((node.settings.name, __version__), 1)
        yield info
        counts = [len(node.registrar.bindings(aor, wall)) for aor in node.settings.users]
        yield GaugeMetricFamily(
            "intrafed_registrations", "Live registered contacts (bindings).", value=sum(counts)
        )
        yield GaugeMetricFamily(
            "intrafed_registered_users",
            "Users with at least one live binding.",
            value=sum(1 for count in counts if count),
        )
        yield GaugeMetricFamily(
            "intrafed_subscriptions",
            "Live presence subscriptions.",
            value=len(node.presence.subscription_rows()),
        )
        yield GaugeMetricFamily(
            "intrafed_publications",
            "Live presence publications (PUBLISH).",
            value=len(node.presence.publication_rows(wall)),
        )
        yield GaugeMetricFamily(
            "intrafed_pending_transactions",
            "SIP transactions in progress.",
            value=node.transactions.pending,
        )
        yield GaugeMetricFamily(
            "intrafed_connections",
            "Open sockets, those still in their TLS handshake included.",
            value=node.transport.connection_count,
        )
        flows = GaugeMetricFamily(
            "intrafed_flows",
            "Open connections ready for SIP, by transport and by who opened them.",
            labels=("transport", "direction"),
        )
        tally: dict[tuple[str, str], int] = {}
        for flow in node.transport.open_flows():
            key = (flow.transport, "outbound" if flow.outbound else "inbound")
            tally[key] = tally.get(key, 0) + 1
        for labels, count in sorted(tally.items()):
            flows.add_metric(labels, count)
        yield flows
        health = GaugeMetricFamily(
            "intrafed_next_hop_up",
            "1 when a static route's next hop is usable, 0 while it is down.",
            labels=("next_hop",),
        )
        hops = node.core.router.hops
        now = time.monotonic()
        for hop in dict.fromkeys(hop_of(route) for route in node.settings.routes):
            health.add_metric((_hop_label(hop),), 0 if hops.down_reason(hop, now) else 1)
        yield health


def registry_of(node: Node, meter: Meter) -> CollectorRegistry:
    """A registry with the node's metrics and the process's (CPU, memory, open files)."""
    registry = CollectorRegistry(auto_describe=False)
    registry.register(NodeCollector(node, meter))
    ProcessCollector(registry=registry)
    return registry


class MetricsServer:
    """Serves ``GET /metrics`` of ``registry`` over HTTP/1.1 on (``ip``, ``port``) only."""

    def __init__(self, registry: CollectorRegistry, ip: str, port: int) -> None:
        self._registry = registry
        self._address = (ip, port)
        self._server: asyncio.Server | None = None
        self._clients = 0

    async def start(self) -> tuple[str, int]:
        """Listen; the bound address. Raises OSError when the address cannot be bound."""
        self._server = await asyncio.start_server(
            self._serve, *self._address, limit=MAX_REQUEST_HEAD
        )
        sockname = self._server.sockets[0].getsockname()
        return str(sockname[0]), int(sockname[1])

    async def close(self) -> None:
        """Stop listening."""
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()
            self._server = None

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        if self._clients >= MAX_CLIENTS:
            writer.close()
            return
        self._clients += 1
        try:
            try:
                head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), READ_TIMEOUT)
            except (asyncio.IncompleteReadError, asyncio.LimitOverrunError, TimeoutError):
                return
            writer.write(self._answer(head))
            await writer.drain()
        except OSError:
            pass  # the scraper went away
        finally:
            self._clients -= 1
            writer.close()

    def _answer(self, head: bytes) -> bytes:
        lines = head.split(b"\r\n")
        parts = lines[0].split(b" ")
        if len(parts) != 3 or not parts[2].startswith(b"HTTP/1."):
            return _response(400, "Bad Request", b"not an HTTP/1.x request line\n")
        method, target = parts[0], parts[1]
        if method not in (b"GET", b"HEAD"):
            return _response(405, "Method Not Allowed", b"only GET /metrics\n")
        if target.partition(b"?")[0] != b"/metrics":
            return _response(404, "Not Found", b"metrics are at /metrics\n")
        accept = ""
        for line in lines[1:]:
            name, _, value = line.partition(b":")
            if name.strip().lower() == b"accept":
                accept = value.strip().decode("latin-1")
        encoder, content_type = choose_encoder(accept)
        try:
            body = encoder(self._registry)
        except Exception:
            logger.exception("collecting the metrics failed")
            return _response(500, "Internal Server Error", b"collecting the metrics failed\n")
        return _response(200, "OK", b"" if method == b"HEAD" else body, content_type)


def _response(
    status: int, reason: str, body: bytes, content_type: str = "text/plain; charset=utf-8"
) -> bytes:
    head = (
        f"HTTP/1.1 {status} {reason}\r\nContent-Type: {content_type}\r\n"
        f"Content-Length: {len(body)}\r\nConnection: close\r\n\r\n"
    )
    return head.encode("latin-1") + body


async def serve_metrics(
    node: Node, meter: Meter, listener: MetricsListener
) -> MetricsServer | None:
    """Start serving the metrics of ``node`` on ``listener``; None (and an error naming
    why) when the address cannot be bound: the node runs on without metrics."""
    server = MetricsServer(registry_of(node, meter), listener.ip, listener.port)
    try:
        host, port = await server.start()
    except OSError as exc:
        logger.error("metrics unavailable: cannot listen on %s: %s", listener, exc.strerror or exc)
        return None
    logger.info("metrics on http://%s/metrics", MetricsListener(host, port))
    return server
