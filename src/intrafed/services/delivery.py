"""Where a request for a registered user goes (RFC 5626 flows), sans-IO.

A contact that the node can reach only over the connection it was registered on
(``registrar.is_flow_bound``) is *flow-bound*: once that connection is gone, a request for
it fails with 430 Flow Failed (RFC 5626 §5.3). Sending it to the contact's address instead
would hand it to whoever connects from, or listens at, that address next: another user.
Only a contact that names a listening address of its own (not the source of the connection
it registered over) is reached by opening a new connection when its flow is gone.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable

from intrafed.services.presence import OutgoingNotify
from intrafed.services.registrar import Binding
from intrafed.sip.addressing import next_hop_for_uri
from intrafed.sip.decisions import Fork, Forward, Reject
from intrafed.sip.transaction import FlowId, Target
from intrafed.sip.uri import Uri, parse_uri

FLOW_FAILED = 430
OpenFlow = Callable[[FlowId], object | None]
"""The open connection with this id, or None."""


def binding_target(binding: Binding, open_flow: OpenFlow) -> Target | None:
    """The registering connection while it is open; else the contact's own listening
    address, or None when the binding is flow-bound (its flow failed)."""
    if binding.flow is not None and open_flow(binding.flow) is not None:
        return binding.flow
    if binding.flow_bound:
        return None
    return next_hop_for_uri(parse_uri(binding.contact))


def to_bindings(aor: str, bindings: Iterable[Binding], open_flow: OpenFlow) -> Fork | Reject:
    """A request for a homed user: every reachable contact at once; 430 when every contact
    left is flow-bound and its flow failed, 480 when there is none."""
    forwards: list[Forward] = []
    failed = 0
    for binding in bindings:
        target = binding_target(binding, open_flow)
        if target is not None:
            forwards.append(Forward(target, parse_uri(binding.contact)))
        elif binding.flow_bound:
            failed += 1
    if forwards:
        return Fork(tuple(forwards))
    if failed:
        return Reject(
            FLOW_FAILED,
            f"the connection {aor} registered over is gone; it must register again",
            "Flow Failed",
        )
    return Reject(480, f"{aor} is provisioned here but not registered", "Temporarily Unavailable")


def dialog_target(binding: Binding | None, uri: Uri, open_flow: OpenFlow) -> Target | Reject | None:
    """An in-dialog request to the remote target ``uri``: over the connection of the
    binding registered with that contact, 430 when that binding is flow-bound and its
    flow failed, else the address the URI names."""
    if binding is None:
        return next_hop_for_uri(uri)
    target = binding_target(binding, open_flow)
    if target is None:
        return Reject(
            FLOW_FAILED,
            f"the connection {binding.contact} registered over is gone",
            "Flow Failed",
        )
    return target


def notify_target(
    notify: OutgoingNotify,
    open_flow: OpenFlow,
    reroute: Callable[[Uri], Target | Reject | None],
) -> Target | None:
    """Where a NOTIFY goes: the first hop of its route set, or the watcher's connection
    while it is open; else as an in-dialog request to the watcher's contact (``reroute``:
    ``dialog_target``), or None when that is a flow-bound binding whose flow failed."""
    target = notify.target
    if notify.route_hop is not None or (isinstance(target, int) and open_flow(target) is not None):
        return target
    rerouted = reroute(notify.request.uri)
    if isinstance(rerouted, Reject):
        return None
    return target if rerouted is None else rerouted
