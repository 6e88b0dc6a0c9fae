"""What may become of a request, in one vocabulary: authorization, routing, the services
and the proxy all answer with these frozen values. Letting a request through is an
explicit ``Accepted``, never None.
"""

from __future__ import annotations

from dataclasses import dataclass

from intrafed.sip.message import Request, Response
from intrafed.sip.transaction import Target
from intrafed.sip.uri import Uri


@dataclass(frozen=True, slots=True)
class Accepted:
    """The request may proceed as ``request``: with Proxy-Authorization credentials of our
    realm consumed, since they were for us (the other partition shares the realm, and must
    neither see nor replay them). ``identity`` is the AOR its digest credentials proved
    now (the caller binds it to the connection), None when nothing was proven."""

    request: Request
    identity: str | None = None


@dataclass(frozen=True, slots=True)
class Forward:
    """Send the request to ``next_hop``, with the Request-URI replaced when given; while
    the hop is unreachable (transport error, no answer), try ``alternatives`` in order
    (IM&P static routes by priority)."""

    next_hop: Target
    request_uri: Uri | None = None
    alternatives: tuple[Target, ...] = ()


@dataclass(frozen=True, slots=True)
class Fork:
    """Send the request to every target at once (all contacts of a user); the best
    response wins (RFC 3261 §16.7)."""

    forwards: tuple[Forward, ...]


@dataclass(frozen=True, slots=True)
class Reject:
    """Answer ``status`` at once; ``rule`` goes into the Warning header, ``reason`` is the
    reason phrase (the status's own when None), ``reasons`` explain the decision
    (``intrafed route explain``)."""

    status: int
    rule: str
    reason: str | None = None
    reasons: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class Answer:
    """Answer with ``response`` (made by a service of this node, e.g. the registrar)."""

    response: Response


@dataclass(frozen=True, slots=True)
class Deferred:
    """The service that took the request answers it later, on its server transaction (the
    registrar once the bindings are stored)."""


@dataclass(frozen=True, slots=True)
class AwaitRegistration:
    """Hold the request until ``aor`` registers again, then decide again; answer with
    ``otherwise`` at ``until`` (loop time) if it has not: the user's client was connected
    to the process this one took over from, and connects again."""

    aor: str
    until: float
    otherwise: Reject


Decision = Forward | Fork | Reject | Answer | Deferred | AwaitRegistration
"""Where a request goes, or how it is answered."""
Verdict = Accepted | Reject | Answer
"""Whether a request may proceed (authorization)."""
