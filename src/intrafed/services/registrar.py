"""The registrar (RFC 3261 §10.3), sans-IO: REGISTER in, a response and the changed
bindings out. Persistence is the caller's: it saves what ``register`` reports changed (or
``rollback``s it when the save failed) and hands saved bindings back to ``restore`` after
a restart.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass

from intrafed.sip.addressing import next_hop_for_uri, via_address
from intrafed.sip.errors import RemoteSipError
from intrafed.sip.header_values import NameAddr, Via
from intrafed.sip.message import Request, Response
from intrafed.sip.responses import local_tag, make_response, warning_value
from intrafed.sip.transaction import FlowId
from intrafed.sip.uri import SipUri, parse_uri, uri_equivalent
from intrafed.store.base import BindingRow

DEFAULT_EXPIRES = 3600
MIN_EXPIRES = 60
MAX_EXPIRES = 86400


@dataclass(frozen=True, slots=True)
class Binding(BindingRow):
    """One contact of an address of record, as the registrar keeps it: what is stored, and
    the connection. A flow-bound binding (``delivery.is_flow_bound``) whose connection is
    gone (or after a restart) gets requests answered 430, never sent to its address."""

    flow: FlowId | None = None
    """The connection the REGISTER came on (requests reach NAT-bound clients over it)."""

    def remaining(self, now: float) -> int:
        """Seconds left, for the ``expires`` parameter of a 200."""
        return max(0, int(self.expires_at - now))


@dataclass(frozen=True, slots=True)
class Registration:
    """What a REGISTER produced: the response, and the AORs whose bindings changed."""

    response: Response
    changed: tuple[str, ...] = ()
    previous: tuple[Binding, ...] = ()
    """The bindings of the changed AOR before this REGISTER, for ``rollback``."""


class Registrar:
    """Bindings of the users homed here, kept in memory (the caller persists changes)."""

    def __init__(
        self,
        agent: str,
        is_homed: Callable[[str], bool],
        is_disabled: Callable[[str], bool] = lambda aor: False,
    ) -> None:
        self._agent = agent
        self._is_homed = is_homed
        self._is_disabled = is_disabled
        self._bindings: dict[str, list[Binding]] = {}
        self._by_contact: dict[str, Binding] = {}

    def restore(self, rows: Iterable[BindingRow]) -> None:
        """Load saved bindings (after a restart: no connection yet)."""
        for row in rows:
            binding = Binding(
                row.aor, row.contact, row.expires_at, row.q, row.call_id, row.cseq, row.flow_bound
            )
            self._bindings.setdefault(binding.aor, []).append(binding)
            self._by_contact[binding.contact] = binding

    def binding_of_contact(self, contact: str, now: float) -> Binding | None:
        """The live binding registered with exactly this contact URI: an in-dialog request
        to a client's contact goes over the client's own connection."""
        binding = self._by_contact.get(contact)
        return binding if binding is not None and binding.expires_at > now else None

    def _keep(self, aor: str, bindings: list[Binding]) -> None:
        for old in self._bindings.get(aor, ()):
            if self._by_contact.get(old.contact) is old:
                del self._by_contact[old.contact]
        self._bindings[aor] = bindings
        for binding in bindings:
            self._by_contact[binding.contact] = binding

    def rollback(self, registration: Registration) -> None:
        """Undo ``registration`` (its bindings could not be stored): the AOR keeps the
        bindings it had before."""
        for aor in registration.changed:
            self._keep(aor, list(registration.previous))

    def registered(self, now: float) -> list[str]:
        """The addresses of record with a live binding (without a walk over every user)."""
        return [
            aor
            for aor, bindings in self._bindings.items()
            if any(b.expires_at > now for b in bindings)
        ]

    def bindings(self, aor: str, now: float) -> list[Binding]:
        """The live bindings of ``aor``, best q first."""
        live = [b for b in self._bindings.get(aor, ()) if b.expires_at > now]
        return sorted(live, key=lambda binding: -binding.q)

    def register(
        self,
        request: Request,
        flow: FlowId,
        now: float,
        source: tuple[str, int] | None = None,
    ) -> Registration:
        """Handle one REGISTER (RFC 3261 §10.3 steps 4 to 8; authentication comes first)
        that came on ``flow`` from ``source`` (IP, port)."""
        to_uri = request.to_addr.uri
        if not isinstance(to_uri, SipUri) or to_uri.user is None:
            return self._refuse(
                request, 400, "the To of a REGISTER must be a sip: address of record"
            )
        aor = to_uri.aor
        if not self._is_homed(aor):
            return self._refuse(request, 404, f"{aor} is not a user of this node")
        if self._is_disabled(aor):
            # Still homed here (so never routed to the other side), but not allowed in.
            return self._refuse(request, 403, f"{aor} is disabled on this node")
        try:
            contacts = request.contacts
            star = request.contact_is_star
            expires_header = request.expires
        except RemoteSipError as exc:
            return self._refuse(request, 400, exc.reason)
        previous = tuple(self._bindings.get(aor, ()))
        current = [b for b in previous if b.expires_at > now]
        if star:
            # §10.3 step 6: "*" only with Expires: 0, and it removes every binding.
            if expires_header != 0:
                return self._refuse(request, 400, "Contact: * needs Expires: 0")
            stale = [
                b for b in current if b.call_id == request.call_id and b.cseq >= request.cseq.number
            ]
            if stale:
                return self._refuse(request, 500, "CSeq not higher than the one already registered")
            self._keep(aor, [])
            return Registration(self._ok(request, aor, now), (aor,), previous)
        if not contacts:
            return Registration(self._ok(request, aor, now))
        updated = list(current)
        for contact in contacts:
            expires = self._expires(request, contact)
            if 0 < expires < MIN_EXPIRES:
                response = make_response(
                    request, 423, "Interval Too Brief", headers=[("Min-Expires", str(MIN_EXPIRES))]
                )
                return Registration(response)
            uri = contact.uri
            existing = next((b for b in updated if uri_equivalent(parse_uri(b.contact), uri)), None)
            if existing is not None:
                # §10.3 step 7: an older or repeated REGISTER of the same Call-ID loses.
                if existing.call_id == request.call_id and existing.cseq >= request.cseq.number:
                    return self._refuse(
                        request, 500, "CSeq not higher than the one already registered"
                    )
                updated.remove(existing)
            if expires > 0:
                q = float(contact.param("q") or 1.0)
                updated.append(
                    Binding(
                        aor,
                        str(uri),
                        now + expires,
                        q,
                        request.call_id,
                        request.cseq.number,
                        is_flow_bound(contact, request.top_via, source),
                        flow,
                    )
                )
        self._keep(aor, updated)
        return Registration(self._ok(request, aor, now), (aor,), previous)

    def _expires(self, request: Request, contact: NameAddr) -> int:
        value = contact.param("expires")
        expires = int(value) if value else request.expires
        if expires is None:
            expires = DEFAULT_EXPIRES
        return min(expires, MAX_EXPIRES)

    def _ok(self, request: Request, aor: str, now: float) -> Response:
        contacts = [
            ("Contact", f"<{b.contact}>;expires={b.remaining(now)};q={b.q:g}")
            for b in self.bindings(aor, now)
        ]
        return make_response(request, 200, to_tag=_tag(request), headers=contacts)

    def _refuse(self, request: Request, status: int, rule: str) -> Registration:
        warning = ("Warning", warning_value(self._agent, rule))
        return Registration(make_response(request, status, to_tag=_tag(request), headers=[warning]))


def is_flow_bound(contact: NameAddr, via: Via, source: tuple[str, int] | None) -> bool:
    """Whether ``contact``, registered by a request whose top Via is ``via`` over a
    connection from ``source``, can be reached only over that connection: RFC 5626
    outbound (``ob``, ``reg-id``), the connection's own source address, or the sent-by of
    an ``alias`` Via (RFC 5923). Only other contacts name a listening address of their own.
    An unknown ``source`` counts as flow-bound: the safe side."""
    uri = contact.uri
    hop = next_hop_for_uri(uri)
    if hop is None or source is None or not isinstance(uri, SipUri):
        return True
    if uri.has_param("ob") or contact.param("reg-id") is not None:
        return True
    address = (hop.host.lower(), hop.port)
    if address == (source[0].lower(), source[1]):
        return True
    if via.alias:
        return address == via_address(via)
    return False


def _tag(request: Request) -> str:
    return local_tag(request.call_id, str(request.cseq.number), request.top_via.branch or "")
