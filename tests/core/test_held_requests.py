"""A process that took over a node's listeners (``intrafed service restart``) has the
bindings of the clients its predecessor held but not their connections: a request for
such a user waits for the user to register again instead of getting 430 (on the fake
clock of ``bench.loopback``)."""

from __future__ import annotations

import dataclasses

from bench.loopback import Client, Federation, advance, message, pump, registered
from intrafed.sip import Response
from intrafed.store.base import BindingRow


def taken_over(fed: Federation) -> None:
    """ocs1 starts again as a process that took over the listeners: bob's binding is the
    stored one (no connection), the connection it came on is closed."""
    ocs, now = fed.ocs, fed.clock.now
    [binding] = ocs.core.registrar.bindings("bob@example.com", fed.clock.wall())
    assert binding.flow is not None
    ocs.core.flow_closed(binding.flow, now)
    stored = BindingRow(*dataclasses.astuple(binding)[: len(dataclasses.fields(BindingRow))])
    ocs.core.registrar.restore([stored])
    bound = {kind: (ocs.ip, port) for kind, port in ocs.listeners.items()}
    ocs.core.start(bound, (), now, took_over=True)


def test_a_message_for_a_user_whose_connection_the_old_process_had_waits_for_it() -> None:
    fed = registered()
    taken_over(fed)
    sent = message(fed.alice, "bob@example.com")
    fed.alice.send(sent)
    pump(fed.ocs, fed.imp, fed.clock)
    answers = [m for m in fed.alice.inbox if isinstance(m, Response) and m.status >= 200]
    assert [m for m in answers if m.call_id == sent.call_id] == []
    bob_again = Client(fed.network, "bob@example.com", "127.0.0.31", fed.ocs)
    assert bob_again.register(fed.ocs, fed.imp).status == 200
    assert fed.alice.final_response(sent).status == 200
    assert [m.call_id for m in bob_again.requests("MESSAGE")] == [sent.call_id]


def test_a_user_who_does_not_register_again_gets_430_after_the_wait() -> None:
    fed = registered()
    taken_over(fed)
    sent = message(fed.alice, "bob@example.com")
    fed.alice.send(sent)
    advance(fed.ocs, fed.imp, fed.clock, 3.5)
    assert fed.alice.final_response(sent).status == 430


def test_a_node_started_afresh_answers_430_at_once() -> None:
    fed = registered()
    ocs = fed.ocs
    [binding] = ocs.core.registrar.bindings("bob@example.com", fed.clock.wall())
    assert binding.flow is not None
    ocs.core.flow_closed(binding.flow, fed.clock.now)
    assert fed.alice.call(message(fed.alice, "bob@example.com"), fed.ocs, fed.imp).status == 430
