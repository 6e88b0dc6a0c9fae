"""RFC 3261 §17 transactions, sans-IO.

The layer is handed messages and ``now`` and keeps no clock: ``get_timer()`` says when it
next needs ``handle_timer(now)``. It returns what to send with ``outgoing()`` and what
happened with ``next_event()``. Every transport here is reliable (TCP, TLS), so, as the RFC
says, the retransmission timers (A, E, G) never run and the wait timers D, I, J and K are
zero; the timeouts B, F, H and the proxy's timer C do run.
"""

from __future__ import annotations

import enum
import heapq
import itertools
from collections import deque
from dataclasses import dataclass

from intrafed.sip.errors import LocalSipError
from intrafed.sip.headers import Headers
from intrafed.sip.message import Request, Response
from intrafed.sip.responses import make_response

# RFC 3261 §8.1.1.7: a branch that begins with the magic cookie is RFC 3261-unique.
MAGIC_COOKIE = "z9hG4bK"

FlowId = int

RESENDS_AFTER_CLEAN_CLOSE = 3
"""Times one request is sent again because the connection that carried it ended cleanly
unread (``TransactionLayer.flow_closed``): a restarting peer may close two or three
connections of ours in turn (one it opened, one we opened) before its new process reads."""


@dataclass(frozen=True, slots=True)
class NextHop:
    """Where to send a request that has no flow yet: transport, host (name or IP), port."""

    transport: str
    host: str
    port: int


Target = FlowId | NextHop


@dataclass(frozen=True, slots=True)
class TimerConfig:
    """The RFC 3261 timer base values; every timer is derived from them."""

    t1: float = 0.5
    """Round-trip time estimate (RFC 3261 §17.1.1.1)."""
    t2: float = 4.0
    """Longest retransmit interval for non-INVITE requests and INVITE responses."""
    t4: float = 5.0
    """Longest time a message stays in the network."""
    timer_c: float = 180.0
    """Proxy INVITE transaction timeout; "MUST be greater than 3 minutes" (§16.6 step 11)."""

    @property
    def timer_b(self) -> float:
        """INVITE client transaction timeout: 64*T1."""
        return 64 * self.t1

    @property
    def timer_f(self) -> float:
        """Non-INVITE client transaction timeout: 64*T1."""
        return 64 * self.t1

    @property
    def timer_h(self) -> float:
        """Wait time for the ACK of a non-2xx final response: 64*T1."""
        return 64 * self.t1


class State(enum.Enum):
    """Transaction states, named as in RFC 3261 §17."""

    CALLING = "Calling"
    TRYING = "Trying"
    PROCEEDING = "Proceeding"
    COMPLETED = "Completed"
    CONFIRMED = "Confirmed"
    TERMINATED = "Terminated"


class Kind(enum.Enum):
    """The four transaction state machines of RFC 3261 §17."""

    INVITE_CLIENT = "INVITE client"
    NON_INVITE_CLIENT = "non-INVITE client"
    INVITE_SERVER = "INVITE server"
    NON_INVITE_SERVER = "non-INVITE server"


class Input(enum.Enum):
    """What can happen to a transaction."""

    PROVISIONAL = "1xx"
    SUCCESS = "2xx"
    FAILURE = "3xx-6xx"
    RETRANSMISSION = "request retransmission"
    ACK = "ACK"
    TIMEOUT = "timeout (B, F or H)"
    TIMER_C = "timer C"
    TRANSPORT_ERROR = "transport error"


_S = State
_I = Input
# TRANSITIONS[kind][state][input] -> next state. Over reliable transports the wait timers
# D, I, J and K are zero, so Completed (Confirmed) ends at once where the RFC waits.
TRANSITIONS: dict[Kind, dict[State, dict[Input, State]]] = {
    Kind.INVITE_CLIENT: {
        _S.CALLING: {
            _I.PROVISIONAL: _S.PROCEEDING,
            _I.SUCCESS: _S.TERMINATED,
            _I.FAILURE: _S.TERMINATED,
            _I.TIMEOUT: _S.TERMINATED,
            _I.TRANSPORT_ERROR: _S.TERMINATED,
        },
        _S.PROCEEDING: {
            _I.PROVISIONAL: _S.PROCEEDING,
            _I.SUCCESS: _S.TERMINATED,
            _I.FAILURE: _S.TERMINATED,
            _I.TIMER_C: _S.PROCEEDING,
            _I.TRANSPORT_ERROR: _S.TERMINATED,
        },
    },
    Kind.NON_INVITE_CLIENT: {
        _S.TRYING: {
            _I.PROVISIONAL: _S.PROCEEDING,
            _I.SUCCESS: _S.TERMINATED,
            _I.FAILURE: _S.TERMINATED,
            _I.TIMEOUT: _S.TERMINATED,
            _I.TRANSPORT_ERROR: _S.TERMINATED,
        },
        _S.PROCEEDING: {
            _I.PROVISIONAL: _S.PROCEEDING,
            _I.SUCCESS: _S.TERMINATED,
            _I.FAILURE: _S.TERMINATED,
            _I.TIMEOUT: _S.TERMINATED,
            _I.TRANSPORT_ERROR: _S.TERMINATED,
        },
    },
    Kind.INVITE_SERVER: {
        _S.PROCEEDING: {
            _I.RETRANSMISSION: _S.PROCEEDING,
            _I.PROVISIONAL: _S.PROCEEDING,
            _I.SUCCESS: _S.TERMINATED,
            _I.FAILURE: _S.COMPLETED,
            _I.TRANSPORT_ERROR: _S.TERMINATED,
        },
        _S.COMPLETED: {
            _I.RETRANSMISSION: _S.COMPLETED,
            _I.ACK: _S.TERMINATED,
            _I.TIMEOUT: _S.TERMINATED,
            _I.TRANSPORT_ERROR: _S.TERMINATED,
        },
    },
    Kind.NON_INVITE_SERVER: {
        _S.TRYING: {
            _I.RETRANSMISSION: _S.TRYING,
            _I.PROVISIONAL: _S.PROCEEDING,
            _I.SUCCESS: _S.TERMINATED,
            _I.FAILURE: _S.TERMINATED,
            _I.TRANSPORT_ERROR: _S.TERMINATED,
        },
        _S.PROCEEDING: {
            _I.RETRANSMISSION: _S.PROCEEDING,
            _I.PROVISIONAL: _S.PROCEEDING,
            _I.SUCCESS: _S.TERMINATED,
            _I.FAILURE: _S.TERMINATED,
            _I.TRANSPORT_ERROR: _S.TERMINATED,
        },
    },
}

# Client keys are (branch, method); server keys (branch, sent-by, method), or five fields
# for RFC 2543 peers: the length tells them apart.
ClientKey = tuple[str, ...]
ServerKey = tuple[str, ...]


@dataclass(frozen=True, slots=True)
class RequestReceived:
    """A new request: a new server transaction. ``cancels`` names the INVITE a CANCEL targets."""

    transaction: ServerKey
    request: Request
    flow: FlowId
    cancels: ServerKey | None = None


@dataclass(frozen=True, slots=True)
class AckReceived:
    """An ACK that matched no server transaction: the ACK of a 2xx, for the TU to forward."""

    request: Request
    flow: FlowId


@dataclass(frozen=True, slots=True)
class ResponseReceived:
    """A response for a client transaction (retransmissions are absorbed)."""

    transaction: ClientKey
    response: Response


@dataclass(frozen=True, slots=True)
class StrayResponse:
    """A response that matched no client transaction (a retransmitted 2xx to an INVITE)."""

    response: Response
    flow: FlowId


@dataclass(frozen=True, slots=True)
class ClientTimedOut:
    """Timer B or F fired (no final response), or timer C (INVITE proceeding too long)."""

    transaction: ClientKey
    timer: str


@dataclass(frozen=True, slots=True)
class ClientTransportFailed:
    """The request could not be delivered; the TU treats it as a 503 (RFC 3261 §16.9)."""

    transaction: ClientKey
    reason: str
    written: bool = False
    """The request had been written to a connection that then closed: it may have been
    acted on, so it is never sent elsewhere (DESIGN §8)."""


@dataclass(frozen=True, slots=True)
class ServerTimedOut:
    """Timer H fired: the ACK of a non-2xx final response never came."""

    transaction: ServerKey


TransactionEvent = (
    RequestReceived
    | AckReceived
    | ResponseReceived
    | StrayResponse
    | ClientTimedOut
    | ClientTransportFailed
    | ServerTimedOut
)


class _Transaction:
    __slots__ = (
        "key",
        "kind",
        "last_response",
        "request",
        "resent",
        "state",
        "target",
        "timers",
    )

    def __init__(self, kind: Kind, key: tuple[str, ...], request: Request, target: Target) -> None:
        self.kind = kind
        self.key = key
        self.request = request
        self.target = target
        self.state = State.PROCEEDING if kind is Kind.INVITE_SERVER else State.TRYING
        if kind is Kind.INVITE_CLIENT:
            self.state = State.CALLING
        self.last_response: bytes | None = None
        self.timers: dict[str, float] = {}
        self.resent = 0


def server_key(request: Request) -> ServerKey:
    """The RFC 3261 §17.2.3 matching key of a request (ACK maps to its INVITE)."""
    via = request.top_via
    method = "INVITE" if request.method == "ACK" else request.method
    branch = via.branch or ""
    if branch.startswith(MAGIC_COOKIE):
        return (branch, via.sent_by.lower(), method)
    # RFC 2543 peers: no usable branch, so match on the dialog and sequence fields.
    return (
        request.call_id,
        request.from_addr.tag or "",
        str(request.cseq.number),
        via.sent_by.lower(),
        method,
    )


def client_key(message: Request | Response) -> ClientKey:
    """The RFC 3261 §17.1.3 matching key: top Via branch and CSeq method."""
    method = message.cseq.method
    return (message.top_via.branch or "", "INVITE" if method == "ACK" else method)


def ack_for(request: Request, response: Response) -> Request:
    """The ACK a client INVITE transaction sends for a non-2xx final (RFC 3261 §17.1.1.3)."""
    fields: list[tuple[str, str]] = [("Via", request.headers.get_list("via")[0])]
    fields += [("Max-Forwards", "70")]
    fields += [("Route", value) for value in request.headers.get_all("route")]
    fields += [
        ("From", request.headers.get("from") or ""),
        ("To", response.headers.get("to") or ""),
        ("Call-ID", request.call_id),
        ("CSeq", f"{request.cseq.number} ACK"),
    ]
    return Request("ACK", request.uri, Headers(fields))


class TransactionLayer:
    """All client and server transactions of one node."""

    def __init__(self, timers: TimerConfig | None = None) -> None:
        self.timers = timers or TimerConfig()
        self._clients: dict[ClientKey, _Transaction] = {}
        self._servers: dict[ServerKey, _Transaction] = {}
        self._events: deque[TransactionEvent] = deque()
        self._outgoing: list[tuple[Target, bytes]] = []
        self._heap: list[tuple[float, int, tuple[str, ...], str]] = []
        self._sequence = itertools.count()
        self._hop_flows: dict[NextHop, FlowId] = {}

    # -- what the transport hands us -------------------------------------------------

    def receive_request(self, request: Request, flow: FlowId, now: float) -> None:
        """A request arrived on ``flow``."""
        key = server_key(request)
        transaction = self._servers.get(key)
        if request.method == "ACK":
            if transaction is not None and transaction.kind is Kind.INVITE_SERVER:
                self._apply(transaction, Input.ACK, now)
            else:
                self._events.append(AckReceived(request, flow))
            return
        if transaction is not None:
            # RFC 3261 §17.2.1/§17.2.2: a retransmission gets the last response again.
            self._apply(transaction, Input.RETRANSMISSION, now)
            if transaction.last_response is not None and transaction.state is not State.TRYING:
                self._outgoing.append((transaction.target, transaction.last_response))
            return
        kind = Kind.INVITE_SERVER if request.method == "INVITE" else Kind.NON_INVITE_SERVER
        transaction = _Transaction(kind, key, request, flow)
        self._servers[key] = transaction
        cancels: ServerKey | None = None
        if request.method == "CANCEL":
            invite_key = (*key[:-1], "INVITE")
            if invite_key in self._servers:
                cancels = invite_key
        self._events.append(RequestReceived(key, request, flow, cancels))
        if kind is Kind.INVITE_SERVER:
            # RFC 3261 §17.2.1: 100 Trying at once, so the client stops waiting for the hop.
            self.send_response(key, make_response(request, 100), now)

    def receive_response(self, response: Response, flow: FlowId, now: float) -> None:
        """A response arrived on ``flow``."""
        transaction = self._clients.get(client_key(response))
        if transaction is None:
            self._events.append(StrayResponse(response, flow))
            return
        status = response.status
        action = (
            Input.PROVISIONAL if status < 200 else Input.SUCCESS if status < 300 else Input.FAILURE
        )
        if self._apply(transaction, action, now):
            if transaction.kind is Kind.INVITE_CLIENT and action is Input.FAILURE:
                ack = ack_for(transaction.request, response)
                self._outgoing.append((transaction.target, ack.to_bytes()))
            self._events.append(ResponseReceived(transaction.key, response))

    # -- what the transaction user asks for -------------------------------------------

    def send_request(self, request: Request, target: Target, now: float) -> ClientKey:
        """Start a client transaction for ``request`` (whose top Via carries a fresh branch)."""
        key = client_key(request)
        if key in self._clients:
            raise LocalSipError(f"a client transaction with branch {key[0]} already exists")
        kind = Kind.INVITE_CLIENT if request.method == "INVITE" else Kind.NON_INVITE_CLIENT
        transaction = _Transaction(kind, key, request, target)
        self._clients[key] = transaction
        self._set_timer(transaction, "B" if kind is Kind.INVITE_CLIENT else "F", now)
        self._outgoing.append((target, request.to_bytes()))
        return key

    def send_response(self, key: ServerKey, response: Response, now: float) -> None:
        """Send ``response`` on the server transaction ``key``."""
        transaction = self._servers.get(key)
        if transaction is None:
            raise LocalSipError(f"no server transaction {key}")
        status = response.status
        action = (
            Input.PROVISIONAL if status < 200 else Input.SUCCESS if status < 300 else Input.FAILURE
        )
        if transaction.state not in TRANSITIONS[transaction.kind] or (
            action not in TRANSITIONS[transaction.kind][transaction.state]
        ):
            raise LocalSipError(f"cannot send {status} in state {transaction.state.value}")
        data = response.to_bytes()
        transaction.last_response = data
        self._outgoing.append((transaction.target, data))
        self._apply(transaction, action, now)

    def send_stateless(self, target: Target, message: Request | Response) -> None:
        """Send without a transaction (the ACK of a 2xx, a stray 2xx going upstream)."""
        self._outgoing.append((target, message.to_bytes()))

    def transport_failed(self, key: ClientKey, reason: str, now: float) -> None:
        """The node could not deliver the request of client transaction ``key``."""
        transaction = self._clients.get(key)
        if transaction is not None and self._apply(transaction, Input.TRANSPORT_ERROR, now):
            self._events.append(ClientTransportFailed(key, reason))

    def sent_on(self, target: Target, flow: FlowId) -> None:
        """A request for ``target`` was written on connection ``flow`` (for ``flow_closed``:
        requests to a NextHop travel over whatever connection leads there)."""
        if isinstance(target, NextHop):
            self._hop_flows[target] = flow

    def flow_closed(self, flow: FlowId, now: float, clean: bool = False) -> int:
        """Connection ``flow`` closed: every client transaction whose request went out on it
        and has no final response fails at once (``ClientTransportFailed`` with ``written``)
        instead of waiting for timer B or F.

        ``clean``: the peer ended the flow in a way that proves it read nothing after its
        last response (``Flow.closed_cleanly``). Then a request to a next hop that got no
        response at all was not read: it is sent again to the same hop, over another
        connection (the same branch, so a server that did see it absorbs it as a
        retransmission), up to ``RESENDS_AFTER_CLEAN_CLOSE`` times. Returns how many
        requests go again."""
        hops = {hop for hop, on in self._hop_flows.items() if on == flow}
        for hop in hops:
            del self._hop_flows[hop]
        reason = "the connection closed before a final response"
        again = 0
        for key, transaction in list(self._clients.items()):
            target = transaction.target
            if not (target in hops if isinstance(target, NextHop) else target == flow):
                continue
            if (
                clean
                and isinstance(target, NextHop)
                and transaction.state in (State.TRYING, State.CALLING)
                and transaction.resent < RESENDS_AFTER_CLEAN_CLOSE
            ):
                transaction.resent += 1
                again += 1
                self._outgoing.append((target, transaction.request.to_bytes()))
            elif self._apply(transaction, Input.TRANSPORT_ERROR, now):
                self._events.append(ClientTransportFailed(key, reason, written=True))
        return again

    def terminate_client(self, key: ClientKey) -> None:
        """Drop client transaction ``key`` (timer C fired before any provisional response)."""
        transaction = self._clients.pop(key, None)
        if transaction is not None:
            transaction.state = State.TERMINATED

    def terminate_server(self, key: ServerKey) -> None:
        """Drop server transaction ``key`` (its handling failed; a retransmission of its
        request is then a new request, not one to absorb)."""
        transaction = self._servers.pop(key, None)
        if transaction is not None:
            transaction.state = State.TERMINATED
            transaction.timers.clear()

    def server_request(self, key: ServerKey) -> Request | None:
        """The request of a live server transaction, or None."""
        transaction = self._servers.get(key)
        return transaction.request if transaction is not None else None

    def client_state(self, key: ClientKey) -> State:
        """The state of a client transaction (``TERMINATED`` once it is gone)."""
        transaction = self._clients.get(key)
        return transaction.state if transaction is not None else State.TERMINATED

    def server_state(self, key: ServerKey) -> State:
        """The state of a server transaction (``TERMINATED`` once it is gone)."""
        transaction = self._servers.get(key)
        return transaction.state if transaction is not None else State.TERMINATED

    @property
    def pending(self) -> int:
        """How many transactions are alive (for graceful shutdown)."""
        return len(self._clients) + len(self._servers)

    # -- aioquic's verbs -----------------------------------------------------------

    def next_event(self) -> TransactionEvent | None:
        """The next thing the transaction user must handle, or None."""
        return self._events.popleft() if self._events else None

    def outgoing(self) -> list[tuple[Target, bytes]]:
        """Bytes to send, with where to send them; the list is handed over and emptied."""
        outgoing, self._outgoing = self._outgoing, []
        return outgoing

    def get_timer(self) -> float | None:
        """When ``handle_timer`` must next be called, or None."""
        heap = self._heap
        while heap:
            deadline, _, key, name = heap[0]
            transaction = self._lookup(key)
            if transaction is not None and transaction.timers.get(name) == deadline:
                return deadline
            heapq.heappop(heap)
        return None

    def handle_timer(self, now: float) -> None:
        """Fire every timer due at ``now``."""
        heap = self._heap
        while heap and heap[0][0] <= now:
            deadline, _, key, name = heapq.heappop(heap)
            transaction = self._lookup(key)
            if transaction is None or transaction.timers.get(name) != deadline:
                continue
            del transaction.timers[name]
            if name == "C":
                if self._apply(transaction, Input.TIMER_C, now):
                    self._events.append(ClientTimedOut(transaction.key, "C"))
            elif self._apply(transaction, Input.TIMEOUT, now):
                if transaction.kind is Kind.INVITE_SERVER:
                    self._events.append(ServerTimedOut(transaction.key))
                else:
                    self._events.append(ClientTimedOut(transaction.key, name))

    # -- internals -----------------------------------------------------------------

    def _lookup(self, key: tuple[str, ...]) -> _Transaction | None:
        return self._clients.get(key) if len(key) == 2 else self._servers.get(key)

    def _set_timer(self, transaction: _Transaction, name: str, now: float) -> None:
        delay = {
            "B": self.timers.timer_b,
            "F": self.timers.timer_f,
            "H": self.timers.timer_h,
            "C": self.timers.timer_c,
        }[name]
        deadline = now + delay
        transaction.timers[name] = deadline
        heapq.heappush(self._heap, (deadline, next(self._sequence), transaction.key, name))

    def _apply(self, transaction: _Transaction, action: Input, now: float) -> bool:
        """Move ``transaction`` on ``action``; False when the state ignores it (absorbed)."""
        previous = transaction.state
        next_state = TRANSITIONS[transaction.kind].get(previous, {}).get(action)
        if next_state is None:
            return False
        transaction.state = next_state
        kind = transaction.kind
        if kind is Kind.INVITE_CLIENT and action is Input.PROVISIONAL:
            transaction.timers.pop("B", None)
            self._set_timer(transaction, "C", now)
        elif (
            kind is Kind.INVITE_SERVER
            and next_state is State.COMPLETED
            and previous is not State.COMPLETED
        ):
            self._set_timer(transaction, "H", now)
        if next_state is State.TERMINATED:
            transaction.timers.clear()
            (self._clients if len(transaction.key) == 2 else self._servers).pop(
                transaction.key, None
            )
        return True
