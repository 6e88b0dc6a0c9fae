"""The control API of a running node (``control.ControlTarget``): status, reload with a
typed refusal, route explain through the node's own routing and authorization, the live
registrations and subscriptions, and the SIP trace. ``intrafed serve`` serves it on the
home's control socket; SIGHUP reloads through the same ``reload``.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Literal, TypeVar

from intrafed.config.document import changes
from intrafed.config.model import ConfigError
from intrafed.config.values import check_aor
from intrafed.control.protocol import JsonObject, Refused
from intrafed.node import Node, settings_with_tls
from intrafed.observe.trace import TraceFilter, TraceRecord
from intrafed.observe.trace_files import TraceWriter, trace_directory
from intrafed.pki import TlsContexts
from intrafed.sip import RemoteSipError, parse_uri
from intrafed.store import Store
from intrafed.transport import Flow
from intrafed.transport.pool import address_text

logger = logging.getLogger(__name__)
_Labels = TypeVar("_Labels", bound=tuple[str, ...])


def reload_staged(
    home: Path, node: Node, store: Store, tls: TlsContexts | None
) -> JsonObject | Refused:
    """Apply the staged configuration of ``store`` to ``node`` (and ``tls``) without
    dropping connections, and make it the running one; refused, with nothing changed,
    when it needs a restart or does not load."""
    try:
        staged = store.load("staged")
        reason = None
        if staged.metrics != store.load("running").metrics:
            reason = "the metrics listener changed: use intrafed service restart"
        if reason is None and tls is not None:
            reason = tls.reload(staged)
        if reason is None:
            reason = node.reload(settings_with_tls(staged, tls))
        if reason is None:
            applied = changes(store.load("running"), staged)
            store.promote(staged)
            return {"applied": applied}
    except ConfigError as exc:
        reason = str(exc)
    return Refused(reason, f"intrafed service restart --home {home}")


class NodeControl:
    """Answers control requests about ``node`` (of ``home``), up since ``started``;
    ``reload`` applies the staged configuration."""

    def __init__(
        self, home: Path, node: Node, started: float, reload: Callable[[], JsonObject | Refused]
    ) -> None:
        self._home = home
        self._node = node
        self._started = started
        self._reload = reload
        self._trace: TraceWriter | None = None
        self._flush_scheduled = False

    def status(self) -> JsonObject:
        """Who the node is, since when, and how much live state it holds."""
        node, wall = self._node, time.time()
        registered = self._registered(wall)
        return {
            "name": node.settings.name,
            "address": node.settings.address,
            "uptime": round(wall - self._started),
            "registered_users": len(registered),
            "registrations": sum(len(node.registrar.bindings(aor, wall)) for aor in registered),
            "subscriptions": len(node.presence.subscription_rows()),
            "pending_transactions": node.transactions.pending,
            "tracing": self._trace is not None,
            "pool_members": sorted(node.core.pool.members),
        }

    def _registered(self, wall: float) -> list[str]:
        """The provisioned users with a live binding."""
        users = self._node.settings.users
        return [aor for aor in self._node.registrar.registered(wall) if aor in users]

    def reload(self) -> JsonObject | Refused:
        """Apply the staged configuration without dropping connections, or say why not
        (what SIGHUP does)."""
        return self._reload()

    def explain(self, uri: str, source: str | None) -> JsonObject:
        """How the node would authorize and route a request for ``uri`` from ``source``
        right now (its own code path, next-hop health included)."""
        try:
            parsed = parse_uri(uri)
        except RemoteSipError as exc:
            return {"uri": uri, "decision": "refuse", "status": 416, "rule": exc.reason}
        return self._node.core.router.explain(parsed, source)

    def registrations(self, user: str | None) -> list[JsonObject]:
        """The live bindings (of ``user`` only, when given), with whether the connection
        each came over is still open."""
        node, wall = self._node, time.time()
        found = []
        for aor in sorted(self._registered(wall)):
            if user is not None and not _is(user, aor):
                continue
            for binding in node.registrar.bindings(aor, wall):
                open_flow = binding.flow is not None and node.transport.flow(binding.flow)
                found.append(
                    {
                        "aor": aor,
                        "contact": binding.contact,
                        "expires_in": binding.remaining(wall),
                        "q": binding.q,
                        "flow_bound": binding.flow_bound,
                        "connected": bool(open_flow),
                    }
                )
        return found

    def subscriptions(self, user: str | None) -> list[JsonObject]:
        """The live presence subscriptions (where ``user`` watches or is watched)."""
        wall = time.time()
        return [
            {
                "presentity": row.presentity,
                "watcher": row.watcher,
                "event": row.event,
                "expires_in": max(0, round(row.expires_at - wall)),
            }
            for row in sorted(
                self._node.presence.subscription_rows(), key=lambda r: (r.presentity, r.watcher)
            )
            if user is None or _is(user, row.presentity) or _is(user, row.watcher)
        ]

    def publications(self, user: str | None) -> list[JsonObject]:
        """The live publications (of ``user`` only, when given)."""
        wall = time.time()
        return [
            {
                "aor": row.aor,
                "etag": row.etag,
                "state": row.state,
                "note": row.note,
                "expires_in": max(0, round(row.expires_at - wall)),
            }
            for row in sorted(self._node.presence.publication_rows(wall), key=lambda r: r.aor)
            if user is None or _is(user, row.aor)
        ]

    def connections(self) -> list[JsonObject]:
        """The open connections, oldest first."""
        return [
            {
                "flow": flow.id,
                "transport": flow.transport,
                "direction": "outbound" if flow.outbound else "inbound",
                "local": address_text(flow.local),
                "remote": address_text(flow.remote),
                "names": list(flow.peer.fqdns),
            }
            for flow in sorted(self._node.transport.open_flows(), key=lambda flow: flow.id)
        ]

    def stats(self) -> JsonObject:
        """The live counts, and the counters of the node's meter (None when metrics are
        off: nothing is counted then)."""
        node = self._node
        live = self.status()
        live["connections"] = node.transport.connection_count
        meter = node.core.meter
        writer = node.state_writer
        counted: JsonObject | None = None
        if meter is not None:
            proxy = node.core.proxy
            counted = {
                "requests": _rows(meter.requests, ("direction", "method", "party")),
                "responses": _rows(
                    meter.responses, ("direction", "method", "status_class", "party")
                ),
                "authorization": _rows(meter.authorization, ("decision", "rule")),
                "rate_limited": dict(meter.rate_limited),
                "tls_handshake_failures": _rows(
                    meter.tls_failures, ("transport", "direction", "reason")
                ),
                "route_failovers": sum(proxy.failovers.values()) if proxy is not None else 0,
                "store_errors": writer.faults.failures if writer is not None else 0,
            }
        return {"live": live, "counted": counted}

    def trace(self, on: bool, user: str | None, method: str | None) -> JsonObject:
        """Start recording every message (or those of ``user`` / ``method``) into the
        home's trace directory, or stop."""
        if self._trace is not None:
            self._trace.close()
            self._trace = None
            self._node.wire = None
        directory = trace_directory(self._home)
        if on:
            self._trace = TraceWriter(directory, TraceFilter(user=user, method=method))
            self._node.wire = self._record
        return {"tracing": on, "directory": str(directory), "user": user, "method": method}

    def user_moved(self, user: str) -> JsonObject | Refused:
        """End the presence subscriptions of ``user``, moved to the other partition: each
        watcher gets terminated;reason=deactivated and subscribes again, reaching the new
        home. Refused while ``user`` is still homed here (reload first)."""
        try:
            aor = check_aor("user", user)
        except ConfigError as exc:
            return Refused(str(exc), "give USER@DOMAIN")
        if aor in self._node.settings.users:
            return Refused(
                f"{aor} is still a user of this node",
                f"remove it and reload first: intrafed user move … --from {self._home}",
            )
        return {"user": aor, "ended": self._node.end_user(aor)}

    def close(self) -> None:
        """Stop the trace, if any (the node is stopping)."""
        self.trace(False, None, None)

    def _record(self, direction: str, flow: Flow, message: bytes) -> None:
        writer = self._trace
        if writer is None:
            return
        way: Literal["in", "out"] = "in" if direction == "in" else "out"
        record = TraceRecord(
            time.time(),
            self._node.settings.name,
            way,
            flow.transport,
            flow.local,
            flow.remote,
            message,
        )
        try:
            writer.write(record)
        except OSError as exc:  # a full disk stops the trace, never the node
            logger.warning("SIP trace stopped: %s", exc)
            self.close()
            return
        if not self._flush_scheduled:  # once per loop turn, not once per message
            self._flush_scheduled = True
            asyncio.get_running_loop().call_soon(self._flush_trace)

    def _flush_trace(self) -> None:
        self._flush_scheduled = False
        if self._trace is not None:
            try:
                self._trace.flush()
            except OSError as exc:
                logger.warning("SIP trace stopped: %s", exc)
                self.close()


def _rows(counts: Mapping[_Labels, int], names: tuple[str, ...]) -> list[JsonObject]:
    """``counts`` as rows of named labels and a count, the largest first."""
    ranked = sorted(counts.items(), key=lambda item: (-item[1], item[0]))
    return [{**dict(zip(names, labels, strict=True)), "count": count} for labels, count in ranked]


def _is(user: str, aor: str) -> bool:
    """Whether ``user`` (an address, or a user part) names ``aor``."""
    wanted = user.lower()
    return aor.lower() == wanted or aor.lower().partition("@")[0] == wanted
