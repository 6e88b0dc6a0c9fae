"""The stateful proxy (RFC 3261 §16), sans-IO.

``StatefulProxy.handle(event, now)`` takes what the transaction layer reports and drives it
back: requests are checked (Max-Forwards, loops, Proxy-Require), authorized and routed
by the node's ``Router`` (Route headers first), forwarded with a Via and, for
dialog-creating requests, a Record-Route; responses are collected per request and the
best one is sent upstream. Every error the proxy generates carries a Warning header that
names the rule that fired.
"""

from __future__ import annotations

import hashlib
import itertools
import logging
import traceback
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

from intrafed.policy.dialogs import RouteStamp
from intrafed.services.held import Held, HeldRequests
from intrafed.services.loop_detection import loop_hash
from intrafed.sip.addressing import (
    Listener,
    choose_listener,
    hop_kind,
    next_hop_for_uri,
    response_hop,
    uri_address,
    via_address,
)
from intrafed.sip.decisions import (
    Answer,
    AwaitRegistration,
    Decision,
    Deferred,
    Fork,
    Forward,
    Reject,
    Verdict,
)
from intrafed.sip.errors import RemoteSipError
from intrafed.sip.header_values import NameAddr, Via
from intrafed.sip.headers import Headers
from intrafed.sip.message import Request, Response
from intrafed.sip.responses import local_tag, make_response, warning_value
from intrafed.sip.transaction import (
    MAGIC_COOKIE,
    AckReceived,
    ClientKey,
    ClientTimedOut,
    ClientTransportFailed,
    FlowId,
    NextHop,
    RequestReceived,
    ResponseReceived,
    ServerKey,
    ServerTimedOut,
    State,
    StrayResponse,
    Target,
    TransactionEvent,
    TransactionLayer,
)
from intrafed.sip.uri import SipUri, Uri

logger = logging.getLogger(__name__)

DEFAULT_MAX_FORWARDS = 70
# Requests whose 2xx creates a dialog: the proxy stays on the dialog's path (§16.6 step 4).
DIALOG_CREATING = frozenset({"INVITE", "SUBSCRIBE", "REFER"})
SUPPORTED_EXTENSIONS: frozenset[str] = frozenset()
# RFC 5923: our Via offers the connection for requests in the other direction.
_ALIAS = ("alias", "")


class Router(Protocol):
    """What the node decides for the proxy: who may pass, where requests go, how next
    hops fare, and which listener a flow belongs to."""

    def authorize(self, request: Request, flow: FlowId) -> Verdict:
        """Whether ``request`` may proceed (per request, in-dialog ones included)."""
        ...

    def decide(self, request: Request, flow: FlowId) -> Decision:
        """Where a request without a Route of another hop goes."""
        ...

    def dialog_target(self, uri: Uri) -> Target | Reject | None:
        """The target of an in-dialog request for the remote target ``uri``."""
        ...

    def hop_outcome(self, target: Target, failure: str | None, refused: bool) -> None:
        """A forwarded request to ``target`` was answered (``failure`` None) or failed."""
        ...

    def shed(self, request: Request, flow: FlowId, pending: int) -> Response | None:
        """The 503 for a request shed under overload, or None."""
        ...

    def listener_kind(self, flow: FlowId) -> str:
        """The listener ("TCP", "TLS", "MTLS") the flow belongs to."""
        ...


@dataclass(slots=True)
class _Branch:
    key: ClientKey
    request: Request
    target: Target
    forward: Forward
    provisional: bool = False
    done: bool = False
    cancel_pending: bool = False


@dataclass(slots=True)
class _ResponseContext:
    server_key: ServerKey
    request: Request
    routed: Request
    """The request after Route processing: what a failover branch sends again."""
    flow: FlowId
    loop: str
    branches: dict[ClientKey, _Branch] = field(default_factory=dict)
    best: Response | None = None
    final_sent: bool = False


class StatefulProxy:
    """Forwards requests statefully and relays the best response upstream."""

    def __init__(
        self,
        transactions: TransactionLayer,
        *,
        name: str,
        listeners: dict[str, Listener],
        router: Router,
        also_known_as: frozenset[tuple[str, int]] = frozenset(),
        route_stamp: RouteStamp | None = None,
    ) -> None:
        self.transactions = transactions
        self.name = name
        self.listeners = listeners
        self._router = router
        self._route_stamp = route_stamp
        self._own = {(lst.host.lower(), lst.port) for lst in listeners.values()} | also_known_as
        self._contexts: dict[ServerKey, _ResponseContext] = {}
        self._by_client: dict[ClientKey, _ResponseContext] = {}
        self._our_cancels: set[ClientKey] = set()
        self._counter = itertools.count(1)
        self.failovers: Counter[Target] = Counter()
        """Per next hop, how often a request to it went to the next alternative instead."""
        self.held = HeldRequests()
        """Requests waiting for their user to register again (``carry_out`` them then)."""

    def handle(self, event: TransactionEvent, now: float) -> None:
        """Act on one transaction event."""
        if isinstance(event, RequestReceived):
            self._on_request(event, now)
        elif isinstance(event, ResponseReceived):
            self._on_response(event.transaction, event.response, now)
        elif isinstance(event, ClientTimedOut):
            self._on_timeout(event, now)
        elif isinstance(event, ClientTransportFailed):
            rule = f"cannot reach next hop: {event.reason}"
            context = self._by_client.get(event.transaction)
            if context is not None:
                target = context.branches[event.transaction].target
                self._router.hop_outcome(target, rule, not event.written)
            # A request written to a connection that died may have been acted on: no
            # failover (DESIGN §8).
            self._on_branch_failure(event.transaction, 503, rule, now, replay=not event.written)
        elif isinstance(event, AckReceived):
            self._forward_ack(event.request, event.flow)
        elif isinstance(event, StrayResponse):
            self._forward_stray(event.response)
        elif isinstance(event, ServerTimedOut):
            logger.info("no ACK for the final response of %s", event.transaction)

    def answer_failure(self, event: TransactionEvent, error: Exception, now: float) -> str:
        """Handling ``event`` raised ``error``: answer its request, if it has one still
        unanswered (the status of a ``RemoteSipError``, else 500), and forget its state so
        nothing waits on it. Returns the line to log."""
        failure = describe_failure(error)
        if not isinstance(event, RequestReceived):
            return f"{type(event).__name__} dropped: {failure}"
        key, request = event.transaction, event.request
        context = self._contexts.pop(key, None)
        if context is not None:
            for client in context.branches:
                self._by_client.pop(client, None)
        if isinstance(error, RemoteSipError):
            status, rule = error.status, error.reason
        else:
            status = 500
            rule = f"internal error ({type(error).__name__}) while handling {request.method}"
        answered = "no answer"
        if self.transactions.server_state(key) in (State.TRYING, State.PROCEEDING):
            try:
                self._reject(key, request, status, rule, now, rule)
                answered = f"answered {status}"
            except Exception as exc:  # the request itself cannot be answered
                answered = f"no answer ({describe_failure(exc)})"
        if self.transactions.server_state(key) is not State.COMPLETED:
            self.transactions.terminate_server(key)
        what = f"{request.method} {request.uri} (Call-ID {request.call_id!r})"
        return f"{what}: {failure}, {answered}"

    # -- requests ------------------------------------------------------------------

    def _reject(
        self,
        key: ServerKey,
        request: Request,
        status: int,
        rule: str,
        now: float,
        reason: str | None = None,
    ) -> None:
        warning = ("Warning", warning_value(self.name, rule))
        extra = [warning]
        if status == 420:
            extra.append(("Unsupported", ", ".join(request.headers.get_list("proxy-require"))))
        response = make_response(request, status, reason, to_tag=self._tag(key), headers=extra)
        self.transactions.send_response(key, response, now)

    def _tag(self, key: ServerKey) -> str:
        return local_tag(*key)

    def listener_for(self, target: Target) -> Listener:
        """The listener to advertise (Via, Record-Route, Contact) toward ``target``: the one
        its flow arrived on; toward a next hop over TLS, the MTLS listener when there is
        one (the peer partition presents its certificate to reach us)."""
        if isinstance(target, NextHop):
            kind = hop_kind(target)
        else:
            kind = self._router.listener_kind(target)
        return choose_listener(self.listeners, kind)

    def is_ours(self, uri: Uri) -> bool:
        """Whether ``uri`` names one of our listeners (host and port)."""
        return isinstance(uri, SipUri) and uri_address(uri) in self._own

    def _on_request(self, event: RequestReceived, now: float) -> None:
        request, key = event.request, event.transaction
        if request.method == "CANCEL":
            self._on_cancel(event, now)
            return
        # Overload: shed before anything is parsed further (DESIGN §8).
        shed = self._router.shed(request, event.flow, self.transactions.pending)
        if shed is not None:
            self.transactions.send_response(key, shed, now)
            return
        # §16.3 step 3: Max-Forwards.
        if request.max_forwards == 0:
            self._reject(key, request, 483, "Max-Forwards reached 0", now)
            return
        # §16.3 step 4: a Via of ours carrying this request's loop hash means a loop.
        loop = loop_hash(request, self.name)
        marker = f"{MAGIC_COOKIE}{loop}."
        # Only a request whose Via text carries our loop marker can be a loop: the Vias
        # are parsed just then.
        if any(marker in value for value in request.headers.get_all("via")):
            for via in request.vias:
                if via_address(via) in self._own and (via.branch or "").startswith(marker):
                    self._reject(key, request, 482, f"request already passed {via.sent_by}", now)
                    return
        # §16.3 step 5: Proxy-Require.
        unsupported = [
            t for t in request.headers.get_list("proxy-require") if t not in SUPPORTED_EXTENSIONS
        ]
        if unsupported:
            self._reject(key, request, 420, "Proxy-Require " + ", ".join(unsupported), now)
            return
        # Trust is decided per request, in-dialog ones included (DESIGN §8).
        verdict = self._router.authorize(request, event.flow)
        if isinstance(verdict, Answer):
            self.transactions.send_response(key, verdict.response, now)
            return
        if isinstance(verdict, Reject):
            self._reject(key, request, verdict.status, verdict.rule, now, verdict.reason)
            return
        received_routes = len(verdict.request.routes)
        request, routes = self._preprocess_routes(verdict.request)
        if routes:
            hop = next_hop_for_uri(routes[0].uri)
            if hop is None:
                self._reject(key, request, 416, f"cannot route to {routes[0].uri}", now)
                return
            decision: Decision = Forward(hop)
        elif (
            request.to_addr.tag is not None
            and len(routes) < received_routes
            and not self.is_ours(request.uri)
            and (target := self._router.dialog_target(request.uri)) is not None
        ):
            # An in-dialog request that followed our Record-Route and no other: the
            # Request-URI is the remote target. Without a Route of ours, it is routed
            # like any request (never relayed to whatever host it names).
            decision = target if isinstance(target, Reject) else Forward(target)
        else:
            decision = self._router.decide(request, event.flow)
        if isinstance(decision, AwaitRegistration):
            self.held.hold(Held(event, request, loop, decision))
            return
        self.carry_out(event, request, loop, decision, now)

    def carry_out(
        self, event: RequestReceived, request: Request, loop: str, decision: Decision, now: float
    ) -> None:
        """Answer or forward ``request`` (routed from ``event``) as ``decision`` says."""
        key = event.transaction
        if isinstance(decision, AwaitRegistration):
            decision = decision.otherwise
        if isinstance(decision, Reject):
            self._reject(key, request, decision.status, decision.rule, now, decision.reason)
            return
        if isinstance(decision, Answer):
            self.transactions.send_response(key, decision.response, now)
            return
        if isinstance(decision, Deferred):
            return
        context = _ResponseContext(key, event.request, request, event.flow, loop)
        self._contexts[key] = context
        for forward in decision.forwards if isinstance(decision, Fork) else (decision,):
            self._fork(context, request, forward, event.flow, loop, now)

    def _preprocess_routes(self, request: Request) -> tuple[Request, list[NameAddr]]:
        """§16.4: undo a strict router's rewrite, then pop the Route entries that are us."""
        routes = list(request.routes)
        headers = request.headers
        uri = request.uri
        if self.is_ours(uri) and routes:
            # The previous hop is a strict router: it put our Record-Route URI into the
            # Request-URI and moved the real target into the last Route.
            uri = routes[-1].uri
            routes = routes[:-1]
            headers = Headers([*headers.remove("route"), *(("Route", str(r)) for r in routes)])
        while routes and self.is_ours(routes[0].uri):
            routes.pop(0)
            headers = headers.pop_first_element("route")
        if headers is request.headers and uri is request.uri:
            return request, routes
        return Request(request.method, uri, headers, request.body), routes

    def _fork(
        self,
        context: _ResponseContext,
        request: Request,
        decision: Forward,
        flow: FlowId,
        loop: str,
        now: float,
    ) -> None:
        target = decision.next_hop
        listener = self.listener_for(target)
        branch = f"{MAGIC_COOKIE}{loop}.{next(self._counter):x}"
        record_routes: list[str] = []
        if request.method in DIALOG_CREATING and request.to_addr.tag is None:
            # Signed for the dialog: its in-dialog requests show they follow our route.
            params = self._route_stamp.params(request) if self._route_stamp is not None else ""
            record_routes.append(_with_params(listener.record_route, params))
            inbound = self.listener_for(flow)
            if inbound != listener:
                # RFC 5658: one Record-Route per side when the two sides use different
                # listeners, so each side reaches us where it can.
                record_routes.append(_with_params(inbound.record_route, params))
        via = Via(listener.transport, listener.host, listener.port, (("branch", branch), _ALIAS))
        forwarded = request.forwarded(
            via, record_routes, _one_hop_less(request), decision.request_uri
        )
        client = self.transactions.send_request(forwarded, target, now)
        context.branches[client] = _Branch(client, forwarded, target, decision)
        self._by_client[client] = context

    def _on_cancel(self, event: RequestReceived, now: float) -> None:
        context = self._contexts.get(event.cancels) if event.cancels is not None else None
        if context is None:
            self._reject(
                event.transaction, event.request, 481, "CANCEL matches no pending INVITE", now
            )
            return
        self.transactions.send_response(
            event.transaction,
            make_response(event.request, 200, to_tag=self._tag(event.transaction)),
            now,
        )
        self._cancel_branches(context, now)

    def _cancel_branches(
        self, context: _ResponseContext, now: float, except_key: ClientKey | None = None
    ) -> None:
        for branch in context.branches.values():
            if branch.done or branch.key == except_key:
                continue
            if branch.provisional:
                self._send_cancel(branch, now)
            else:
                branch.cancel_pending = True

    def _send_cancel(self, branch: _Branch, now: float) -> None:
        """§9.1: CANCEL with the branch's Via, Request-URI, Call-ID, From, To and CSeq number."""
        if self.transactions.client_state(branch.key) is State.TERMINATED:
            return
        original = branch.request
        fields = [
            ("Via", original.headers.get_list("via")[0]),
            ("Max-Forwards", str(DEFAULT_MAX_FORWARDS)),
        ]
        fields += [("Route", value) for value in original.headers.get_all("route")]
        fields += [
            ("From", original.headers.get("from") or ""),
            ("To", original.headers.get("to") or ""),
            ("Call-ID", original.call_id),
            ("CSeq", f"{original.cseq.number} CANCEL"),
        ]
        cancel = Request("CANCEL", original.uri, Headers(fields))
        self._our_cancels.add(self.transactions.send_request(cancel, branch.target, now))

    # -- responses -----------------------------------------------------------------

    def _on_response(self, key: ClientKey, response: Response, now: float) -> None:
        if key in self._our_cancels:
            self._our_cancels.discard(key)
            return
        context = self._by_client.get(key)
        if context is None:
            return
        branch = context.branches[key]
        status = response.status
        self._router.hop_outcome(branch.target, None, False)
        upstream = response.without_top_via()
        if status < 200:
            branch.provisional = True
            if branch.cancel_pending:
                branch.cancel_pending = False
                self._send_cancel(branch, now)
            if status > 100 and not context.final_sent:
                self.transactions.send_response(context.server_key, upstream, now)
            return
        branch.done = True
        self._by_client.pop(key, None)
        if status < 300:
            if self.transactions.server_state(context.server_key) is not State.TERMINATED:
                self.transactions.send_response(context.server_key, upstream, now)
            context.final_sent = True
            if context.request.method == "INVITE":
                self._cancel_branches(context, now, except_key=key)
        elif status >= 600:
            self._cancel_branches(context, now, except_key=key)
            self._choose(context, upstream, now, final=True)
        else:
            self._choose(context, upstream, now)
        self._finish_if_done(context, now)

    def _choose(
        self, context: _ResponseContext, response: Response, now: float, *, final: bool = False
    ) -> None:
        """§16.7 step 6: keep the best non-2xx; a 6xx ends the search."""
        best = context.best
        if final or best is None or _rank(response.status) < _rank(best.status):
            context.best = response
        if final and not context.final_sent:
            self._send_best(context, now)

    def _finish_if_done(self, context: _ResponseContext, now: float) -> None:
        if any(not branch.done for branch in context.branches.values()):
            return
        if not context.final_sent and context.best is not None:
            self._send_best(context, now)
        self._contexts.pop(context.server_key, None)

    def _send_best(self, context: _ResponseContext, now: float) -> None:
        best = context.best
        assert best is not None
        if best.status == 503:
            # §16.7 step 6: a 503 from downstream must not make upstream avoid us.
            best = Response(500, "Next hop unavailable", best.headers, best.body)
        context.final_sent = True
        if self.transactions.server_state(context.server_key) is not State.TERMINATED:
            self.transactions.send_response(context.server_key, best, now)

    def _on_timeout(self, event: ClientTimedOut, now: float) -> None:
        context = self._by_client.get(event.transaction)
        if event.transaction in self._our_cancels or context is None:
            self._our_cancels.discard(event.transaction)
            return
        branch = context.branches[event.transaction]
        if event.timer == "C" and branch.provisional:
            self._send_cancel(branch, now)
            return
        if event.timer == "C":
            self.transactions.terminate_client(event.transaction)
        seconds = (
            self.transactions.timers.timer_c
            if event.timer == "C"
            else self.transactions.timers.timer_b
        )
        rule = f"no final response from next hop within {seconds:g} s (timer {event.timer})"
        if event.timer != "C":
            self._router.hop_outcome(branch.target, rule, False)
        self._on_branch_failure(event.transaction, 408, rule, now)

    def _on_branch_failure(
        self, key: ClientKey, status: int, rule: str, now: float, *, replay: bool = True
    ) -> None:
        if key in self._our_cancels:
            self._our_cancels.discard(key)
            return
        context = self._by_client.pop(key, None)
        if context is None:
            return
        branch = context.branches[key]
        branch.done = True
        alternatives = branch.forward.alternatives
        if replay and alternatives and not branch.provisional and not context.final_sent:
            logger.info(
                "next hop %s unreachable (%s); trying %s", branch.target, rule, alternatives[0]
            )
            self.failovers[branch.target] += 1
            failover = Forward(alternatives[0], branch.forward.request_uri, alternatives[1:])
            self._fork(context, context.routed, failover, context.flow, context.loop, now)
            return
        synthesized = make_response(
            context.request,
            status,
            to_tag=self._tag(context.server_key),
            headers=[("Warning", warning_value(self.name, rule))],
        )
        self._choose(context, synthesized, now)
        self._finish_if_done(context, now)

    # -- stateless forwarding --------------------------------------------------------

    def _forward_ack(self, request: Request, flow: FlowId) -> None:
        """The ACK of a 2xx is end to end: forward it statelessly along its Route, when
        that starts with our Record-Route (signed for its dialog when we sign them): an
        ACK is never challenged, so it must not be a way to reach any host."""
        stamp = self._route_stamp
        first = request.routes[:1]
        ours = self.is_ours(request.uri) or bool(first and self.is_ours(first[0].uri))
        if not ours or (stamp is not None and not stamp.recorded(request, self.is_ours)):
            logger.info("dropping ACK for %s: not within a dialog we Record-Routed", request.uri)
            return
        request, routes = self._preprocess_routes(request)
        hop = next_hop_for_uri(routes[0].uri) if routes else self._router.dialog_target(request.uri)
        if hop is None or isinstance(hop, Reject) or request.max_forwards == 0:
            logger.info("dropping ACK for %s: no route", request.uri)
            return
        listener = self.listener_for(hop)
        # A stateless branch must be the same for retransmissions: derive it from theirs.
        branch = (
            MAGIC_COOKIE
            + hashlib.blake2s((request.top_via.branch or "").encode(), digest_size=8).hexdigest()
        )
        via = Via(listener.transport, listener.host, listener.port, (("branch", branch),))
        self.transactions.send_stateless(hop, request.forwarded(via, (), _one_hop_less(request)))

    def _forward_stray(self, response: Response) -> None:
        """A retransmitted 2xx to an INVITE goes upstream along its Via (§16.7 step 3 on)."""
        if (
            response.status // 100 != 2
            or response.cseq.method != "INVITE"
            or len(response.vias) < 2
        ):
            return
        if via_address(response.top_via) not in self._own:
            return
        hop = response_hop(response.vias[1])
        if hop is not None:
            self.transactions.send_stateless(hop, response.without_top_via())


def describe_failure(error: Exception) -> str:
    """One log line's worth of an exception: its type, text and where it was raised."""
    frames = traceback.extract_tb(error.__traceback__)
    where = f" at {Path(frames[-1].filename).name}:{frames[-1].lineno}" if frames else ""
    return f"{type(error).__name__}: {error}{where}"


def _with_params(record_route: str, params: str) -> str:
    """``<uri>`` with ``params`` added to the URI."""
    return f"{record_route[:-1]}{params}>"


def _one_hop_less(request: Request) -> int:
    """Max-Forwards for the forwarded copy (§16.6 step 3: 70 when the request had none)."""
    max_forwards = request.max_forwards
    return (max_forwards if max_forwards is not None else DEFAULT_MAX_FORWARDS + 1) - 1


def _rank(status: int) -> tuple[int, int]:
    """Lower is better among non-2xx finals: 6xx, then 3xx, 4xx, 5xx (§16.7 step 6)."""
    order = {6: 0, 3: 1, 4: 2, 5: 3}
    return (order.get(status // 100, 4), status)
